/**
 * "Bad arguments throw synchronously" (docs/errors.md, docs/design.md §3), checked on
 * every public function and method of the core, the OS layer, and the pipe, popen, FIFO,
 * message queue, signal and socket mechanisms: one table, and a check that every entry
 * point the package exports (src/index.ts) is in it, so a new one cannot be forgotten.
 *
 * The System V family (message queues, semaphore sets, shared memory, keys) is in the table
 * too. Each case must throw ERR_IPCKIT_INVALID_ARGUMENT from the call itself, never return a
 * promise (not even a rejected one), and name what was wrong in the user's terms. Nothing
 * may be made meanwhile: no descriptor, no child process.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import * as publicApi from '../src/index.js';
import { cancellableWait, WaitQueue } from '../src/core/channel.js';
import { bytesCodec as bytesCodecInternal, jsonCodec as jsonCodecInternal, structuredCodec as structuredCodecInternal, utf8Codec as utf8CodecInternal } from '../src/core/codec.js';
import { FrameDecoder as FrameDecoderInternal } from '../src/core/framing.js';
import { FdReader as FdReaderInternal, FdWriter as FdWriterInternal } from '../src/os/fd-stream.js';
import { parseAddress as parseAddressInternal } from '../src/mechanisms/socket/address.js';
import { DatagramServer as DatagramServerInternal, PacketChannel as PacketChannelInternal, DatagramPeer as DatagramPeerInternal } from '../src/mechanisms/socket/packet.js';
import { StreamSocketChannel as StreamSocketChannelInternal } from '../src/mechanisms/socket/stream.js';
import { AckedChannel as AckedChannelInternal, ReconnectingChannel as ReconnectingChannelInternal } from '../src/mechanisms/socket/acked.js';
import { parseSysvTarget as parseSysvTargetInternal } from '../src/mechanisms/sysv/keys.js';
import { native } from '../src/os/native.js';
import { childrenOf } from './census.js';
import { throwsInvalid } from './conformance/channel.js';
import { checkFdLeaks, fixturesDir, openFds, scratchPath, uniqueKey, uniqueName } from './helpers.js';

/**
 * The public API plus the internal pieces whose argument checks this table also covers
 * (they are not exported from src/index.ts, but the mechanisms hand users' input to them).
 */
const INTERNALS = {
  bytesCodec: bytesCodecInternal,
  jsonCodec: jsonCodecInternal,
  structuredCodec: structuredCodecInternal,
  utf8Codec: utf8CodecInternal,
  FrameDecoder: FrameDecoderInternal,
  FdReader: FdReaderInternal,
  FdWriter: FdWriterInternal,
  parseAddress: parseAddressInternal,
  DatagramServer: DatagramServerInternal,
  DatagramPeer: DatagramPeerInternal,
  PacketChannel: PacketChannelInternal,
  StreamSocketChannel: StreamSocketChannelInternal,
  AckedChannel: AckedChannelInternal,
  ReconnectingChannel: ReconnectingChannelInternal,
  parseSysvTarget: parseSysvTargetInternal,
};
const api = { ...publicApi, ...INTERNALS };

const {
  bytesCodec,
  connect,
  createFifo,
  createMessageQueue,
  createPipe,
  createSealedMemory,
  DatagramServer,
  FdReader,
  FdWriter,
  FrameDecoder,
  IpcError,
  isIpcError,
  isProcessAlive,
  isSignalHandled,
  jsonCodec,
  listen,
  messageQueueBytes,
  onSignal,
  openFifo,
  openInheritedPipe,
  openMessageQueue,
  openMessageQueueSync,
  openSealedMemory,
  openInheritedSocket,
  PacketChannel,
  parseAddress,
  PipeReader,
  PipeWriter,
  popen,
  processStartTime,
  ReceivedHandle,
  sendSignal,
  setPipeCapacity,
  getPipeCapacity,
  signalName,
  signalNumber,
  signalReceiver,
  SignalReceiver,
  socketPair,
  spawnWithPipes,
  StreamSocketChannel,
  structuredCodec,
  toReadable,
  toWritable,
  unlinkFifo,
  unlinkMessageQueue,
  utf8Codec,
  waitForSignal,
  watchProcess,
} = api;

/** Exports of the shared-memory stack: test/shm-stack-args.test.ts checks them. */
const OTHER_BRANCH = new Set([
  'openSemaphoreSync', 'openSharedMemorySync',
  'openBoundedPoolSync', 'openMutexSync', 'openRingChannelSync', 'openRingSync', 'openWorkQueueSync',
  'BoundedPool', 'Mutex', 'Ring', 'RingChannel', 'RingReceiver', 'RingSender', 'Semaphore', 'SharedMemory', 'WorkQueue',
  'createBoundedPool', 'createMutex', 'createRing', 'createSemaphore', 'createSharedMemory', 'createWorkQueue', 'mapFile',
  'openBoundedPool', 'openMutex', 'openRing', 'openRingChannel', 'openSemaphore', 'openSharedMemory', 'openWorkQueue', 'semaphorePath',
  'unlinkBoundedPool', 'unlinkMutex', 'unlinkRing', 'unlinkSemaphore', 'unlinkSharedMemory', 'unlinkWorkQueue',
]);

/** The process pool's exports: test/process-pool.test.ts checks their arguments (it needs live workers). */
const PROCESS_POOL = new Set(['createProcessPool', 'ProcessPool']);

/** The NATS mechanism's exports: test/nats.test.ts and test/nats-workqueue.test.ts check their arguments. */
const NATS = /^(Nats|nats|connectNats|openNats|parseNatsUrl$|workQueueSubjects$)/;

/** Classes made only by a factory of ours (their constructors are marked @internal). */
const INTERNAL_CONSTRUCTORS = new Set([
  'AckedChannel', 'ChildPipeWriter', 'DatagramPeer', 'FifoReader', 'FifoWriter', 'MessageQueue', 'MessageQueueReceiver',
  'MessageQueueSender', 'PipedChild', 'PopenReader', 'PopenWriter', 'ReconnectingChannel', 'SealedMemory', 'FileLock', 'HeldLock',
  'SysvMessageQueue', 'SysvSemaphoreSet', 'SysvSharedMemory', 'SysvLock', 'SysvLockHold',
  'Requester', 'Server', 'SpawnedProcess', 'SharedArray', 'SharedValue',
]);

/** Entry points that take no arguments: nothing to get wrong. */
const NO_ARGUMENTS = [
  'droppedSignals', 'messageQueueLimits', 'runtimeDir',
  'FdReader.tryReceive', 'FdReader.close', 'FifoReader.unlink', 'FifoWriter.unlink', 'PopenReader.stream', 'PopenWriter.stream',
  'MessageQueueReceiver.tryReceive', 'MessageQueueReceiver.tryReceiveWithPriority', 'MessageQueue.attributes', 'MessageQueue.owner',
  'MessageQueue.unlink', 'MessageQueue.close', 'SignalReceiver.tryReceive', 'SignalReceiver.close', 'StreamSocketChannel.tryReceive',
  'PacketChannel.tryReceive', 'AckedChannel.tryReceive', 'DatagramServer.close', 'ReceivedHandle.take', 'ReceivedHandle.close',
  'SealedMemory.close', 'FrameDecoder.space', 'FrameDecoder.next', 'FrameDecoder.nextLength', 'FrameDecoder.returnBorrowed', 'FrameDecoder.finish', 'FrameDecoder.release', 'IpcError.toString',
  'diagnose', 'FileLock.locks', 'FileLock.close', 'HeldLock.release',
  'FifoReader.perm', 'FifoWriter.perm', 'MessageQueue.perm', 'sysvLimits',
  'SysvMessageQueue.stat', 'SysvMessageQueue.perm', 'SysvMessageQueue.remove', 'SysvMessageQueue.close',
  'SysvSemaphoreSet.getAll', 'SysvSemaphoreSet.stat', 'SysvSemaphoreSet.perm', 'SysvSemaphoreSet.remove', 'SysvSemaphoreSet.close',
  'SysvSharedMemory.stat', 'SysvSharedMemory.perm', 'SysvSharedMemory.remove', 'SysvSharedMemory.close',
  'SysvLock.tryLock', 'SysvLockHold.release',
  // Request/reply and processes: these take any value by design (an error reason, a thrown value, a peer's bytes).
  'Requester.fail', 'Requester.close', 'Server.close', 'errorToWire', 'errorFromWire', 'hasParentChannel', 'SpawnedProcess.tryReceive',
  'SharedArray.notify', 'SharedArray.close', 'SharedArray.unlink', 'SharedValue.load', 'SharedValue.notify', 'SharedValue.close', 'SharedValue.unlink',
];

