import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { api, type Credentials, type RecordMetadata } from '../api';
import { useI18n } from '../i18n';
import { describeError } from '../problems';
import './library.css';
import { RecordItem, recordName } from './record-item';
import { RecorderPanel } from './recorder';
import { UploadPanel } from './upload';

/** Records a page: enough to fill a screen, few enough that the first one shows at once. */
const PAGE_SIZE = 20;
const SEARCH_DELAY_MS = 300;

/** Upload, record, and the user's records. */
export function LibraryView({ credentials }: { credentials: Credentials }) {
  const { t, plural } = useI18n();
  const [records, setRecords] = useState<RecordMetadata[] | undefined>();
  const [cursor, setCursor] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  // The failure itself, described at render time, so that a change of language needs no new request.
  const [error, setError] = useState<{ cause: unknown } | undefined>();
  const [searchText, setSearchText] = useState('');
  const [query, setQuery] = useState('');
  const [openPlayer, setOpenPlayer] = useState<string | undefined>();
  const [deletedName, setDeletedName] = useState<string | undefined>();
  const listRef = useRef<HTMLUListElement>(null);
  const headingRef = useRef<HTMLHeadingElement>(null);
  // Only the newest first-page request may fill the list: an older search answering late is dropped.
  const generation = useRef(0);
  // The item whose heading takes focus after the next render (a deletion, or a page loaded).
  const focusIndex = useRef<number | undefined>(undefined);

  const reload = useCallback(() => {
    const mine = ++generation.current;
    api.listRecords(credentials, { limit: PAGE_SIZE, ...(query === '' ? {} : { q: query }) }).then(
      (page) => {
        if (mine !== generation.current) return;
        setRecords(page.records);
        setCursor(page.next_cursor);
        setError(undefined);
        setDeletedName(undefined);
      },
      (cause: unknown) => {
        if (mine === generation.current) setError({ cause });
      },
    );
  }, [credentials, query]);
  useEffect(reload, [reload]);

  useEffect(() => {
    const timer = setTimeout(() => setQuery(searchText.trim()), SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [searchText]);

  useLayoutEffect(() => {
    const index = focusIndex.current;
    if (index === undefined || records === undefined) return;
    focusIndex.current = undefined;
    const items = listRef.current?.querySelectorAll<HTMLElement>(':scope > li .record-title') ?? [];
    const target = items[Math.min(index, items.length - 1)] ?? headingRef.current;
    target?.focus();
  }, [records]);

  const loadMore = () => {
    if (cursor === null || loadingMore || records === undefined) return;
    const mine = generation.current;
    setLoadingMore(true);
    api.listRecords(credentials, { limit: PAGE_SIZE, cursor, ...(query === '' ? {} : { q: query }) }).then(
      (page) => {
        setLoadingMore(false);
        if (mine !== generation.current) return;
        // Focus the first new record, where reading goes on, rather than leave it on a vanished button.
        focusIndex.current = records.length;
        setRecords((shown) => [...(shown ?? []), ...page.records]);
        setCursor(page.next_cursor);
        setError(undefined);
      },
      (cause: unknown) => {
        setLoadingMore(false);
        setError({ cause });
      },
    );
  };

  const replace = (updated: RecordMetadata) =>
    setRecords((shown) => shown?.map((record) => (record.record_id === updated.record_id ? updated : record)));

  const remove = (deleted: RecordMetadata) => {
    const index = records?.findIndex((record) => record.record_id === deleted.record_id) ?? -1;
    focusIndex.current = Math.max(index, 0);
    if (openPlayer === deleted.record_id) setOpenPlayer(undefined);
    setDeletedName(recordName(deleted));
    setRecords((shown) => shown?.filter((record) => record.record_id !== deleted.record_id));
  };

  let status = '';
  if (records !== undefined && records.length === 0)
    status = query === '' ? t.library.empty : t.library.noResults(query);
  else if (records !== undefined && query !== '')
    status = plural(records.length, t.library.shown).replace('{count}', String(records.length));

  return (
    <>
      <h1>{t.library.title}</h1>
      <UploadPanel credentials={credentials} onUploaded={reload} />
      <RecorderPanel credentials={credentials} onUploaded={reload} />
      <section aria-labelledby="records-title" class="records">
        <h2 id="records-title" ref={headingRef} tabIndex={-1}>
          {t.library.records}
        </h2>
        <div class="field records-search">
          <label for="records-search">{t.library.search}</label>
          <input
            id="records-search"
            type="search"
            value={searchText}
            aria-describedby="records-search-hint"
            onInput={(event) => setSearchText(event.currentTarget.value)}
          />
          <span id="records-search-hint" class="muted">
            {t.library.searchHint}
          </span>
        </div>
        <p role="status" class="records-status">
          {deletedName !== undefined && <span>{t.library.deleted(deletedName)} </span>}
          {status}
        </p>
        {error !== undefined && (
          <div role="alert" class="error">
            <p>{describeError(t, error.cause)}</p>
            {records === undefined && (
              <button type="button" onClick={reload}>
                {t.library.retry}
              </button>
            )}
          </div>
        )}
        {records === undefined && error === undefined && <p>{t.app.loading}</p>}
        <ul aria-labelledby="records-title" class="records-list" ref={listRef}>
          {records?.map((record) => (
            <RecordItem
              key={record.record_id}
              credentials={credentials}
              record={record}
              playerOpen={openPlayer === record.record_id}
              onTogglePlayer={() => setOpenPlayer((open) => (open === record.record_id ? undefined : record.record_id))}
              onRenamed={replace}
              onDeleted={remove}
            />
          ))}
        </ul>
        {cursor !== null && records !== undefined && (
          <button type="button" class="records-more" aria-disabled={loadingMore} onClick={loadMore}>
            {loadingMore ? t.library.loadingMore : t.library.loadMore}
          </button>
        )}
      </section>
    </>
  );
}
