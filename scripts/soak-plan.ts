/** What the soak and its peers agree on: the largest message of each mechanism (its objects are made for these). */
export const MAX_BYTES: Record<string, number> = { pipe: 12_345, fifo: 12_345, socket: 12_345, seqpacket: 12_345, mqueue: 8192, sysv: 8192, ring: 12_345, workqueue: 12_345 };
