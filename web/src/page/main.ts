// The conversion page: sign in, pick or drop a video, watch it upload and convert, download the mp3; the account
// settings (#settings): password, emails, sessions. A link with ?job=<id> (the notifier's mails) opens on that
// conversion. Plain DOM over the SDK; the markup (index.html) works with a keyboard and a screen reader as it is.
import './page.css';
import { createClient, isFinalStatus, type AccountSession, type Job, type JobStatus } from '@vidmp3/sdk';
import { describeError, formatBytes, isSessionOver, nearLimit, percent, usageText, type Where } from './messages.js';
import { SessionKeeper, type PageSession } from './session.js';
import { startAccountLinks } from './account-links.js';

const $ = <T extends HTMLElement>(id: string, type: new () => T): T => {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`the page has no #${id}`);
  return found;
};

const ui = {
  notice: $('notice', HTMLParagraphElement),
  account: $('account', HTMLDivElement),
  accountEmail: $('account-email', HTMLSpanElement),
  logout: $('logout', HTMLButtonElement),
  auth: $('auth', HTMLElement),
  authForm: $('auth-form', HTMLFormElement),
  email: $('email', HTMLInputElement),
  password: $('password', HTMLInputElement),
  authError: $('auth-error', HTMLParagraphElement),
  convert: $('convert', HTMLElement),
  convertForm: $('convert-form', HTMLFormElement),
  file: $('file', HTMLInputElement),
  drop: $('drop', HTMLLabelElement),
  fileName: $('file-name', HTMLSpanElement),
  bitrate: $('bitrate', HTMLSelectElement),
  start: $('start', HTMLButtonElement),
  cancel: $('cancel', HTMLButtonElement),
  progress: $('progress', HTMLDivElement),
  uploadProgress: $('upload-progress', HTMLProgressElement),
  convertProgress: $('convert-progress', HTMLProgressElement),
  status: $('status', HTMLParagraphElement),
  result: $('result', HTMLParagraphElement),
  download: $('download', HTMLAnchorElement),
  history: $('history', HTMLElement),
  refresh: $('refresh', HTMLButtonElement),
  jobs: $('jobs', HTMLUListElement),
  jobsEmpty: $('jobs-empty', HTMLParagraphElement),
  usage: $('usage', HTMLParagraphElement),
  focus: $('focus', HTMLElement),
  focusTitle: $('focus-title', HTMLHeadingElement),
  focusName: $('focus-name', HTMLParagraphElement),
  focusStatus: $('focus-status', HTMLParagraphElement),
  focusProgress: $('focus-progress', HTMLProgressElement),
  focusError: $('focus-error', HTMLParagraphElement),
  focusDownload: $('focus-download', HTMLAnchorElement),
  focusClose: $('focus-close', HTMLButtonElement),
  settings: $('settings', HTMLElement),
  settingsTitle: $('settings-title', HTMLHeadingElement),
  passwordForm: $('password-form', HTMLFormElement),
  currentPassword: $('current-password', HTMLInputElement),
  newPassword: $('new-password', HTMLInputElement),
  passwordError: $('password-error', HTMLParagraphElement),
  passwordDone: $('password-done', HTMLParagraphElement),
  conversionEmails: $('conversion-emails', HTMLInputElement),
  emailsError: $('emails-error', HTMLParagraphElement),
  sessions: $('sessions', HTMLUListElement),
  sessionsError: $('sessions-error', HTMLParagraphElement),
  logoutEverywhere: $('logout-everywhere', HTMLButtonElement),
};

