import type { Ref } from 'preact';

interface TextFieldProps {
  readonly id: string;
  readonly label: string;
  readonly value: string;
  readonly onInput: (value: string) => void;
  readonly hint?: string;
  readonly error?: string;
  readonly inputRef?: Ref<HTMLInputElement>;
  readonly type?: 'text' | 'password';
  readonly autocomplete?: string;
}

/**
 * A labelled input whose hint and error are read with it (aria-describedby). The error sits in a live
 * region that is always there, so it is announced even when the field already has focus.
 */
export function TextField({ id, label, value, onInput, hint, error, inputRef, type, autocomplete }: TextFieldProps) {
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint === undefined ? '' : hintId, error === undefined ? '' : errorId].filter(Boolean).join(' ');
  const inputProps = {
    id,
    ref: inputRef,
    value,
    onInput: (event: Event) => onInput((event.currentTarget as HTMLInputElement).value),
    autocomplete,
    spellcheck: false,
    autocapitalize: 'off' as const,
    'aria-invalid': error === undefined ? undefined : ('true' as const),
    'aria-describedby': describedBy === '' ? undefined : describedBy,
  };
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {hint !== undefined && (
        <p id={hintId} class="muted field-hint">
          {hint}
        </p>
      )}
      <div aria-live="polite">
        {error !== undefined && (
          <p id={errorId} class="error field-error">
            {error}
          </p>
        )}
      </div>
      {type === 'password' ? <input type="password" {...inputProps} /> : <input type="text" {...inputProps} />}
    </div>
  );
}

/** Busy and failure messages of a whole form, announced as they change. */
export function FormStatus({ busy, error }: { busy?: string | undefined; error?: string | undefined }) {
  return (
    <div aria-live="polite" class="form-status">
      {busy !== undefined && <p>{busy}</p>}
      {error !== undefined && <p class="error">{error}</p>}
    </div>
  );
}
