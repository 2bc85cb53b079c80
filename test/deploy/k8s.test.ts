/**
 * deploy/k8s/ without a cluster: every manifest validates against the Kubernetes schemas
 * (kubernetes-models), the pieces refer to each other (Service → coordinator pod, workers →
 * Service, Secret, ConfigMap, volume), and the commands the pods run, run here as processes with
 * the environment Kubernetes would give them (the Secret's token, the pod IP, JOB_COMPLETION_INDEX),
 * train the ConfigMap's job with as many workers as the Indexed Job has completions.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { Job } from 'kubernetes-models/batch/v1';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CLI, freePort, readSummary, tempDir } from '../helpers/cli.js';
import { parseConfig } from '../../shared/job/config.js';

const DIR = resolve(__dirname, '../../deploy/k8s');
const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  Job,
  Service,
  Secret,
  ConfigMap,
  PersistentVolumeClaim,
};

interface Obj {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
interface Container {
  command: string[];
  args: string[];
  env: EnvVar[];
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface PodSpec {
  containers: Container[];
  volumes?: Array<{ name: string; configMap?: { name: string }; persistentVolumeClaim?: { claimName: string } }>;
}

const objects: Obj[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => d.toJS() as Obj));
const byKind = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)!;
const coordinatorJob = byKind('Job', 'dptrain-coordinator');
const workersJob = byKind('Job', 'dptrain-workers');
const pod = (j: Obj) => j.spec!.template as { metadata: { labels: Record<string, string> }; spec: PodSpec };

describe('deploy/k8s manifests', () => {
  it('each validates against the Kubernetes schema of its kind', () => {
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ConfigMap',
      'Job',
      'Job',
      'PersistentVolumeClaim',
      'Secret',
      'Service',
    ]);
    for (const o of objects)
      expect(() => new MODELS[o.kind](o as never).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
  });

  it('the schema check can fail: a misspelt field value is refused', () => {
    const broken = structuredClone(workersJob);
    broken.spec!.completionMode = 'indexed';
    expect(() => new Job(broken as never).validate()).toThrow(/completionMode/);
  });

  it('the pieces refer to each other', () => {
    const svc = byKind('Service', 'dptrain-coordinator');
    expect(svc.spec!.clusterIP).toBe('None');
    const selector = svc.spec!.selector as Record<string, string>;
    for (const [k, v] of Object.entries(selector)) expect(pod(coordinatorJob).metadata.labels[k]).toBe(v);
    expect(pod(workersJob).spec.containers[0].args.join(' ')).toContain(
      `ws://${svc.metadata.name}:${(svc.spec!.ports as Array<{ port: number }>)[0].port}`,
    );
    expect(workersJob.spec!.completionMode).toBe('Indexed');
    expect(workersJob.spec!.parallelism).toBe(workersJob.spec!.completions);
    expect(pod(coordinatorJob).spec.containers[0].env.find((e) => e.name === 'WORKERS')!.value).toBe(
      String(workersJob.spec!.completions),
    );
    for (const j of [coordinatorJob, workersJob]) {
      const ref = pod(j).spec.containers[0].env.find((e) => e.name === 'DPTRAIN_TOKEN')!.valueFrom!.secretKeyRef!;
      expect(byKind('Secret', ref.name).stringData![ref.key]).toBeDefined();
    }
    const vols = pod(coordinatorJob).spec.volumes!;
    expect(byKind('ConfigMap', vols.find((v) => v.configMap)!.configMap!.name).data!['job.json']).toBeDefined();
    expect(
      byKind('PersistentVolumeClaim', vols.find((v) => v.persistentVolumeClaim)!.persistentVolumeClaim!.claimName),
    ).toBeDefined();
    // The ConfigMap's job is a valid dptrain config.
    expect(() => parseConfig(JSON.parse(byKind('ConfigMap', 'dptrain-job').data!['job.json']))).not.toThrow();
  });

  it("the pods' commands, run here with the pods' environment, train the job", async () => {
    const tmp = tempDir('k8s');
    // `dptrain` as the image has it; the mounts as directories; the Service name and port on loopback.
    const bin = join(tmp, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'dptrain'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(join(bin, 'dptrain'), 0o755);
    const port = await freePort();
    const mounts: Record<string, string> = { '/job': join(tmp, 'job'), '/runs': join(tmp, 'runs') };
    for (const d of Object.values(mounts)) mkdirSync(d);
    const job = JSON.parse(byKind('ConfigMap', 'dptrain-job').data!['job.json']) as Record<string, unknown>;
    writeFileSync(join(mounts['/job'], 'job.json'), JSON.stringify({ ...job, steps: 30, evalEvery: 0 })); // a short run of the same job
    const local = (s: string) =>
      Object.entries(mounts)
        .reduce((a, [from, to]) => a.replaceAll(from + '/', to + '/'), s)
        .replaceAll('7070', String(port))
        .replaceAll('dptrain-coordinator', '127.0.0.1');
    const token = 'k8s-test-token-0123456789abcdef';
    const envOf = (c: Container, extra: Record<string, string>) => {
      const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...extra };
      for (const e of c.env) {
        if (e.value !== undefined) env[e.name] = e.value;
        else if (e.valueFrom?.secretKeyRef)
          env[e.name] = token; // what `kubectl create secret … $(dptrain token)` holds
        else if (e.valueFrom?.fieldRef?.fieldPath === 'status.podIP') env[e.name] = '127.0.0.1';
      }
      return env;
    };
    const run = (c: Container, extra: Record<string, string>) =>
      new Promise<{ code: number | null; out: string }>((res) => {
        const p = spawn(c.command[0], [...c.command.slice(1), ...c.args.map(local)], {
          env: envOf(c, extra),
          cwd: tmp,
        });
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (out += d.toString()));
        p.on('close', (code) => res({ code, out }));
      });
    const coord = run(pod(coordinatorJob).spec.containers[0], {});
    const workers = Array.from({ length: workersJob.spec!.completions as number }, (_, i) =>
      run(pod(workersJob).spec.containers[0], { JOB_COMPLETION_INDEX: String(i) }),
    );
    const c = await coord;
    const ws = await Promise.all(workers);
    expect(c.code, c.out).toBe(0);
    for (const w of ws) expect(w.code, w.out).toBe(0);
    const summary = readSummary(join(mounts['/runs'], 'job'));
    expect(summary.workers).toBe(2);
    expect(summary.steps).toBe(30);
    const log = readFileSync(join(mounts['/runs'], 'job', 'log.jsonl'), 'utf8');
    expect(log).toMatch(/"workerName":"rank0@/);
    expect(log).toMatch(/"workerName":"rank1@/);
    expect(JSON.parse(readFileSync(join(mounts['/runs'], 'job', 'coordinator.json'), 'utf8'))).toMatchObject({
      address: `ws://127.0.0.1:${port}`,
    });
  }, 180_000);

  it("the Secret's placeholder is refused by a worker, in one line", async () => {
    const c = pod(workersJob).spec.containers[0];
    const r = await new Promise<{ code: number | null; err: string }>((res) => {
      const p = spawn(process.execPath, [CLI, ...c.args], {
        env: { ...process.env, DPTRAIN_TOKEN: byKind('Secret', 'dptrain-token').stringData!.token },
      });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('close', (code) => res({ code, err }));
    });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^dptrain: CONFIG_INVALID: the job token is \d+ characters; use at least 16/m);
  }, 60_000);
});
