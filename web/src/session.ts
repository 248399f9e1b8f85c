import { useEffect, useState } from 'preact/hooks';
import type { Credentials } from './api';

const KEY = 'audio-records.credentials';

function read(): Credentials | undefined {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Partial<Credentials> | null;
    if (typeof value?.userId === 'string' && typeof value.accessToken === 'string')
      return { userId: value.userId, accessToken: value.accessToken };
  } catch {
    // Storage refused (private mode) or garbled: signed out.
  }
  return undefined;
}

const listeners = new Set<(credentials: Credentials | undefined) => void>();

// The latest credentials of this tab, also when the browser refuses to store them.
let latest = read();

/** The credentials requests should use now: a rotated token replaces the old one at once. */
export function currentCredentials(): Credentials | undefined {
  return latest;
}

/** Keeps the credentials in this browser until `signOut`; every tab follows the change. */
export function saveCredentials(credentials: Credentials | undefined): void {
  latest = credentials;
  try {
    if (credentials === undefined) localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, JSON.stringify(credentials));
  } catch {
    // Not kept across visits, but this page still works.
  }
  for (const listener of listeners) listener(credentials);
}

export function useCredentials(): Credentials | undefined {
  const [credentials, setCredentials] = useState(read);
  useEffect(() => {
    listeners.add(setCredentials);
    const onStorage = (event: StorageEvent) => {
      if (event.key !== KEY) return;
      latest = read();
      setCredentials(latest);
    };
    addEventListener('storage', onStorage);
    return () => {
      listeners.delete(setCredentials);
      removeEventListener('storage', onStorage);
    };
  }, []);
  return credentials;
}
