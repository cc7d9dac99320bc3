/**
 * What the soak and its peers agree on: the largest message of each mechanism (its objects
 * are made for these). The FIFO's writers use `{ atomic: true }`, so its frames fit in
 * PIPE_BUF (4096 bytes with the 4-byte header): a writer killed inside a larger frame
 * leaves half a frame in the FIFO, and a successor that opens it before the reader saw the
 * end continues that frame (docs/fifo.md; the 10-minute run of docs/reliability.md).
 */
export const MAX_BYTES: Record<string, number> = { pipe: 12_345, fifo: 4092, socket: 12_345, seqpacket: 12_345, mqueue: 8192, sysv: 8192, ring: 12_345, workqueue: 12_345, nats: 12_345 };