/** Methods on an exported prototype that are protected or @internal, not the API. */
const NOT_PUBLIC = [
  'AckedChannel.admit', 'AckedChannel.stop', 'AckedChannel.onLinkDead', 'AckedChannel.notifyIdle', 'AckedChannel.newLink',
  'AckedChannel.drainPending', 'AckedChannel.endIncoming', 'AckedChannel.fail', 'ReconnectingChannel.start', 'ReconnectingChannel.stop',
  'ReconnectingChannel.onLinkDead', 'DatagramPeer.sendRefusal', 'DatagramPeer.push', 'DatagramPeer.flushIncoming', 'DatagramPeer.startReading',
  'DatagramPeer.stopReading', 'DatagramPeer.fill', 'DatagramPeer.release', 'PacketChannel.startReading', 'PacketChannel.stopReading',
  'PacketChannel.fill', 'PacketChannel.release', 'PacketChannel.sendRefusal', 'PacketChannel.enqueue', 'PacketChannel.finish',
  'PacketChannel.deliver', 'PacketChannel.pumpIncoming', 'DatagramPeer.pumpIncoming', 'DatagramServer.pump', 'DatagramServer.updateReading', 'DatagramServer.forget',
  'PacketChannel.kernelDrained', 'PacketChannel.readWithoutWaiting', 'DatagramPeer.kernelDrained', 'DatagramPeer.readWithoutWaiting', 'DatagramServer.readWithoutWaiting',
];

/** Entry points reached only through an interface (the class is not exported). */
const VIA_INTERFACE = new Set(['SocketServer.accept (stream)', 'SocketServer.accept (datagram)']);

const isClass = (f: unknown): boolean => typeof f === 'function' && /^class\b/.test(Function.prototype.toString.call(f));

/** `listen`, `FdWriter.send`, `new FdReader`, `bytesCodec.encode` -> the function it names. */
function resolve(entry: string): unknown {
  const [head, member] = entry.replace(/^new /, '').split('.') as [string, string | undefined];
  const value = (api as Record<string, unknown>)[head];
  if (member === undefined) return value;
  if (isClass(value)) return Object.getOwnPropertyDescriptor(findOwner((value as { prototype: object }).prototype, member) ?? {}, member)?.value;
  return (value as Record<string, unknown> | undefined)?.[member];
}

function findOwner(proto: object | null, name: string): object | undefined {
  for (let p = proto; p && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
    if (Object.hasOwn(p, name)) return p;
  }
  return undefined;
}

/** Every method name on a class's prototype chain (getters excluded). */
function methodsOf(cls: { prototype: object }): string[] {
  const out = new Set<string>();
  for (let p: object | null = cls.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
    for (const n of Object.getOwnPropertyNames(p)) {
      if (n !== 'constructor' && typeof Object.getOwnPropertyDescriptor(p, n)?.value === 'function') out.add(n);
    }
  }
  return [...out];
}

const bad = <T = never>(v: unknown): T => v as T;

// --- live objects whose methods are called with bad arguments ---

let pipe: ReturnType<typeof createPipe<'utf8'>>;
let child: ReturnType<typeof spawnWithPipes>;
let popenR: publicApi.PopenReader<Uint8Array>;
let popenW: publicApi.PopenWriter<Uint8Array>;
let fifoPath: string;
let fifoR: publicApi.FifoReader<Uint8Array>;
let fifoW: publicApi.FifoWriter<Uint8Array>;
let mqName: string;
let mq: publicApi.MessageQueue<Uint8Array>;
let mqR: publicApi.MessageQueueReceiver<Uint8Array>;
let mqW: publicApi.MessageQueueSender<Uint8Array>;
let signals: publicApi.SignalReceiver;
let stream: [publicApi.SocketChannel<Uint8Array>, publicApi.SocketChannel<Uint8Array>];
let packet: [publicApi.SocketChannel<Uint8Array>, publicApi.SocketChannel<Uint8Array>];
let server: publicApi.SocketServer<Uint8Array>;
let dgramServer: publicApi.SocketServer<Uint8Array>;
let dgramClient: publicApi.SocketChannel<Uint8Array>;
let dgramPeer: publicApi.SocketChannel<Uint8Array>;
let rawDatagramServer: DatagramServerInternal<Uint8Array>;
let ackedServer: publicApi.SocketServer<Uint8Array>;
let ackedClient: publicApi.SocketChannel<Uint8Array>;
let acked: publicApi.SocketChannel<Uint8Array>;
let nullFd: number;
let received: publicApi.ReceivedHandle;
let sealed: publicApi.SealedMemory;
let fileLock: publicApi.FileLock;
let lockPath: string;
let sysvQueue: publicApi.SysvMessageQueue<Uint8Array>;
let sysvSet: publicApi.SysvSemaphoreSet;
let sysvSegment: publicApi.SysvSharedMemory;
let sysvLocked: publicApi.SysvLock;
let proc: publicApi.SpawnedProcess<unknown>;
let requester: publicApi.Requester;
let sharedVal: publicApi.SharedValue<'i32'>;
let sharedArr: publicApi.SharedArray<'f64'>;
const decoder = new FrameDecoder('length', 100);

before(async () => {
  pipe = createPipe({ codec: 'utf8' });
  child = spawnWithPipes(['sleep', '30'], { pipes: { 3: 'write', 4: 'read' } });
  popenR = popen(['sleep', '30'], 'read');
  popenW = popen(['sleep', '30'], 'write');
  fifoPath = createFifo(scratchPath('args'));
  fifoR = await openFifo(fifoPath, 'read');
  fifoW = await openFifo(fifoPath, 'write');
  mqName = uniqueName('args');
  mq = createMessageQueue(mqName, { maxMessages: 4, maxMessageBytes: 64 });
  mqR = await openMessageQueue(mqName, 'read');
  mqW = await openMessageQueue(mqName, 'write');
  signals = signalReceiver('SIGUSR2');
  stream = socketPair('unix');
  packet = socketPair('unix-seqpacket');
  server = await listen(`unix:${scratchPath('s')}`);
  dgramServer = await listen(`unix-dgram:${scratchPath('d')}`);
  dgramClient = await connect(dgramServer.address);
  await dgramClient.send(Buffer.from('hello'));
  dgramPeer = await dgramServer.accept({ timeout: 5000 });
  const C = native.socketConstants;
  rawDatagramServer = new DatagramServer(native.socket(C.AF_UNIX, C.SOCK_DGRAM), {}, null, 'unix-dgram:@none');
  ackedServer = await listen(`unix:${scratchPath('a')}`, { acknowledged: true });
  ackedClient = await connect(ackedServer.address, { reconnect: { minDelay: 5, maxDelay: 50 }, timeout: 5000 });
  acked = await ackedServer.accept({ timeout: 5000 });
  nullFd = openSync('/dev/null', 'r');
  received = new ReceivedHandle(native.dupCloexec(nullFd));
  sealed = createSealedMemory(4096);
  lockPath = scratchPath('args.lock');
  fileLock = await api.openFileLock(lockPath, { create: true });
  sysvQueue = api.createSysvMessageQueue(uniqueKey(), { removeOnClose: true });
  sysvSet = api.createSysvSemaphoreSet(uniqueKey(), { count: 2, value: 1, removeOnClose: true });
  sysvSegment = api.createSysvSharedMemory(uniqueKey(), 64, { removeOnClose: true });
  sysvLocked = api.sysvLock(sysvSet);
  proc = api.spawnProcess(`${fixturesDir}process-child.js`, { args: ['echo'] });
  requester = api.createRequester(stream[0]);
  sharedVal = api.createSharedValue(uniqueName('args-v'), 'i32', { lock: true });
  sharedArr = api.createSharedArray(uniqueName('args-a'), Float64Array, 4);
});

after(async () => {
  sharedVal.close();
  sharedVal.unlink();
  sharedArr.close();
  sharedArr.unlink();
  proc.kill('SIGKILL');
  await proc.close({ timeout: 5000 });
  await sysvQueue.close();
  await sysvSet.close();
  sysvSegment.close();
  await fileLock.close();
  await pipe.writer.close({ timeout: 1000 }).catch(() => {});
  await pipe.reader.close();
  child.kill('SIGKILL');
  await child.close({ timeout: 5000 }).catch(() => {});
  popenR.kill('SIGKILL');
  popenW.kill('SIGKILL');
  await popenR.close({ timeout: 5000 }).catch(() => {});
  await popenW.close({ timeout: 5000 }).catch(() => {});
  await fifoW.close({ timeout: 1000 }).catch(() => {});
  await fifoR.close();
  unlinkFifo(fifoPath);
  for (const q of [mq, mqR, mqW]) await q.close();
  unlinkMessageQueue(mqName);
  await signals.close();
  for (const c of [...stream, ...packet, dgramClient, dgramPeer, ackedClient, acked]) await c.close({ timeout: 1000 }).catch(() => {});
  for (const s of [server, dgramServer, ackedServer]) await s.close();
  await rawDatagramServer.close();
  received.close();
  closeSync(nullFd);
  sealed.close();
});
// The signal dispatcher's pipe lives as long as the process: made before the fd count.
void signalReceiver('SIGUSR2').close();
checkFdLeaks(); // after the cleanup above, which runs first

type Case = [what: string, call: () => unknown, mentions: RegExp];

