import { scrapedGauge, Topology, type ChannelWrapper, type Logger, type Metrics } from '@vidmp3/shared';

/** How the handling of one conversion request ended. */
export type ConversionOutcome =
  | 'succeeded'
  | 'failed'
  | 'retried'
  | 'gave_up'
  | 'cancelled'
  | 'handed_back'
  | 'not_claimed'
  | 'claim_deferred'
  | 'invalid';

export interface ConversionMeter {
  finished(outcome: ConversionOutcome, seconds: number): void;
}

export const noConversionMeter: ConversionMeter = { finished: () => undefined };

/** `vidmp3_conversions_total{outcome}` and `vidmp3_conversion_duration_seconds{outcome}`. */
export function conversionMeter(metrics: Metrics): ConversionMeter {
  const total = metrics.counter({
    name: 'vidmp3_conversions_total',
    help: 'Conversion requests this worker handled, by outcome',
    labelNames: ['outcome'],
  });
  const duration = metrics.histogram({
    name: 'vidmp3_conversion_duration_seconds',
    help: 'Time from taking a conversion request to its outcome (claim, ffmpeg, upload), in seconds',
    labelNames: ['outcome'],
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200],
  });
  return {
    finished(outcome, seconds) {
      total.inc({ outcome });
      duration.observe({ outcome }, seconds);
    },
  };
}

/**
 * The work queue as this worker sees it, read with `checkQueue` when Prometheus scrapes (cached 5 s, given up
 * after 2 s): messages waiting (ready, not yet delivered) and consumers. On a channel of its own, so a failed
 * check never closes the channel deliveries arrive on.
 */
export function queueGauges(metrics: Metrics, channel: ChannelWrapper, logger: Logger): void {
  const queue = Topology.conversionsQueue;
  const onError = (err: unknown) => logger.warn({ err }, 'could not read the work queue for /metrics');
  scrapedGauge(metrics, {
    name: 'vidmp3_queue_messages',
    help: 'Messages ready in the queue, as RabbitMQ reports them to this worker',
    labelNames: ['queue'],
    onError,
    read: async () => [{ labels: { queue }, value: (await channel.checkQueue(queue)).messageCount }],
  });
  scrapedGauge(metrics, {
    name: 'vidmp3_queue_consumers',
    help: 'Consumers of the queue (workers taking work), as RabbitMQ reports them to this worker',
    labelNames: ['queue'],
    onError,
    read: async () => [{ labels: { queue }, value: (await channel.checkQueue(queue)).consumerCount }],
  });
}
