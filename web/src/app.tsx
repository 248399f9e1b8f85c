import { useEffect, useRef, useState } from 'preact/hooks';
import { LANGUAGES, useI18n, type Language } from './i18n';
import { linkTo, navigate, useLocation } from './router';
import { saveCredentials, useCredentials } from './session';
import { LibraryView } from './views/library';
import { SettingsView, type Departure } from './views/settings';
import { SharePage } from './views/share';
import { StartView } from './views/start';
import { uploadQueue } from './views/upload-queue';
import './views/account.css';

/** Why the start page is shown again, said at its top. */
type Notice = 'signedOut' | Departure;

export function App() {
  const { t } = useI18n();
  const url = useLocation();
  const credentials = useCredentials();
  const path = url.pathname;
  const [notice, setNotice] = useState<Notice | undefined>();

  // Signed-out visitors of a signed-in view go to the start page, and the other way round.
  useEffect(() => {
    if (path === '/settings' && credentials === undefined) navigate('/');
  }, [path, credentials]);

  useEffect(() => {
    if (credentials !== undefined) setNotice(undefined);
  }, [credentials]);

  const leave = (why: Notice) => {
    uploadQueue.clear();
    saveCredentials(undefined);
    setNotice(why);
    navigate('/');
  };

  let view;
  let name: 'share' | 'start' | 'settings' | 'library';
  let title: string;
  if (path === '/listen') {
    view = <SharePage recordId={url.searchParams.get('record_id')} userId={url.searchParams.get('user_id')} />;
    name = 'share';
    title = t.share.title;
  } else if (credentials === undefined) {
    view = <StartView notice={notice === undefined ? undefined : t.app[notice]} />;
    name = 'start';
    title = t.start.title;
  } else if (path === '/settings') {
    view = <SettingsView credentials={credentials} onLeave={leave} />;
    name = 'settings';
    title = t.settings.title;
  } else {
    view = <LibraryView credentials={credentials} />;
    name = 'library';
    title = t.library.title;
  }

  useEffect(() => {
    document.title = `${title} · ${t.app.name}`;
  }, [title, t]);

  useFocusOnViewChange(name);

  return (
    <>
      <a class="skip-link" href="#main">
        {t.app.skipToContent}
      </a>
      <header class="site-header">
        <a class="brand" {...linkTo('/')}>
          {t.app.name}
        </a>
        {credentials !== undefined && (
          <nav aria-label={t.app.nav}>
            <a {...linkTo('/')} aria-current={name === 'library' ? 'page' : undefined}>
              {t.app.library}
            </a>
            <a {...linkTo('/settings')} aria-current={name === 'settings' ? 'page' : undefined}>
              {t.app.settings}
            </a>
            <button type="button" class="link-button" onClick={() => leave('signedOut')}>
              {t.app.signOut}
            </button>
          </nav>
        )}
        <LanguageSwitch />
      </header>
      <main id="main" tabIndex={-1}>
        {view}
      </main>
    </>
  );
}

/**
 * A new view gets focus at its start (what it marks with data-view-focus, else its h1, else <main>),
 * so that keyboard and screen reader users continue from there and hear where they are. Not on the
 * first load: the browser starts at the top by itself.
 */
function useFocusOnViewChange(name: string) {
  const shown = useRef<string | undefined>(undefined);
  useEffect(() => {
    const first = shown.current === undefined;
    shown.current = name;
    if (first) return;
    const main = document.getElementById('main');
    const target =
      main?.querySelector<HTMLElement>('[data-view-focus]') ?? main?.querySelector<HTMLElement>('h1') ?? main;
    if (target === null || target === undefined) return;
    if (!target.hasAttribute('tabindex')) target.setAttribute('tabindex', '-1');
    target.focus();
  }, [name]);
}

function LanguageSwitch() {
  const { t, language, setLanguage } = useI18n();
  return (
    <div class="language">
      {/* Named by `for`, not by wrapping: a wrapping label would add the chosen option to the name. */}
      <label for="language" class="visually-hidden">
        {t.language.choose}
      </label>
      <select id="language" value={language} onChange={(event) => setLanguage(event.currentTarget.value as Language)}>
        {Object.entries(LANGUAGES).map(([code, messages]) => (
          <option key={code} value={code} lang={code}>
            {messages.language.name}
          </option>
        ))}
      </select>
    </div>
  );
}
