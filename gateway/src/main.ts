import { createLogger, onShutdown, runService } from '@vidmp3/shared';
import { readConfig } from './config.js';
import { startGateway } from './server.js';

const config = readConfig();
const logger = createLogger('gateway', config.LOG_LEVEL);

runService(logger, async () => {
  const server = await startGateway(config, logger);
  onShutdown(logger, () => server.close());
});
