// `npm run containers:build`: podman set up, the Dockerfile's base image made when missing, every image target
// built (cached layers and npm cache), and their sizes. The container smoke test (smoke.test.ts) runs them.
import { ensureImages, formatSizes, imageSizes, say } from './podman.js';

try {
  const started = Date.now();
  const images = await ensureImages();
  const seconds = Math.round((Date.now() - started) / 1000);
  say(`every image built in ${seconds} s; sizes:\n${formatSizes(await imageSizes(images))}`);
} catch (err) {
  process.stderr.write(`containers: ${(err as Error).message}\n`);
  process.exit(1);
}
