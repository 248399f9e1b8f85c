import { useEffect, useRef, useState } from 'preact/hooks';
import type { Credentials } from '../api';
import { useI18n } from '../i18n';
import './account.css';

interface OneTimeCredentialsProps {
  readonly heading: string;
  readonly username: string;
  readonly credentials: Credentials;
  readonly doneLabel: string;
  readonly onDone: () => void;
}

/**
 * The user id and access token, shown the only time the service tells them: copy buttons, a file to
 * download and a warning. Takes focus when it appears, so a screen reader starts with the warning.
 */
export function OneTimeCredentials({ heading, username, credentials, doneLabel, onDone }: OneTimeCredentialsProps) {
  const { t } = useI18n();
  const c = t.start.credentials;
  const headingRef = useRef<HTMLHeadingElement>(null);
  const [copied, setCopied] = useState('');

  useEffect(() => headingRef.current?.focus(), []);

  const copy = (value: string, done: string) => {
    // Emptied first, so that copying the same value twice is announced twice.
    setCopied('');
    navigator.clipboard.writeText(value).then(
      () => setCopied(done),
      () => setCopied(c.copyFailed),
    );
  };

  const download = () => {
    const text = c.file({
      address: location.origin,
      username,
      userId: credentials.userId,
      token: credentials.accessToken,
    });
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = c.fileName;
    link.click();
    // The download has taken its copy of the Blob by the time this runs.
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  return (
    <section class="card one-time" aria-labelledby="one-time-title">
      <h2 id="one-time-title" ref={headingRef} tabIndex={-1}>
        {heading}
      </h2>
      <p class="warning">
        <strong>{c.warning}</strong>
      </p>
      <dl class="secrets">
        <div>
          <dt>{c.userId}</dt>
          <dd>
            <code>{credentials.userId}</code>
            <button type="button" onClick={() => copy(credentials.userId, c.userIdCopied)}>
              {c.copyUserId}
            </button>
          </dd>
        </div>
        <div>
          <dt>{c.token}</dt>
          <dd>
            <code>{credentials.accessToken}</code>
            <button type="button" onClick={() => copy(credentials.accessToken, c.tokenCopied)}>
              {c.copyToken}
            </button>
          </dd>
        </div>
      </dl>
      <p role="status" class="copied success">
        {copied}
      </p>
      <div class="row">
        <button type="button" onClick={download}>
          {c.download}
        </button>
        <button type="button" class="primary" onClick={onDone}>
          {doneLabel}
        </button>
      </div>
    </section>
  );
}