const client = createClient({ url: new URL('/graphql', location.href).href });
/** Who is shown as signed in (the page's state); the keeper holds the tokens. */
let signedIn: PageSession['user'] | undefined;
const keeper = new SessionKeeper((current, reason) => {
  client.setToken(current?.accessToken);
  if (current && signedIn?.id !== current.user.id) showSignedIn(current);
  else if (!current && signedIn) showSignedOut(reason ? describeError(reason, 'app') : undefined);
});
/** The conversion a link asked to see (?job=<id>), shown once signed in. */
let focusJobId = new URLSearchParams(location.search).get('job') || undefined;
/** Stops the live updates of the focused conversion. */
let focusWatch: AbortController | undefined;
/** The conversion under way, if any: aborting stops its upload or its watch. */
let running: { abort: AbortController; jobId?: string } | undefined;
/** Signed download links expire (15 minutes by default); a link older than this is signed again before use. */
const LINK_TTL_MS = 10 * 60_000;
/** The job whose mp3 the result's download link is for. */
let resultJobId: string | undefined;

// ---- signing in and out ----

function showSignedIn(current: PageSession): void {
  signedIn = current.user;
  ui.accountEmail.textContent = current.user.email;
  ui.account.hidden = false;
  ui.auth.hidden = true;
  route();
  void refreshJobs();
  void refreshUsage();
  if (focusJobId) void showFocus(focusJobId);
}

function showSignedOut(message?: string): void {
  running?.abort.abort();
  focusWatch?.abort();
  signedIn = undefined;
  client.close();
  ui.account.hidden = true;
  ui.convert.hidden = true;
  ui.history.hidden = true;
  ui.settings.hidden = true;
  ui.focus.hidden = true;
  ui.sessions.replaceChildren();
  ui.auth.hidden = false;
  ui.jobs.replaceChildren();
  ui.usage.hidden = true;
  ui.usage.textContent = '';
  resetConversion();
  notify(message);
  ui.email.focus();
}

ui.authForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const signUp = (event.submitter as HTMLButtonElement | null)?.value === 'signup';
  void authenticate(signUp);
});

async function authenticate(signUp: boolean): Promise<void> {
  ui.authError.textContent = '';
  const email = ui.email.value.trim();
  const password = ui.password.value;
  if (!email || !ui.email.checkValidity()) return authFailed('Enter your email address.', ui.email);
  if (password.length < (signUp ? 10 : 1)) {
    return authFailed(signUp ? 'Choose a password of at least 10 characters.' : 'Enter your password.', ui.password);
  }
  setBusy(ui.authForm, true);
  try {
    await (signUp ? keeper.signUp(email, password) : keeper.logIn(email, password));
    ui.password.value = '';
    notify();
    if (!focusJobId) ui.file.focus();
  } catch (error) {
    authFailed(describeError(error, 'auth'), ui.password);
  } finally {
    setBusy(ui.authForm, false);
  }
}

function authFailed(message: string, field: HTMLInputElement): void {
  ui.authError.textContent = message;
  field.focus();
}

ui.logout.addEventListener('click', () => {
  void keeper.logOut();
  notify('You are logged out.');
});

// ---- choosing a file ----

ui.file.addEventListener('change', () => chose(ui.file.files?.[0]));

// The drop zone is the file input's label: clicking or pressing Enter/Space on the focused input opens the
// picker, and a dropped file lands in the same input.
for (const type of ['dragenter', 'dragover'] as const) {
  ui.drop.addEventListener(type, (event) => {
    event.preventDefault();
    ui.drop.classList.add('dragging');
  });
}
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('dragging'));
// A file dropped just beside the zone would otherwise be opened by the browser in place of the page,
// losing a conversion under way.
for (const type of ['dragover', 'drop'] as const) window.addEventListener(type, (event) => event.preventDefault());
ui.drop.addEventListener('drop', (event) => {
  event.preventDefault();
  ui.drop.classList.remove('dragging');
  const files = event.dataTransfer?.files;
  if (!files?.length || running) return;
  ui.file.files = files;
  chose(files[0]);
});

function chose(file: File | undefined): void {
  resetConversion();
  ui.fileName.textContent = file ? `${file.name} (${formatBytes(file.size)})` : '';
  ui.start.disabled = !file;
}

