// Holds a message body while it arrives: in memory up to a threshold, then in a temporary file, so
// memory stays bounded with hundreds of concurrent clients. Two bounds: a body over the threshold moves
// whole to its file (its first bytes do not stay behind in memory), and all bodies in memory together
// stay under a process-wide budget — past it, new bytes spill at once whatever the threshold.
// Touches: one temporary file (mode 0600) per large message, unlinked as soon as it is open, so a daemon
// that dies (kill -9, the OOM killer, a power cut) leaves no spool file behind: the kernel frees it with the
// last descriptor.

import { randomBytes } from 'node:crypto';
import { open, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export type SpoolWriteOutcome = { kind: 'ok' } | { kind: 'failed'; reason: 'disk_full' | 'io_error'; detail: string };

/** Bytes per read when a spilled body is relayed: bounded, since hundreds of bodies may be relayed at once. */
const READ_BYTES = 64 * 1024;

/** Body bytes all spools in this process may hold in memory together (500 clients × 256 KB would be 128 MB). */
export const SPOOL_MEMORY_BUDGET_BYTES = 32 * 1024 * 1024;

/** Body bytes held in memory now, across every spool. */
let memoryInUse = 0;

/** Body bytes held in memory across all spools (for tests and metrics). */
export function spoolMemoryInUse(): number {
  return memoryInUse;
}

/**
 * Why spool files cannot be made in `dir`, or null when they can: one probe file is created there and removed. Checked
 * at start and reload, so a missing or read-only spool_dir (ProtectSystem=strict outside /tmp) is reported at once, not
 * as a 451 for every large message.
 */
export async function spoolDirProblem(dir: string): Promise<string | null> {
  const probe = join(dir, `dkimgate-${process.pid}-${randomBytes(8).toString('hex')}.probe`);
  try {
    await (await open(probe, 'wx', 0o600)).close();
    await unlink(probe);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' || code === 'ENOTDIR'
        ? 'no such directory'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied; make it writable by the user dkimgate runs as'
          : code === 'EROFS'
            ? 'read-only file system (under systemd ProtectSystem=strict, add it to ReadWritePaths=)'
            : (code ?? (err as Error).message);
    return `cannot create spool files in ${dir}: ${why}`;
  }
}

export class BodySpool {
  private chunks: Buffer[] = [];
  private memoryBytes = 0;
  private file: FileHandle | null = null;
  private path: string | null = null;
  private fileBytes = 0;

  constructor(
    private readonly thresholdBytes: number,
    private readonly dir: string,
    private readonly memoryBudgetBytes = SPOOL_MEMORY_BUDGET_BYTES,
  ) {}

  get size(): number {
    return this.memoryBytes + this.fileBytes;
  }

  get spilled(): boolean {
    return this.file !== null;
  }

  /** Appends bytes (the caller may reuse `chunk` afterwards only if it copies: we keep a reference). */
  async write(chunk: Buffer): Promise<SpoolWriteOutcome> {
    if (chunk.length === 0) return { kind: 'ok' };
    if (this.file === null && this.memoryBytes + chunk.length <= this.thresholdBytes && memoryInUse + chunk.length <= this.memoryBudgetBytes) {
      this.chunks.push(chunk);
      this.memoryBytes += chunk.length;
      memoryInUse += chunk.length;
      return { kind: 'ok' };
    }
    try {
      if (this.file === null) {
        const path = join(this.dir, `dkimgate-${process.pid}-${randomBytes(8).toString('hex')}.spool`);
        this.file = await open(path, 'wx+', 0o600);
        // kept by its descriptor alone; should the unlink fail, dispose() removes it by name
        this.path = await unlink(path).then(
          () => null,
          () => path,
        );
        // the bytes held so far go first, in one write, so that the body is in one place; they count
        // against the memory budget until that write is done, since they are held until then
        if (this.chunks.length > 0) {
          const failed = await this.appendAll(this.chunks);
          this.releaseMemory();
          if (failed) return failed;
        }
      }
      return (await this.appendAll([chunk])) ?? { kind: 'ok' };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason = code === 'ENOSPC' || code === 'EDQUOT' ? 'disk_full' : 'io_error';
      return { kind: 'failed', reason, detail: (err as Error).message };
    }
  }

  private async appendAll(chunks: Buffer[]): Promise<SpoolWriteOutcome | null> {
    const bytes = chunks.reduce((n, c) => n + c.length, 0);
    const { bytesWritten } = await this.file!.writev(chunks, this.fileBytes);
    if (bytesWritten !== bytes) return { kind: 'failed', reason: 'disk_full', detail: 'short write to the spool file' };
    this.fileBytes += bytes;
    return null;
  }

  private releaseMemory(): void {
    memoryInUse -= this.memoryBytes;
    this.chunks = [];
    this.memoryBytes = 0;
  }

  /**
   * `head`, then the body from the start: memory chunks (a body that never spilled), else the file in bounded
   * reads. An iterator written out, not an async generator: see chunk-reader.ts for why.
   */
  read(head: readonly Buffer[] = []): AsyncIterableIterator<Buffer> {
    let index = 0; // over head, then the memory chunks
    let position = 0; // in the file
    const next = async (): Promise<IteratorResult<Buffer>> => {
      if (index < head.length) return { value: head[index++]!, done: false };
      if (index - head.length < this.chunks.length) return { value: this.chunks[index++ - head.length]!, done: false };
      if (this.file === null || position >= this.fileBytes) return { value: undefined, done: true };
      const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, this.fileBytes - position));
      const { bytesRead } = await this.file.read(buf, 0, buf.length, position);
      if (bytesRead === 0) throw new Error(`a spool file in ${this.dir} ended early`);
      position += bytesRead;
      return { value: bytesRead === buf.length ? buf : buf.subarray(0, bytesRead), done: false };
    };
    return {
      next,
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  /** The in-memory body as one list (only when not spilled), for small messages. */
  memoryChunks(): readonly Buffer[] | null {
    return this.file === null ? this.chunks : null;
  }

  async dispose(): Promise<void> {
    this.releaseMemory();
    const file = this.file;
    const path = this.path;
    this.file = null;
    this.path = null;
    if (file) await file.close().catch(() => undefined);
    if (path) await rm(path, { force: true }).catch(() => undefined);
  }
}
