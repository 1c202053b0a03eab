// Browsers: uploads go through XMLHttpRequest, the only browser API that reports upload progress; the File is
// handed to FormData, so the browser streams it from disk. The WebSocket is the browser's own.
import { aborted, networkError, Vidmp3Error } from '../errors.js';
import type { HttpAnswer, MultipartUpload, Platform } from '../platform.js';

// The few XMLHttpRequest members used here, declared so the SDK needs no DOM typings (Node users have none).
interface ProgressLike {
  loaded: number;
  total: number;
  lengthComputable: boolean;
}
interface XhrLike {
  readonly status: number;
  readonly statusText: string;
  readonly responseText: string;
  readonly upload: { onprogress: ((event: ProgressLike) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
  ontimeout: (() => void) | null;
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  getResponseHeader(name: string): string | null;
  send(body: FormData): void;
  abort(): void;
}
type XhrConstructor = new () => XhrLike;

function upload(req: MultipartUpload): Promise<HttpAnswer> {
  const { input } = req;
  if (!(input instanceof Blob)) {
    return Promise.reject(new Vidmp3Error('BAD_USER_INPUT', 'In a browser, upload a File or a Blob'));
  }
  const Xhr = (globalThis as { XMLHttpRequest?: XhrConstructor }).XMLHttpRequest;
  if (!Xhr) return Promise.reject(new Vidmp3Error('INTERNAL', 'XMLHttpRequest is not available here'));
  const signal = req.signal;
  if (signal?.aborted) return Promise.reject(aborted(signal.reason));

  const total = input.size;
  const filename = req.filename ?? (input instanceof File && input.name ? input.name : 'upload');
  const form = new FormData();
  form.set('operations', req.operations);
  form.set('map', req.map);
  form.set('0', input, filename);

  return new Promise<HttpAnswer>((resolve, reject) => {
    const xhr = new Xhr();
    const onAbort = () => xhr.abort();
    const done = () => signal?.removeEventListener('abort', onAbort);
    xhr.open('POST', req.url);
    for (const [name, value] of Object.entries(req.headers)) xhr.setRequestHeader(name, value);
    // The body also carries the multipart framing: report the file's share of it.
    xhr.upload.onprogress = (event) => req.onProgress?.({ loaded: Math.min(event.loaded, total), total });
    xhr.onload = () => {
      done();
      req.onProgress?.({ loaded: total, total });
      resolve({
        status: xhr.status,
        statusText: xhr.statusText,
        header: (name) => xhr.getResponseHeader(name) ?? undefined,
        text: xhr.responseText,
      });
    };
    xhr.onerror = () => {
      done();
      reject(networkError(new Error('the upload failed'), req.url));
    };
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => {
      done();
      reject(aborted(signal?.reason));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.onProgress?.({ loaded: 0, total });
    xhr.send(form);
  });
}

export const browserPlatform: Platform = {
  webSocket: (globalThis as { WebSocket?: unknown }).WebSocket,
  upload,
};