// ---- converting ----

ui.convertForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const file = ui.file.files?.[0];
  if (file && !running) void convert(file);
});

ui.cancel.addEventListener('click', () => {
  if (!running) return;
  // Before the job exists, stop the upload; after, ask the API, and the watch reports CANCELLED.
  if (running.jobId) void client.cancel(running.jobId).catch((error: unknown) => failed(error, 'app'));
  else running.abort.abort();
});

async function convert(file: File): Promise<void> {
  const abort = new AbortController();
  const run: { abort: AbortController; jobId?: string } = { abort };
  running = run;
  resetConversion();
  ui.progress.hidden = false;
  ui.cancel.hidden = false;
  ui.start.disabled = true;
  ui.file.disabled = true;
  say(`Uploading ${file.name}…`);
  let where: Where = 'upload';
  try {
    const media = await client.uploadVideo(file, {
      signal: abort.signal,
      onProgress: ({ loaded, total }) => {
        const fraction = total ? loaded / total : 0;
        ui.uploadProgress.value = fraction;
        ui.status.textContent = `Uploading ${file.name}… ${percent(fraction)}`;
      },
    });
    ui.uploadProgress.value = 1;
    void refreshUsage();
    where = 'app';
    const queued = await client.convert(media.id, { bitrateKbps: Number(ui.bitrate.value) });
    run.jobId = queued.id;
    // Cancel pressed while the job was being created: the job exists now, so cancel it rather than leave it.
    if (abort.signal.aborted) {
      finished(await client.cancel(queued.id));
      return;
    }
    void refreshJobs();
    void refreshUsage();
    let last: Job = queued;
    for await (const job of watch(queued.id, abort.signal)) {
      last = job;
      ui.convertProgress.value = job.progress;
      say(statusText(job));
      updateJobRow(job);
    }
    finished(last);
  } catch (error) {
    failed(error, where);
  } finally {
    running = undefined;
    ui.cancel.hidden = true;
    ui.file.disabled = false;
    ui.start.disabled = !ui.file.files?.length;
    void refreshJobs();
    void refreshUsage();
  }
}

function finished(job: Job): void {
  if (job.status === 'SUCCEEDED' && job.output) {
    ui.convertProgress.value = 1;
    setDownload(ui.download, job.output.downloadUrl, job.output.filename);
    resultJobId = job.id;
    ui.download.textContent = `Download ${job.output.filename}`;
    ui.result.hidden = false;
    say(`Done: ${job.output.filename} is ready (${formatBytes(job.output.byteSize)}).`);
    ui.download.focus();
  } else {
    say(statusText(job));
  }
}

function failed(error: unknown, where: Where): void {
  ui.progress.hidden = true;
  say(describeError(error, where), true);
  if (isSessionOver(error, where)) void sessionRefused(error);
}

/**
 * The API refused the access token. If the session still goes (the token lapsed early: a sleeping laptop, a
 * clock off), a new token is fetched and the action can be tried again; if it has ended, the keeper signs the
 * page out and says why.
 */
async function sessionRefused(error: unknown): Promise<void> {
  try {
    if (await keeper.renew()) notify('Your sign-in was renewed. Please try that again.');
  } catch {
    notify(describeError(error, 'app'));
  }
}

function resetConversion(): void {
  ui.uploadProgress.value = 0;
  ui.convertProgress.value = 0;
  ui.progress.hidden = true;
  ui.result.hidden = true;
  say('');
}

function statusText(job: Job): string {
  switch (job.status) {
    case 'QUEUED':
      return 'Uploaded. Waiting for a converter…';
    case 'RUNNING':
      return `Converting… ${percent(job.progress)}`;
    case 'SUCCEEDED':
      return 'Converted.';
    case 'FAILED':
      return `The conversion failed: ${job.error?.message ?? 'unknown error'}`;
    case 'CANCELLED':
      return 'The conversion was cancelled.';
  }
}

