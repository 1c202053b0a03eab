# syntax=docker/dockerfile:1.7
#
# One image per deployable, all from this file (see docs/DEPLOY.md for why one file):
#
#   docker build --target gateway   -t vidmp3/gateway:0.1.0   .
#   docker build --target users     -t vidmp3/users:0.1.0     .
#   docker build --target media     -t vidmp3/media:0.1.0     .
#   docker build --target jobs      -t vidmp3/jobs:0.1.0      .
#   docker build --target converter -t vidmp3/converter:0.1.0 .
#   docker build --target notifier  -t vidmp3/notifier:0.1.0  .
#
# Every image: Debian bookworm slim with Node 20, the deployable's production dependencies only (installed from
# package-lock.json), its compiled dist/, running as the unprivileged `node` user (uid 1000). Only media (ffprobe
# checks uploads) and converter (ffmpeg converts) carry Debian's ffmpeg package.

# ---- shared starting points --------------------------------------------------------------------------------------

FROM node:20.20.2-bookworm-slim AS node-base
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# The lockfile and every workspace's package.json: `npm ci` refuses a lockfile whose workspaces are missing.
FROM node-base AS manifests
COPY package.json package-lock.json ./
COPY packages/shared/package.json packages/shared/
COPY subgraphs/users/package.json subgraphs/users/
COPY subgraphs/media/package.json subgraphs/media/
COPY subgraphs/jobs/package.json subgraphs/jobs/
COPY gateway/package.json gateway/
COPY workers/converter/package.json workers/converter/
COPY workers/notifier/package.json workers/notifier/
COPY sdk/package.json sdk/
COPY cli/package.json cli/
COPY web/package.json web/

# ---- build: every workspace compiled once (codegen, tsc -b, web assets) -------------------------------------------

FROM manifests AS build
RUN --mount=type=cache,target=/root/.npm npm ci
COPY . .
# Declarations and TypeScript's build info are for compilers, not for running: kept out of every image.
RUN npm run build \
    && find packages gateway subgraphs workers -path '*/node_modules' -prune -o -type f \
       \( -name '*.d.ts' -o -name '*.d.ts.map' -o -name '*.tsbuildinfo' \) -exec rm -f {} +

# ---- production dependencies, one set per deployable ---------------------------------------------------------------
# `--workspace` keeps each image to what its own package.json (and @vidmp3/shared's) needs. No install scripts run:
# none of the production dependencies needs one (native code arrives as prebuilt optional packages).
# npm may nest a dependency under a workspace's own node_modules; the mkdir makes that folder exist either way.

FROM manifests AS deps-gateway
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --workspace=@vidmp3/gateway \
    && mkdir -p gateway/node_modules packages/shared/node_modules

FROM manifests AS deps-users
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --workspace=@vidmp3/users \
    && mkdir -p subgraphs/users/node_modules packages/shared/node_modules

FROM manifests AS deps-media
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --workspace=@vidmp3/media \
    && mkdir -p subgraphs/media/node_modules packages/shared/node_modules

FROM manifests AS deps-jobs
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --workspace=@vidmp3/jobs \
    && mkdir -p subgraphs/jobs/node_modules packages/shared/node_modules

FROM manifests AS deps-converter
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --workspace=@vidmp3/converter \
    && mkdir -p workers/converter/node_modules packages/shared/node_modules

FROM manifests AS deps-notifier
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --workspace=@vidmp3/notifier \
    && mkdir -p workers/notifier/node_modules packages/shared/node_modules

# ---- runtime bases ---------------------------------------------------------------------------------------------------

# Files stay owned by root: the service (user node) can read its code but not change it.
FROM node-base AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0
COPY --from=build /app/package.json ./
COPY --from=build /app/packages/shared/package.json packages/shared/
COPY --from=build /app/packages/shared/dist packages/shared/dist
# Scratch space for media's uploads and the converter's mp3s (a volume or an emptyDir is mounted over it).
RUN install -d -m 0700 -o node -g node /scratch

# Debian's ffmpeg 5.1 (it carries ffprobe too); never the static npm builds (see DESIGN.md, "ffmpeg").
FROM runtime AS runtime-ffmpeg
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

# ---- deployables -------------------------------------------------------------------------------------------------

FROM runtime AS gateway
COPY --from=deps-gateway /app/node_modules node_modules
COPY --from=deps-gateway /app/packages/shared/node_modules packages/shared/node_modules
COPY --from=deps-gateway /app/gateway/node_modules gateway/node_modules
COPY --from=build /app/gateway/package.json gateway/
COPY --from=build /app/gateway/dist gateway/dist
COPY --from=build /app/supergraph.graphql ./
COPY --from=build /app/web/dist web/dist
USER node
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "gateway/dist/main.js"]

FROM runtime AS users
COPY --from=deps-users /app/node_modules node_modules
COPY --from=deps-users /app/packages/shared/node_modules packages/shared/node_modules
COPY --from=deps-users /app/subgraphs/users/node_modules subgraphs/users/node_modules
COPY --from=build /app/subgraphs/users/package.json /app/subgraphs/users/schema.graphql subgraphs/users/
COPY --from=build /app/subgraphs/users/dist subgraphs/users/dist
USER node
EXPOSE 4001
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4001)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "subgraphs/users/dist/main.js"]

FROM runtime-ffmpeg AS media
COPY --from=deps-media /app/node_modules node_modules
COPY --from=deps-media /app/packages/shared/node_modules packages/shared/node_modules
COPY --from=deps-media /app/subgraphs/media/node_modules subgraphs/media/node_modules
COPY --from=build /app/subgraphs/media/package.json /app/subgraphs/media/schema.graphql subgraphs/media/
COPY --from=build /app/subgraphs/media/dist subgraphs/media/dist
USER node
EXPOSE 4002
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4002)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "subgraphs/media/dist/main.js"]

FROM runtime AS jobs
COPY --from=deps-jobs /app/node_modules node_modules
COPY --from=deps-jobs /app/packages/shared/node_modules packages/shared/node_modules
COPY --from=deps-jobs /app/subgraphs/jobs/node_modules subgraphs/jobs/node_modules
COPY --from=build /app/subgraphs/jobs/package.json /app/subgraphs/jobs/schema.graphql subgraphs/jobs/
COPY --from=build /app/subgraphs/jobs/dist subgraphs/jobs/dist
USER node
EXPOSE 4003
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||4003)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "subgraphs/jobs/dist/main.js"]

FROM runtime-ffmpeg AS converter
COPY --from=deps-converter /app/node_modules node_modules
COPY --from=deps-converter /app/packages/shared/node_modules packages/shared/node_modules
COPY --from=deps-converter /app/workers/converter/node_modules workers/converter/node_modules
COPY --from=build /app/workers/converter/package.json workers/converter/
COPY --from=build /app/workers/converter/dist workers/converter/dist
USER node
EXPOSE 4010
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HEALTH_PORT||4010)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "workers/converter/dist/main.js"]

# Mail: no ffmpeg, no scratch space (mails wait in its database, not on disk).
FROM runtime AS notifier
COPY --from=deps-notifier /app/node_modules node_modules
COPY --from=deps-notifier /app/packages/shared/node_modules packages/shared/node_modules
COPY --from=deps-notifier /app/workers/notifier/node_modules workers/notifier/node_modules
COPY --from=build /app/workers/notifier/package.json workers/notifier/
COPY --from=build /app/workers/notifier/dist workers/notifier/dist
USER node
EXPOSE 4011
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HEALTH_PORT||4011)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "workers/notifier/dist/main.js"]
