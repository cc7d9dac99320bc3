/**
 * ipckit: the eight classic kinds of inter-process communication for Node.js on Linux,
 * behind one typed API. This file only re-exports.
 */
export { IpcError, ERROR_CODES, isIpcError, type IpcErrorCode, type IpcErrorOptions } from './errors.js';
export { RESOLVED, type Channel, type Receiver, type Sender, type WaitOptions } from './channel.js';
export { bytesCodec, jsonCodec, structuredCodec, utf8Codec, type Codec, type CodecName, type CodecOption, type MessageOf } from './codec.js';
export { DEFAULT_MAX_MESSAGE_SIZE, FrameDecoder, type Framing, type FramingOptions } from './framing.js';
export { FdReader, FdWriter, type ReaderOptions, type WriterOptions } from './stream.js';
export { toReadable, toWritable } from './streams-node.js';
export { runtimeDir } from './runtime.js';
export { isProcessAlive, processStartTime, watchProcess } from './liveness.js';
export type { CreateModeOptions, OwnerCheckOptions } from './permissions.js';
export type { ChildExit, ChildOptions } from './child.js';
export {
  ChildPipeWriter,
  createPipe,
  getPipeCapacity,
  openInheritedPipe,
  PipeReader,
  PipeWriter,
  PipedChild,
  setPipeCapacity,
  spawnWithPipes,
  type ChildPipeSpec,
  type PipeDirection,
  type PipeOptions,
  type SpawnWithPipesOptions,
} from './pipe.js';
export { popen, PopenReader, PopenWriter, type PopenOptions } from './popen.js';
export { createFifo, FifoReader, FifoWriter, openFifo, unlinkFifo, type CreateFifoOptions, type OpenFifoOptions } from './fifo.js';
export * from './mqueue.js';
export * from './semaphore.js';
export * from './mutex.js';
export * from './shm.js';
export * from './ring.js';
export * from './workqueue.js';
export * from './socket.js';
export * from './signal.js';
