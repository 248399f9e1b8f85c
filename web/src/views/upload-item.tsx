import { useEffect, useId, useState } from 'preact/hooks';
import { useI18n } from '../i18n';
import { describeError } from '../problems';
import { linkTo } from '../router';
import { canRetry, uploadQueue, type UploadJob } from './upload-queue';
import './upload.css';

/** The service's limit on a title, in characters. */
export const MAX_TITLE_LENGTH = 200;

/** Seconds until `at`, re-rendered every quarter second while it counts down. */
function useSecondsUntil(at: number | undefined): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (at === undefined) return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [at]);
  return at === undefined ? 0 : Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * One upload: its title while it can still change, its progress, what the service answered, and what can
 * be done about it. The phase goes to a polite live region; errors to an alert next to the file.
 */
export function UploadItem({ job, name, onRetry }: { job: UploadJob; name: string; onRetry: () => void }) {
  const { t, bytes } = useI18n();
  const titleId = useId();
  const { phase } = job;
  const secondsLeft = useSecondsUntil(phase.kind === 'waiting' ? phase.retryAt : undefined);

  let progress: { value: number; max: number } | undefined;
  let status = '';
  let detail = '';
  let alert = '';
  switch (phase.kind) {
    case 'ready':
      break;
    case 'queued':
      progress = { value: 0, max: job.file.size || 1 };
      status = t.upload.queued;
      break;
    case 'sending':
      progress = { value: phase.sentBytes, max: phase.totalBytes || 1 };
      status = t.upload.sending;
      detail = t.upload.sent(bytes(phase.sentBytes), bytes(phase.totalBytes));
      break;
    case 'converting':
      progress = { value: phase.totalBytes || 1, max: phase.totalBytes || 1 };
      status = t.upload.converting;
      break;
    case 'waiting':
      progress = { value: 0, max: job.file.size || 1 };
      status = t.upload.waiting;
      // The countdown is not in the live region: a screen reader would read it out every second.
      detail = t.upload.retryIn(secondsLeft);
      alert = t.upload.busy;
      break;
    case 'done':
      progress = { value: 1, max: 1 };
      status = t.upload.done;
      break;
    case 'failed':
      alert = describeError(t, phase.error);
      break;
  }

  const cancellable = phase.kind === 'queued' || phase.kind === 'sending' || phase.kind === 'waiting';
  const removable = phase.kind === 'ready' || phase.kind === 'done' || phase.kind === 'failed';
  const retryable = phase.kind === 'failed' && canRetry(phase.error);
  const forName = <span class="visually-hidden">: {name}</span>;

  return (
    <li class="upload-item">
      <p class="upload-item-head">
        <span class="upload-item-name">{name}</span>
        <span class="muted">{bytes(job.file.size)}</span>
      </p>
      {phase.kind === 'ready' ? (
        <div class="field">
          <label for={titleId}>
            {t.upload.titleLabel}
            {forName}
          </label>
          <input
            id={titleId}
            type="text"
            value={job.title}
            maxLength={MAX_TITLE_LENGTH}
            onInput={(event) => uploadQueue.setTitle(job.id, event.currentTarget.value)}
          />
        </div>
      ) : (
        job.title.trim() !== '' &&
        job.title !== name && <p class="upload-item-title">{t.upload.titled(job.title.trim())}</p>
      )}
      {progress !== undefined && <progress aria-label={t.upload.progressOf(name)} {...progress} />}
      <p class="upload-item-status">
        <span role="status">
          {status}
          {phase.kind === 'done' && (
            <>
              {' '}
              <a {...linkTo(`/listen?${new URLSearchParams({ record_id: phase.recordId, user_id: phase.userId })}`)}>
                {t.upload.open}
                {forName}
              </a>
            </>
          )}
        </span>{' '}
        {detail !== '' && <span class="muted">{detail}</span>}
      </p>
      <div role="alert">{alert !== '' && <p class="error">{alert}</p>}</div>
      {(cancellable || removable || retryable) && (
        <div class="row">
          {cancellable && (
            <button type="button" onClick={() => uploadQueue.cancel(job.id)}>
              {t.upload.cancel}
              {forName}
            </button>
          )}
          {retryable && (
            <button type="button" onClick={onRetry}>
              {t.upload.retry}
              {forName}
            </button>
          )}
          {removable && (
            <button type="button" onClick={() => uploadQueue.remove(job.id)}>
              {t.upload.remove}
              {forName}
            </button>
          )}
        </div>
      )}
    </li>
  );
}
