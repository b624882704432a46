// The bcrypt helper thread: right answers, the main thread left free while it works, and a fresh
// thread after one dies. Touches: a worker thread (bcryptjs).

import bcrypt from 'bcryptjs';
import { afterAll, describe, expect, it } from 'vitest';
import { compareOnBcryptThread, stopBcryptThread } from '../../../src/smtp/bcrypt-thread.js';

const FAST = bcrypt.hashSync('right', 4);

afterAll(() => stopBcryptThread());

describe('compareOnBcryptThread', () => {
  it('answers right and wrong passwords, also many at once', async () => {
    const passwords = ['right', 'wrong', 'right', '', 'Right', 'right'];
    expect(await Promise.all(passwords.map((p) => compareOnBcryptThread(p, FAST)))).toEqual([true, false, true, false, false, true]);
  });

  it('leaves the event loop free while it compares (bcryptjs on the main thread held it up to 100 ms a slice)', async () => {
    const slow = bcrypt.hashSync('right', 13); // hundreds of milliseconds of bcrypt work
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    const ok = await compareOnBcryptThread('right', slow);
    const elapsed = performance.now() - started;
    clearInterval(timer);
    expect(ok).toBe(true);
    expect(elapsed).toBeGreaterThan(100);
    // On the main thread a 5 ms timer fires about once per 100 ms slice; here it fires every few milliseconds.
    expect(ticks).toBeGreaterThan(elapsed / 25);
  });

  it('refuses the comparison a dying thread held, and starts a new thread for the next one', async () => {
    const waiting = compareOnBcryptThread('right', bcrypt.hashSync('right', 12));
    await stopBcryptThread();
    await expect(waiting).rejects.toThrow(/bcrypt thread exited/);
    expect(await compareOnBcryptThread('right', FAST)).toBe(true);
  });
});
