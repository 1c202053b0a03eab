import type { Prober } from '../services/media.js';
import { acceptMp3, acceptVideo, probe } from './probe.js';

/** The media service's Prober, backed by ffprobe with its protocol and container allow-lists. */
export function ffprobeProber(options: { ffprobePath: string; timeoutMs: number }): Prober {
  return {
    async video(path) {
      const result = await probe(path, { ...options, allow: 'video' });
      acceptVideo(result);
      return { contentType: result.contentType, durationSeconds: result.durationSeconds };
    },
    async mp3(path) {
      const result = await probe(path, { ...options, allow: 'audio-mp3' });
      acceptMp3(result);
      return { contentType: result.contentType, durationSeconds: result.durationSeconds };
    },
  };
}
