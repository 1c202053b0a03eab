import type { Prober } from '../services/media.js';
import { acceptMp3, acceptVideo, checkComplete, probe, type ProbeOptions } from './probe.js';

/** The media service's Prober, backed by ffprobe with its protocol and container allow-lists, confined. */
export function ffprobeProber(options: Pick<ProbeOptions, 'ffprobePath' | 'timeoutMs' | 'sandbox'>): Prober {
  return {
    async video(path) {
      const result = await probe(path, { ...options, allow: 'video' });
      acceptVideo(result);
      // A file cut short keeps a header that declares its whole length: refuse it before it is stored.
      await checkComplete(path, result, options);
      return { contentType: result.contentType, durationSeconds: result.durationSeconds };
    },
    async mp3(path) {
      const result = await probe(path, { ...options, allow: 'audio-mp3' });
      acceptMp3(result);
      return { contentType: result.contentType, durationSeconds: result.durationSeconds };
    },
  };
}
