/**
 * Every string the page shows, in English. ru.ts has the same keys (the type makes a missing one an
 * error). Sections belong to views; a value is a string, or a function for one with numbers or names.
 */
export const en = {
  language: { name: 'English', choose: 'Language' },

  app: {
    name: 'Audio records',
    skipToContent: 'Skip to content',
    nav: 'Main',
    library: 'Library',
    settings: 'Settings',
    signOut: 'Sign out',
    loading: 'Loading…',
    signedOut: 'You are signed out. This browser no longer keeps your user id and access token.',
    accountDeleted: 'Your account and every recording in it were deleted.',
    signInAgain: 'Sign in again with your user id and your current access token.',
  },

  // Start: what the service does, create an account, sign in.
  start: {
    title: 'Store, play and share your recordings',
    intro:
      'Upload recordings from a recorder, a phone or a call system, or record in the browser. ' +
      'They are stored as compact audio files you can play here and share by link.',
    noPassword:
      'There is no password and no e-mail address: an account is a user id and an access token. ' +
      'Anyone who has both can use the account, so keep them private.',
    create: {
      title: 'Create an account',
      username: 'Username',
      usernameHint: '1 to 64 characters, in any language. Only you see it.',
      submit: 'Create account',
      busy: 'Creating your account…',
      blank: 'Enter a username.',
      tooLong: 'A username can be at most 64 characters long.',
    },
    signIn: {
      title: 'Sign in',
      intro: 'Already have an account? Paste the user id and access token you saved.',
      userId: 'User id',
      userIdHint: 'It looks like 2085f8b6-70fe-4253-ade0-cdbfe9892082.',
      token: 'Access token',
      submit: 'Sign in',
      busy: 'Checking…',
      userIdBlank: 'Enter your user id.',
      userIdMalformed:
        'This is not a user id. A user id has 36 characters: digits and the letters a to f, in five groups joined by dashes.',
      tokenBlank: 'Enter your access token.',
    },
    // The user id and token, shown once (after creating an account or replacing the token).
    credentials: {
      title: 'Save your user id and access token',
      warning:
        'This is the only time the access token is shown: the service keeps no copy it could show again. ' +
        'Save both now, in a password manager or a file. Without them you cannot sign in again.',
      userId: 'User id',
      token: 'Access token',
      copyUserId: 'Copy user id',
      copyToken: 'Copy access token',
      userIdCopied: 'User id copied.',
      tokenCopied: 'Access token copied.',
      copyFailed: 'This browser did not let the page copy. Select the text and copy it yourself.',
      download: 'Download as a file',
      fileName: 'audio-records-account.txt',
      file: (fields: { address: string; username: string; userId: string; token: string }) =>
        [
          'Audio records: your account',
          `Address: ${fields.address}`,
          `Username: ${fields.username}`,
          `User id: ${fields.userId}`,
          `Access token: ${fields.token}`,
          '',
          'Keep this file private: anyone who has the user id and the token can use the account.',
          '',
        ].join('\n'),
      continue: 'I have saved them: continue to the library',
    },
  },

  // Settings: the account, token rotation, account deletion.
  settings: {
    title: 'Settings',
    account: 'Your account',
    username: 'Username',
    userId: 'User id',
    records: 'Recordings',
    storage: 'Storage used',
    created: 'Created',
    staleToken:
      'The access token kept in this browser no longer works. It may have been replaced on another device, ' +
      'or the account deleted.',
    signInAgain: 'Sign in again',
    retry: 'Try again',
    cancel: 'Cancel',
    token: {
      title: 'Access token',
      intro:
        'If your token may have leaked, replace it. The old token stops working at once, ' +
        'on every device that uses it.',
      replace: 'Replace the access token…',
      confirmTitle: 'Replace the access token?',
      confirmText: 'The current token stops working at once. The new one is shown only once, so be ready to save it.',
      confirm: 'Replace the token',
      busy: 'Replacing the token…',
      newTitle: 'Save your new access token',
      done: 'I have saved it',
    },
    delete: {
      title: 'Delete the account',
      intro:
        'Deleting the account deletes every recording in it for good, and its share links stop working. ' +
        'This cannot be undone.',
      open: 'Delete the account…',
      confirmTitle: 'Delete the account and every recording?',
      confirmText:
        'Your account, every recording in it and every share link will be deleted for good. Nobody can bring them back.',
      typeUsername: 'To confirm, type your username',
      mismatch: 'This is not your username. Type it exactly as shown above.',
      confirm: 'Delete for good',
      busy: 'Deleting…',
    },
  },

  // Upload: files, progress, options.
  upload: {
    title: 'Upload',
    drop: 'Drop audio files here, or',
    choose: 'Choose audio files',
    kinds: 'WAV, FLAC, Ogg, Opus, WebM, MP4/M4A, MP3, AIFF or AMR; several at once.',
    files: 'Files',
    start: { one: 'Upload # file', other: 'Upload # files' } as Partial<Record<Intl.LDMLPluralRule, string>> & {
      other: string;
    },
    titleLabel: 'Title',
    titled: (title: string) => `Title: ${title}`,
    progressOf: (name: string) => `Upload of ${name}`,
    queued: 'Waiting for the uploads before it.',
    sending: 'Uploading:',
    sent: (sent: string, total: string) => `${sent} of ${total}`,
    converting: 'Converting…',
    waiting: 'Waiting for the service.',
    retryIn: (seconds: number) => `Trying again in ${seconds} s`,
    busy: 'The service is busy. This file will be sent again by itself.',
    done: 'Done.',
    open: 'Open the recording',
    cancel: 'Cancel',
    retry: 'Try again',
    remove: 'Remove',
    options: {
      title: 'Advanced: output format and quality',
      hint: 'Leave these to the service unless you need something else. They apply to the uploads you start from now on.',
      serviceDefault: 'Service default',
      format: 'Format',
      formatDefault: 'Service default (MP3)',
      formats: { mp3: 'MP3', opus: 'Opus', m4a: 'M4A (AAC)', flac: 'FLAC (lossless)' },
      quality: 'Quality',
      qualities: { voice: 'Voice (smallest)', standard: 'Standard', high: 'High' },
      bitrate: 'Bitrate, kbit/s',
      bitrateHint: 'Instead of a quality, not with FLAC.',
      channels: 'Channels',
      mono: 'Mono',
      stereo: 'Stereo',
      sampleRate: 'Sample rate',
      kilohertz: (value: string) => `${value} kHz`,
      normalize: 'Even out the loudness',
      normalizeHint: 'Quiet and loud recordings end up about equally loud.',
    },
  },

  // Recording from the microphone.
  recorder: {
    title: 'Record',
    intro:
      'Record from your microphone. When you press Record, your browser asks whether this page may use it: ' +
      'allow it to record. Nothing leaves this page until you press Upload.',
    record: 'Record',
    again: 'Try again',
    asking: 'Waiting for your permission to use the microphone…',
    recording: 'Recording.',
    paused: 'Paused.',
    recorded: 'Recording stopped. Listen to it, then upload or discard it.',
    time: 'Recorded',
    level: 'Input level',
    pause: 'Pause',
    resume: 'Resume',
    stop: 'Stop',
    discard: 'Discard',
    listen: 'Listen back',
    length: 'Length:',
    titleLabel: 'Title',
    defaultTitle: (when: string) => `Recording ${when}`,
    upload: 'Upload',
    uploads: 'Your recordings',
    problems: {
      denied:
        'The browser was not allowed to use the microphone. To record, allow the microphone for this site ' +
        '(in the address bar, or in the browser’s site settings), then press Try again.',
      noMicrophone:
        'No microphone was found. Connect one, or check that it is switched on and chosen in your system’s ' +
        'sound settings, then press Try again.',
      busy: 'The microphone could not be started: another app may be using it. Close that app, then press Try again.',
      unsupported:
        'This browser cannot record here. Use a recent Firefox, Chrome, Edge or Safari, or record with another ' +
        'app and upload the file above.',
      failed: 'The recording could not be made. Press Try again.',
    },
  },

  // Library: the list of records.
  library: {
    retry: 'Try again',
    title: 'Library',
    records: 'Your records',
    search: 'Search by title',
    searchHint: 'Matches any part of a title, ignoring case.',
    empty: 'You have no recordings yet. Upload a file or record one above.',
    noResults: (query: string) => `No recordings have “${query}” in their title.`,
    loadMore: 'Load more',
    loadingMore: 'Loading more…',
    /** Plural forms for `plural()`; `{count}` is replaced by the number. */
    shown: { one: '{count} recording shown', other: '{count} recordings shown' } as Partial<
      Record<Intl.LDMLPluralRule, string>
    > & { other: string },
    duration: 'Duration',
    size: 'Size',
    created: 'Added',
    format: 'Format',
    listen: 'Listen',
    hidePlayer: 'Hide player',
    download: 'Download',
    rename: 'Rename',
    newTitle: 'Title',
    newTitleHint: 'Leave it blank to remove the title; the file name is shown instead.',
    save: 'Save',
    saving: 'Saving…',
    cancel: 'Cancel',
    titleRejected: 'This title was not accepted: a title has at most 200 characters and no invisible characters.',
    copyLink: 'Copy share link',
    copied: 'Link copied. Anyone with it can listen to this recording.',
    copyFailed: 'The link could not be copied here. Select it and copy it yourself:',
    shareLink: 'Share link',
    delete: 'Delete',
    confirmDelete: (name: string) => `Delete “${name}”? It cannot be brought back.`,
    confirmDeleteYes: 'Yes, delete',
    keep: 'Keep it',
    deleting: 'Deleting…',
    deleted: (name: string) => `“${name}” was deleted.`,
  },

  // Player.
  player: {
    label: (name: string) => `Player: ${name}`,
    play: 'Play',
    pause: 'Pause',
    position: 'Position',
    positionText: (current: string, total: string) => `${current} of ${total}`,
    noWaveform: 'The waveform could not be loaded; the recording still plays.',
    unplayable: 'This recording cannot be played in this browser. Download it instead.',
  },

  // The public page of a record link.
  share: {
    title: 'Shared recording',
    download: 'Download',
    missing: 'This link is incomplete: it needs both a record id and a user id. Ask for the link again.',
    malformed: 'This link is damaged: its ids are not valid. Check that it was copied whole.',
    gone: 'This recording does not exist, or its owner deleted it.',
  },

  // What the API's errors mean for the person in front of the page.
  errors: {
    network: 'The service cannot be reached. Check your connection and try again.',
    cancelled: 'Cancelled.',
    badRequest: 'The service did not accept this request.',
    badRequestDetail: (detail: string) => `The service did not accept this request: ${detail}`,
    unauthorized: 'This user id and token do not match. Check them, or sign in again.',
    notFound: 'This recording does not exist, or it was deleted.',
    timeout: 'The upload was too slow and was stopped. Try again on a better connection.',
    usernameTaken: 'This username is taken. Choose another one.',
    quota: 'Your storage is full. Delete some recordings to make room.',
    tooLong: 'This recording is longer than the service accepts.',
    tooLarge: 'This file is larger than the service accepts.',
    notAudio:
      'This is not an audio file the service can read. Use WAV, FLAC, Ogg, Opus, WebM, MP4/M4A, MP3, AIFF or AMR.',
    undecodable: 'This file looks like audio, but its sound cannot be decoded. It may be damaged.',
    tooMany: (seconds: number | undefined) =>
      seconds === undefined
        ? 'Too many requests. Wait a moment and try again.'
        : `Too many requests. Try again in ${seconds} s.`,
    busy: (seconds: number | undefined) =>
      seconds === undefined
        ? 'The service is busy. Try again in a moment.'
        : `The service is busy. Try again in ${seconds} s.`,
    storageFull: 'The service has run out of storage space. Try again later.',
    generic: (status: number) =>
      status === 0 ? 'Something went wrong. Try again.' : `Something went wrong (error ${status}). Try again later.`,
  },
};

export type Messages = typeof en;
