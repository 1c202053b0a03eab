import { createLogger, onShutdown, runService } from '@vidmp3/shared';
import { startMedia } from './app.js';
import { readConfig } from './config.js';

const config = readConfig();
const logger = createLogger('media', config.LOG_LEVEL);

runService(logger, async () => {
  const server = await startMedia(config, logger);
  // The drain cuts what is still open after the grace; a few more seconds let the pools close cleanly.
  onShutdown(logger, () => server.close(), (config.SHUTDOWN_GRACE_SECONDS + 5) * 1000);
});
