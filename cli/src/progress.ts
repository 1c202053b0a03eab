// Progress of one file through upload → conversion → download, on stderr: a redrawn bar on a terminal, a
// line per step otherwise (logs, CI), nothing at all with --json.
import type { JobStatus } from './sdk.js';

export type Phase = 'upload' | 'convert' | 'download';

export interface FileProgress {
  upload(loaded: number, total?: number): void;
  convert(status: JobStatus, progress: number, jobId: string): void;
  download(loaded: number, total?: number): void;
  /** Ends the display for this file (a bar is cleared; the caller prints the outcome). */
  end(): void;
}

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export type ProgressMode = 'bar' | 'lines' | 'none';

export function progressMode(stream: ProgressStream, json: boolean): ProgressMode {
  if (json) return 'none';
  return stream.isTTY ? 'bar' : 'lines';
}

export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = -1;
  do {
    value /= 1000;
    unit++;
  } while (value >= 1000 && unit < units.length - 1);
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const phaseLabel: Record<Phase, string> = { upload: 'uploading', convert: 'converting', download: 'downloading' };

export interface BarState {
  label: string;
  phase: Phase;
  /** 0..1, or undefined when the total is unknown. */
  fraction: number | undefined;
  detail: string;
}

/** One line of a progress bar, fitted to `columns`: `video.mp4  converting  [#####-----]  50%  RUNNING`. */
export function renderBar(state: BarState, columns: number): string {
  const label = state.label.length > 24 ? `…${state.label.slice(-23)}` : state.label;
  const pct = state.fraction === undefined ? ' ---' : `${Math.floor(clamp(state.fraction) * 100)}%`.padStart(4);
  const head = `${label}  ${phaseLabel[state.phase].padEnd(12)}`;
  const tail = ` ${pct}  ${state.detail}`;
  const barWidth = Math.max(10, Math.min(40, columns - head.length - tail.length - 3));
  const filled = state.fraction === undefined ? 0 : Math.round(clamp(state.fraction) * barWidth);
  const line = `${head}[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]${tail}`;
  return line.length >= columns ? line.slice(0, Math.max(0, columns - 1)) : line;
}

const clamp = (n: number) => Math.min(1, Math.max(0, n));

const transferDetail = (loaded: number, total?: number) =>
  total ? `${formatBytes(loaded)} / ${formatBytes(total)}` : formatBytes(loaded);

const silent: FileProgress = { upload() {}, convert() {}, download() {}, end() {} };

export function createProgress(mode: ProgressMode, stream: ProgressStream, label: string): FileProgress {
  switch (mode) {
    case 'none':
      return silent;
    case 'bar':
      return barProgress(stream, label);
    case 'lines':
      return lineProgress(stream, label);
  }
}

function barProgress(stream: ProgressStream, label: string): FileProgress {
  let lastDraw = 0;
  let lastPhase: Phase | undefined;
  const draw = (state: Omit<BarState, 'label'>, force = false) => {
    const now = Date.now();
    // At most ~12 redraws a second: a fast upload reports progress thousands of times.
    if (!force && state.phase === lastPhase && now - lastDraw < 80) return;
    lastDraw = now;
    lastPhase = state.phase;
    stream.write(`\r\x1b[2K${renderBar({ label, ...state }, stream.columns || 80)}`);
  };
  return {
    upload: (loaded, total) =>
      draw({ phase: 'upload', fraction: total ? loaded / total : undefined, detail: transferDetail(loaded, total) }),
    convert: (status, progress) =>
      draw({ phase: 'convert', fraction: progress, detail: status.toLowerCase() }, status !== 'RUNNING'),
    download: (loaded, total) =>
      draw({
        phase: 'download',
        fraction: total ? loaded / total : undefined,
        detail: transferDetail(loaded, total),
      }),
    end: () => {
      if (lastPhase) stream.write('\r\x1b[2K');
      lastPhase = undefined;
    },
  };
}

function lineProgress(stream: ProgressStream, label: string): FileProgress {
  let phase: Phase | undefined;
  let status: JobStatus | undefined;
  let quarter = 0;
  const say = (text: string) => stream.write(`${label}: ${text}\n`);
  return {
    upload(_loaded, total) {
      if (phase === 'upload') return;
      phase = 'upload';
      say(`uploading${total ? ` ${formatBytes(total)}` : ''}`);
    },
    convert(next, progress, jobId) {
      phase = 'convert';
      if (next !== status) {
        status = next;
        say(`job ${jobId} ${next.toLowerCase()}`);
      }
      // A line per quarter keeps logs readable during a long conversion.
      const reached = Math.floor(clamp(progress) * 4);
      if (next === 'RUNNING' && reached > quarter && reached < 4) {
        quarter = reached;
        say(`converting ${reached * 25}%`);
      }
    },
    download(_loaded, total) {
      if (phase === 'download') return;
      phase = 'download';
      say(`downloading${total ? ` ${formatBytes(total)}` : ''}`);
    },
    end() {},
  };
}
