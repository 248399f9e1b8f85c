import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, type Account, type Credentials } from '../api';
import { useI18n } from '../i18n';
import { describeError } from '../problems';
import { saveCredentials } from '../session';
import { OneTimeCredentials } from './credentials';
import { FormStatus, TextField } from './field';
import './account.css';

/** Why the person leaves the signed-in part from here. */
export type Departure = 'accountDeleted' | 'signInAgain';

type Loaded = { state: 'loading' } | { state: 'ready'; account: Account } | { state: 'failed'; error: unknown };

const isUnauthorized = (error: unknown) => error instanceof ApiError && error.status === 401;

/** The account, token rotation and account deletion. */
export function SettingsView({
  credentials,
  onLeave,
}: {
  credentials: Credentials;
  onLeave: (why: Departure) => void;
}) {
  const { t, language, bytes, dateTime } = useI18n();
  const s = t.settings;
  const [loaded, setLoaded] = useState<Loaded>({ state: 'loading' });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    // No "loading" in between on a new token: the panel that shows it must stay.
    let current = true;
    api.me(credentials).then(
      (account) => current && setLoaded({ state: 'ready', account }),
      (error: unknown) => current && setLoaded({ state: 'failed', error }),
    );
    return () => {
      current = false;
    };
  }, [credentials, attempt]);

  const failed = loaded.state === 'failed' ? loaded.error : undefined;
  return (
    <section aria-labelledby="settings-title" class="settings">
      <h1 id="settings-title">{s.title}</h1>
      <div aria-live="polite">
        {loaded.state === 'loading' && <p>{t.app.loading}</p>}
        {failed !== undefined &&
          (isUnauthorized(failed) ? (
            <StaleToken onSignInAgain={() => onLeave('signInAgain')} />
          ) : (
            <div class="card">
              <p class="error">{describeError(t, failed)}</p>
              <button
                type="button"
                onClick={() => {
                  setLoaded({ state: 'loading' });
                  setAttempt((n) => n + 1);
                }}
              >
                {s.retry}
              </button>
            </div>
          ))}
      </div>
      {loaded.state === 'ready' && (
        <>
          <section aria-labelledby="account-title" class="card">
            <h2 id="account-title">{s.account}</h2>
            <dl class="account-facts">
              <div>
                <dt>{s.username}</dt>
                <dd>{loaded.account.username}</dd>
              </div>
              <div>
                <dt>{s.userId}</dt>
                <dd>
                  <code>{loaded.account.user_id}</code>
                </dd>
              </div>
              <div>
                <dt>{s.records}</dt>
                <dd>{loaded.account.record_count.toLocaleString(language)}</dd>
              </div>
              <div>
                <dt>{s.storage}</dt>
                <dd>{bytes(loaded.account.total_bytes)}</dd>
              </div>
              <div>
                <dt>{s.created}</dt>
                <dd>{dateTime(loaded.account.created_at)}</dd>
              </div>
            </dl>
          </section>
          <TokenRotation
            credentials={credentials}
            username={loaded.account.username}
            onStale={(error) => setLoaded({ state: 'failed', error })}
          />
          <AccountDeletion
            credentials={credentials}
            username={loaded.account.username}
            onDeleted={() => onLeave('accountDeleted')}
            onStale={(error) => setLoaded({ state: 'failed', error })}
          />
        </>
      )}
    </section>
  );
}

function StaleToken({ onSignInAgain }: { onSignInAgain: () => void }) {
  const { t } = useI18n();
  return (
    <div class="card">
      <p class="error">{t.settings.staleToken}</p>
      <button type="button" class="primary" onClick={onSignInAgain}>
        {t.settings.signInAgain}
      </button>
    </div>
  );
}

interface ActionProps {
  readonly credentials: Credentials;
  readonly username: string;
  readonly onStale: (error: unknown) => void;
}

