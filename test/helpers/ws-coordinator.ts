/** An in-process coordinator on a real WebSocket listener, for end-to-end tests that read its state. */
import { pino } from 'pino';
import { Coordinator } from '../../coordinator/coordinator.js';
import type { CoordinatorOptions } from '../../coordinator/wiring.js';
import { listenWs } from '../../coordinator/ws-listener.js';
import type { Listener } from '../../shared/transport/transport.js';
import type { Logger } from '../../shared/util/log.js';

/** The small spirals network the in-process end-to-end tests train; each adds its own steps and batch. */
export const SPIRALS_NET = {
  data: { name: 'spirals', samples: 400 },
  model: { layers: [{ units: 16, activation: 'relu' }, { units: 2 }], loss: 'softmaxCrossEntropy' },
};

/**
 * A coordinator with no run directory, listening on a free port of 127.0.0.1 for frames up to
 * `maxPayload` bytes; silent unless `options.log` is given. It is not started: the test calls run().
 */
export async function wsCoordinator(
  options: Omit<CoordinatorOptions, 'listener' | 'log' | 'runDir'> & { log?: Logger },
  maxPayload = 1 << 24,
): Promise<{ coord: Coordinator; listener: Listener }> {
  const listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload });
  const coord = new Coordinator({ log: pino({ level: 'silent' }), ...options, listener, runDir: null });
  return { coord, listener };
}
