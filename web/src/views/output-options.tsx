import { useId, useState } from 'preact/hooks';
import type { OutputOptions } from '../api';
import { useI18n } from '../i18n';

const FORMATS = ['mp3', 'opus', 'm4a', 'flac'] as const;
const QUALITIES = ['voice', 'standard', 'high'] as const;
// Every rate some format carries (README, "Outputs"); the service says which ones a format does not.
const SAMPLE_RATES = [
  8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000, 176400, 192000,
];

type Key = keyof OutputOptions;

/** The options without `key`, or with it set: an unset option is left to the service. */
function withOption<K extends Key>(options: OutputOptions, key: K, value: OutputOptions[K] | undefined): OutputOptions {
  const next: Record<string, unknown> = { ...options };
  if (value === undefined) delete next[key];
  else next[key] = value;
  return next;
}

/**
 * The upload's output options in a disclosure, all left to the service unless chosen. Impossible
 * combinations are the service's to refuse (a 400 whose detail the file shows), so that the page never
 * disagrees with it.
 */
export function OutputOptionsFields({
  value,
  onChange,
}: {
  value: OutputOptions;
  onChange: (next: OutputOptions) => void;
}) {
  const { t, language } = useI18n();
  const id = useId();
  // The typed text, so that a half-typed number is not rewritten under the cursor.
  const [bitrateText, setBitrateText] = useState(value.bitrate === undefined ? '' : String(value.bitrate));
  const o = t.upload.options;
  const kilohertz = new Intl.NumberFormat(language === 'ru' ? 'ru-RU' : 'en-US', { maximumFractionDigits: 3 });

  return (
    <details class="output-options">
      <summary>{o.title}</summary>
      <p class="muted" id={`${id}-hint`}>
        {o.hint}
      </p>
      <div class="output-options-grid">
        <div class="field">
          <label for={`${id}-format`}>{o.format}</label>
          <select
            id={`${id}-format`}
            value={value.format ?? ''}
            onChange={(event) =>
              onChange(withOption(value, 'format', (event.currentTarget.value || undefined) as OutputOptions['format']))
            }
          >
            <option value="">{o.formatDefault}</option>
            {FORMATS.map((format) => (
              <option key={format} value={format}>
                {o.formats[format]}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for={`${id}-quality`}>{o.quality}</label>
          <select
            id={`${id}-quality`}
            value={value.quality ?? ''}
            onChange={(event) =>
              onChange(
                withOption(value, 'quality', (event.currentTarget.value || undefined) as OutputOptions['quality']),
              )
            }
          >
            <option value="">{o.serviceDefault}</option>
            {QUALITIES.map((quality) => (
              <option key={quality} value={quality}>
                {o.qualities[quality]}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for={`${id}-bitrate`}>{o.bitrate}</label>
          <input
            id={`${id}-bitrate`}
            type="number"
            inputMode="numeric"
            min={1}
            step={1}
            placeholder={o.serviceDefault}
            value={bitrateText}
            aria-describedby={`${id}-bitrate-hint`}
            onInput={(event) => {
              const text = event.currentTarget.value;
              setBitrateText(text);
              const number = Number(text);
              onChange(
                withOption(value, 'bitrate', text.trim() === '' || !Number.isFinite(number) ? undefined : number),
              );
            }}
          />
          <span class="muted" id={`${id}-bitrate-hint`}>
            {o.bitrateHint}
          </span>
        </div>
        <div class="field">
          <label for={`${id}-channels`}>{o.channels}</label>
          <select
            id={`${id}-channels`}
            value={value.channels === undefined ? '' : String(value.channels)}
            onChange={(event) => {
              const text = event.currentTarget.value;
              onChange(withOption(value, 'channels', text === '1' ? 1 : text === '2' ? 2 : undefined));
            }}
          >
            <option value="">{o.serviceDefault}</option>
            <option value="1">{o.mono}</option>
            <option value="2">{o.stereo}</option>
          </select>
        </div>
        <div class="field">
          <label for={`${id}-rate`}>{o.sampleRate}</label>
          <select
            id={`${id}-rate`}
            value={value.sample_rate === undefined ? '' : String(value.sample_rate)}
            onChange={(event) => {
              const text = event.currentTarget.value;
              onChange(withOption(value, 'sample_rate', text === '' ? undefined : Number(text)));
            }}
          >
            <option value="">{o.serviceDefault}</option>
            {SAMPLE_RATES.map((rate) => (
              <option key={rate} value={String(rate)}>
                {o.kilohertz(kilohertz.format(rate / 1000))}
              </option>
            ))}
          </select>
        </div>
      </div>
      <div class="output-options-check">
        <input
          id={`${id}-normalize`}
          type="checkbox"
          checked={value.normalize === true}
          aria-describedby={`${id}-normalize-hint`}
          onChange={(event) => onChange(withOption(value, 'normalize', event.currentTarget.checked ? true : undefined))}
        />
        <label for={`${id}-normalize`}>{o.normalize}</label>
        <span class="muted" id={`${id}-normalize-hint`}>
          {o.normalizeHint}
        </span>
      </div>
    </details>
  );
}
