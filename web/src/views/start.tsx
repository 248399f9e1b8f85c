import { useRef, useState } from 'preact/hooks';
import { api, ApiError, type Credentials } from '../api';
import { useI18n } from '../i18n';
import { describeError } from '../problems';
import { saveCredentials } from '../session';
import { OneTimeCredentials } from './credentials';
import { FormStatus, TextField } from './field';
import './account.css';

// The service's own rule (README, "Create a user"), checked here first so the answer is immediate.
const MAX_USERNAME_LENGTH = 64;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What the service does; create an account or sign in. `notice` says why the person is here (signed out…). */
export function StartView({ notice }: { notice?: string | undefined }) {
  const { t } = useI18n();
  const [created, setCreated] = useState<{ username: string; credentials: Credentials } | undefined>();
  return (
    <section aria-labelledby="start-title" class="start">
      {notice !== undefined && (
        // The shell focuses this on arrival, so the reason is read before anything else.
        <p class="notice" role="status" tabIndex={-1} data-view-focus>
          {notice}
        </p>
      )}
      <h1 id="start-title">{t.start.title}</h1>
      <p>{t.start.intro}</p>
      <p class="muted">{t.start.noPassword}</p>
      {created === undefined ? (
        <div class="start-forms">
          <CreateAccount onCreated={(username, credentials) => setCreated({ username, credentials })} />
          <SignIn />
        </div>
      ) : (
        <OneTimeCredentials
          heading={t.start.credentials.title}
          username={created.username}
          credentials={created.credentials}
          doneLabel={t.start.credentials.continue}
          // Kept only now: until this click the page has nothing a reload could bring back by mistake.
          onDone={() => saveCredentials(created.credentials)}
        />
      )}
    </section>
  );
}

function CreateAccount({ onCreated }: { onCreated: (username: string, credentials: Credentials) => void }) {
  const { t } = useI18n();
  const c = t.start.create;
  const [username, setUsername] = useState('');
  const [fieldError, setFieldError] = useState<string | undefined>();
  const [formError, setFormError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  const submit = (event: Event) => {
    event.preventDefault();
    if (busy) return;
    const name = username.normalize('NFC').trim();
    // Counted in code points, as the service counts: an emoji is one character, not two.
    const problem = name === '' ? c.blank : [...name].length > MAX_USERNAME_LENGTH ? c.tooLong : undefined;
    setFieldError(problem);
    setFormError(undefined);
    if (problem !== undefined) {
      input.current?.focus();
      return;
    }
    setBusy(true);
    api.createUser(name).then(
      (answer) => onCreated(name, { userId: answer.user_id, accessToken: answer.access_token }),
      (error: unknown) => {
        setBusy(false);
        // A refused or taken name is about the field; anything else (limits, network) about the attempt.
        if (error instanceof ApiError && (error.status === 400 || error.status === 409)) {
          setFieldError(describeError(t, error));
          input.current?.focus();
        } else setFormError(describeError(t, error));
      },
    );
  };

  return (
    <form class="card" aria-labelledby="create-title" onSubmit={submit} noValidate>
      <h2 id="create-title">{c.title}</h2>
      <TextField
        id="create-username"
        label={c.username}
        hint={c.usernameHint}
        value={username}
        onInput={setUsername}
        error={fieldError}
        inputRef={input}
        autocomplete="off"
      />
      <button type="submit" class="primary" aria-disabled={busy ? 'true' : undefined}>
        {c.submit}
      </button>
      <FormStatus busy={busy ? c.busy : undefined} error={formError} />
    </form>
  );
}

function SignIn() {
  const { t } = useI18n();
  const s = t.start.signIn;
  const [userId, setUserId] = useState('');
  const [token, setToken] = useState('');
  const [errors, setErrors] = useState<{ userId?: string; token?: string }>({});
  const [formError, setFormError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const userIdInput = useRef<HTMLInputElement>(null);
  const tokenInput = useRef<HTMLInputElement>(null);

  const submit = (event: Event) => {
    event.preventDefault();
    if (busy) return;
    // Pasted values often carry a space or a line break at either end.
    const id = userId.trim();
    const accessToken = token.trim();
    const found = {
      userId: id === '' ? s.userIdBlank : UUID.test(id) ? undefined : s.userIdMalformed,
      token: accessToken === '' ? s.tokenBlank : undefined,
    };
    setErrors(found);
    setFormError(undefined);
    if (found.userId !== undefined || found.token !== undefined) {
      (found.userId !== undefined ? userIdInput : tokenInput).current?.focus();
      return;
    }

    setBusy(true);
    const credentials = { userId: id.toLowerCase(), accessToken };
    api.me(credentials).then(
      (account) => {
        // The token alone names the account: a user id of someone else would fail every later call.
        if (account.user_id.toLowerCase() !== credentials.userId) {
          setBusy(false);
          setFormError(describeError(t, new ApiError(401, 'about:blank', '', undefined)));
          return;
        }
        saveCredentials({ userId: account.user_id, accessToken });
      },
      (error: unknown) => {
        setBusy(false);
        setFormError(describeError(t, error));
      },
    );
  };

  return (
    <form class="card" aria-labelledby="sign-in-title" onSubmit={submit} noValidate>
      <h2 id="sign-in-title">{s.title}</h2>
      <p>{s.intro}</p>
      <TextField
        id="sign-in-user-id"
        label={s.userId}
        hint={s.userIdHint}
        value={userId}
        onInput={setUserId}
        error={errors.userId}
        inputRef={userIdInput}
        autocomplete="username"
      />
      <TextField
        id="sign-in-token"
        label={s.token}
        type="password"
        value={token}
        onInput={setToken}
        error={errors.token}
        inputRef={tokenInput}
        autocomplete="current-password"
      />
      <button type="submit" class="primary" aria-disabled={busy ? 'true' : undefined}>
        {s.submit}
      </button>
      <FormStatus busy={busy ? s.busy : undefined} error={formError} />
    </form>
  );
}
