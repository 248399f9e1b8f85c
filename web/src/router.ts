import { useEffect, useState } from 'preact/hooks';

const listeners = new Set<() => void>();

/** Goes to a path of the page without reloading it (the service serves the same page at each). */
export function navigate(path: string): void {
  history.pushState(null, '', path);
  for (const listener of listeners) listener();
}

/** The current location, following links, back and forward. */
export function useLocation(): URL {
  const [url, setUrl] = useState(() => new URL(location.href));
  useEffect(() => {
    const update = () => setUrl(new URL(location.href));
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return url;
}

/** Props for an <a> that navigates inside the page: a real link (new tab, copy) that a click keeps here. */
export function linkTo(path: string) {
  return {
    href: path,
    onClick: (event: MouseEvent) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      navigate(path);
    },
  };
}
