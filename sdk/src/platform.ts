// What differs between Node and browsers, behind one small interface: the client itself is the same code.
import type { DownloadedFile, DownloadOptions, Media, Progress, UploadInput } from './types.js';

/** The parts of an HTTP response the client reads. */
export interface HttpAnswer {
  status: number;
  statusText: string;
  header(name: string): string | undefined;
  text: string;
}

export interface MultipartUpload {
  url: string;
  headers: Record<string, string>;
  /** The `operations` and `map` fields of the GraphQL multipart request spec; the file is field `0`. */
  operations: string;
  map: string;
  input: UploadInput;
  filename?: string | undefined;
  size?: number | undefined;
  onProgress?: ((progress: Progress) => void) | undefined;
  signal?: AbortSignal | undefined;
  /** Node: fail when nothing is sent or received for this long (default 120 s). */
  idleTimeoutMs?: number | undefined;
}

export interface Platform {
  /** The WebSocket constructor graphql-ws uses. */
  webSocket: unknown;
  /** Sends a multipart upload without holding the file in memory. */
  upload(request: MultipartUpload): Promise<HttpAnswer>;
  /** Streams a download to a file; undefined where there is no file system. */
  downloadToFile?: (url: string, destination: string, options: DownloadOptions) => Promise<DownloadedFile>;
  /** Where convertFile writes the mp3; undefined where there is no file system. */
  outputPath?: (input: UploadInput, output: Media, requested: string | undefined) => Promise<string>;
  /**
   * Before convertFile uploads: fails with BAD_USER_INPUT when the mp3's path is already known (an output file, or
   * beside a path input) and a file is there. Undefined where there is no file system.
   */
  checkOutput?: (input: UploadInput, requested: string | undefined) => Promise<void>;
}
