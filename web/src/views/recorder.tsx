import { useEffect, useId, useRef, useState } from 'preact/hooks';
import type { Credentials } from '../api';
import { useI18n } from '../i18n';
import { MAX_TITLE_LENGTH, UploadItem } from './upload-item';
import { uploadQueue, useUploadJobs } from './upload-queue';
import './recorder.css';

/** What MediaRecorder should write, best first: the service reads each (WebM/Opus: Chrome, Firefox; MP4: Safari). */
const RECORDING_TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/mp4'];
/** How often the level and the timer are redrawn: often enough to look alive, not a render per frame. */
const REDRAW_MS = 100;

type Problem = 'denied' | 'noMicrophone' | 'busy' | 'unsupported' | 'failed';

type State =
  | { readonly kind: 'idle' }
  | { readonly kind: 'asking' }
  | { readonly kind: 'recording'; readonly paused: boolean }
  | { readonly kind: 'recorded'; readonly blob: Blob; readonly url: string; readonly seconds: number }
  | { readonly kind: 'problem'; readonly problem: Problem };

/** Everything that holds the microphone open; released as one. */
interface Capture {
  readonly stream: MediaStream;
  readonly recorder: MediaRecorder;
  readonly context: AudioContext;
  readonly analyser: AnalyserNode;
  readonly chunks: Blob[];
  /** Recorded time before the running stretch, and when that stretch began (performance.now; undefined: paused). */
  recordedMs: number;
  runningSince: number | undefined;
  frame: number;
  keep: boolean;
}

function problemOf(error: unknown): Problem {
  const name = error instanceof Error || error instanceof DOMException ? error.name : '';
  if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') return 'denied';
  if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError')
    return 'noMicrophone';
  if (name === 'NotReadableError' || name === 'TrackStartError' || name === 'AbortError') return 'busy';
  return 'failed';
}

function elapsedMs(capture: Capture): number {
  return capture.recordedMs + (capture.runningSince === undefined ? 0 : performance.now() - capture.runningSince);
}

/** The loudest sample the analyser holds now, 0…1. */
function peakOf(analyser: AnalyserNode, samples: Float32Array<ArrayBuffer>): number {
  analyser.getFloatTimeDomainData(samples);
  let peak = 0;
  for (const sample of samples) peak = Math.max(peak, Math.abs(sample));
  return Math.min(1, peak);
}

function release(capture: Capture | undefined): void {
  if (capture === undefined) return;
  cancelAnimationFrame(capture.frame);
  // Stopping the tracks is what turns off the browser's recording indicator.
  for (const track of capture.stream.getTracks()) track.stop();
  void capture.context.close().catch(() => {});
}

function extensionOf(mimeType: string): string {
  return mimeType.startsWith('audio/mp4') ? 'm4a' : mimeType.startsWith('audio/ogg') ? 'ogg' : 'webm';
}

/**
 * A recording from the microphone: the browser asks for it only when Record is pressed; a level meter and
 * a timer while recording, pause and resume, then listen back and upload (or discard).
 */
