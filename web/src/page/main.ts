// The conversion page: sign in, pick or drop a video, watch it upload and convert, download the mp3.
// Plain DOM over the SDK; the markup (index.html) works with a keyboard and a screen reader as it is.
import './page.css';
import { createClient, isFinalStatus, type Job, type JobStatus } from '@vidmp3/sdk';
import { describeError, formatBytes, isSessionOver, nearLimit, percent, usageText, type Where } from './messages.js';
import { clearSession, loadSession, saveSession, type Session } from './session.js';
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
};

const client = createClient({ url: new URL('/graphql', location.href).href });
let session: Session | undefined;
/** The conversion under way, if any: aborting stops its upload or its watch. */
let running: { abort: AbortController; jobId?: string } | undefined;
/** Signed download links expire (15 minutes by default); a link older than this is signed again before use. */
const LINK_TTL_MS = 10 * 60_000;
/** The job whose mp3 the result's download link is for. */
let resultJobId: string | undefined;

// ---- signing in and out ----

function showSignedIn(current: Session): void {
  session = current;
  client.setToken(current.token);
  ui.accountEmail.textContent = current.email;
  ui.account.hidden = false;
  ui.auth.hidden = true;
  ui.convert.hidden = false;
  ui.history.hidden = false;
  void refreshJobs();
  void refreshUsage();
}

function showSignedOut(message?: string): void {
  running?.abort.abort();
  session = undefined;
  clearSession();
  client.setToken(undefined);
  client.close();
  ui.account.hidden = true;
  ui.convert.hidden = true;
  ui.history.hidden = true;
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
    const auth = signUp ? await client.signUp(email, password) : await client.logIn(email, password);
    ui.password.value = '';
    notify();
    showSignedIn(saveSession(auth));
    ui.file.focus();
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

ui.logout.addEventListener('click', () => showSignedOut('You are logged out.'));

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
    for await (const job of client.watchJob(queued.id, { signal: abort.signal })) {
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
  if (isSessionOver(error, where)) return showSignedOut(describeError(error, where));
  ui.progress.hidden = true;
  say(describeError(error, where), true);
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
  if (!session) return;
  try {
    const usage = await client.usage();
    if (!session) return; // logged out meanwhile
    ui.usage.textContent = usageText(usage);
    ui.usage.classList.toggle('near-limit', nearLimit(usage));
    ui.usage.hidden = false;
  } catch {
    // Only informative: the conversion flow reports its own errors, and an older server has no usage.
    ui.usage.hidden = true;
  }
}

async function refreshJobs(): Promise<void> {
  if (!session) return;
  try {
    const { jobs } = await client.jobs({ first: 20 });
    ui.jobs.replaceChildren(...jobs.map(jobRow));
    ui.jobsEmpty.hidden = jobs.length > 0;
  } catch (error) {
    if (isSessionOver(error, 'app')) showSignedOut(describeError(error, 'app'));
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

// ---- start ----

async function start(): Promise<void> {
  const saved = loadSession();
  if (!saved) return showSignedOut();
  client.setToken(saved.token);
  try {
    // The token may have been revoked or signed with a retired key: ask before showing the signed-in page.
    const me = await client.me();
    if (!me) return showSignedOut('Your session has ended. Please log in again.');
    showSignedIn(saved);
  } catch (error) {
    if (isSessionOver(error, 'app')) return showSignedOut(describeError(error, 'app'));
    showSignedIn(saved);
    notify(describeError(error, 'app'));
  }
}

void start();
// Links from account mails (?verify-email=, ?reset-password=, ?confirm-email=) and "Forgot password?".
startAccountLinks({
  client,
  container: $('notice', HTMLParagraphElement).parentElement!,
  forgot: { button: $('forgot', HTMLButtonElement), email: ui.email, result: $('forgot-result', HTMLParagraphElement) },
  onSignedIn: (auth) => showSignedIn(saveSession(auth)),
});