// ---- previous conversions ----

ui.refresh.addEventListener('click', () => {
  void refreshJobs();
  void refreshUsage();
});

/** The usage line: what the account stores and runs against its limits; refreshed after uploads and conversions. */
async function refreshUsage(): Promise<void> {
  if (!signedIn) return;
  try {
    const usage = await client.usage();
    if (!signedIn) return; // logged out meanwhile
    ui.usage.textContent = usageText(usage);
    ui.usage.classList.toggle('near-limit', nearLimit(usage));
    ui.usage.hidden = false;
  } catch {
    // Only informative: the conversion flow reports its own errors, and an older server has no usage.
    ui.usage.hidden = true;
  }
}

async function refreshJobs(): Promise<void> {
  if (!signedIn) return;
  try {
    const { jobs } = await client.jobs({ first: 20 });
    ui.jobs.replaceChildren(...jobs.map(jobRow));
    ui.jobsEmpty.hidden = jobs.length > 0;
  } catch (error) {
    if (isSessionOver(error, 'app')) void sessionRefused(error);
    else notify(`Your conversions could not be listed. ${describeError(error, 'app')}`);
  }
}

const statusLabels: Record<JobStatus, string> = {
  QUEUED: 'Waiting',
  RUNNING: 'Converting',
  SUCCEEDED: 'Done',
  FAILED: 'Failed',
  CANCELLED: 'Cancelled',
};

function jobRow(job: Job): HTMLLIElement {
  const row = document.createElement('li');
  row.className = 'job';
  row.dataset.jobId = job.id;
  fillJobRow(row, job);
  return row;
}

function fillJobRow(row: HTMLLIElement, job: Job): void {
  const name = element('span', 'job-name', job.input.filename);
  const status = element('span', `job-status status-${job.status.toLowerCase()}`, statusLabels[job.status]);
  const when = element('time', 'job-time', new Date(job.createdAt).toLocaleString());
  when.setAttribute('datetime', job.createdAt);
  const parts: HTMLElement[] = [name, status, when];
  if (!isFinalStatus(job.status)) {
    const bar = document.createElement('progress');
    bar.max = 1;
    bar.value = job.progress;
    bar.setAttribute('aria-label', `Progress of ${job.input.filename}`);
    parts.push(bar);
  }
  if (job.status === 'SUCCEEDED' && job.output) {
    const link = element('a', 'job-download', 'Download mp3');
    setDownload(link, job.output.downloadUrl, job.output.filename);
    link.setAttribute('aria-label', `Download ${job.output.filename}`);
    link.addEventListener('click', (event) => void freshLink(event, job.id, link));
    parts.push(link);
  }
  if (job.status === 'FAILED' && job.error) parts.push(element('span', 'job-error', job.error.message));
  row.replaceChildren(...parts);
}

function updateJobRow(job: Job): void {
  const row = [...ui.jobs.querySelectorAll<HTMLLIElement>('li.job')].find((li) => li.dataset.jobId === job.id);
  if (row) fillJobRow(row, job);
}

ui.download.addEventListener('click', (event) => {
  if (resultJobId) void freshLink(event, resultJobId, ui.download);
});

/** A link signed long ago may have expired: sign a new one, then download with it. */
async function freshLink(event: MouseEvent, jobId: string, link: HTMLAnchorElement): Promise<void> {
  if (Date.now() - Number(link.dataset.signedAt) < LINK_TTL_MS) return; // still good: the browser follows it
  event.preventDefault();
  try {
    const job = await client.job(jobId);
    if (!job?.output) return notify('That mp3 is no longer available.');
    setDownload(link, job.output.downloadUrl, job.output.filename); // freshly signed, so this click goes through
    link.click();
  } catch (error) {
    failed(error, 'app');
  }
}

// ---- small helpers ----

