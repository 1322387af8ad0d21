#!/usr/bin/env bash
# Installs and starts everything the tests need (vsftpd and pure-ftpd with explicit
# FTPS, OpenSSH for SFTP, moto for S3, a Prometheus Pushgateway, promtool from
# Debian's prometheus package for the alert rules, test certificates and keys: see
# scripts/test-servers.sh, which installs only what is missing), then runs every check: formatting, clippy, unit and
# integration tests. CI runs exactly this (see .ci/run). Safe to run again: each run
# gets fresh servers on free loopback ports, stopped on exit.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# Build tools: rustfmt and clippy ship with the toolchain; add them if a minimal
# toolchain lacks them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

# Build dependencies: ssh2 links libssh2 against OpenSSL, found with pkg-config.
missing_packages=()
for package in libssl-dev pkg-config; do
    dpkg -s "$package" >/dev/null 2>&1 || missing_packages+=("$package")
done
if ((${#missing_packages[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_packages[@]}"
fi

# DuckDB answers the example BI queries in the tests (tests/it/queries.rs).
python3 -c 'import duckdb' 2>/dev/null || pip install --quiet duckdb==1.4.4

# Servers for the integration tests; stop_test_servers kills them on exit.
# shellcheck source=scripts/test-servers.sh
source "$repo/scripts/test-servers.sh"
trap stop_test_servers EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo test"
# One build profile (dev) for tests and clippy keeps CI to a single dependency build.
cargo test --all-targets --locked

echo "== cargo clippy -D warnings"
cargo clippy --all-targets --locked -- -D warnings

echo "== all checks passed"
