import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from './validate.js';

export const K8S_DIR = fileURLToPath(new URL('..', import.meta.url));
export const OVERLAYS = ['dev', 'prod'] as const;
export type Overlay = (typeof OVERLAYS)[number];

/** kubectl renders with its embedded kustomize (KUBECTL picks another binary, e.g. Debian's kubectl 1.20). */
export const KUBECTL = process.env.KUBECTL ?? 'kubectl';

const run = promisify(execFile);

export function parseYamlStream(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('; '));
      return doc.toJS() as KubeObject | null;
    })
    .filter((o): o is KubeObject => o !== null);
}

export async function renderOverlay(overlay: Overlay): Promise<KubeObject[]> {
  const dir = `${K8S_DIR}overlays/${overlay}`;
  try {
    const { stdout } = await run(KUBECTL, ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 });
    return parseYamlStream(stdout);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new Error(
      `could not render ${dir} with ${KUBECTL} kustomize (Debian: apt-get install kubernetes-client): ${detail}`,
    );
  }
}
