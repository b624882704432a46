// Test helper: counts the client sockets this process opened to a port that are still reachable after a full garbage
// collection, so a test can tell sockets that are freed from sockets something (a timer, a list) still holds.
// Touches: node:diagnostics_channel's net.client.socket channel (subscribed until stop()), V8's --expose-gc flag.

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
/** A full, synchronous garbage collection (gc() of a fresh context once --expose-gc is set). */
export const fullGc = runInNewContext('gc') as () => void;

export type SocketWatch = {
  /** Sockets to `port` opened since watchClientSockets(). */
  opened(): number;
  /** Of those, the ones still reachable after two full collections. */
  retained(): number;
  stop(): void;
};

/** Watches every socket this process opens with net.connect (the next hop's, for one), by WeakRef. */
export function watchClientSockets(port: number): SocketWatch {
  const refs: WeakRef<Socket>[] = [];
  const onSocket = (message: unknown): void => {
    const socket = (message as { socket: Socket }).socket;
    // the remote port is known once connected; the connect options are not kept, so check it then
    socket.once('connect', () => {
      if (socket.remotePort === port) refs.push(new WeakRef(socket));
    });
  };
  subscribe('net.client.socket', onSocket);
  return {
    opened: () => refs.length,
    retained() {
      fullGc();
      fullGc();
      return refs.filter((r) => r.deref() !== undefined).length;
    },
    stop: () => unsubscribe('net.client.socket', onSocket),
  };
}
