import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, linkOf, type RecordMetadata } from '../api';
import { useI18n } from '../i18n';
import { describeError } from '../problems';
import { Player } from './player';
import { RecordFacts } from './record-facts';
import { recordName } from './record-item';
import './share.css';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type State =
  | { readonly kind: 'loading' }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'ready'; readonly record: RecordMetadata };

/** The public page of a record link: title, player, waveform, download. Needs no account. */
export function SharePage({ recordId, userId }: { recordId: string | null; userId: string | null }) {
  const { t } = useI18n();
  const [state, setState] = useState<State>({ kind: 'loading' });

  useEffect(() => {
    if (recordId === null || userId === null || recordId.trim() === '' || userId.trim() === '') {
      setState({ kind: 'failed', message: t.share.missing });
      return;
    }
    // Checked here so a damaged link gets its own message, not the service's "malformed parameter".
    if (!UUID.test(recordId) || !UUID.test(userId)) {
      setState({ kind: 'failed', message: t.share.malformed });
      return;
    }
    let current = true;
    setState({ kind: 'loading' });
    api.sharedRecord(recordId, userId).then(
      (record) => current && setState({ kind: 'ready', record }),
      (cause: unknown) => {
        if (!current) return;
        const message =
          cause instanceof ApiError && cause.status === 404
            ? t.share.gone
            : cause instanceof ApiError && cause.status === 400
              ? t.share.malformed
              : describeError(t, cause);
        setState({ kind: 'failed', message });
      },
    );
    return () => {
      current = false;
    };
  }, [recordId, userId, t]);

  if (state.kind !== 'ready')
    return (
      <section aria-labelledby="share-title" class="share">
        <h1 id="share-title">{t.share.title}</h1>
        {state.kind === 'loading' ? (
          <p role="status">{t.app.loading}</p>
        ) : (
          <p role="alert" class="error">
            {state.message}
          </p>
        )}
      </section>
    );

  const { record } = state;
  const name = recordName(record);
  return (
    <section aria-labelledby="share-title" class="share card">
      <p class="muted share-kicker">{t.share.title}</p>
      <h1 id="share-title">{name}</h1>
      <RecordFacts record={record} />
      <Player record={record} name={name} />
      <p class="share-download">
        <a class="button primary" href={linkOf(record)} download>
          {t.share.download}
        </a>
      </p>
    </section>
  );
}
