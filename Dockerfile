# syntax=docker/dockerfile:1

# Node.js 26, the active LTS, on Debian 13 "trixie" (ffmpeg 7.1), for both stages. The service supports
# Node.js >= 20.12 (package.json "engines"); CI runs the tests on Node.js 20.
ARG NODE_IMAGE=node:26-trixie-slim

# Build stage: the same `npm ci` and `npm run build` that CI runs.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json vite.config.ts ./
COPY src ./src
COPY web ./web
RUN npm run build

# Runtime stage: production dependencies, the compiled service and web app, its migrations and ffmpeg. No dev
# dependencies and no sources: the tools run as `node dist/migrate.js`, `node dist/check-storage.js` and
# `node dist/migrate-storage.js`.
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY drizzle ./drizzle
# The image's user `node` (uid 1000) owns /data; a fresh volume mounted there inherits that owner.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + process.env.PORT + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# The same command as `npm start` (test/unit/start-command.test.ts checks it). V8's young generation grows to
# 2 × 16 MB semi-spaces under an upload's stream of short-lived buffers; 2 MB ones keep about 30 MB less
# resident at no measured CPU cost (row 29 of docs/benchmarks.md; README, "Memory"). Without V8's memory
# reducer, an idle spell no longer shrinks the heap to its live size, after which a burst of downloads forced
# a full collection every few dozen milliseconds (bench/NOTES.md, row 7). Letting the heap grow to twice its
# live size before the next full collection stops the uploads' buffers from forcing about eight of them per
# eight uploads, which were half of the server's CPU (bench/NOTES.md, row 28).
CMD ["node", "--max-semi-space-size=2", "--no-memory-reducer", "--heap-growing-percent=100", "dist/main.js"]
