import { useEffect, useId, useState } from 'preact/hooks';
import type { Credentials, OutputOptions } from '../api';
import { useI18n } from '../i18n';
import { OutputOptionsFields } from './output-options';
import { MAX_TITLE_LENGTH, UploadItem } from './upload-item';
import { uploadQueue, useUploadJobs } from './upload-queue';

/** What the picker offers: any audio, and the extensions of every kind the service reads (README, "Inputs"). */
const ACCEPT = [
  'audio/*',
  ...['wav', 'rf64', 'bw64', 'flac', 'ogg', 'oga', 'opus', 'webm', 'mka', 'mkv', 'mp4', 'm4a', 'm4b', '3gp', '3g2'],
  ...['mp3', 'aif', 'aiff', 'aifc', 'amr', 'awb'],
]
  .map((kind) => (kind.includes('/') ? kind : `.${kind}`))
  .join(',');

/** The file's name without its extension, as a title; the whole name when that would leave nothing. */
function titleFrom(fileName: string): string {
  const stem = fileName.replace(/\.[^.]*$/, '').trim();
  return (stem === '' ? fileName : stem).slice(0, MAX_TITLE_LENGTH);
}

/**
 * Files dropped or picked, each with its own title, progress and cancel. Picked files wait in the list
 * (their titles can be changed) until "Upload" starts them all; at most two run at once, the rest queue.
 */
export function UploadPanel({ credentials, onUploaded }: { credentials: Credentials; onUploaded: () => void }) {
  const { t, plural } = useI18n();
  const id = useId();
  const jobs = useUploadJobs('files', credentials.userId, onUploaded);
  const [options, setOptions] = useState<OutputOptions>({});
  const [dragging, setDragging] = useState(false);
  const ready = jobs.filter((job) => job.phase.kind === 'ready');

  // A file dropped just beside the zone would make the browser open it in place of the page.
  useEffect(() => {
    const keep = (event: DragEvent) => {
      if (event.dataTransfer?.types.includes('Files') === true) event.preventDefault();
    };
    addEventListener('dragover', keep);
    addEventListener('drop', keep);
    return () => {
      removeEventListener('dragover', keep);
      removeEventListener('drop', keep);
    };
  }, []);

  const add = (files: FileList | null | undefined) => {
    if (!files || files.length === 0) return;
    uploadQueue.add(
      'files',
      credentials,
      [...files].map((file) => ({ file, name: file.name, title: titleFrom(file.name) })),
    );
  };

  return (
    <section aria-labelledby={`${id}-title`} class="card upload-panel">
      <h2 id={`${id}-title`}>{t.upload.title}</h2>
      <div
        role="group"
        aria-labelledby={`${id}-drop`}
        class={dragging ? 'drop-zone dragging' : 'drop-zone'}
        onDragEnter={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragOver={(event) => {
          event.preventDefault();
          if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
        }}
        onDragLeave={(event) => {
          if (!event.currentTarget.contains(event.relatedTarget as Node | null)) setDragging(false);
        }}
        onDrop={(event) => {
          event.preventDefault();
          setDragging(false);
          add(event.dataTransfer?.files);
        }}
      >
        <p id={`${id}-drop`}>{t.upload.drop}</p>
        <div class="picker">
          <input
            id={`${id}-files`}
            class="visually-hidden"
            type="file"
            accept={ACCEPT}
            multiple
            aria-describedby={`${id}-kinds`}
            onChange={(event) => {
              add(event.currentTarget.files);
              // Empty again, so that picking the same file twice still adds it.
              event.currentTarget.value = '';
            }}
          />
          <label for={`${id}-files`} class="button primary">
            {t.upload.choose}
          </label>
        </div>
        <p class="muted" id={`${id}-kinds`}>
          {t.upload.kinds}
        </p>
      </div>

      {jobs.length > 0 && (
        <>
          <h3 id={`${id}-files-title`} class="upload-files-title">
            {t.upload.files}
          </h3>
          <ul class="upload-list" aria-labelledby={`${id}-files-title`}>
            {jobs.map((job) => (
              <UploadItem
                key={job.id}
                job={job}
                name={job.fileName}
                onRetry={() => uploadQueue.start([job.id], options)}
              />
            ))}
          </ul>
        </>
      )}
      <OutputOptionsFields value={options} onChange={setOptions} />
      {ready.length > 0 && (
        <div class="row upload-actions">
          <button
            type="button"
            class="primary"
            onClick={() =>
              uploadQueue.start(
                ready.map((job) => job.id),
                options,
              )
            }
          >
            {plural(ready.length, t.upload.start).replace('#', String(ready.length))}
          </button>
        </div>
      )}
    </section>
  );
}
