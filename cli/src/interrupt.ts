// Ctrl-C during a long command: the first one stops cleanly (the running job is cancelled on the server,
// partial files removed), a second one exits at once.

export interface Interrupt {
  signal: AbortSignal;
  dispose(): void;
}

export function onInterrupt(stderr: NodeJS.WritableStream): Interrupt {
  const controller = new AbortController();
  const handler = () => {
    if (controller.signal.aborted) process.exit(130);
    stderr.write('\nvidmp3: interrupted; stopping (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', handler);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', handler) };
}
