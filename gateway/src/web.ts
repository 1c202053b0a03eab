// The browser doors, from the web workspace's build (web/dist): the conversion page at `/` and the GraphQL
// playground at `/playground`. Both are the gateway's own files (no CDN), so a strict Content-Security-Policy
// holds them to this origin. The API never depends on them: without a build, the gateway says so and goes on.
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from '@vidmp3/shared';

export interface WebOptions {
  /** The web build: index.html, playground/index.html and assets/. */
  dir: string;
  playground: boolean;
}

export interface WebDoors {
  router: Router;
  /** Whether /playground serves the bundled GraphiQL (the gateway then needs no landing page of its own). */
  servesPlayground: boolean;
}

/**
 * The policy for a page served to `host`: everything from this origin only. Subscriptions need graphql-ws to
 * this host's /graphql, named explicitly because older browsers do not let 'self' cover ws:/wss:; a bare
 * `ws:` would allow a socket to any host. A Host header that is not a plain host[:port] gets 'self' alone.
 */
export function contentSecurityPolicy(host: string | undefined): string {
  const sockets =
    host && /^[a-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-f:.]+\](:\d{1,5})?$/i.test(host) ? ` ws://${host} wss://${host}` : '';
  return CONTENT_SECURITY_POLICY.replace("connect-src 'self'", `connect-src 'self'${sockets}`);
}

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // No 'unsafe-inline' even for GraphiQL: React and CodeMirror set styles through the CSSOM, which CSP allows.
  "style-src 'self'",
  // graphiql's stylesheet carries its fonts and icons inline as data: URLs.
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const commonHeaders = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const htmlHeaders = {
  ...commonHeaders,
  'X-Frame-Options': 'DENY',
  // Asset names change with their content; the HTML that names them must be checked on every visit.
  'Cache-Control': 'no-cache',
};

export function webDoors(options: WebOptions, logger: Logger): WebDoors {
  const { dir } = options;
  const built = existsSync(join(dir, 'index.html'));
  const playgroundBuilt = existsSync(join(dir, 'playground', 'index.html'));
  if (!built || !playgroundBuilt) {
    logger.warn(
      { webDir: dir },
      'web page and playground not built: run `npm run build -w @vidmp3/web`; the API is served without them',
    );
  }
  const servesPlayground = options.playground && playgroundBuilt;

  const router = express.Router({ caseSensitive: true, strict: false });
  const html = (file: string) => (req: Request, res: Response, next: NextFunction) => {
    const headers = { ...htmlHeaders, 'Content-Security-Policy': contentSecurityPolicy(req.get('host')) };
    res.sendFile(file, { root: dir, headers, cacheControl: false, dotfiles: 'deny' }, (err) => {
      if (err) failed(err, res, next);
    });
  };
  const notFound = (_req: Request, res: Response) => {
    res.status(404).set(commonHeaders).type('text/plain').send('Not found\n');
  };

  router.get('/', built ? html('index.html') : notFound);
  router.get('/playground', servesPlayground ? html('playground/index.html') : notFound);

  // A browser opening the API's URL lands in the playground; API clients' GET /graphql is untouched.
  if (servesPlayground) {
    router.get('/graphql', (req, res, next) => {
      const bare = Object.keys(req.query).length === 0;
      if (bare && req.accepts(['application/json', 'text/html']) === 'text/html') res.redirect(302, '/playground');
      else next();
    });
  }

  const assets = join(dir, 'assets');
  // Hashed names: a file never changes under its name.
  const cached = { immutable: true, maxAge: '365d', dotfiles: 'deny' } as const;
  router.use(
    '/assets',
    (req: Request, res: Response, next: NextFunction) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return notFound(req, res);
      if (!options.playground && basename(req.path).startsWith('playground-')) return notFound(req, res);
      next();
    },
    // A script or stylesheet goes as its precompressed .br or .gz twin (written by the build) when accepted.
    (req: Request, res: Response, next: NextFunction) => {
      const name = req.path.slice(1);
      if (!/^[\w-]+\.(js|css)$/.test(name)) return next();
      res.vary('Accept-Encoding');
      // Brotli whenever it is accepted at all (smaller), whatever order the browser lists encodings in.
      const accepted = req.acceptsEncodings();
      const encoding = accepted.includes('br') ? 'br' : accepted.includes('gzip') ? 'gzip' : undefined;
      if (!encoding) return next();
      res.type(extname(name)).set({ ...commonHeaders, 'Content-Encoding': encoding });
      res.sendFile(`${name}.${encoding === 'br' ? 'br' : 'gz'}`, { root: assets, ...cached }, (err) => {
        if (!err) return;
        if (res.headersSent || httpStatus(err) !== 404) return failed(err, res, next);
        // No twin (an older build): the file as it is.
        res.removeHeader('Content-Encoding');
        res.removeHeader('Content-Type');
        next();
      });
    },
    express.static(assets, {
      ...cached,
      index: false,
      redirect: false,
      // Nothing else answers under /assets: a miss is a 404 here (no listing, no falling through to the API).
      fallthrough: false,
      setHeaders: (res) => res.set(commonHeaders),
    }),
  );
  router.use('/assets', (err: unknown, _req: Request, res: Response, next: NextFunction) => failed(err, res, next));

  if (servesPlayground) logger.info({ path: '/playground' }, 'GraphQL playground served (bundled GraphiQL, no CDN)');
  return { router, servesPlayground };
}

/** A missing file, a `..` or a dotfile ends as a plain 4xx; anything else goes on to the app's error handling. */
function failed(err: unknown, res: Response, next: NextFunction): void {
  const status = httpStatus(err);
  if (status === undefined || res.headersSent) return next(err);
  res
    .status(status)
    .set(commonHeaders)
    .type('text/plain')
    .send(status === 404 ? 'Not found\n' : `${status}\n`);
}

function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const status =
    (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
}
