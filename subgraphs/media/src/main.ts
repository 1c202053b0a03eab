import { createLogger, onShutdown, runService } from '@vidmp3/shared';
import { startMedia } from './app.js';
import { readConfig } from './config.js';

const config = readConfig();
const logger = createLogger('media', config.LOG_LEVEL);

runService(logger, async () => {
  const server = await startMedia(config, logger);
  onShutdown(logger, () => server.close());
});
