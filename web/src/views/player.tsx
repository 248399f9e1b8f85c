import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import WaveSurfer from 'wavesurfer.js';
import { api, linkOf, type Peaks, type RecordMetadata } from '../api';
import { useI18n } from '../i18n';
import './player.css';

const KEYBOARD_STEP_SECONDS = 5;
const PAGE_STEP_SECONDS = 30;

/**
 * BBC audiowaveform pairs (min, max in −128…127) as the one channel wavesurfer draws mirrored: the
 * larger of the two magnitudes, so a lopsided signal is not drawn smaller than it is.
 */
function waveOf(peaks: Peaks): number[] {
  const wave: number[] = [];
  for (let pair = 0; pair + 1 < peaks.data.length; pair += 2)
    wave.push(Math.max(Math.abs(peaks.data[pair] ?? 0), Math.abs(peaks.data[pair + 1] ?? 0)) / 128);
  return wave;
}

function waveColours(element: Element) {
  const style = getComputedStyle(element);
  const read = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    waveColor: read('--wave', '#8a94a6'),
    progressColor: read('--wave-progress', '#1d4ed8'),
    cursorColor: read('--text', '#16181d'),
  };
}

/**
 * Plays a record through an <audio> element that only fetches what it plays (Range requests), with the
 * server's peaks drawn by wavesurfer: the whole file is never downloaded or decoded to draw it, so an
 * hour-long recording starts at once. Without peaks it still plays, over a plain progress bar.
 */
