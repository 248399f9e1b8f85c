import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useMemo, useState } from 'preact/hooks';
import { en, type Messages } from './en';
import { ru } from './ru';

export const LANGUAGES = { en, ru } as const;
export type Language = keyof typeof LANGUAGES;

const KEY = 'audio-records.language';

function isLanguage(value: string | null | undefined): value is Language {
  return value === 'en' || value === 'ru';
}

/** The remembered choice, else the first of the browser's languages the page has, else English. */
function initialLanguage(): Language {
  try {
    const saved = localStorage.getItem(KEY);
    if (isLanguage(saved)) return saved;
  } catch {
    // No storage: go by the browser.
  }
  for (const tag of navigator.languages) {
    const base = tag.toLowerCase().split('-')[0];
    if (isLanguage(base)) return base;
  }
  return 'en';
}

export interface I18n {
  readonly language: Language;
  readonly t: Messages;
  readonly setLanguage: (language: Language) => void;
  /** 3.2 MB, 12 KB: in the reader's locale. */
  readonly bytes: (count: number) => string;
  /** 1:05, 1:02:03 */
  readonly duration: (seconds: number) => string;
  /** A date and time in the reader's locale. */
  readonly dateTime: (iso: string) => string;
  /** Picks a plural form for `count` by the language's rules. */
  readonly plural: (count: number, forms: Partial<Record<Intl.LDMLPluralRule, string>> & { other: string }) => string;
}

const Context = createContext<I18n | undefined>(undefined);

export function I18nProvider({ children }: { children: ComponentChildren }) {
  const [language, setLanguageState] = useState(initialLanguage);
  useEffect(() => {
    document.documentElement.lang = language;
  }, [language]);
  const value = useMemo((): I18n => {
    const locale = language === 'ru' ? 'ru-RU' : navigatorEnglish();
    const rules = new Intl.PluralRules(locale);
    const dates = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
    return {
      language,
      t: LANGUAGES[language],
      setLanguage: (next) => {
        try {
          localStorage.setItem(KEY, next);
        } catch {
          // Remembered for this visit only.
        }
        setLanguageState(next);
      },
      bytes: (count) => formatBytes(locale, count),
      duration: formatDuration,
      dateTime: (iso) => dates.format(new Date(iso)),
      plural: (count, forms) => forms[rules.select(count)] ?? forms.other,
    };
  }, [language]);
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

export function useI18n(): I18n {
  const value = useContext(Context);
  if (value === undefined) throw new Error('useI18n outside I18nProvider');
  return value;
}

/** The reader's own English (en-GB dates for a British reader), else en-US. */
function navigatorEnglish(): string {
  return navigator.languages.find((tag) => tag.toLowerCase().startsWith('en')) ?? 'en-US';
}

const UNITS = ['byte', 'kilobyte', 'megabyte', 'gigabyte', 'terabyte'] as const;

function formatBytes(locale: string, count: number): string {
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return new Intl.NumberFormat(locale, {
    style: 'unit',
    unit: UNITS[unit],
    unitDisplay: unit === 0 ? 'long' : 'short',
    maximumFractionDigits: unit === 0 || value >= 100 ? 0 : 1,
  }).format(value);
}

function formatDuration(seconds: number): string {
  const whole = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
}
