import { createLogger, onShutdown, runService } from '@vidmp3/shared';
import { startUsers } from './app.js';
import { readConfig } from './config.js';

const config = readConfig();
const logger = createLogger('users', config.LOG_LEVEL);

runService(logger, async () => {
  const server = await startUsers(config, logger);
  onShutdown(logger, () => server.close());
});