function setDownload(link: HTMLAnchorElement, url: string, filename: string): void {
  link.href = url;
  link.download = filename;
  link.dataset.signedAt = String(Date.now());
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

/** The live status line (read out by screen readers); `problem` styles it as an error. */
function say(text: string, problem = false): void {
  ui.status.textContent = text;
  ui.status.classList.toggle('problem', problem);
}

function notify(message?: string): void {
  ui.notice.textContent = message ?? '';
  ui.notice.hidden = !message;
}

function setBusy(form: HTMLFormElement, busy: boolean): void {
  form.setAttribute('aria-busy', String(busy));
  for (const button of form.querySelectorAll('button')) button.disabled = busy;
}

// ---- live updates across token renewals ----

/**
 * The job's state and then its changes, as client.watchJob gives them, carried over the renewal of the access
 * token: the gateway closes a socket when its token expires, and the watch goes on over a new socket with the
 * token the keeper renewed meanwhile (fetched now if it has not).
 */
async function* watch(jobId: string, signal: AbortSignal): AsyncGenerator<Job> {
  // Closed again and again without an update in between: something else is wrong; say so rather than loop.
  for (let renewals = 0; ; renewals++) {
    try {
      for await (const job of client.watchJob(jobId, { signal })) {
        renewals = 0;
        yield job;
      }
      return;
    } catch (error) {
      const closeCode = (error as { extensions?: { closeCode?: unknown } }).extensions?.closeCode;
      if (!isSessionOver(error, 'app') || closeCode !== 4401 || signal.aborted || renewals >= 2) throw error;
      // The keeper renews ahead of expiry, so the token it holds now is usually newer than the socket's; if it
      // is about to lapse too, a renewal now.
      const current = keeper.current;
      const fresh = current && Date.parse(current.expiresAt) - Date.now() > 30_000 ? current : await keeper.renew();
      if (!fresh) throw error;
    }
  }
}

// ---- a conversion opened from a link (?job=<id>) ----

ui.focusClose.addEventListener('click', () => {
  focusWatch?.abort();
  focusJobId = undefined;
  ui.focus.hidden = true;
  // The link has served: a reload shows the page as usual.
  history.replaceState(null, '', location.pathname + location.hash);
  ui.file.focus();
});

ui.focusDownload.addEventListener('click', (event) => {
  const jobId = ui.focusDownload.dataset.jobId;
  if (jobId) void freshLink(event, jobId, ui.focusDownload);
});

/** Shows the linked conversion first on the page, live until it ends, with its download once done. */
async function showFocus(jobId: string): Promise<void> {
  focusWatch?.abort();
  const abort = new AbortController();
  focusWatch = abort;
  ui.focus.hidden = false;
  ui.focusName.textContent = '';
  ui.focusError.textContent = '';
  ui.focusDownload.hidden = true;
  ui.focusProgress.hidden = true;
  ui.focusStatus.textContent = 'Loading…';
  ui.focusTitle.focus();
  try {
    const job = await client.job(jobId).catch((error: unknown) => {
      if ((error as { code?: unknown }).code === 'NOT_FOUND') return null;
      throw error;
    });
    if (abort.signal.aborted) return;
    if (!job) {
      ui.focusStatus.textContent = '';
      ui.focusError.textContent = 'That conversion is not in your account (it may have been deleted).';
      return;
    }
    fillFocus(job);
    if (isFinalStatus(job.status)) return;
    for await (const next of watch(jobId, abort.signal)) fillFocus(next);
  } catch (error) {
    if (abort.signal.aborted) return;
    if (isSessionOver(error, 'app')) return void sessionRefused(error);
    ui.focusError.textContent = describeError(error, 'app');
  }
}

function fillFocus(job: Job): void {
  ui.focusName.textContent = job.input.filename;
  ui.focusStatus.textContent = `${statusLabels[job.status]}. ${statusText(job)}`;
  ui.focusProgress.hidden = isFinalStatus(job.status);
  ui.focusProgress.value = job.progress;
  ui.focusError.textContent = job.status === 'FAILED' && job.error ? job.error.message : '';
  if (job.status === 'SUCCEEDED' && job.output) {
    setDownload(ui.focusDownload, job.output.downloadUrl, job.output.filename);
    ui.focusDownload.dataset.jobId = job.id;
    ui.focusDownload.textContent = `Download ${job.output.filename}`;
    ui.focusDownload.hidden = false;
  }
  updateJobRow(job);
}

// ---- views: conversions, or the account settings (#settings) ----

window.addEventListener('hashchange', () => {
  if (!signedIn) return;
  route();
  if (location.hash === '#settings') ui.settingsTitle.focus();
});

function route(): void {
  const settings = location.hash === '#settings';
  ui.settings.hidden = !settings;
  ui.convert.hidden = settings;
  ui.history.hidden = settings;
  if (settings) void loadSettings();
}

async function loadSettings(): Promise<void> {
  ui.passwordError.textContent = '';
  ui.emailsError.textContent = '';
  ui.sessionsError.textContent = '';
  await Promise.all([loadEmails(), loadSessions()]);
}

async function loadEmails(): Promise<void> {
  ui.conversionEmails.disabled = true;
  try {
    ui.conversionEmails.checked = (await client.notificationSettings()).conversionEmails;
    ui.conversionEmails.disabled = false;
  } catch (error) {
    settingsFailed(error, ui.emailsError);
  }
}

ui.conversionEmails.addEventListener('change', () => void saveEmails(ui.conversionEmails.checked));

async function saveEmails(conversionEmails: boolean): Promise<void> {
  ui.emailsError.textContent = '';
  ui.conversionEmails.disabled = true;
  try {
    ui.conversionEmails.checked = (await client.updateNotificationSettings({ conversionEmails })).conversionEmails;
  } catch (error) {
    ui.conversionEmails.checked = !conversionEmails;
    settingsFailed(error, ui.emailsError);
  } finally {
    ui.conversionEmails.disabled = false;
  }
}

ui.passwordForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void changePassword();
});