/** entry point -> bad calls; functions are called lazily, once the objects above exist. */
const TABLE: Record<string, () => Case[]> = {
  // --- core ---
  'new IpcError': () => [
    ['an unknown code', () => new IpcError(bad('ERR_NOPE'), 'x'), /code/],
    ['a reason that is not a string', () => new IpcError('ERR_IPCKIT_TIMEOUT', bad(5)), /reason/],
    ['options that are not an object', () => new IpcError('ERR_IPCKIT_TIMEOUT', 'x', bad(5)), /options/],
  ],
  'IpcError.amend': () => {
    const e = new IpcError('ERR_IPCKIT_TIMEOUT', 'x');
    return [
      ['null', () => e.amend(bad(null)), /amend/],
      ['an unknown code', () => e.amend({ code: bad('ERR_NOPE') }), /code/],
      ['a note that is not a string', () => e.amend({ note: bad(5) }), /note/],
      ['details that are not an object', () => e.amend({ details: bad('x') }), /details/],
    ];
  },
  isIpcError: () => [['an unknown code', () => isIpcError(new Error('x'), bad('ERR_TIMEOUT')), /code/]],
  'bytesCodec.encode': () => [['a string', () => bytesCodec.encode(bad('x')), /message must be a Uint8Array/]],
  'bytesCodec.decode': () => [['a string', () => bytesCodec.decode(bad('x')), /bytes/]],
  listObjects: () => [
    ['an unknown kind', () => api.listObjects({ kind: bad('tape') }), /kind/],
    ['an owner that is a string', () => api.listObjects({ owner: bad('root') }), /owner/],
  ],
  listObjectsDetailed: () => [['paths that is a string', () => api.listObjectsDetailed({ paths: bad('/tmp') }), /paths/]],
  collectGarbage: () => [
    ['dryRun that is a string', () => api.collectGarbage({ dryRun: bad('yes') }), /dryRun/],
    ['foreign that is a string', () => api.collectGarbage({ foreign: bad('/x') }), /foreign/],
  ],
  json: () => [['validate that is a string', () => api.json(bad({ validate: 'strict' })), /validate/]],
  structured: () => [['validate that is an object', () => api.structured(bad({ validate: {} })), /validate/]],
  'utf8Codec.encode': () => [['a number', () => utf8Codec.encode(bad(5)), /message must be a string/]],
  'utf8Codec.decode': () => [['a string', () => utf8Codec.decode(bad('x')), /bytes/]],
  'jsonCodec.encode': () => [
    ['undefined', () => jsonCodec.encode(undefined), /JSON/],
    ['a BigInt', () => jsonCodec.encode(10n), /JSON/],
  ],
  'jsonCodec.decode': () => [['a number', () => jsonCodec.decode(bad(5)), /bytes/]],
  'structuredCodec.encode': () => [['a function', () => structuredCodec.encode(() => 1), /serialized/]],
  'structuredCodec.decode': () => [['a number', () => structuredCodec.decode(bad(5)), /bytes/]],
  'new FrameDecoder': () => [
    ['an unknown framing', () => new FrameDecoder(bad('chunks'), 10), /framing/],
    ['a negative maxMessageBytes', () => new FrameDecoder('length', -1), /maxMessageBytes/],
    ['a tiny buffer', () => new FrameDecoder('length', 10, 1), /bufferSize/],
  ],
  'FrameDecoder.nextInto': () => [['a target that is an array', () => decoder.nextInto(bad([0])), /Uint8Array/]],
  'FrameDecoder.grow': () => [['0', () => decoder.grow(0), /max/]],
  'FrameDecoder.commit': () => {
    const room = decoder.space()[2];
    return [
      ['a negative count', () => decoder.commit(-1), /commit/],
      ['a fraction', () => decoder.commit(1.5), /commit/],
      ['more than space() offered', () => decoder.commit(room + 1), /commit/],
    ];
  },
  toReadable: () => [['an object without receive()', () => toReadable(bad({})), /receiver/]],
  toWritable: () => [['a number', () => toWritable(bad(5)), /sender/]],

  // --- os ---
  'new FdReader': () => [
    ['a negative fd', () => new FdReader(-1), /fd/],
    ['options that are a number', () => new FdReader(0, bad(5)), /options/],
    ['an unknown framing', () => new FdReader(0, { framing: bad('chunks') }), /framing/],
    ['a tiny readBufferBytes', () => new FdReader(0, { readBufferBytes: 1 }), /readBufferBytes/],
    ['a negative spinMicros', () => new FdReader(0, { spinMicros: -1 }), /spinMicros/],
    ['spinMicros Infinity (a stream receive never spins for ever)', () => new FdReader(0, { spinMicros: Infinity }), /spinMicros/],
    ['an unknown codec', () => new FdReader(0, { codec: bad('yaml') }), /codec/],
    ['hooks that are a string', () => new FdReader(0, {}, bad('x')), /hooks/],
    ['a poll that is not an FdPoll', () => new FdReader(0, {}, {}, bad({})), /poll/],
  ],
  'new FdWriter': () => [
    ['an fd that is a string', () => new FdWriter(bad('1')), /fd/],
    ['atomic that is not a boolean', () => new FdWriter(1, { atomic: bad('yes') }), /atomic/],
    ['a zero highWaterMark', () => new FdWriter(1, { highWaterMark: 0 }), /highWaterMark/],
    ['a zero maxMessageBytes', () => new FdWriter(1, { maxMessageBytes: 0 }), /maxMessageBytes/],
  ],
  'FdReader.receive': () => [
    ['a negative timeout', () => pipe.reader.receive({ timeout: -5 }), /timeout/],
    ['a signal that is not an AbortSignal', () => pipe.reader.receive({ signal: bad({}) }), /signal/],
    ['options that are a string', () => pipe.reader.receive(bad('soon')), /options/],
  ],
  'FdReader.receiveInto': () => [
    ['a target that is an array', () => pipe.reader.receiveInto(bad([0, 0])), /Uint8Array/],
    ['no target', () => pipe.reader.receiveInto(bad(undefined)), /Uint8Array/],
    ['a negative timeout', () => pipe.reader.receiveInto(new Uint8Array(8), { timeout: -5 }), /timeout/],
  ],
  'FdReader.tryReceiveInto': () => [['a target that is an ArrayBuffer', () => pipe.reader.tryReceiveInto(bad(new ArrayBuffer(8))), /Uint8Array/]],
  'FdReader.receiveMany': () => [
    ['max 0', () => pipe.reader.receiveMany(0), /max/],
    ['a fractional max', () => pipe.reader.receiveMany(2.5), /max/],
    ['a NaN timeout', () => pipe.reader.receiveMany(1, { timeout: NaN }), /timeout/],
  ],
  'FdWriter.send': () => [
    ['a number with codec "utf8"', () => pipe.writer.send(bad(5)), /message must be a string/],
    ['a negative timeout', () => pipe.writer.send('x', { timeout: -1 }), /timeout/],
    ['a timeout no timer holds', () => pipe.writer.send('x', { timeout: 2 ** 31 }), /timeout/],
  ],
  'FdWriter.trySend': () => [['a number with codec "utf8"', () => pipe.writer.trySend(bad(5)), /message must be a string/]],
  'FdWriter.sendMany': () => [
    ['something not iterable', () => pipe.writer.sendMany(bad(5)), /messages/],
    ['a number among strings', () => pipe.writer.sendMany(['a', bad(5)]), /message must be a string/],
    ['a signal that is a string', () => pipe.writer.sendMany(['a'], { signal: bad('stop') }), /signal/],
  ],
  'FdWriter.flush': () => [['a negative timeout', () => pipe.writer.flush({ timeout: -1 }), /timeout/]],
  'FdWriter.close': () => [['a negative timeout', () => pipe.writer.close({ timeout: -1 }), /timeout/]],
  isProcessAlive: () => [
    ['a pid that is a string', () => isProcessAlive(bad('1')), /pid/],
    ['a startTime that is a string', () => isProcessAlive(1, bad('0')), /startTime/],
  ],
  processStartTime: () => [
    ['pid 0', () => processStartTime(0), /pid/],
    ['a pid that is a string', () => processStartTime(bad('1')), /pid/],
  ],
  watchProcess: () => [
    ['pid 0', () => watchProcess(0), /pid/],
    ['a negative timeout', () => watchProcess(process.pid, { timeout: -1 }), /timeout/],
    ['options that are a number', () => watchProcess(process.pid, bad(5)), /options/],
  ],

  // --- pipe ---
  createPipe: () => [
    ['options that are a number', () => createPipe(bad(5)), /options/],
    ['capacity 0', () => createPipe({ capacityBytes: 0 }), /capacity/],
    ['an unknown codec', () => createPipe({ codec: bad('yaml') }), /codec/],
    ['atomic that is a string', () => createPipe({ atomic: bad('yes') }), /atomic/],
    ['maxMessageBytes 0', () => createPipe({ maxMessageBytes: 0 }), /maxMessageBytes/],
  ],
  getPipeCapacity: () => [['a negative fd', () => getPipeCapacity(-1), /fd/]],
  setPipeCapacity: () => [
    ['an fd that is a string', () => setPipeCapacity(bad('3'), 4096), /fd/],
    ['capacity 0', () => setPipeCapacity(pipe.writer.fd, 0), /capacity/],
  ],
  'new PipeReader': () => [['a negative fd', () => new PipeReader(-1), /fd/]],
  'new PipeWriter': () => [['an unknown codec', () => new PipeWriter(1, { codec: bad('yaml') }), /codec/]],
  'PipeReader.setCapacityBytes': () => [['capacity 0', () => pipe.reader.setCapacityBytes(0), /capacity/]],
  'PipeWriter.setCapacityBytes': () => [['a capacity that is a string', () => pipe.writer.setCapacityBytes(bad('64k')), /capacity/]],
  openInheritedPipe: () => [
    ['a negative fd', () => openInheritedPipe(-1), /fd/],
    ['an unknown direction', () => openInheritedPipe(0, bad('x')), /direction/],
    ['capacity 0, before the fd is touched', () => openInheritedPipe(0, 'read', { capacityBytes: 0 }), /capacityBytes/],
    ['an unknown codec', () => openInheritedPipe(0, 'read', { codec: bad('yaml') }), /codec/],
  ],
  spawnWithPipes: () => [
    ['an empty command', () => spawnWithPipes([], { pipes: { 3: 'write' } }), /command/],
    ['pipes that is an array', () => spawnWithPipes(['true'], { pipes: bad([3]) }), /pipes/],
    ['an unknown direction', () => spawnWithPipes(['true'], { pipes: { 3: bad('sideways') } }), /pipes\[3\]/],
    ['a pipe with an unknown codec', () => spawnWithPipes(['true'], { pipes: { 3: { direction: 'write', codec: bad('yaml') } } }), /codec/],
    ['stdin that is neither', () => spawnWithPipes(['true'], { pipes: { 3: 'write' }, stdin: bad('pipe') }), /stdin/],
    ['a cwd that is a number', () => spawnWithPipes(['true'], { pipes: { 3: 'write' }, cwd: bad(5) }), /cwd/],
    ['an env value that is a number', () => spawnWithPipes(['true'], { pipes: { 3: 'write' }, env: bad({ A: 1 }) }), /env\.A/],
    ['dieWithParent that is a string', () => spawnWithPipes(['true'], { pipes: { 3: 'write' }, dieWithParent: bad('no') }), /dieWithParent/],
    ['processGroup that is a number', () => spawnWithPipes(['true'], { pipes: { 3: 'write' }, processGroup: bad(1) }), /processGroup/],
    ['capacity 0', () => spawnWithPipes(['true'], { pipes: { 3: 'write' }, capacityBytes: 0 }), /capacity/],
  ],
  'PipedChild.sender': () => [['an fd that is a string', () => child.sender(bad('3')), /fd/]],
  'PipedChild.receiver': () => [['a negative fd', () => child.receiver(-4), /fd/]],
  'PipedChild.kill': () => [['an unknown signal', () => child.kill(bad('SIGNOPE')), /signal/]],
  'PipedChild.close': () => [['a negative timeout', () => child.close({ timeout: -1 }), /timeout/]],
  'ChildPipeWriter.send': () => [
    ['a string with codec "bytes"', () => child.sender(3).send(bad('x')), /Uint8Array/],
    ['a negative timeout', () => child.sender(3).send(Buffer.from('x'), { timeout: -1 }), /timeout/],
  ],
  'ChildPipeWriter.sendMany': () => [['a signal that is a string', () => child.sender(3).sendMany([Buffer.from('x')], { signal: bad('x') }), /signal/]],
  'ChildPipeWriter.flush': () => [['a negative timeout', () => child.sender(3).flush({ timeout: -1 }), /timeout/]],
  'ChildPipeWriter.close': () => [['a negative timeout', () => child.sender(3).close({ timeout: -1 }), /timeout/]],

  // --- popen ---
  popen: () => [
    ['a command that is a number', () => popen(bad(5), 'read'), /command/],
    ['an unknown direction', () => popen(['true'], bad('r')), /direction/],
    ['shell that is a string', () => popen('true', 'read', { shell: bad('yes') }), /shell/],
    ['a string without { shell: true }', () => popen('true', 'read'), /shell/],
    ['stdout that is neither', () => popen(['true'], 'write', { stdout: bad('pipe') }), /stdout/],
    ['stderr that is neither', () => popen(['true'], 'read', { stderr: bad('pipe') }), /stderr/],
    ['an env that is a string', () => popen(['true'], 'read', { env: bad('A=1') }), /env/],
    ['capacity 0', () => popen(['true'], 'read', { capacityBytes: 0 }), /capacityBytes/],
    ['an unknown framing', () => popen(['true'], 'read', { framing: bad('chunks') }), /framing/],
  ],
  'PopenReader.kill': () => [['a signal that is an object', () => popenR.kill(bad({})), /signal/]],
  'PopenReader.close': () => [['a negative timeout', () => popenR.close({ timeout: -1 }), /timeout/]],
  'PopenWriter.kill': () => [['a signal number too large', () => popenW.kill(1000), /signal/]],
  'PopenWriter.close': () => [['a negative timeout', () => popenW.close({ timeout: -1 }), /timeout/]],

  // --- fifo ---
  createFifo: () => [
    ['a path that is a number', () => createFifo(bad(5)), /path/],
    ['a mode with set-id bits', () => createFifo(undefined, { mode: 0o4600 }), /mode/],
    ['a negative group', () => createFifo(undefined, { group: -1 }), /group/],
  ],
  unlinkFifo: () => [['a path that is a number', () => unlinkFifo(bad(5)), /path/]],
  openFifo: () => {
    const missing = scratchPath('no-such-fifo'); // arguments are checked before the path is looked at
    return [
      ['a path that is a number', () => openFifo(bad(5), 'read'), /path/],
      ['an unknown direction', () => openFifo(missing, bad('r')), /direction/],
      ['options that are a number', () => openFifo(missing, 'read', bad(5)), /options/],
      ['a negative timeout', () => openFifo(missing, 'write', { timeout: -1 }), /timeout/],
      ['a signal that is a string', () => openFifo(missing, 'write', { signal: bad('x') }), /signal/],
      ['capacity 0', () => openFifo(missing, 'read', { capacityBytes: 0 }), /capacityBytes/],
      ['keepOpen that is a string', () => openFifo(missing, 'read', { keepOpen: bad('yes') }), /keepOpen/],
      ['unlinkOnClose that is a number', () => openFifo(missing, 'read', { unlinkOnClose: bad(1) }), /unlinkOnClose/],
      ['a negative owner', () => openFifo(missing, 'read', { owner: -1 }), /owner/],
      ['anyOwner that is a string', () => openFifo(missing, 'read', { anyOwner: bad('yes') }), /anyOwner/],
      ['a mode beyond 0o777', () => openFifo(missing, 'read', { mode: 0o1777 }), /mode/],
      ['atomic that is a string', () => openFifo(missing, 'write', { atomic: bad('yes') }), /atomic/],
      ['a zero highWaterMark', () => openFifo(missing, 'write', { highWaterMark: 0 }), /highWaterMark/],
    ];
  },

  // --- mqueue ---
  createMessageQueue: () => [
    ['an empty name', () => createMessageQueue(''), /name/],
    ['maxMessages 0', () => createMessageQueue(uniqueName(), { maxMessages: 0 }), /maxMessages/],
    ['a fractional maxMessageBytes', () => createMessageQueue(uniqueName(), { maxMessageBytes: 1.5 }), /maxMessageBytes/],
    ['an unknown codec', () => createMessageQueue(uniqueName(), { codec: bad('yaml') }), /codec/],
    ['unlinkOnClose that is a string', () => createMessageQueue(uniqueName(), { unlinkOnClose: bad('yes') }), /unlinkOnClose/],
    ['a negative spinMicros', () => createMessageQueue(uniqueName(), { spinMicros: -1 }), /spinMicros/],
  ],
  openMessageQueue: () => [
    ['a name that is a number', () => openMessageQueue(bad(5)), /name/],
    ['an unknown direction', () => openMessageQueue(mqName, bad('r')), /direction/],
    ['a mode that is not permission bits', () => openMessageQueue(mqName, { mode: bad('x') }), /mode/],
    ['a negative owner, before the queue is opened', () => openMessageQueue(mqName, { owner: -1 }), /owner/],
    ['anyOwner that is a string', () => openMessageQueue(mqName, { anyOwner: bad('yes') }), /anyOwner/],
    ['unlinkOnClose that is a number', () => openMessageQueue(mqName, { unlinkOnClose: bad(1) }), /unlinkOnClose/],
    ['wait that is a string', () => openMessageQueue(mqName, { wait: bad('yes') }), /wait/],
    ['spinMicros Infinity (a queue receive never spins for ever)', () => openMessageQueue(mqName, { spinMicros: Infinity }), /spinMicros/],
  ],
  openMessageQueueSync: () => [['an unknown direction', () => openMessageQueueSync(mqName, bad('both ways')), /direction/]],
  unlinkMessageQueue: () => [['a name that is a number', () => unlinkMessageQueue(bad(5)), /name/]],
  messageQueueBytes: () => [
    ['maxMessages 0', () => messageQueueBytes(0, 10), /maxMessages/],
    ['a negative maxMessageBytes', () => messageQueueBytes(10, -1), /maxMessageBytes/],
  ],
  'MessageQueue.send': () => [
    ['a negative priority', () => mq.send(Buffer.from('x'), { priority: -1 }), /priority/],
    ['a negative timeout', () => mq.send(Buffer.from('x'), { timeout: -1 }), /timeout/],
    ['a string with codec "bytes"', () => mq.send(bad('x')), /Uint8Array/],
    ['options that are a number', () => mq.send(Buffer.from('x'), bad(5)), /options/],
  ],
  'MessageQueue.trySend': () => [
    ['a fractional priority', () => mq.trySend(Buffer.from('x'), { priority: 1.5 }), /priority/],
    ['options that are a string', () => mq.trySend(Buffer.from('x'), bad('urgent')), /options/],
  ],
  'MessageQueue.sendMany': () => [
    ['something not iterable', () => mq.sendMany(bad(5)), /messages/],
    ['a priority too high', () => mq.sendMany([Buffer.from('x')], { priority: 1_000_000 }), /priority/],
  ],
  'MessageQueueSender.send': () => [['a signal that is a string', () => mqW.send(Buffer.from('x'), { signal: bad('x') }), /signal/]],
  'MessageQueueSender.trySend': () => [['a number with codec "bytes"', () => mqW.trySend(bad(5)), /Uint8Array/]],
  'MessageQueueSender.sendMany': () => [['a negative timeout', () => mqW.sendMany([Buffer.from('x')], { timeout: -1 }), /timeout/]],
  'MessageQueueReceiver.receive': () => [['a negative timeout', () => mqR.receive({ timeout: -1 }), /timeout/]],
  'MessageQueueReceiver.receiveWithPriority': () => [['a signal that is a number', () => mqR.receiveWithPriority({ signal: bad(1) }), /signal/]],
  'MessageQueueReceiver.receiveMany': () => [
    ['max 0', () => mqR.receiveMany(0), /max/],
    ['a negative timeout', () => mqR.receiveMany(1, { timeout: -1 }), /timeout/],
  ],
  'MessageQueueReceiver.receiveManyWithPriority': () => [['a max that is a string', () => mqR.receiveManyWithPriority(bad('3')), /max/]],

  // --- signal ---
  sendSignal: () => [
    ['pid 0', () => sendSignal(0, 'SIGUSR2'), /pid/],
    ['an unknown signal', () => sendSignal(process.pid, 'SIGNOPE'), /signal/],
    ['a fractional value', () => sendSignal(process.pid, 'SIGUSR2', { value: 1.5 }), /value/],
    ['options that are a number', () => sendSignal(process.pid, 'SIGUSR2', bad(5)), /options/],
  ],
  signalName: () => [
    ['a string', () => signalName(bad('SIGUSR2')), /signal/],
    ['a number past SIGRTMAX', () => signalName(99), /signal/],
  ],
  signalNumber: () => [
    ['an object', () => signalNumber(bad({})), /signal/],
    ['an unknown name', () => signalNumber('SIGNOPE'), /signal/],
  ],
  signalReceiver: () => [
    ['no signals', () => signalReceiver([]), /signals/],
    ['capacity 0', () => signalReceiver('SIGUSR2', { capacity: 0 }), /capacity/],
  ],
  'new SignalReceiver': () => [['an unknown signal', () => new SignalReceiver('SIGNOPE'), /signal/]],
  'SignalReceiver.receive': () => [
    ['a negative timeout', () => signals.receive({ timeout: -1 }), /timeout/],
    ['options that are a number', () => signals.receive(bad(5)), /options/],
  ],
  onSignal: () => [
    ['a handler that is not a function', () => onSignal('SIGUSR2', bad('log')), /handler/],
    ['keepAlive that is a string', () => onSignal('SIGUSR2', () => {}, { keepAlive: bad('yes') }), /keepAlive/],
    ['an unknown signal', () => onSignal('NOPE', () => {}), /signal/],
  ],
  waitForSignal: () => [
    ['an unknown signal', () => waitForSignal('NOPE'), /signal/],
    ['a negative timeout', () => waitForSignal('SIGUSR2', { timeout: -1 }), /timeout/],
    ['options that are a string', () => waitForSignal('SIGUSR2', bad('soon')), /options/],
  ],
  isSignalHandled: () => [['an unknown signal', () => isSignalHandled('NOPE'), /signal/]],

  // --- socket ---
  parseAddress: () => [
    ['a number', () => parseAddress(5), /address/],
    ['an unknown scheme', () => parseAddress('pipe:/x'), /address/],
    ['forListen that is a string', () => parseAddress('unix:/x', bad('yes')), /forListen/],
  ],
  listen: () => [
    ['an address that is a number', () => listen(bad(5)), /address/],
    ['a path too long for sun_path', () => listen(`unix:/tmp/${'x'.repeat(120)}`), /sun_path/],
    ['options that are a number', () => listen('unix:', bad(5)), /options/],
    ['backlog 0', () => listen('unix:', { backlog: 0 }), /backlog/],
    ['allow on TCP', () => listen('tcp://127.0.0.1:0', { allow: { uids: [0] } }), /allow/],
    ['allow with uids that are not an array', () => listen('unix:', { allow: bad({ uids: 0 }) }), /allow\.uids/],
    ['acknowledged that is a string', () => listen('unix:', { acknowledged: bad('yes') }), /acknowledged/],
    ['acknowledged on a datagram socket', () => listen('unix-dgram:', { acknowledged: true }), /acknowledged/],
    ['acknowledged with framing "lines"', () => listen('unix:', { acknowledged: true, framing: 'lines' }), /framing/],
    ['reclaimStale that is a number', () => listen('unix:', { reclaimStale: bad(1) }), /reclaimStale/],
    ['a mode beyond 0o777', () => listen('unix:', { mode: 0o1777 }), /mode/],
    ['framing on a datagram socket', () => listen('unix-dgram:', { framing: 'lines' }), /framing/],
    ['handles that is a string', () => listen('unix:', { handles: bad('yes') }), /handles/],
  ],
  connect: () => [
    ['an address with no socket', () => connect('unix:'), /address/],
    ['TCP port 0', () => connect('tcp://127.0.0.1:0'), /port/],
    ['options that are null', () => connect('unix:/x', bad(null)), /options/],
    ['a negative timeout', () => connect('unix:/x', { timeout: -1 }), /timeout/],
    ['a signal that is a string', () => connect('unix:/x', { signal: bad('x') }), /signal/],
    ['a negative owner', () => connect('unix:/x', { owner: -1 }), /owner/],
    ['anyOwner that is a string', () => connect('unix:/x', { anyOwner: bad('yes') }), /anyOwner/],
    ['reconnect.minDelay 0', () => connect('unix:/x', { reconnect: { minDelay: 0 } }), /reconnect\.minDelay/],
    ['reconnect that is a string', () => connect('unix:/x', { reconnect: bad('yes') }), /reconnect/],
    ['reconnect on a datagram socket', () => connect('unix-dgram:/x', { reconnect: true }), /reconnect/],
    ['reconnect with handles', () => connect('unix:/x', { reconnect: true, handles: true }), /descriptors/],
    ['handles on TCP', () => connect('tcp://127.0.0.1:1', { handles: true }), /handles/],
    ['an unknown codec', () => connect('unix:/x', { codec: bad('yaml') }), /codec/],
    ['a tiny readBufferBytes', () => connect('unix:/x', { readBufferBytes: 1 }), /readBufferBytes/],
    ['spinMicros that is a string', () => connect('unix:/x', { spinMicros: bad('fast') }), /spinMicros/],
  ],
  socketPair: () => [
    ['an unknown kind', () => socketPair(bad('tcp')), /kind/],
    ['options that are a number', () => socketPair('unix', bad(5)), /options/],
    ['framing on seqpacket', () => socketPair('unix-seqpacket', { framing: 'lines' }), /framing/],
    ['a fractional spinMicros on seqpacket', () => socketPair('unix-seqpacket', { spinMicros: 2.5 }), /spinMicros/],
    ['a negative spinMicros on a stream pair', () => socketPair('unix', { spinMicros: -5 }), /spinMicros/],
  ],
  openInheritedSocket: () => [
    ['a negative fd', () => openInheritedSocket(-1), /fd/],
    ['options that are a number', () => openInheritedSocket(0, bad(5)), /options/],
  ],
  openFileLock: () => [
    ['a path that is a number', () => api.openFileLock(bad(42)), /path/],
    ['an unknown kind', () => api.openFileLock(lockPath, { kind: bad('posix') }), /kind/],
    ['create that is a string', () => api.openFileLock(lockPath, { create: bad('yes') }), /create/],
    ['a mode above 0o777', () => api.openFileLock(lockPath, { mode: 0o4777 }), /mode/],
  ],
  openFileLockSync: () => [['followSymlinks that is 1', () => api.openFileLockSync(lockPath, { followSymlinks: bad(1) }), /followSymlinks/]],
  'FileLock.tryLock': () => [['a negative range start', () => fileLock.tryLock({ range: { start: -1, length: 1 } }), /range\.start/]],
  'FileLock.lock': () => [
    ['a negative timeout', () => fileLock.lock({ timeout: -1 }), /timeout/],
    ['a range past 2^53', () => fileLock.lock({ range: { start: 2 ** 53, length: 0 } }), /range\.start/],
  ],
  'FileLock.lockSync': () => [['shared that is a string', () => fileLock.lockSync({ shared: bad('yes') }), /shared/]],
  'FileLock.unlock': () => [['a range that is a number', () => fileLock.unlock(bad(5)), /range/]],
  'FileLock.holder': () => [['a range with a length that is a string', () => fileLock.holder({ range: { start: 0, length: bad('all') } }), /range\.length/]],
  'SocketServer.accept (stream)': () => [['a negative timeout, with nothing to accept', () => server.accept({ timeout: -1 }), /timeout/]],
  'SocketServer.accept (datagram)': () => [['options that are a number', () => dgramServer.accept(bad(5)), /options/]],
  'new DatagramServer': () => [['a negative fd', () => new DatagramServer(-1, {}, null, 'x'), /fd/]],
  'DatagramServer.accept': () => [['a negative timeout', () => rawDatagramServer.accept({ timeout: -1 }), /timeout/]],
  'new StreamSocketChannel': () => [
    ['a negative fd', () => new StreamSocketChannel(-1, {}, { kind: 'unix', peer: undefined, remoteAddress: undefined, localAddress: undefined }), /fd/],
    ['handles that is a string', () => new StreamSocketChannel(0, { handles: bad('y') }, { kind: 'unix', peer: undefined, remoteAddress: undefined, localAddress: undefined }), /handles/],
  ],
  'StreamSocketChannel.send': () => [
    ['a string with codec "bytes"', () => stream[0].send(bad('x')), /Uint8Array/],
    ['a negative timeout', () => stream[0].send(Buffer.from('x'), { timeout: -1 }), /timeout/],
  ],
  'StreamSocketChannel.trySend': () => [['a number with codec "bytes"', () => stream[0].trySend!(bad(5)), /Uint8Array/]],
  'StreamSocketChannel.sendMany': () => [['something not iterable', () => (stream[0] as unknown as StreamSocketChannelInternal<Uint8Array>).sendMany(bad(5)), /messages/]],
  'StreamSocketChannel.flush': () => [['a negative timeout', () => stream[0].flush({ timeout: -1 }), /timeout/]],
  'StreamSocketChannel.receive': () => [['a negative timeout', () => stream[1].receive({ timeout: -1 }), /timeout/]],
  'StreamSocketChannel.receiveInto': () => [
    ['a target that is a string', () => stream[1].receiveInto(bad('buf')), /Uint8Array/],
    ['a negative timeout', () => stream[1].receiveInto(new Uint8Array(8), { timeout: -1 }), /timeout/],
  ],
  'StreamSocketChannel.tryReceiveInto': () => [['a target that is a number', () => stream[1].tryReceiveInto(bad(8)), /Uint8Array/]],
  'StreamSocketChannel.receiveMany': () => [['max 0', () => (stream[1] as unknown as StreamSocketChannelInternal<Uint8Array>).receiveMany(0), /max/]],
  'StreamSocketChannel.sendHandle': () => [
    ['a handle that is a string', () => stream[0].sendHandle(bad('fd')), /handle/],
    ['no handles', () => stream[0].sendHandle([]), /handle/],
    ['a negative timeout', () => stream[0].sendHandle(nullFd, undefined, { timeout: -1 }), /timeout/],
  ],
  'StreamSocketChannel.receiveHandle': () => [['a negative timeout', () => stream[1].receiveHandle({ timeout: -1 }), /timeout/]],
  'StreamSocketChannel.receiveWithHandles': () => [['options that are a number', () => stream[1].receiveWithHandles(bad(5)), /options/]],
  'StreamSocketChannel.end': () => [['a negative timeout', () => stream[0].end({ timeout: -1 }), /timeout/]],
  'StreamSocketChannel.close': () => [['a negative timeout', () => stream[0].close({ timeout: -1 }), /timeout/]],
  'new PacketChannel': () => [
    ['a negative fd', () => new PacketChannel(-1, {}, { kind: 'unix-seqpacket', peer: undefined, remoteAddress: undefined, localAddress: undefined }), /fd/],
    ['framing', () => new PacketChannel(0, { framing: 'lines' }, { kind: 'unix-seqpacket', peer: undefined, remoteAddress: undefined, localAddress: undefined }), /framing/],
  ],
  'PacketChannel.send': () => [
    ['a string with codec "bytes"', () => packet[0].send(bad('x')), /Uint8Array/],
    ['a negative timeout', () => packet[0].send(Buffer.from('x'), { timeout: -1 }), /timeout/],
  ],
  'PacketChannel.trySend': () => [['a number with codec "bytes"', () => packet[0].trySend!(bad(5)), /Uint8Array/]],
  'PacketChannel.flush': () => [['a negative timeout', () => packet[0].flush({ timeout: -1 }), /timeout/]],
  'PacketChannel.sendHandle': () => [
    ['a handle that is a string', () => packet[0].sendHandle(bad('fd')), /handle/],
    ['a negative timeout', () => packet[0].sendHandle(nullFd, undefined, { timeout: -1 }), /timeout/],
  ],
  'PacketChannel.receive': () => [['a negative timeout', () => packet[1].receive({ timeout: -1 }), /timeout/]],
  'PacketChannel.receiveWithHandles': () => [['a signal that is a string', () => packet[1].receiveWithHandles({ signal: bad('x') }), /signal/]],
  'PacketChannel.receiveHandle': () => [['a negative timeout', () => packet[1].receiveHandle({ timeout: -1 }), /timeout/]],
  'PacketChannel.receiveInto': () => [
    ['a target that is a DataView', () => packet[1].receiveInto(bad(new DataView(new ArrayBuffer(8)))), /Uint8Array/],
    ['a negative timeout', () => packet[1].receiveInto(new Uint8Array(8), { timeout: -1 }), /timeout/],
  ],
  'PacketChannel.tryReceiveInto': () => [['no target', () => packet[1].tryReceiveInto(bad(null)), /Uint8Array/]],
  'PacketChannel.receiveMany': () => [['max 0', () => (packet[1] as unknown as PacketChannelInternal<Uint8Array>).receiveMany(0), /max/]],
  'PacketChannel.end': () => [['a negative timeout', () => packet[0].end({ timeout: -1 }), /timeout/]],
  'PacketChannel.close': () => [['a negative timeout', () => packet[0].close({ timeout: -1 }), /timeout/]],
  'DatagramPeer.end': () => [['a negative timeout', () => dgramPeer.end({ timeout: -1 }), /timeout/]],
  'AckedChannel.send': () => [
    ['a string with codec "bytes"', () => acked.send(bad('x')), /Uint8Array/],
    ['a negative timeout', () => ackedClient.send(Buffer.from('x'), { timeout: -1 }), /timeout/],
  ],
  'AckedChannel.receiveInto': () => [
    ['a target that is an array', () => acked.receiveInto(bad([1])), /Uint8Array/],
    ['a negative timeout', () => acked.receiveInto(new Uint8Array(8), { timeout: -1 }), /timeout/],
  ],
  'AckedChannel.tryReceiveInto': () => [['a target that is a string', () => acked.tryReceiveInto(bad('x')), /Uint8Array/]],
  'AckedChannel.flush': () => [['a negative timeout', () => ackedClient.flush({ timeout: -1 }), /timeout/]],
  'AckedChannel.receive': () => [['options that are a number', () => acked.receive(bad(5)), /options/]],
  'AckedChannel.end': () => [['a negative timeout', () => ackedClient.end({ timeout: -1 }), /timeout/]],
  'AckedChannel.close': () => [['a negative timeout', () => acked.close({ timeout: -1 }), /timeout/]],
  'AckedChannel.sendHandle': () => [['a handle that is a string', () => acked.sendHandle(bad('fd')), /handle/]],
  'AckedChannel.receiveHandle': () => [['a negative timeout', () => acked.receiveHandle({ timeout: -1 }), /timeout/]],
  'AckedChannel.receiveWithHandles': () => [['a negative timeout', () => ackedClient.receiveWithHandles({ timeout: -1 }), /timeout/]],
  'new ReceivedHandle': () => [['a negative fd', () => new ReceivedHandle(-1), /fd/]],
  createSealedMemory: () => [
    ['size 0', () => createSealedMemory(0), /size/],
    ['a name that is a number', () => createSealedMemory(4096, { name: bad(5) }), /name/],
  ],
  openSealedMemory: () => [
    ['a handle that is a string', () => openSealedMemory(bad('fd')), /handle/],
    ['writable that is a string', () => openSealedMemory(sealed, { writable: bad('no') }), /writable/],
  ],

  // --- System V ---
  ftok: () => [
    ['projectId 0', () => api.ftok('/', 0), /projectId/],
    ['a path that is a number', () => api.ftok(bad(5), 1), /path/],
  ],
  parseSysvTarget: () => [
    ['a name', () => api.parseSysvTarget('jobs'), /key/],
    ['a number', () => api.parseSysvTarget(bad(5)), /key/],
  ],
  createSysvMessageQueue: () => [
    ['a key past 32 bits', () => api.createSysvMessageQueue(2 ** 32), /key/],
    ['maxBytes 0', () => api.createSysvMessageQueue(0, { maxBytes: 0 }), /maxBytes/],
    ['type 0', () => api.createSysvMessageQueue(0, { type: 0 }), /type/],
    ['a negative spinMicros', () => api.createSysvMessageQueue(0, { spinMicros: -1 }), /spinMicros/],
    ['set-id mode bits', () => api.createSysvMessageQueue(0, { mode: 0o4600 }), /mode/],
  ],
  openSysvMessageQueue: () => [
    ['a name', () => api.openSysvMessageQueue(bad('/jobs')), /key/],
    ['both key and id', () => api.openSysvMessageQueue(bad({ key: 1, id: 1 })), /key/],
    ['wait that is a number', () => api.openSysvMessageQueue(1, { wait: bad(1) }), /wait/],
    ['a negative owner', () => api.openSysvMessageQueue(1, { owner: -1 }), /owner/],
  ],
  openSysvMessageQueueSync: () => [['wait', () => api.openSysvMessageQueueSync(1, bad({ wait: true })), /wait/]],
  removeSysvMessageQueue: () => [['an empty object', () => api.removeSysvMessageQueue(bad({})), /key/]],
  'SysvMessageQueue.send': () => [
    ['type 0', () => sysvQueue.send(Buffer.from('x'), { type: 0 }), /type/],
    ['a negative timeout', () => sysvQueue.send(Buffer.from('x'), { timeout: -1 }), /timeout/],
    ['a string with codec "bytes"', () => sysvQueue.send(bad('x')), /Uint8Array/],
  ],
  'SysvMessageQueue.trySend': () => [['a negative type', () => sysvQueue.trySend(Buffer.from('x'), { type: -1 }), /type/]],
  'SysvMessageQueue.receive': () => [
    ['a fractional type', () => sysvQueue.receive({ type: 0.5 }), /type/],
    ['except without a type', () => sysvQueue.receive({ except: true }), /except/],
    ['truncate that is a string', () => sysvQueue.receive({ truncate: bad('yes') }), /truncate/],
    ['a signal that is a string', () => sysvQueue.receive({ signal: bad('stop') }), /signal/],
  ],
  'SysvMessageQueue.receiveWithType': () => [['options that are a number', () => sysvQueue.receiveWithType(bad(5)), /options/]],
  'SysvMessageQueue.receiveMany': () => [
    ['max 0', () => sysvQueue.receiveMany(0), /max/],
    ['a negative timeout', () => sysvQueue.receiveMany(1, { timeout: -1 }), /timeout/],
  ],
  'SysvMessageQueue.receiveManyWithType': () => [['a fractional max', () => sysvQueue.receiveManyWithType(1.5), /max/]],
  'SysvMessageQueue.tryReceive': () => [['a type past 2^53', () => sysvQueue.tryReceive({ type: 2 ** 60 }), /type/]],
  'SysvMessageQueue.tryReceiveWithType': () => [['except that is a string', () => sysvQueue.tryReceiveWithType({ type: 1, except: bad('yes') }), /except/]],
  'SysvMessageQueue.setOwner': () => [
    ['a uid that is a string', () => sysvQueue.setOwner({ uid: bad('root') }), /uid/],
    ['nothing to set', () => sysvQueue.setOwner({}), /setOwner/],
  ],
  'SysvMessageQueue.setMode': () => [['sticky', () => sysvQueue.setMode(0o1777), /mode/]],
  'SysvMessageQueue.setMaxBytes': () => [['0', () => sysvQueue.setMaxBytes(0), /maxBytes/]],
  createSysvSemaphoreSet: () => [
    ['count 0', () => api.createSysvSemaphoreSet(0, { count: 0 }), /count/],
    ['a value past SEMVMX', () => api.createSysvSemaphoreSet(0, { value: 32768 }), /value/],
    ['values of the wrong length', () => api.createSysvSemaphoreSet(0, { count: 2, values: [1] }), /values/],
  ],
  openSysvSemaphoreSet: () => [
    ['anyOwner that is a string', () => api.openSysvSemaphoreSet(1, { anyOwner: bad('yes') }), /anyOwner/],
    ['a negative timeout', () => api.openSysvSemaphoreSet(1, { wait: true, timeout: -1 }), /timeout/],
  ],
  openSysvSemaphoreSetSync: () => [['null', () => api.openSysvSemaphoreSetSync(bad(null)), /key/]],
  removeSysvSemaphoreSet: () => [['a negative id', () => api.removeSysvSemaphoreSet({ id: -1 }), /id/]],
  'SysvSemaphoreSet.op': () => [
    ['no operations', () => sysvSet.op([]), /ops/],
    ['an index past the set', () => sysvSet.op([{ index: 2, delta: 1 }]), /index/],
    ['a fractional delta', () => sysvSet.op([{ index: 0, delta: 1.5 }]), /delta/],
    ['undo that is a number', () => sysvSet.op([{ index: 0, delta: 1 }], { undo: bad(1) }), /undo/],
    ['wait that is a string', () => sysvSet.op([{ index: 0, delta: 1 }], { wait: bad('no') }), /wait/],
  ],
  'SysvSemaphoreSet.tryOp': () => [['one operation, not an array', () => sysvSet.tryOp(bad({ index: 0, delta: 1 })), /ops/]],
  'SysvSemaphoreSet.opSync': () => [['a negative timeout', () => sysvSet.opSync([{ index: 0, delta: -1 }], { timeout: -1 }), /timeout/]],
  'SysvSemaphoreSet.get': () => [['a negative index', () => sysvSet.get(-1), /index/]],
  'SysvSemaphoreSet.set': () => [['a negative value', () => sysvSet.set(0, -1), /value/]],
  'SysvSemaphoreSet.setAll': () => [['too many values', () => sysvSet.setAll([1, 2, 3]), /values/]],
  'SysvSemaphoreSet.waitingToTake': () => [['an index past the set', () => sysvSet.waitingToTake(2), /index/]],
  'SysvSemaphoreSet.waitingForZero': () => [['an index that is a string', () => sysvSet.waitingForZero(bad('0')), /index/]],
  'SysvSemaphoreSet.lastPid': () => [['a fractional index', () => sysvSet.lastPid(0.5), /index/]],
  'SysvSemaphoreSet.setOwner': () => [['a gid that is negative', () => sysvSet.setOwner({ gid: -1 }), /gid/]],
  'SysvSemaphoreSet.setMode': () => [['a mode past 0o777', () => sysvSet.setMode(0o1000), /mode/]],
  sysvLock: () => [
    ['not a set', () => api.sysvLock(bad({})), /SysvSemaphoreSet/],
    ['an index past the set', () => api.sysvLock(sysvSet, { index: 5 }), /index/],
  ],
  'SysvLock.lock': () => [['a negative timeout', () => sysvLocked.lock({ timeout: -1 }), /timeout/]],
  'SysvLock.lockSync': () => [['a timeout that is a string', () => sysvLocked.lockSync({ timeout: bad('soon') }), /timeout/]],
  createSysvSharedMemory: () => [
    ['size 0', () => api.createSysvSharedMemory(0, 0), /size/],
    ['external that is a string', () => api.createSysvSharedMemory(0, 64, { external: bad('yes') }), /external/],
  ],
  openSysvSharedMemory: () => [['readOnly that is a number', () => api.openSysvSharedMemory(1, { readOnly: bad(1) }), /readOnly/]],
  openSysvSharedMemorySync: () => [['removeOnClose that is a string', () => api.openSysvSharedMemorySync(1, { removeOnClose: bad('yes') }), /removeOnClose/]],
  removeSysvSharedMemory: () => [['a name', () => api.removeSysvSharedMemory(bad('/seg')), /key/]],
  'SysvSharedMemory.read': () => [['past the end', () => sysvSegment.read(60, 10), /length/]],
  'SysvSharedMemory.write': () => [['a string', () => sysvSegment.write(bad('x')), /bytes/]],
  'SysvSharedMemory.load': () => [['an index past the segment', () => sysvSegment.load(16), /index/]],
  'SysvSharedMemory.store': () => [['a negative index', () => sysvSegment.store(-1, 0), /index/]],
  'SysvSharedMemory.add': () => [['an index that is a string', () => sysvSegment.add(bad('0'), 1), /index/]],
  'SysvSharedMemory.compareExchange': () => [['a fractional index', () => sysvSegment.compareExchange(0.5, 0, 1), /index/]],
  'SysvSharedMemory.waitSync': () => [['expected that is a string', () => sysvSegment.waitSync(0, bad('0')), /expected/]],
  'SysvSharedMemory.wait': () => [['a negative timeout', () => sysvSegment.wait(0, 0, { timeout: -1 }), /timeout/]],
  'SysvSharedMemory.notify': () => [['a negative count', () => sysvSegment.notify(0, -1), /count/]],
  'SysvSharedMemory.setOwner': () => [['a uid that is a string', () => sysvSegment.setOwner({ uid: bad('x') }), /uid/]],
  'SysvSharedMemory.setMode': () => [['setgid', () => sysvSegment.setMode(0o2660), /mode/]],
  createRequester: () => [
    ['a channel that is not one', () => api.createRequester(bad({})), /channel/],
    ['peerGone that is not a function', () => api.createRequester(stream[0], { peerGone: bad(1) }), /peerGone/],
  ],
  'Requester.request': () => [
    ['a negative timeout', () => requester.request(1, { timeout: -1 }), /timeout/],
    ['a message the codec cannot carry', () => requester.request(bad(Symbol('x'))), /message/],
  ],
  serve: () => [
    ['a channel that is not one', () => api.serve(bad(null), () => 1), /channel/],
    ['a handler that is not a function', () => api.serve(stream[1], bad('f')), /handler/],
    ['concurrency 0', () => api.serve(stream[1], () => 1, { concurrency: 0 }), /concurrency/],
  ],
  parentChannel: () => [['an unknown codec', () => api.parentChannel({ codec: bad('yaml') }), /codec/]],
  spawnProcess: () => [
    ['an unknown transport', () => api.spawnProcess(`${fixturesDir}process-child.js`, { transport: bad('shm') }), /transport/],
    ['args that are numbers', () => api.spawnProcess(`${fixturesDir}process-child.js`, { args: bad([1]) }), /args/],
    ['a module that is a number', () => api.spawnProcess(bad(5)), /module/],
    ['an http URL', () => api.spawnProcess(new URL('http://example.com/x.js')), /module/],
    ['an env value that is a number', () => api.spawnProcess(`${fixturesDir}process-child.js`, { env: bad({ A: 1 }) }), /env\.A/],
    ['spinMicros that is negative', () => api.spawnProcess(`${fixturesDir}process-child.js`, { spinMicros: -1 }), /spinMicros/],
  ],
  'SpawnedProcess.send': () => [['a negative timeout', () => proc.send(1, { timeout: -1 }), /timeout/]],
  'SpawnedProcess.trySend': () => [['a message JSON cannot carry', () => proc.trySend(bad(1n)), /JSON/]],
  'SpawnedProcess.sendMany': () => [
    ['messages that are not iterable', () => proc.sendMany(bad(5)), /iterable/],
    ['a message JSON cannot carry among good ones', () => proc.sendMany([1, bad(1n), 3]), /JSON/],
    ['a negative timeout', () => proc.sendMany([1], { timeout: -1 }), /timeout/],
  ],
  'SpawnedProcess.receive': () => [['a NaN timeout', () => proc.receive({ timeout: NaN }), /timeout/]],
  'SpawnedProcess.request': () => [['a signal that is not one', () => proc.request(1, { signal: bad('x') }), /signal/]],
  'SpawnedProcess.kill': () => [['an unknown signal', () => proc.kill(bad('SIGNOPE')), /signal/]],
  'SpawnedProcess.close': () => [['a negative timeout', () => proc.close({ timeout: -1 }), /timeout/]],
  createSharedValue: () => [
    ['an unknown kind', () => api.createSharedValue(uniqueName('x'), bad('f16')), /kind/],
    ['lock that is a number', () => api.createSharedValue(uniqueName('x'), 'i32', { lock: bad(1) }), /lock/],
    ['an initial value out of range', () => api.createSharedValue(uniqueName('x'), 'u8', { initial: 256 }), /initial/],
  ],
  createSharedArray: () => [
    ['a type that is not a typed array', () => api.createSharedArray(uniqueName('x'), bad(Array), 2), /type/],
    ['length 0', () => api.createSharedArray(uniqueName('x'), Int32Array, 0), /length/],
  ],
  openSharedValue: () => [['an unknown kind', () => api.openSharedValue('/x', { kind: bad('f16') }), /kind/]],
  openSharedValueSync: () => [['external: false', () => api.openSharedValueSync('/x', { external: false }), /external/]],
  openSharedArray: () => [['a type that is not a typed array', () => api.openSharedArray('/x', { type: bad(Map) }), /type/]],
  openSharedArraySync: () => [['a negative timeout', () => api.openSharedArraySync('/x', { timeout: -1 }), /timeout/]],
  unlinkSharedValue: () => [['a name that is a number', () => api.unlinkSharedValue(bad(5)), /name/]],
  unlinkSharedArray: () => [['an empty name', () => api.unlinkSharedArray(''), /name/]],
  'SharedArray.load': () => [['an index past the end', () => sharedArr.load(4), /index/]],
  'SharedArray.store': () => [['a string', () => sharedArr.store(0, bad('1')), /value/]],
  'SharedArray.add': () => [['a bigint delta for f64', () => sharedArr.add(0, bad(1n)), /delta/]],
  'SharedArray.sub': () => [['a fractional index', () => sharedArr.sub(0.5, 1), /index/]],
  'SharedArray.exchange': () => [['a missing value', () => sharedArr.exchange(0, bad(undefined)), /value/]],
  'SharedArray.compareExchange': () => [['a replacement that is a string', () => sharedArr.compareExchange(0, 0, bad('x')), /replacement/]],
  'SharedArray.wait': () => [['a negative timeout', () => sharedArr.wait(0, 1, { timeout: -1 }), /timeout/]],
  'SharedArray.waitSync': () => [['an expected value that is a string', () => sharedArr.waitSync(0, bad('1')), /expected/]],
  'SharedArray.withLock': () => [['no lock in the object', () => sharedArr.withLock(() => 1), /lock/]],
  'SharedValue.store': () => [['a fraction for an i32', () => sharedVal.store(1.5), /value/]],
  'SharedValue.add': () => [['a fraction for an i32', () => sharedVal.add(0.5), /delta/]],
  'SharedValue.sub': () => [['a string', () => sharedVal.sub(bad('1')), /delta/]],
  'SharedValue.exchange': () => [['out of range', () => sharedVal.exchange(2 ** 31), /value/]],
  'SharedValue.compareExchange': () => [['an expected value that is a bigint', () => sharedVal.compareExchange(bad(1n), 1), /expected/]],
  'SharedValue.wait': () => [['a signal that is not one', () => sharedVal.wait(0, { signal: bad('x') }), /signal/]],
  'SharedValue.waitSync': () => [['a NaN timeout', () => sharedVal.waitSync(0, { timeout: NaN }), /timeout/]],
  'SharedValue.withLock': () => [['fn that is not a function', () => sharedVal.withLock(bad(1)), /fn/]],
};

