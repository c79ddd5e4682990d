# breakid: one image for every service (`breakid serve|ingest|detect|notify|collect|dashboard|migrate`).
# Nothing is downloaded at build or run time beyond `npm ci`: .npmrc skips onnxruntime-node's CUDA
# download, chDB ships in its npm package, and the ONNX models are generated at start into
# BREAKID_MODEL_CACHE. Build: docker build -t breakid .   (validated by test/unit/deploy.test.ts only
# statically: no container runtime runs where the tests run)
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production \
    BREAKID_DATA_DIR=/var/lib/breakid/data \
    BREAKID_MODEL_CACHE=/var/lib/breakid/models \
    BREAKID_METRICS_HOST=0.0.0.0

# dependencies first, so a source change does not reinstall them
COPY package.json package-lock.json .npmrc ./
# tsx (the TypeScript loader the CLI runs with) is a runtime dependency; typescript and biome are not
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# the sources: .dockerignore keeps out tests, benchmarks, caches and local data
COPY . .

RUN mkdir -p /var/lib/breakid/data /var/lib/breakid/models && chown -R node:node /var/lib/breakid
USER node
VOLUME ["/var/lib/breakid"]

ENTRYPOINT ["node", "bin/breakid.mjs"]
CMD ["--help"]
