/** The benchmarks' reference job: the MLP 784-512-512-10 (669,706 parameters) on MNIST. */
export const PER_WORKER_BATCH = 128;

export const REFERENCE_JOB = {
  data: { name: 'mnist' },
  model: {
    layers: [
      { units: 512, activation: 'relu' },
      { units: 512, activation: 'relu' },
      { units: 10, activation: 'linear' },
    ],
    loss: 'softmaxCrossEntropy',
  },
  evalEvery: 0,
  checkpointEvery: 0,
};
