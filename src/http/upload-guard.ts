import type { IncomingMessage } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { BodyTooSlow } from '../domain/errors.js';

// After answering a cut upload, how long the client gets to read the answer before its connection is dropped.
const LINGER_MS = 5000;
// How often the receive rate is sampled.
const SAMPLE_MS = 500;

export interface UploadGuardLimits {
  /** No byte for this long while the server is reading: cut. */
  readonly idleTimeoutMs: number;
  /** The whole body must arrive within this time from admission. */
  readonly deadlineMs: number;
  /** Below this average over `rateWindowMs` of reading time: cut. 0 turns the rate check off. */
  readonly minBytesPerSecond: number;
  readonly rateWindowMs: number;
}

/**
 * Cuts an upload body that arrives too slowly to be honest: nothing for the idle time, less than the
 * minimum average rate over the window, or not complete by the deadline. The body stream fails with
 * BodyTooSlow (answered 408 with `Connection: close`), which ends the conversion and frees its slot.
 * Time the server itself is not reading (backpressure from the encoder) counts toward none of the
 * rate and idle checks. Call it once the upload is admitted; call the returned function when the body
 * has been read.
 */
export function guardUploadBody(request: FastifyRequest, limits: UploadGuardLimits): () => void {
  const raw = request.raw;
  if (raw.complete) return () => {};
  const idle = setTimeout(onIdle, limits.idleTimeoutMs);
  // Armed before the encoder's own time limit (which starts later, with the encoder), so a body still
  // arriving at the deadline is answered as the slow upload it is.
  const deadline = setTimeout(() => {
    if (raw.complete || raw.destroyed) return;
    cut(`The upload did not complete within ${Math.round(limits.deadlineMs / 1000)} seconds and was cut.`);
  }, limits.deadlineMs);
  const windowSamples = Math.max(1, Math.round(limits.rateWindowMs / SAMPLE_MS));
  const samples: number[] = [];
  let bytesSinceSample = 0;
  const sampler = setInterval(onSample, SAMPLE_MS);

  const onData = (chunk: Buffer) => {
    idle.refresh();
    bytesSinceSample += chunk.length;
  };
  raw.on('data', onData);

  function onIdle(): void {
    if (raw.complete || raw.destroyed) return;
    // Paused by a pipe: it is the server that is not reading. Keep waiting.
    if (raw.readableFlowing === false) {
      idle.refresh();
      return;
    }
    cut(`The upload sent no data for ${Math.round(limits.idleTimeoutMs / 1000)} seconds and was cut.`);
  }

  function onSample(): void {
    if (raw.complete || raw.destroyed) return;
    const received = bytesSinceSample;
    bytesSinceSample = 0;
    if (limits.minBytesPerSecond === 0 || raw.readableFlowing === false) return;
    samples.push(received);
    if (samples.length > windowSamples) samples.shift();
    if (samples.length < windowSamples) return;
    const perSecond = samples.reduce((sum, bytes) => sum + bytes, 0) / ((windowSamples * SAMPLE_MS) / 1000);
    if (perSecond < limits.minBytesPerSecond) {
      cut(
        `The upload arrived at ${Math.round(perSecond)} bytes per second, below the minimum of ` +
          `${limits.minBytesPerSecond}, and was cut.`,
      );
    }
  }

  function cut(detail: string): void {
    stop();
    request.log.info({ detail }, 'upload too slow: cutting it');
    cutBody(raw, new BodyTooSlow(detail), LINGER_MS);
  }

  function stop(): void {
    clearTimeout(idle);
    clearTimeout(deadline);
    clearInterval(sampler);
    raw.off('data', onData);
  }

  return stop;
}

/**
 * Fails a request body that is still arriving. A reader of the body (the multipart parser, a JSON parser)
 * listens for errors on the request and answers with this one; without a reader there is nobody to answer,
 * so the connection simply goes. After `lingerMs` for the client to read the answer, the socket is closed.
 */
export function cutBody(raw: IncomingMessage, error: BodyTooSlow, lingerMs: number): void {
  if (raw.listenerCount('error') > 0) raw.emit('error', error);
  else raw.destroy(error);
  setTimeout(() => raw.socket?.destroy(), lingerMs).unref();
}