export function RecorderPanel({ credentials, onUploaded }: { credentials: Credentials; onUploaded: () => void }) {
  const { t, dateTime, duration } = useI18n();
  const r = t.recorder;
  const id = useId();
  const jobs = useUploadJobs('recorder', credentials.userId, onUploaded);
  const [state, setState] = useState<State>({ kind: 'idle' });
  const [level, setLevel] = useState(0);
  const [elapsed, setElapsed] = useState(0);
  const [title, setTitle] = useState('');
  const capture = useRef<Capture | undefined>(undefined);
  const recordButton = useRef<HTMLButtonElement>(null);
  const stopButton = useRef<HTMLButtonElement>(null);
  const recordedHeading = useRef<HTMLHeadingElement>(null);
  const mounted = useRef(true);

  // Leaving the view lets go of the microphone and of the recording's blob: URL.
  const recordedUrl = state.kind === 'recorded' ? state.url : undefined;
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
      if (capture.current) capture.current.keep = false;
      release(capture.current);
      capture.current = undefined;
    };
  }, []);
  useEffect(() => () => recordedUrl && URL.revokeObjectURL(recordedUrl), [recordedUrl]);

  // The button that was pressed goes away with the state; focus goes where the next step is.
  useEffect(() => {
    if (state.kind === 'recording') stopButton.current?.focus();
    if (state.kind === 'recorded') recordedHeading.current?.focus();
  }, [state.kind]);

  const redraw = () => {
    const current = capture.current;
    if (current === undefined) return;
    const samples = new Float32Array(current.analyser.fftSize);
    let last = 0;
    const tick = (now: number) => {
      if (now - last >= REDRAW_MS) {
        last = now;
        setElapsed(elapsedMs(current) / 1000);
        setLevel(current.runningSince === undefined ? 0 : peakOf(current.analyser, samples));
      }
      current.frame = requestAnimationFrame(tick);
    };
    current.frame = requestAnimationFrame(tick);
  };

  const start = async () => {
    if (
      typeof MediaRecorder === 'undefined' ||
      typeof AudioContext === 'undefined' ||
      navigator.mediaDevices?.getUserMedia === undefined
    ) {
      setState({ kind: 'problem', problem: 'unsupported' });
      return;
    }
    setState({ kind: 'asking' });
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      if (mounted.current) setState({ kind: 'problem', problem: problemOf(error) });
      return;
    }
    if (!mounted.current) {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    let recorder: MediaRecorder;
    let context: AudioContext;
    try {
      const mimeType = RECORDING_TYPES.find((type) => MediaRecorder.isTypeSupported(type));
      recorder = new MediaRecorder(stream, mimeType === undefined ? {} : { mimeType });
      context = new AudioContext();
    } catch {
      for (const track of stream.getTracks()) track.stop();
      setState({ kind: 'problem', problem: 'unsupported' });
      return;
    }
    const analyser = context.createAnalyser();
    analyser.fftSize = 2048;
    context.createMediaStreamSource(stream).connect(analyser);
    void context.resume().catch(() => {});
    const current: Capture = {
      stream,
      recorder,
      context,
      analyser,
      chunks: [],
      recordedMs: 0,
      runningSince: performance.now(),
      frame: 0,
      keep: true,
    };
    capture.current = current;
    recorder.ondataavailable = (event) => {
      if (event.data.size > 0) current.chunks.push(event.data);
    };
    recorder.onstop = () => {
      release(current);
      if (capture.current === current) capture.current = undefined;
      if (!current.keep || !mounted.current) return;
      const blob = new Blob(current.chunks, { type: recorder.mimeType || 'audio/webm' });
      setLevel(0);
      setTitle(r.defaultTitle(dateTime(new Date().toISOString())).slice(0, MAX_TITLE_LENGTH));
      setState({ kind: 'recorded', blob, url: URL.createObjectURL(blob), seconds: elapsedMs(current) / 1000 });
    };
    recorder.onerror = () => {
      current.keep = false;
      release(current);
      capture.current = undefined;
      if (mounted.current) setState({ kind: 'problem', problem: 'failed' });
    };
    // Chunks every second: a long recording is not held in one piece until the end.
    recorder.start(1000);
    setElapsed(0);
    setState({ kind: 'recording', paused: false });
    redraw();
  };

  const pause = () => {
    const current = capture.current;
    if (current?.runningSince === undefined) return;
    current.recorder.pause();
    current.recordedMs += performance.now() - current.runningSince;
    current.runningSince = undefined;
    setLevel(0);
    setState({ kind: 'recording', paused: true });
  };

  const resume = () => {
    const current = capture.current;
    if (current === undefined || current.runningSince !== undefined) return;
    current.recorder.resume();
    current.runningSince = performance.now();
    setState({ kind: 'recording', paused: false });
  };

  const stop = () => {
    const current = capture.current;
    if (current === undefined) return;
    if (current.runningSince !== undefined) {
      current.recordedMs += performance.now() - current.runningSince;
      current.runningSince = undefined;
    }
    current.recorder.stop();
  };

  const discard = () => {
    const current = capture.current;
    if (current !== undefined) {
      current.keep = false;
      if (current.recorder.state !== 'inactive') current.recorder.stop();
      release(current);
      capture.current = undefined;
    }
    setState({ kind: 'idle' });
    setLevel(0);
    setElapsed(0);
    queueMicrotask(() => recordButton.current?.focus());
  };

  const upload = () => {
    if (state.kind !== 'recorded') return;
    const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
    const ids = uploadQueue.add('recorder', credentials, [
      { file: state.blob, name: `recording-${stamp}.${extensionOf(state.blob.type)}`, title },
    ]);
    uploadQueue.start(ids, {});
    setState({ kind: 'idle' });
    setElapsed(0);
    queueMicrotask(() => recordButton.current?.focus());
  };

  const statusText =
    state.kind === 'asking'
      ? r.asking
      : state.kind === 'recording'
        ? state.paused
          ? r.paused
          : r.recording
        : state.kind === 'recorded'
          ? r.recorded
          : '';

  return (
    <section aria-labelledby={`${id}-title`} class="card recorder-panel">
      <h2 id={`${id}-title`}>{r.title}</h2>
      <p role="status" class="recorder-status">
        {statusText}
      </p>
      <div role="alert">{state.kind === 'problem' && <p class="error">{r.problems[state.problem]}</p>}</div>

      {(state.kind === 'idle' || state.kind === 'asking' || state.kind === 'problem') && (
        <>
          <p class="muted">{r.intro}</p>
          {!(state.kind === 'problem' && state.problem === 'unsupported') && (
            <button
              ref={recordButton}
              type="button"
              class="primary"
              disabled={state.kind === 'asking'}
              onClick={() => void start()}
            >
              <span aria-hidden="true" class="record-dot" />
              {state.kind === 'problem' ? r.again : r.record}
            </button>
          )}
        </>
      )}

      {state.kind === 'recording' && (
        <>
          <div class="recorder-readout">
            <p class="recorder-time">
              <span id={`${id}-time`}>{r.time}</span>{' '}
              <span role="timer" aria-labelledby={`${id}-time`} class="mono">
                {duration(elapsed)}
              </span>
            </p>
            <div class="recorder-level">
              <label for={`${id}-level`}>{r.level}</label>
              <meter id={`${id}-level`} min={0} max={1} low={0.7} high={0.95} optimum={0.3} value={level} />
            </div>
          </div>
          <div class="row">
            {state.paused ? (
              <button type="button" onClick={resume}>
                {r.resume}
              </button>
            ) : (
              <button type="button" onClick={pause}>
                {r.pause}
              </button>
            )}
            <button ref={stopButton} type="button" class="primary" onClick={stop}>
              {r.stop}
            </button>
            <button type="button" class="danger" onClick={discard}>
              {r.discard}
            </button>
          </div>
        </>
      )}

      {state.kind === 'recorded' && (
        <div class="recorder-result">
          <h3 id={`${id}-listen`} ref={recordedHeading} tabIndex={-1}>
            {r.listen}
          </h3>
          <p class="muted">
            {r.length} {/* The exact length, for machines; people read the rounded one. */}
            <time dateTime={`PT${state.seconds.toFixed(2)}S`}>{duration(state.seconds)}</time>
          </p>
          <audio
            controls
            src={state.url}
            aria-labelledby={`${id}-listen`}
            onLoadedMetadata={(event) => {
              // Chrome's WebM recordings carry no duration: seeking far past the end makes the browser find it.
              const audio = event.currentTarget;
              if (audio.duration !== Infinity) return;
              audio.addEventListener('durationchange', () => (audio.currentTime = 0), { once: true });
              audio.currentTime = Number.MAX_SAFE_INTEGER;
            }}
          />
          <div class="field">
            <label for={`${id}-name`}>{r.titleLabel}</label>
            <input
              id={`${id}-name`}
              type="text"
              value={title}
              maxLength={MAX_TITLE_LENGTH}
              onInput={(event) => setTitle(event.currentTarget.value)}
            />
          </div>
          <div class="row">
            <button type="button" class="primary" onClick={upload}>
              {r.upload}
            </button>
            <button type="button" class="danger" onClick={discard}>
              {r.discard}
            </button>
          </div>
        </div>
      )}

      {jobs.length > 0 && (
        <>
          <h3 id={`${id}-uploads`}>{r.uploads}</h3>
          <ul class="upload-list" aria-labelledby={`${id}-uploads`}>
            {jobs.map((job) => (
              <UploadItem
                key={job.id}
                job={job}
                name={job.title.trim() || job.fileName}
                onRetry={() => uploadQueue.start([job.id], {})}
              />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
