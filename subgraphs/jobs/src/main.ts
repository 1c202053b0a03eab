import { createLogger, onShutdown, runService } from '@vidmp3/shared';
import { startJobs } from './app.js';
import { readConfig } from './config.js';

const config = readConfig();
const logger = createLogger('jobs', config.LOG_LEVEL);

runService(logger, async () => {
  const server = await startJobs(config, logger);
  onShutdown(logger, () => server.close());
});
