// A small Dockerfile reader and the checks our images must pass. No Docker engine runs on the project's machines,
// so the Dockerfile is checked by reading it: instructions, stages and which stage builds on which.

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  /** The image or earlier stage this one starts FROM. */
  base: string;
  instructions: Instruction[];
}

/** Instructions with continuation lines joined; comments and blank lines dropped. */
export function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) return;
    if (pending && line.startsWith('#')) return;
    if (!pending) start = i + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const [keyword = '', ...rest] = full.split(/\s+/);
    out.push({ keyword: keyword.toUpperCase(), args: rest.join(' '), line: start });
  });
  return out;
}

export function parseStages(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const ins of parseInstructions(text)) {
    if (ins.keyword === 'FROM') {
      const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      const base = parts[0] ?? '';
      const as = parts.findIndex((p) => p.toUpperCase() === 'AS');
      stages.push({ name: as >= 0 ? (parts[as + 1] ?? '') : String(stages.length), base, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return stages;
}

/** The stage and the stages it starts FROM, outermost last: what ends up in its image's filesystem history. */
export function lineage(stages: Stage[], name: string): Stage[] {
  const chain: Stage[] = [];
  let current = stages.find((s) => s.name === name);
  while (current && !chain.includes(current)) {
    chain.push(current);
    const base = current.base;
    current = stages.find((s) => s.name === base);
  }
  return chain;
}

const installsFfmpeg = (s: Stage) =>
  s.instructions.some((i) => i.keyword === 'RUN' && /apt-get install[^&;|]*\bffmpeg\b/.test(i.args));
const npmCi = (s: Stage) => s.instructions.filter((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));

export interface DockerfileExpectations {
  /** Target stage → whether its image must carry ffmpeg, and the entry file it runs. */
  targets: Record<string, { ffmpeg: boolean; main: string }>;
  /** Workspaces from the root package.json: `npm ci` needs each one's package.json beside the lockfile. */
  workspaces: string[];
}

export function checkDockerfile(text: string, expect: DockerfileExpectations): string[] {
  const out: string[] = [];
  const stages = parseStages(text);
  const names = new Set(stages.map((s) => s.name));
  if (stages.length < 2) out.push('Dockerfile: not multi-stage');

  for (const s of stages) {
    if (names.has(s.base)) continue;
    const image = s.base;
    const tag = image.includes('@sha256:') ? 'digest' : image.slice(image.lastIndexOf('/') + 1).split(':')[1];
    if (tag !== 'digest' && !/\d+\.\d+\.\d+/.test(tag ?? '')) {
      out.push(`stage ${s.name}: base image ${image} is not pinned to a version tag (x.y.z) or digest`);
    }
    if (/\${?\w/.test(image)) out.push(`stage ${s.name}: base image ${image} comes from a build argument`);
  }

  const ciStages = stages.filter((s) => npmCi(s).length > 0);
  if (ciStages.length === 0) out.push('Dockerfile: dependencies are not installed with npm ci');
  if (stages.some((s) => s.instructions.some((i) => i.keyword === 'RUN' && /\bnpm (install|i)\b/.test(i.args)))) {
    out.push('Dockerfile: npm install may change the lockfile; use npm ci');
  }
  for (const s of ciStages) {
    const copied = lineage(stages, s.name)
      .flatMap((st) => st.instructions)
      .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from'))
      .map((i) => i.args)
      .join(' ');
    if (!/\bpackage-lock\.json\b/.test(copied)) out.push('Dockerfile: npm ci runs without package-lock.json');
    for (const ws of expect.workspaces) {
      if (!copied.includes(`${ws}/package.json`)) out.push(`Dockerfile: npm ci runs without ${ws}/package.json`);
    }
  }

  for (const [target, { ffmpeg, main }] of Object.entries(expect.targets)) {
    if (!names.has(target)) {
      out.push(`target ${target}: no such stage`);
      continue;
    }
    const chain = lineage(stages, target);
    // In build order: the outermost base first, the target's own instructions last (they win).
    const all = [...chain].reverse().flatMap((s) => s.instructions);
    const last = (keyword: string) => all.filter((i) => i.keyword === keyword).at(-1);

    const user = last('USER')?.args.split(':')[0];
    if (!user || user === 'root' || user === '0') out.push(`target ${target}: runs as root (no non-root USER)`);
    const health = last('HEALTHCHECK');
    if (!health || /^NONE\b/i.test(health.args)) out.push(`target ${target}: no HEALTHCHECK`);
    else if (!health.args.includes('/healthz')) out.push(`target ${target}: HEALTHCHECK does not ask /healthz`);
    const cmd = last('CMD')?.args ?? '';
    if (!cmd.includes(main)) out.push(`target ${target}: CMD does not run ${main}`);

    if (chain.some(installsFfmpeg) !== ffmpeg) {
      out.push(`target ${target}: ${ffmpeg ? 'lacks' : 'carries'} ffmpeg`);
    }
    for (const s of chain) {
      for (const ci of npmCi(s)) {
        if (!ci.args.includes('--omit=dev')) out.push(`target ${target}: stage ${s.name} installs dev dependencies`);
      }
    }
    for (const copy of all.filter((i) => i.keyword === 'COPY' && /node_modules/.test(i.args))) {
      const from = /--from=(\S+)/.exec(copy.args)?.[1];
      const source = stages.find((s) => s.name === from);
      if (!source || !npmCi(source).every((i) => i.args.includes('--omit=dev')) || npmCi(source).length === 0) {
        out.push(`target ${target}: node_modules from ${from ?? 'the build context'} are not production-only`);
      }
    }
  }
  return [...new Set(out)];
}

/** What the build context must leave out: dependencies and builds (rebuilt inside), local data, history, test output. */
export const DOCKERIGNORE_REQUIRED = ['node_modules', 'dist', 'data', '.git', 'coverage', 'test-results', '.env'];

export function checkDockerignore(text: string): string[] {
  const patterns = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'))
    .map((l) => l.replace(/^\*\*\//, '').replace(/\/$/, ''));
  return DOCKERIGNORE_REQUIRED.filter((p) => !patterns.includes(p)).map((p) => `.dockerignore: does not exclude ${p}`);
}