describe('the waits underneath check their options before any promise exists', () => {
  it('WaitQueue.enqueue and cancellableWait throw at once, and leave nothing queued', () => {
    const queue = new WaitQueue<void>('test wait');
    for (const options of [{ timeout: -1 }, { timeout: NaN }, { signal: bad('x') }, bad(5)]) {
      throwsInvalid(() => queue.enqueue(options, undefined), `WaitQueue.enqueue(${JSON.stringify(options)})`);
      throwsInvalid(() => cancellableWait('test wait', options, () => assert.fail('the wait started')), `cancellableWait(${JSON.stringify(options)})`);
    }
    assert.equal(queue.length, 0);
  });
});

describe('bad arguments throw synchronously from every entry point', () => {
  it('the table holds every public function and method of these mechanisms (src/index.ts)', () => {
    const entries = [...Object.keys(TABLE), ...NO_ARGUMENTS, ...NOT_PUBLIC];
    const covered = new Set<unknown>();
    for (const entry of entries) {
      if (VIA_INTERFACE.has(entry)) continue;
      const f = resolve(entry);
      assert.equal(typeof f, 'function', `table entry ${entry} names no exported function`);
      covered.add(f);
    }
    const missing: string[] = [];
    for (const [name, value] of Object.entries(api)) {
      if (OTHER_BRANCH.has(name) || NATS.test(name) || PROCESS_POOL.has(name)) continue;
      if (isClass(value)) {
        if (!INTERNAL_CONSTRUCTORS.has(name) && !covered.has(value)) missing.push(`new ${name}`);
        for (const m of methodsOf(value as { prototype: object })) if (!covered.has(resolve(`${name}.${m}`))) missing.push(`${name}.${m}`);
      } else if (typeof value === 'function') {
        if (!covered.has(value)) missing.push(name);
      } else if (value !== null && typeof value === 'object') {
        for (const [k, v] of Object.entries(value)) if (typeof v === 'function' && !covered.has(v)) missing.push(`${name}.${k}`);
      }
    }
    assert.deepEqual(missing, [], `entry points missing from the table: ${missing.join(', ')}`);
  });

  for (const [entry, cases] of Object.entries(TABLE)) {
    it(entry, () => {
      const fds = openFds().size;
      const children = childrenOf(process.pid).length;
      for (const [what, call, mentions] of cases()) {
        let message = '';
        throwsInvalid(() => {
          try {
            return call();
          } catch (e) {
            message = (e as Error).message;
            throw e;
          }
        }, `${entry} with ${what}`);
        assert.match(message, mentions, `${entry} with ${what}: the message should name what was wrong: ${message}`);
      }
      assert.equal(openFds().size, fds, `${entry}: a refused call opened a descriptor`);
      assert.deepEqual(childrenOf(process.pid).length, children, `${entry}: a refused call started a process`);
    });
  }
});
