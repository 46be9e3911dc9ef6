/**
 * zerocopy: the kernel's zero-copy data paths for Node.js.
 *
 * Task-level functions are top-level exports (`copyFile`, `openDirect`, …); the system calls themselves, on fd
 * numbers, live under the `sys` namespace.
 *
 * @packageDocumentation
 */
export { copyFile, copyFileSync } from './copy.js';
export type { CopyMechanism, CopyOptions, CopyResult, ReflinkMode } from './copy.js';
export { sendFile } from './send.js';
export type { SendFileOptions, SendMechanism, SendResult } from './send.js';
export { pipe, proxy, teeTo } from './relay/index.js';
export type { PipeOptions, PipeResult, ProxyOptions, ProxyResult, RelayEnd, RelayError, RelayMechanism, RelayOptions, TeeOptions, TeeResult } from './relay/index.js';
export { serveFile, serveStatic, INLINE_BODY_LIMIT, clearFileCache, fileCacheStats } from './http/index.js';
export type { FileCacheStats, FileStat, FoundFile, ServeFileOptions, ServeResult, ServeStaticOptions, StaticHandler } from './http/index.js';
export { capabilities, capabilitiesSync } from './capabilities.js';
export type { Capabilities, DirectIoAlignment, FilesystemCapabilities } from './capabilities.js';
export { mmap, mmapSync, residency, MappedFile } from './mmap.js';
export type { MappedRange, MmapAdvice, MmapMode, MmapOptions, MmapSyncOptions, Residency, TruncatedSyncError } from './mmap.js';
export { alignedBuffer, DirectFile, openDirect, openDirectSync } from './direct.js';
export type { DirectFileAlignment, DirectFlags, DirectIoOptions, DirectMechanism, FallbackMode, OpenDirectOptions, UnalignedMode } from './direct.js';
export { createDirectReadStream, createDirectWriteStream, DirectReadStream, DirectWriteStream } from './direct-stream.js';
export type { DirectReadStreamOptions, DirectWriteStreamOptions } from './direct-stream.js';
export { AbortError, isErrnoError } from './errors.js';
export type { CodedError, ErrnoError, MisalignedError } from './errors.js';
export type { FileArg } from './fd.js';
export * as sys from './sys.js';
