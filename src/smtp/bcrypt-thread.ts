// bcrypt comparisons on a helper thread. bcryptjs is pure JavaScript and works in slices of up to
// 100 ms on the thread that calls it: on the main thread every AUTH held every other session for up to
// 100 ms (74 ms in one slice at cost 10, three slices at cost 12). One thread, started at the first
// comparison, compares one password at a time; it keeps the process alive only while it has work.
// Touches: a worker thread running bcryptjs; passwords cross to it in memory, never to a log.

import { Worker } from 'node:worker_threads';

// CommonJS run with eval (no file to find from dist/ or from the sources under test); bcryptjs is
// resolved from this module's own location.
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require('node:module').createRequire(workerData.from)('bcryptjs');
parentPort.on('message', ({ id, password, hash }) => {
  bcrypt.compare(password, hash).then(
    (ok) => parentPort.postMessage({ id, ok }),
    (err) => parentPort.postMessage({ id, error: String((err && err.message) || err) }),
  );
});
`;

type Pending = { resolve: (ok: boolean) => void; reject: (err: Error) => void };

let worker: Worker | null = null;
const pending = new Map<number, Pending>();
let nextId = 1;

function start(): Worker {
  const w = new Worker(THREAD_SOURCE, { eval: true, workerData: { from: import.meta.url } });
  w.unref();
  w.on('message', (m: { id: number; ok?: boolean; error?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    if (m.error !== undefined) p.reject(new Error(`bcrypt comparison failed: ${m.error}`));
    else p.resolve(m.ok === true);
  });
  const fail = (why: string) => {
    if (worker === w) worker = null;
    const waiting = [...pending.values()];
    pending.clear();
    for (const p of waiting) p.reject(new Error(why));
  };
  w.on('error', (err) => fail(`bcrypt thread failed: ${err.message}`));
  w.on('exit', (code) => fail(`bcrypt thread exited (code ${code})`));
  return w;
}

/** Whether `password` matches the bcrypt `hash`, computed on the helper thread (started again if it died). */
export function compareOnBcryptThread(password: string, hash: string): Promise<boolean> {
  worker ??= start();
  const w = worker;
  return new Promise<boolean>((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, password, hash });
  });
}

/** Ends the helper thread (tests); waiting comparisons are refused. */
export async function stopBcryptThread(): Promise<void> {
  const w = worker;
  worker = null;
  if (w) await w.terminate();
}
