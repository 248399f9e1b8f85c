import type { FastifyRequest } from 'fastify';
import { UploadStalled } from '../domain/errors.js';

// After answering a stalled upload, how long the client gets to read the answer before its connection is dropped.
const LINGER_MS = 5000;

/**
 * Cuts an upload whose client sends nothing for `timeoutMs` while its body is being read: the body stream
 * fails with UploadStalled (answered with `Connection: close`), which ends the conversion and frees its slot.
 * Time the server itself is not reading (backpressure from the encoder) does not count. Call it only once
 * the body is really being read, so that requests queued for a conversion slot are not cut; call the
 * returned function when the body has been read.
 */
export function cutWhenIdle(request: FastifyRequest, timeoutMs: number): () => void {
  const raw = request.raw;
  if (raw.complete) return () => {};
  const timer = setTimeout(onIdle, timeoutMs);
  const onData = () => timer.refresh();
  raw.on('data', onData);

  function onIdle(): void {
    if (raw.complete || raw.destroyed) return;
    // Paused by a pipe: it is the server that is not reading. Keep waiting.
    if (raw.readableFlowing === false) {
      timer.refresh();
      return;
    }
    const problem = new UploadStalled(
      `The upload sent no data for ${Math.round(timeoutMs / 1000)} seconds and was cut.`,
    );
    request.log.info({ idleMs: timeoutMs }, 'upload idle: cutting it');
    // The multipart reader listens for errors on the request and fails the part being read; without a
    // reader there is nobody to answer, so the connection simply goes.
    if (raw.listenerCount('error') > 0) raw.emit('error', problem);
    else raw.destroy(problem);
    setTimeout(() => raw.socket?.destroy(), LINGER_MS).unref();
  }

  return () => {
    clearTimeout(timer);
    raw.off('data', onData);
  };
}
