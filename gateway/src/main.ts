import { createLogger, onShutdown, runService } from '@vidmp3/shared';
import { readConfig } from './config.js';
import { startGateway } from './server.js';

const config = readConfig();
const logger = createLogger('gateway', config.LOG_LEVEL);

runService(logger, async () => {
  const server = await startGateway(config, logger);
  // The drain cuts what is still open after the grace; a few more seconds let the pools close cleanly.
  onShutdown(logger, () => server.close(), (config.SHUTDOWN_GRACE_SECONDS + 5) * 1000);
});
