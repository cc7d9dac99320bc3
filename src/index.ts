/**
 * ipckit: the eight classic kinds of inter-process communication for Node.js on Linux,
 * behind one typed API. This file only re-exports.
 */
export { IpcError, ERROR_CODES, isIpcError, type IpcErrorCode, type IpcErrorOptions } from './core/errors.js';
export type { Channel, Receiver, ReceiverInto, Sender, WaitOptions } from './core/channel.js';
export { json, structured, type Codec, type CodecName, type CodecOption, type MessageOf, type TypedCodecOptions, type Validator } from './core/codec.js';
export { DEFAULT_MAX_MESSAGE_BYTES, type Framing, type FramingOptions } from './core/framing.js';
export type { ReaderOptions, WriterOptions } from './os/fd-stream.js';
export { toReadable, toWritable } from './core/node-streams.js';
export { runtimeDir } from './os/runtime.js';
export { isProcessAlive, processStartTime, watchProcess } from './os/liveness.js';
export type { CreateModeOptions, OwnerCheckOptions } from './os/permissions.js';
export type { ChildExit, ChildOptions } from './os/child.js';
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
} from './mechanisms/pipe/pipe.js';
export { popen, PopenReader, PopenWriter, type PopenOptions } from './mechanisms/popen/popen.js';
export { createFifo, FifoReader, FifoWriter, openFifo, unlinkFifo, type CreateFifoOptions, type OpenFifoOptions } from './mechanisms/fifo/fifo.js';
export {
  createMessageQueue,
  MessageQueue,
  messageQueueBytes,
  messageQueueLimits,
  MessageQueueReceiver,
  MessageQueueSender,
  openMessageQueue,
  openMessageQueueSync,
  unlinkMessageQueue,
  type CreateMessageQueueOptions,
  type MessageQueueDirection,
  type MessageQueueAttributes,
  type MessageQueueLimits,
  type MessageQueueOptions,
  type OpenMessageQueueOptions,
  type ReceivedMessage,
  type SendOptions,
} from './mechanisms/mqueue/mqueue.js';
export { createSemaphore, openSemaphore, openSemaphoreSync, Semaphore, semaphorePath, SEM_VALUE_MAX, unlinkSemaphore, type CreateSemaphoreOptions, type OpenSemaphoreOptions, type SemaphoreOptions, type Permit } from './mechanisms/semaphore/semaphore.js';
export { BoundedPool, createBoundedPool, openBoundedPool, openBoundedPoolSync, unlinkBoundedPool, type CreateBoundedPoolOptions, type OpenBoundedPoolOptions, type PoolHolder, type PoolPermit } from './mechanisms/pool/pool.js';
export { createMutex, Mutex, openMutex, openMutexSync, unlinkMutex, type CreateMutexOptions, type LockResult, type MutexOptions, type MutexState, type OpenMutexOptions } from './mechanisms/mutex/mutex.js';
export {
  createSharedMemory,
  mapFile,
  openSharedMemory,
  openSharedMemorySync,
  SharedMemory,
  unlinkSharedMemory,
  type CreateSharedMemoryOptions,
  type MapFileOptions,
  type MappingOptions,
  type OpenSharedMemoryOptions,
  type SharedMemoryInfo,
  type ShmWaitResult,
} from './mechanisms/shm/shm.js';
export {
  createRing,
  openRing,
  openRingSync,
  Ring,
  RingReceiver,
  RingSender,
  unlinkRing,
  type CreateRingOptions,
  type OpenRingOptions,
  type RingEndpointOptions,
  type RingInfo,
  type RingView,
} from './mechanisms/ring/ring.js';
export { openRingChannel, openRingChannelSync, RingChannel, type RingChannelOptions, type RingPair } from './mechanisms/ring/channel.js';
export {
  createWorkQueue,
  openWorkQueue,
  openWorkQueueSync,
  unlinkWorkQueue,
  WorkQueue,
  type CreateWorkQueueOptions,
  type Job,
  type OpenWorkQueueOptions,
  type WorkQueueHandleOptions,
  type NatsAddressText,
  type WorkQueueInfo,
} from './mechanisms/workqueue/workqueue.js';
export type { WorkQueueContract, WorkQueueStats } from './core/work-queue.js';
export {
  connectNats,
  NatsClient,
  type NatsAddress,
  type NatsClientStats,
  type NatsConnectOptions,
  type NatsTlsOptions,
} from './mechanisms/nats/connection.js';
export {
  natsReceiver,
  NatsReceiver,
  natsRequester,
  NatsRequester,
  natsResponder,
  NatsResponder,
  natsSender,
  NatsSender,
  openNatsReceiver,
  openNatsRequester,
  openNatsResponder,
  openNatsSender,
  type NatsEndpointOptions,
  type NatsReceiverOptions,
  type NatsRequest,
  type OpenNatsOptions,
} from './mechanisms/nats/channel.js';
export { natsWorkQueue, NatsWorkQueue, openNatsWorkQueue, type NatsWorkQueueOptions } from './mechanisms/nats/workqueue.js';
export {
  connect,
  listen,
  openInheritedSocket,
  socketPair,
  createSealedMemory,
  openSealedMemory,
  ReceivedHandle,
  SealedMemory,
  type AllowList,
  type ConnectOptions,
  type CreateSealedMemoryOptions,
  type HandleSource,
  type HandleType,
  type ListenOptions,
  type MessageWithHandles,
  type OpenSealedMemoryOptions,
  type PeerCredentials,
  type ReconnectOptions,
  type SocketChannel,
  type SocketChannelOptions,
  type SocketInfo,
  type SocketKind,
  type SocketServer,
} from './mechanisms/socket/socket.js';
export {
  droppedSignals,
  isSignalHandled,
  onSignal,
  sendSignal,
  signalName,
  signalNumber,
  SignalReceiver,
  signalReceiver,
  waitForSignal,
  type OnSignalOptions,
  type SendSignalOptions,
  type SignalInfo,
  type SignalLike,
  type SignalReceiverOptions,
  type SignalSubscription,
} from './mechanisms/signal/signal.js';
export {
  FileLock,
  HeldLock,
  openFileLock,
  openFileLockSync,
  type FileLockKind,
  type LockHolder,
  type LockOptions,
  type LockRange,
  type OpenFileLockOptions,
} from './mechanisms/lock/file-lock.js';
export { type IpcPerm, type PosixIpcPerm, type SysvIpcPerm } from './os/ipc-perm.js';
export { ftok, IPC_PRIVATE, type SysvKind, type SysvTarget } from './mechanisms/sysv/keys.js';
export { sysvLimits, type SysvLimits } from './mechanisms/sysv/limits.js';
export { type SysvOpenOptions, type SysvOwnerOptions } from './mechanisms/sysv/perm.js';
export {
  createSysvMessageQueue,
  openSysvMessageQueue,
  openSysvMessageQueueSync,
  removeSysvMessageQueue,
  SysvMessageQueue,
  type CreateSysvMessageQueueOptions,
  type OpenSysvMessageQueueOptions,
  type SysvMessage,
  type SysvMessageQueueOptions,
  type SysvMessageQueueStat,
  type SysvReceiveOptions,
  type SysvSendOptions,
} from './mechanisms/sysv/msg.js';
export {
  createSysvSemaphoreSet,
  openSysvSemaphoreSet,
  openSysvSemaphoreSetSync,
  removeSysvSemaphoreSet,
  SysvLock,
  SysvLockHold,
  sysvLock,
  SysvSemaphoreSet,
  type CreateSysvSemaphoreSetOptions,
  type OpenSysvSemaphoreSetOptions,
  type SysvSemaphoreSetOptions,
  type SemOp,
  type SemOpOptions,
  type SysvSemaphoreSetStat,
} from './mechanisms/sysv/sem.js';
export {
  createSysvSharedMemory,
  openSysvSharedMemory,
  openSysvSharedMemorySync,
  removeSysvSharedMemory,
  SysvSharedMemory,
  type CreateSysvSharedMemoryOptions,
  type OpenSysvSharedMemoryOptions,
  type SysvSharedMemoryOptions,
  type SysvSharedMemoryStat,
} from './mechanisms/sysv/shm.js';
export { diagnose, type Diagnosis, type Finding, type Status as FindingStatus } from './ops/doctor.js';
// Process toolkit (issue 12): request/reply on any duplex Channel, spawnProcess/parentChannel, shared values and arrays.
export { createRequester, errorFromWire, errorToWire, Requester, serve, Server, type Handler, type RemoteErrorShape, type RequestChannel, type RequesterOptions, type ServeOptions } from './core/request.js';
export { spawnProcess, SpawnedProcess, type ProcessCloseOptions, type SpawnProcessOptions } from './mechanisms/process/process.js';
export { hasParentChannel, parentChannel, type ParentChannelOptions } from './mechanisms/process/parent.js';
export type { ProcessChannel } from './mechanisms/process/channel.js';
export {
  createSharedArray,
  createSharedValue,
  openSharedArray,
  openSharedArraySync,
  openSharedValue,
  openSharedValueSync,
  SharedArray,
  SharedValue,
  SHARED_VALUE_DATA_OFFSET,
  unlinkSharedArray,
  unlinkSharedValue,
  type CreateSharedValueOptions,
  type ElementOf,
  type OpenSharedArrayOptions,
  type OpenSharedValueKindOptions,
  type OpenSharedValueOptions,
  type SharedArrayType,
  type SharedValueKind,
} from './mechanisms/value/value.js';

// The process pool (issue 12 part 4): worker processes that run a module's functions, jobs over the work queue.
export { createProcessPool, ProcessPool, type MapOptions, type ProcessPoolOptions, type ProcessPoolStats, type RunOptions } from './mechanisms/process-pool/pool.js';

// Operating a host (issue 13): `ipckit ls` and `ipckit gc` as a library (docs/ops.md).
export { listObjects, listObjectsDetailed, INVENTORY_KINDS, type IpcObject, type InventoryKind, type InventoryPerm, type Holder, type Participant, type ObjectState, type ListOptions, type Inventory } from './ops/inventory.js';
export { collectGarbage, type GcOptions, type GcResult } from './ops/gc.js';
