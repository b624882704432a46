import { statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BodySpool, spoolMemoryInUse } from '../../../src/pipeline/body-spool.js';
import { openUnlinkedSpools } from '../../helpers/spool-files.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dkimgate-spool-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(spool: BodySpool): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of spool.read()) parts.push(part);
  return Buffer.concat(parts);
}

const bytes = (n: number, fill: string) => Buffer.alloc(n, fill);

const openSpools = () => openUnlinkedSpools('self', dir);

describe('BodySpool', () => {
  it('keeps a body under the threshold in memory and counts it against the shared budget until disposed', async () => {
    const before = spoolMemoryInUse();
    const spool = new BodySpool(1000, dir);
    expect(await spool.write(bytes(600, 'a'))).toEqual({ kind: 'ok' });
    expect(spool.spilled).toBe(false);
    expect(spoolMemoryInUse() - before).toBe(600);
    expect(await readAll(spool)).toEqual(bytes(600, 'a'));
    await spool.dispose();
    expect(spoolMemoryInUse()).toBe(before);
  });

  it('moves a body that outgrows the threshold whole to its file: no bytes stay behind in memory', async () => {
    const before = spoolMemoryInUse();
    const spool = new BodySpool(1000, dir);
    await spool.write(bytes(600, 'a'));
    await spool.write(bytes(300, 'b'));
    expect(await spool.write(bytes(500, 'c'))).toEqual({ kind: 'ok' });
    expect(spool.spilled).toBe(true);
    expect(spool.memoryChunks()).toBeNull();
    expect(spoolMemoryInUse()).toBe(before);
    expect(spool.size).toBe(1400);
    expect(await readAll(spool)).toEqual(Buffer.concat([bytes(600, 'a'), bytes(300, 'b'), bytes(500, 'c')]));
    // the file has no name from the moment it is open: a daemon killed now leaves nothing in the directory
    expect(await readdir(dir)).toEqual([]);
    expect(openSpools()).toHaveLength(1);
    await spool.dispose();
    expect(openSpools()).toEqual([]);
  });

  it('spills a small body at once when the bodies in memory together would pass the budget', async () => {
    const before = spoolMemoryInUse();
    const budget = before + 1000;
    const first = new BodySpool(800, dir, budget);
    await first.write(bytes(800, 'a'));
    const second = new BodySpool(800, dir, budget);
    await second.write(bytes(300, 'b'));
    expect(first.spilled).toBe(false);
    expect(second.spilled).toBe(true);
    expect(await readAll(second)).toEqual(bytes(300, 'b'));
    await first.dispose();
    await second.dispose();
    // with the budget free again, a small body stays in memory
    const third = new BodySpool(800, dir, budget);
    await third.write(bytes(300, 'c'));
    expect(third.spilled).toBe(false);
    await third.dispose();
    expect(spoolMemoryInUse()).toBe(before);
  });

  it('counts the bytes it is moving to its file against the budget until they are written', async () => {
    const before = spoolMemoryInUse();
    const spool = new BodySpool(1000, dir);
    await spool.write(bytes(600, 'a'));
    await spool.write(bytes(300, 'b'));
    let settled = false;
    const moving = spool.write(bytes(500, 'c')).finally(() => (settled = true));
    // sampled each turn: the 900 bytes held so far are either in the file or still counted (the write holds them)
    const seen: number[] = [];
    for (let i = 0; i < 100_000 && !settled; i++) {
      const files = openSpools();
      const inFile = files.length === 1 ? statSync(files[0]!).size : 0;
      seen.push(spoolMemoryInUse() - before + Math.min(inFile, 900));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(Math.min(...seen)).toBe(900);
    expect(await moving).toEqual({ kind: 'ok' });
    expect(spoolMemoryInUse()).toBe(before);
    expect(await readAll(spool)).toEqual(Buffer.concat([bytes(600, 'a'), bytes(300, 'b'), bytes(500, 'c')]));
    await spool.dispose();
  });
});

describe('BodySpool.read with a head', () => {
  it('gives the head buffers first, then the body, for a body in memory and for one in its file', async () => {
    for (const threshold of [1000, 100]) {
      const spool = new BodySpool(threshold, dir);
      await spool.write(bytes(300, 'b'));
      await spool.write(bytes(200, 'c'));
      const parts: Buffer[] = [];
      for await (const part of spool.read([Buffer.from('Prepended: 1\r\n'), Buffer.from('Subject: x\r\n\r\n')])) parts.push(part);
      expect(Buffer.concat(parts).toString('latin1')).toBe(`Prepended: 1\r\nSubject: x\r\n\r\n${'b'.repeat(300)}${'c'.repeat(200)}`);
      expect(spool.spilled).toBe(threshold === 100);
      await spool.dispose();
    }
  });

  it('can be read twice from the start (a relay retried on another connection)', async () => {
    const spool = new BodySpool(100, dir);
    await spool.write(bytes(250, 'd'));
    expect(await readAll(spool)).toEqual(bytes(250, 'd'));
    expect(await readAll(spool)).toEqual(bytes(250, 'd'));
    await spool.dispose();
  });
});
