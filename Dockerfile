# syntax=docker/dockerfile:1
#
# cdr-ingest container image. By default one pass over the look-back window (run it on
# a schedule: cron, a Kubernetes CronJob, see deploy/); `daemon` schedules passes
# itself. Configuration from /etc/cdr-ingest/config.toml, secrets from the environment
# or from files such as /run/secrets/*. More in deploy/docker-run.md.
#
#   docker build -t cdr-ingest .
#   docker run --rm -v "$PWD/config.toml:/etc/cdr-ingest/config.toml:ro" \
#       -e CDR_INGEST_SOURCE_PASSWORD=… -e AWS_ACCESS_KEY_ID=… -e AWS_SECRET_ACCESS_KEY=… \
#       cdr-ingest
#
# Needs BuildKit (the default builder since Docker 23) for the cache and bind mounts.
# Both stages are Debian 12 (bookworm), so the binary links against the same glibc and
# OpenSSL 3.0 ABI it finds at run time.

######################################################################################
# Build stage
######################################################################################
FROM rust:1.95-slim-bookworm AS builder

# The image brings gcc and libc6-dev (enough for the C code that aws-lc-sys, zstd-sys
# and libssh2-sys compile with the cc crate: no cmake, clang or g++ is needed). On top:
# - pkg-config + libssl-dev: libssh2-sys builds its bundled libssh2 against the
#   system OpenSSL (openssl-sys finds it with pkg-config);
# - zlib1g-dev: libz-sys (libssh2's compression) then links the system zlib, as on
#   the development machines (whose image has zlib1g-dev), instead of compiling its
#   own copy; the run stage's zlib1g gets Debian's security updates.
# Versions are not pinned (DL3008): bookworm only ever ships one version of each, and
# an old pin disappears from the mirrors at the next security update, breaking builds.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libssl-dev \
        pkg-config \
        zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# The sources are bind-mounted (not copied into a layer) and the cargo registry and
# target folder live in BuildKit cache mounts: a rebuild after a source change
# downloads nothing and recompiles only this crate, and no build artefacts end up in
# an image layer. The target folder is a cache mount, so the binary is copied out of
# it in the same step. --locked: build exactly the dependency versions in Cargo.lock.
# (A builder without a persistent BuildKit cache, e.g. a fresh CI runner, simply does
# a full build.)
RUN --mount=type=bind,source=Cargo.toml,target=Cargo.toml \
    --mount=type=bind,source=Cargo.lock,target=Cargo.lock \
    --mount=type=bind,source=src,target=src \
    --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release --locked --bin cdr-ingest \
 && install -m 0755 target/release/cdr-ingest /usr/local/bin/cdr-ingest

######################################################################################
# Run stage
######################################################################################
FROM debian:bookworm-slim

# Build-time metadata, e.g.
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#       --build-arg SOURCE_URL=https://github.com/ORG/cdr-ingest -t cdr-ingest .
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="cdr-ingest" \
      org.opencontainers.image.description="Ingests a hosted PBX's nightly FTPS/SFTP call-record drop into object storage as deduplicated, partitioned Parquet." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# What the binary needs beyond the slim base (libc6 and libgcc-s1 are already there),
# as `readelf -d` on the release binary lists it:
# - libssl3: libssl.so.3 and libcrypto.so.3, for libssh2 (SFTP);
# - zlib1g: libz.so.1, for libssh2 (already in the base; listed so it is not lost);
# - ca-certificates: the system roots that FTPS (rustls-native-certs) and the
#   object-store HTTPS clients trust.
# Not pinned, for the same reason as above.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        ca-certificates \
        libssl3 \
        zlib1g \
 && rm -rf /var/lib/apt/lists/*

# An unprivileged user with a fixed, numeric uid/gid (10001) so that Kubernetes'
# runAsNonRoot can check it and mounted secrets can be made readable to it. No home
# folder and no login shell; --no-log-init keeps a high uid from bloating
# /var/log/lastlog and faillog (DL3046). /var/lib/cdr-ingest is its working folder
# and the place to mount a volume for a file:// destination (the default in
# config/example.toml). /etc/cdr-ingest is where the configuration is mounted.
RUN groupadd --gid 10001 cdr-ingest \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin cdr-ingest \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/cdr-ingest \
 && install -d -m 0755 /etc/cdr-ingest

# Owned by root and not writable by the user that runs it.
COPY --from=builder /usr/local/bin/cdr-ingest /usr/local/bin/cdr-ingest

# JSON lines for log collectors (`auto` would choose them anyway without a terminal,
# but `docker run -t` would then get text). RUST_LOG sets the level (default info).
# Temporary files (spooled downloads, Parquet being written) go to TMPDIR, /tmp by
# default: give it room, or an emptyDir in Kubernetes with a read-only root.
ENV CDR_INGEST_LOG_FORMAT=json

USER 10001:10001
WORKDIR /var/lib/cdr-ingest

# No HEALTHCHECK: the default command is a one-shot pass and its exit code is its
# health (0 ok, 1 a file failed or is overdue, 2 bad configuration, 3 could not start,
# 4 stopped by SIGTERM/SIGINT). SIGTERM (the default stop signal) is handled even as
# process 1: no new file is started and files in flight get ingest.shutdown_grace_secs
# (30 s), so stop with a longer timeout than Docker's 10 s (`docker stop -t 45`).
# Without dates `run` does one pass over the look-back window; give another command
# for anything else, e.g. `… cdr-ingest daemon --config /etc/cdr-ingest/config.toml`,
# `… backfill --config … --from 2024-01-01 --to 2024-03-31` or `… status --config …`;
# for pushed records `… serve --config …` (listens on 8080, GET /healthz for probes;
# deploy/serve.yaml).
EXPOSE 8080
ENTRYPOINT ["cdr-ingest"]
CMD ["run", "--config", "/etc/cdr-ingest/config.toml"]