function TokenRotation({ credentials, username, onStale }: ActionProps) {
  const { t } = useI18n();
  const s = t.settings.token;
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const [replaced, setReplaced] = useState<Credentials | undefined>();
  const headingRef = useRef<HTMLHeadingElement>(null);

  const rotate = () => {
    if (busy) return;
    setBusy(true);
    setError(undefined);
    api.rotateToken(credentials).then(
      (answer) => {
        const next = { userId: answer.user_id, accessToken: answer.access_token };
        // The old token is dead already: keep the new one at once, whatever the person does next.
        saveCredentials(next);
        setBusy(false);
        setConfirming(false);
        setReplaced(next);
      },
      (cause: unknown) => {
        setBusy(false);
        if (isUnauthorized(cause)) onStale(cause);
        else setError(describeError(t, cause));
      },
    );
  };

  return (
    <section aria-labelledby="token-title" class="card">
      <h2 id="token-title" ref={headingRef} tabIndex={-1}>
        {s.title}
      </h2>
      <p>{s.intro}</p>
      <button type="button" onClick={() => setConfirming(true)}>
        {s.replace}
      </button>
      <Dialog open={confirming} labelledBy="rotate-title" onClose={() => setConfirming(false)}>
        <h2 id="rotate-title">{s.confirmTitle}</h2>
        <p>{s.confirmText}</p>
        <div class="row">
          <button type="button" autofocus onClick={() => setConfirming(false)}>
            {t.settings.cancel}
          </button>
          <button type="button" class="primary" onClick={rotate} aria-disabled={busy ? 'true' : undefined}>
            {s.confirm}
          </button>
        </div>
        <FormStatus busy={busy ? s.busy : undefined} error={error} />
      </Dialog>
      {replaced !== undefined && (
        <OneTimeCredentials
          heading={s.newTitle}
          username={username}
          credentials={replaced}
          doneLabel={s.done}
          onDone={() => {
            setReplaced(undefined);
            headingRef.current?.focus();
          }}
        />
      )}
    </section>
  );
}

function AccountDeletion({ credentials, username, onDeleted, onStale }: ActionProps & { onDeleted: () => void }) {
  const { t } = useI18n();
  const s = t.settings.delete;
  const [confirming, setConfirming] = useState(false);
  const [typed, setTyped] = useState('');
  const [mismatch, setMismatch] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const input = useRef<HTMLInputElement>(null);

  const close = () => {
    setConfirming(false);
    setTyped('');
    setMismatch(false);
    setError(undefined);
  };

  const submit = (event: Event) => {
    event.preventDefault();
    if (busy) return;
    // The one deliberate step between a stray click and losing every recording.
    if (typed.normalize('NFC').trim() !== username) {
      setMismatch(true);
      input.current?.focus();
      return;
    }
    setMismatch(false);
    setBusy(true);
    setError(undefined);
    api.deleteAccount(credentials).then(onDeleted, (cause: unknown) => {
      setBusy(false);
      if (isUnauthorized(cause)) {
        close();
        onStale(cause);
      } else setError(describeError(t, cause));
    });
  };

  return (
    <section aria-labelledby="delete-title" class="card">
      <h2 id="delete-title">{s.title}</h2>
      <p>{s.intro}</p>
      <button type="button" class="danger" onClick={() => setConfirming(true)}>
        {s.open}
      </button>
      <Dialog open={confirming} labelledBy="delete-dialog-title" onClose={close}>
        <form onSubmit={submit} noValidate>
          <h2 id="delete-dialog-title">{s.confirmTitle}</h2>
          <p class="warning">
            <strong>{s.confirmText}</strong>
          </p>
          <p>
            {t.settings.username}: <strong class="confirm-username">{username}</strong>
          </p>
          <TextField
            id="delete-confirm"
            label={s.typeUsername}
            value={typed}
            onInput={setTyped}
            error={mismatch ? s.mismatch : undefined}
            inputRef={input}
            autocomplete="off"
          />
          <div class="row">
            <button type="button" onClick={close}>
              {t.settings.cancel}
            </button>
            <button type="submit" class="danger" aria-disabled={busy ? 'true' : undefined}>
              {s.confirm}
            </button>
          </div>
          <FormStatus busy={busy ? s.busy : undefined} error={error} />
        </form>
      </Dialog>
    </section>
  );
}

/** A native modal dialog: it keeps focus inside, closes on Escape and gives focus back to its opener. */
function Dialog(props: { open: boolean; labelledBy: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} aria-labelledby={props.labelledBy} onClose={props.onClose}>
      {props.children}
    </dialog>
  );
}