export function Player({
  record,
  name,
  focusOnMount = false,
}: {
  record: RecordMetadata;
  name: string;
  focusOnMount?: boolean;
}) {
  const { t, duration: formatDuration } = useI18n();
  const audioRef = useRef<HTMLAudioElement>(null);
  const waveRef = useRef<HTMLDivElement>(null);
  const playButtonRef = useRef<HTMLButtonElement>(null);
  const draggingRef = useRef(false);
  const [playing, setPlaying] = useState(false);
  const [position, setPosition] = useState(0);
  const [length, setLength] = useState(record.duration_seconds);
  const [wave, setWave] = useState<'loading' | 'drawn' | 'failed'>('loading');
  const [unplayable, setUnplayable] = useState(false);

  useLayoutEffect(() => {
    if (focusOnMount) playButtonRef.current?.focus();
  }, [focusOnMount]);

  useEffect(() => {
    const audio = audioRef.current;
    if (!audio) return;
    const onTime = () => setPosition(audio.currentTime);
    const onMetadata = () => {
      if (Number.isFinite(audio.duration) && audio.duration > 0) setLength(audio.duration);
    };
    const onPlay = () => setPlaying(true);
    const onPause = () => setPlaying(false);
    const onError = () => setUnplayable(true);
    const events: Array<[string, () => void]> = [
      ['timeupdate', onTime],
      ['seeked', onTime],
      ['loadedmetadata', onMetadata],
      ['durationchange', onMetadata],
      ['play', onPlay],
      ['pause', onPause],
      ['ended', onPause],
      ['error', onError],
    ];
    for (const [type, listener] of events) audio.addEventListener(type, listener);
    return () => {
      for (const [type, listener] of events) audio.removeEventListener(type, listener);
      audio.pause();
    };
  }, []);

  useEffect(() => {
    const audio = audioRef.current;
    const container = waveRef.current;
    if (!audio || !container) return;
    let surfer: WaveSurfer | undefined;
    let cancelled = false;
    const scheme = matchMedia('(prefers-color-scheme: dark)');
    const recolour = () => surfer?.setOptions(waveColours(container));
    api.peaks(record).then(
      (peaks) => {
        if (cancelled) return;
        surfer = WaveSurfer.create({
          container,
          // The <audio> already has record_url as its source, so wavesurfer neither fetches nor decodes it.
          media: audio,
          peaks: [waveOf(peaks)],
          duration: record.duration_seconds,
          height: 64,
          normalize: true,
          // Seeking is the slider's (pointer and keyboard alike), so there is one way it works.
          interact: false,
          ...waveColours(container),
        });
        scheme.addEventListener('change', recolour);
        setWave('drawn');
      },
      () => {
        if (!cancelled) setWave('failed');
      },
    );
    return () => {
      cancelled = true;
      scheme.removeEventListener('change', recolour);
      surfer?.destroy();
      audio.pause();
    };
  }, [record.record_id, record.user_id, record.duration_seconds]);

  const seek = (seconds: number) => {
    const audio = audioRef.current;
    if (!audio) return;
    const target = Math.min(Math.max(seconds, 0), length);
    audio.currentTime = target;
    setPosition(target);
  };

  const toggle = () => {
    const audio = audioRef.current;
    if (!audio) return;
    if (audio.paused) {
      audio.play().catch((error: unknown) => {
        // NotAllowed/Abort: the browser refused or a pause came first; the button stays "Play".
        if (error instanceof DOMException && error.name === 'NotSupportedError') setUnplayable(true);
      });
    } else audio.pause();
  };

  const seekToPointer = (event: PointerEvent) => {
    const rect = (event.currentTarget as HTMLElement).getBoundingClientRect();
    if (rect.width > 0) seek(((event.clientX - rect.left) / rect.width) * length);
  };

  const onSliderKey = (event: KeyboardEvent) => {
    const steps: Record<string, number> = {
      ArrowRight: position + KEYBOARD_STEP_SECONDS,
      ArrowUp: position + KEYBOARD_STEP_SECONDS,
      ArrowLeft: position - KEYBOARD_STEP_SECONDS,
      ArrowDown: position - KEYBOARD_STEP_SECONDS,
      PageUp: position + PAGE_STEP_SECONDS,
      PageDown: position - PAGE_STEP_SECONDS,
      Home: 0,
      End: length,
    };
    const target = steps[event.key];
    if (target === undefined) return;
    event.preventDefault();
    seek(target);
  };

  // Space plays and pauses wherever focus is in the player; on the button the browser already does it.
  const onPlayerKey = (event: KeyboardEvent) => {
    if (event.key !== ' ' || event.defaultPrevented) return;
    if (event.target instanceof HTMLButtonElement || event.target instanceof HTMLAnchorElement) return;
    event.preventDefault();
    toggle();
  };

  const current = formatDuration(position);
  const total = formatDuration(length);
  const percent = length > 0 ? Math.min(100, (position / length) * 100) : 0;

  return (
    <div class="player" role="group" aria-label={t.player.label(name)} onKeyDown={onPlayerKey}>
      <audio ref={audioRef} src={linkOf(record)} preload="metadata" />
      <div class="player-controls">
        <button type="button" class="primary player-toggle" ref={playButtonRef} onClick={toggle}>
          <span aria-hidden="true" class={playing ? 'icon-pause' : 'icon-play'} />
          {playing ? t.player.pause : t.player.play}
        </button>
        <span class="player-time">
          {current} / {total}
        </span>
      </div>
      <div
        class="player-wave"
        role="slider"
        tabIndex={0}
        aria-label={t.player.position}
        aria-valuemin={0}
        aria-valuemax={Math.round(length)}
        aria-valuenow={Math.round(position)}
        aria-valuetext={t.player.positionText(current, total)}
        onKeyDown={onSliderKey}
        onPointerDown={(event) => {
          draggingRef.current = true;
          (event.currentTarget as HTMLElement).setPointerCapture(event.pointerId);
          seekToPointer(event);
        }}
        onPointerMove={(event) => {
          if (draggingRef.current) seekToPointer(event);
        }}
        onPointerUp={() => (draggingRef.current = false)}
        onPointerCancel={() => (draggingRef.current = false)}
      >
        <div ref={waveRef} class="player-surface" />
        {wave !== 'drawn' && (
          <div class="player-bar">
            <div class="player-bar-fill" style={{ width: `${percent}%` }} />
          </div>
        )}
      </div>
      {wave === 'failed' && <p class="muted player-note">{t.player.noWaveform}</p>}
      {unplayable && (
        <p class="error player-note" role="alert">
          {t.player.unplayable}
        </p>
      )}
    </div>
  );
}
