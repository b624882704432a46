import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChunkReader } from '../../../src/pipeline/chunk-reader.js';

/** The DATA stream's shape: a PassThrough that reads nothing ahead. */
const dataStream = () => new PassThrough({ readableHighWaterMark: 0 });

describe('ChunkReader', () => {
  it('gives the chunks in order as they are written, then null at the end', async () => {
    const stream = dataStream();
    const reader = new ChunkReader(stream);
    const got: string[] = [];
    const reading = (async () => {
      for (let c = await reader.next(); c !== null; c = await reader.next()) got.push(c.toString());
    })();
    for (const part of ['one', 'two', 'three']) {
      stream.write(part);
      await new Promise((r) => setImmediate(r));
    }
    stream.end('four');
    await reading;
    expect(got.join('|')).toBe('one|two|three|four');
    expect(await reader.next()).toBeNull();
  });

  it('rejects with the error that destroyed the stream, after the chunks read before it', async () => {
    const stream = dataStream();
    const reader = new ChunkReader(stream);
    stream.write('first');
    expect((await reader.next())?.toString()).toBe('first');
    const waiting = reader.next();
    stream.destroy(new Error('client went away'));
    await expect(waiting).rejects.toThrow('client went away');
  });

  it('rejects when the stream closes without its end (as for await does: premature close)', async () => {
    const stream = dataStream();
    const reader = new ChunkReader(stream);
    const waiting = reader.next();
    stream.destroy();
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });

  it('close() leaves no listener of its own on the stream', () => {
    const stream = dataStream();
    const before = { readable: stream.listenerCount('readable'), end: stream.listenerCount('end'), error: stream.listenerCount('error') };
    const reader = new ChunkReader(stream);
    expect(stream.listenerCount('readable')).toBe(before.readable + 1);
    reader.close();
    expect({ readable: stream.listenerCount('readable'), end: stream.listenerCount('end'), error: stream.listenerCount('error') }).toEqual(before);
  });
});
