// Queue ids for log lines: short, unique per process, sortable by time.
// Touches nothing but a counter.

let counter = 0;

export function newQueueId(): string {
  counter = (counter + 1) % 1_679_616; // 36^4
  return `${Date.now().toString(36).toUpperCase()}${counter.toString(36).toUpperCase().padStart(4, '0')}`;
}
