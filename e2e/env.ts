// What the end-to-end suite reads from its own environment, in one place.

/** The MariaDB server (no database): each test system creates and drops its own databases there. */
export const MYSQL_SERVER = process.env.E2E_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
/** The RabbitMQ server (no vhost): each test system creates and deletes its own virtual host there. */
export const RABBITMQ_SERVER = process.env.E2E_RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const FFMPEG_PATH = process.env.FFMPEG_PATH ?? 'ffmpeg';
/** Passed on to the services the suite starts (PATH, FFMPEG_PATH …), below the suite's own settings. */
export const inheritedEnv: Record<string, string | undefined> = { ...process.env };