async function changePassword(): Promise<void> {
  ui.passwordError.textContent = '';
  ui.passwordDone.textContent = '';
  const current = ui.currentPassword.value;
  const next = ui.newPassword.value;
  if (!current) return passwordFailed('Enter your current password.', ui.currentPassword);
  if (next.length < 10) return passwordFailed('Choose a new password of at least 10 characters.', ui.newPassword);
  setBusy(ui.passwordForm, true);
  try {
    await keeper.changePassword(current, next);
    ui.passwordForm.reset();
    ui.passwordDone.textContent = 'Your password is changed. Your other sessions have been signed out.';
    void loadSessions();
  } catch (error) {
    const field = (error as { extensions?: { field?: unknown } }).extensions?.field;
    if (isSessionOver(error, 'app')) return void sessionRefused(error);
    passwordFailed(describeError(error, 'app'), field === 'newPassword' ? ui.newPassword : ui.currentPassword);
  } finally {
    setBusy(ui.passwordForm, false);
  }
}

function passwordFailed(message: string, field: HTMLInputElement): void {
  ui.passwordError.textContent = message;
  field.focus();
}

async function loadSessions(): Promise<void> {
  try {
    const sessions = await client.sessions();
    ui.sessions.replaceChildren(...sessions.map(sessionRow));
  } catch (error) {
    settingsFailed(error, ui.sessionsError);
  }
}

