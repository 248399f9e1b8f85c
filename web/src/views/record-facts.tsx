import type { ComponentChildren } from 'preact';
import type { RecordMetadata } from '../api';
import { useI18n } from '../i18n';
import './record-facts.css';

/** A record's duration, size, date and format in the reader's locale, each named for a screen reader. */
export function RecordFacts({ record }: { record: RecordMetadata }) {
  const { t, bytes, duration, dateTime } = useI18n();
  const facts: Array<[string, ComponentChildren]> = [
    [t.library.duration, duration(record.duration_seconds)],
    [t.library.size, bytes(record.size_bytes)],
    [t.library.created, <time dateTime={record.created_at}>{dateTime(record.created_at)}</time>],
    [t.library.format, record.format.toUpperCase()],
  ];
  return (
    <dl class="record-meta">
      {facts.map(([name, value]) => (
        <div key={name}>
          <dt class="visually-hidden">{name}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
