import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, linkOf, type Credentials, type RecordMetadata } from '../api';
import { useI18n } from '../i18n';
import { describeError } from '../problems';
import { Player } from './player';
import { RecordFacts } from './record-facts';

/** What a record is called on the page: its title, else the uploaded file's name. */
export function recordName(record: RecordMetadata): string {
  return record.title ?? record.original_filename ?? record.record_id;
}

type Mode = 'view' | 'rename' | 'confirm-delete';

interface RecordItemProps {
  readonly credentials: Credentials;
  readonly record: RecordMetadata;
  readonly playerOpen: boolean;
  readonly onTogglePlayer: () => void;
  readonly onRenamed: (record: RecordMetadata) => void;
  readonly onDeleted: (record: RecordMetadata) => void;
}

/** One record of the library: its facts, and rename, delete, download, share and play. */
export function RecordItem({ credentials, record, playerOpen, onTogglePlayer, onRenamed, onDeleted }: RecordItemProps) {
  const { t } = useI18n();
  const [mode, setMode] = useState<Mode>('view');
  const [draft, setDraft] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [copy, setCopy] = useState<'idle' | 'copied' | 'failed'>('idle');
  // Where focus goes once the mode's elements are on the page.
  const focusNext = useRef<'input' | 'keep' | 'rename' | 'delete' | undefined>(undefined);
  const inputRef = useRef<HTMLInputElement>(null);
  const keepRef = useRef<HTMLButtonElement>(null);
  const renameRef = useRef<HTMLButtonElement>(null);
  const deleteRef = useRef<HTMLButtonElement>(null);

  // A layout effect: focus moves in the same frame as the elements appear, before a key press can land elsewhere.
  useLayoutEffect(() => {
    const target = focusNext.current;
    focusNext.current = undefined;
    if (target === 'input') inputRef.current?.select();
    const element = { input: inputRef, keep: keepRef, rename: renameRef, delete: deleteRef, none: undefined }[
      target ?? 'none'
    ];
    element?.current?.focus();
  }, [mode]);

  const name = recordName(record);
  const id = record.record_id;

  const enter = (next: Mode, focus: typeof focusNext.current) => {
    focusNext.current = focus;
    setError(undefined);
    setCopy('idle');
    setMode(next);
  };

  const saveTitle = async () => {
    if (busy) return;
    const title = draft.trim() === '' ? null : draft.trim();
    if (title === record.title) {
      enter('view', 'rename');
      return;
    }
    setBusy(true);
    try {
      onRenamed(await api.renameRecord(credentials, id, title));
      enter('view', 'rename');
    } catch (cause) {
      setError(cause instanceof ApiError && cause.status === 400 ? t.library.titleRejected : describeError(t, cause));
      inputRef.current?.focus();
    } finally {
      setBusy(false);
    }
  };

  const confirmDelete = async () => {
    setBusy(true);
    try {
      await api.deleteRecord(credentials, id);
      onDeleted(record);
    } catch (cause) {
      // Already gone (another tab deleted it): the wish is fulfilled all the same.
      if (cause instanceof ApiError && cause.status === 404) onDeleted(record);
      else {
        setError(describeError(t, cause));
        setBusy(false);
      }
    }
  };

  const copyLink = async () => {
    try {
      await navigator.clipboard.writeText(record.share_url);
      setCopy('copied');
    } catch {
      setCopy('failed');
    }
  };

  return (
    <li class="record" aria-busy={busy ? 'true' : undefined}>
      {mode === 'rename' ? (
        <form
          class="record-rename"
          onSubmit={(event) => {
            event.preventDefault();
            void saveTitle();
          }}
        >
          <label for={`title-${id}`}>{t.library.newTitle}</label>
          <div class="row">
            <input
              id={`title-${id}`}
              ref={inputRef}
              type="text"
              value={draft}
              aria-describedby={`title-hint-${id}${error === undefined ? '' : ` title-error-${id}`}`}
              aria-invalid={error === undefined ? undefined : 'true'}
              onInput={(event) => setDraft(event.currentTarget.value)}
              onKeyDown={(event) => {
                if (event.key === 'Escape') {
                  event.preventDefault();
                  enter('view', 'rename');
                }
              }}
            />
            <button type="submit" class="primary">
              {busy ? t.library.saving : t.library.save}
            </button>
            <button type="button" onClick={() => enter('view', 'rename')}>
              {t.library.cancel}
            </button>
          </div>
          <p id={`title-hint-${id}`} class="muted record-hint">
            {t.library.newTitleHint}
          </p>
          <p id={`title-error-${id}`} class="error record-hint" role="alert">
            {error}
          </p>
        </form>
      ) : (
        <h3 class="record-title" tabIndex={-1}>
          {name}
        </h3>
      )}

      <RecordFacts record={record} />

      {mode !== 'rename' && (
        <div class="row record-actions">
          <button type="button" aria-expanded={playerOpen} aria-controls={`player-${id}`} onClick={onTogglePlayer}>
            {playerOpen ? t.library.hidePlayer : t.library.listen}
          </button>
          <a class="button" href={linkOf(record)} download>
            {t.library.download}
          </a>
          <button
            type="button"
            ref={renameRef}
            onClick={() => {
              setDraft(record.title ?? '');
              enter('rename', 'input');
            }}
          >
            {t.library.rename}
          </button>
          <button type="button" onClick={() => void copyLink()}>
            {t.library.copyLink}
          </button>
          <button
            type="button"
            class="danger"
            ref={deleteRef}
            aria-expanded={mode === 'confirm-delete'}
            onClick={() => enter('confirm-delete', 'keep')}
          >
            {t.library.delete}
          </button>
        </div>
      )}

      <p class="record-status" role="status">
        {copy === 'copied' && t.library.copied}
        {copy === 'failed' && t.library.copyFailed}
      </p>
      {copy === 'failed' && (
        <div class="field">
          <label for={`share-${id}`}>{t.library.shareLink}</label>
          <input
            id={`share-${id}`}
            type="text"
            readOnly
            value={record.share_url}
            onFocus={(event) => event.currentTarget.select()}
          />
        </div>
      )}

      {mode === 'confirm-delete' && (
        <div
          class="record-confirm"
          role="group"
          aria-labelledby={`confirm-${id}`}
          onKeyDown={(event) => {
            if (event.key === 'Escape' && !busy) enter('view', 'delete');
          }}
        >
          <p id={`confirm-${id}`}>{t.library.confirmDelete(name)}</p>
          <div class="row">
            {/* The safe choice comes first and has focus: one stray key press keeps the record. */}
            <button type="button" ref={keepRef} onClick={() => !busy && enter('view', 'delete')}>
              {t.library.keep}
            </button>
            <button type="button" class="danger" onClick={() => !busy && void confirmDelete()}>
              {busy ? t.library.deleting : t.library.confirmDeleteYes}
            </button>
          </div>
          {error !== undefined && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
        </div>
      )}

      <div id={`player-${id}`}>{playerOpen && <Player record={record} name={name} focusOnMount />}</div>
    </li>
  );
}