function sessionRow(session: AccountSession): HTMLLIElement {
  const row = document.createElement('li');
  row.className = session.current ? 'session current' : 'session';
  row.dataset.sessionId = session.id;
  const lastUsed = new Date(session.lastUsedAt).toLocaleString();
  const info = element('span', 'session-info', '');
  if (session.current) info.append(element('span', 'session-this', 'This browser'), document.createElement('br'));
  info.append(
    `Signed in ${new Date(session.createdAt).toLocaleString()}`,
    document.createElement('br'),
    `Last used ${lastUsed} from ${session.lastUsedIp}`,
  );
  row.append(info);
  if (!session.current) {
    const end = element('button', 'secondary', 'Sign out');
    end.type = 'button';
    end.setAttribute('aria-label', `Sign out the session last used ${lastUsed} from ${session.lastUsedIp}`);
    end.addEventListener('click', () => void endSession(session.id, end));
    row.append(end);
  }
  return row;
}

async function endSession(id: string, button: HTMLButtonElement): Promise<void> {
  ui.sessionsError.textContent = '';
  button.disabled = true;
  try {
    await client.endSession(id);
  } catch (error) {
    // Ended meanwhile (elsewhere, or it expired): the list below shows it gone all the same.
    if ((error as { code?: unknown }).code !== 'NOT_FOUND') settingsFailed(error, ui.sessionsError);
  }
  await loadSessions();
  // The button is gone with its row: keep the keyboard in the list's neighbourhood.
  ui.logoutEverywhere.focus();
}

ui.logoutEverywhere.addEventListener('click', () => void logOutEverywhere());

async function logOutEverywhere(): Promise<void> {
  ui.logoutEverywhere.disabled = true;
  try {
    await client.logOutEverywhere();
    await keeper.forget();
    notify('You are logged out everywhere.');
  } catch (error) {
    settingsFailed(error, ui.sessionsError);
  } finally {
    ui.logoutEverywhere.disabled = false;
  }
}

const deleteUi = {
  form: $('delete-form', HTMLFormElement),
  password: $('delete-password', HTMLInputElement),
  confirm: $('delete-confirm', HTMLInputElement),
  error: $('delete-error', HTMLParagraphElement),
};

deleteUi.form.addEventListener('submit', (event) => {
  event.preventDefault();
  void deleteAccount();
});

/** Deletes the account (its password asked again), then this browser's session goes too. */
async function deleteAccount(): Promise<void> {
  deleteUi.error.textContent = '';
  if (!deleteUi.password.value) return deleteFailed('Enter your password.', deleteUi.password);
  if (!deleteUi.confirm.checked) return deleteFailed('Tick the box to confirm.', deleteUi.confirm);
  setBusy(deleteUi.form, true);
  try {
    await client.deleteAccount(deleteUi.password.value);
    deleteUi.form.reset();
    await keeper.forget();
    location.hash = '';
    notify('Your account is deleted, with everything in it.');
  } catch (error) {
    if (isSessionOver(error, 'app')) return void sessionRefused(error);
    deleteFailed(describeError(error, 'app'), deleteUi.password);
  } finally {
    setBusy(deleteUi.form, false);
  }
}

function deleteFailed(message: string, field: HTMLInputElement): void {
  deleteUi.error.textContent = message;
  field.focus();
}

function settingsFailed(error: unknown, where: HTMLElement): void {
  if (isSessionOver(error, 'app')) return void sessionRefused(error);
  where.textContent = describeError(error, 'app');
}

// ---- start ----

/** One refresh at start: the cookie, if the browser has one, says whether this browser is signed in. */
async function start(): Promise<void> {
  try {
    if (await keeper.renew()) return; // the keeper shows the signed-in page
    showSignedOut(focusJobId ? 'Log in to see your conversion.' : undefined);
  } catch (error) {
    showSignedOut(describeError(error, 'app'));
  }
}

void start();
// Links from account mails (?verify-email=, ?reset-password=, ?confirm-email=) and "Forgot password?".
startAccountLinks({
  client,
  container: $('notice', HTMLParagraphElement).parentElement!,
  forgot: { button: $('forgot', HTMLButtonElement), email: ui.email, result: $('forgot-result', HTMLParagraphElement) },
  resetPassword: (token, newPassword) => keeper.resetPassword(token, newPassword),
});
