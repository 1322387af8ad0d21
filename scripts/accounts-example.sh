#!/usr/bin/env bash
# Writes an example configuration with N provider accounts ([[accounts]], default 300)
# to stdout: what a reseller with hundreds of accounts on one provider puts in one
# file. config/accounts-300.toml is its output (a test checks the two agree and that
# the file is valid):
#
#   bash scripts/accounts-example.sh 300 > config/accounts-300.toml
set -euo pipefail
n=${1:-300}
cat <<HEAD
# cdr-ingest with ${n} provider accounts in one bucket (written by
# scripts/accounts-example.sh ${n}; see README, Accounts).
#
# The sections at the top are shared. [source] here holds what every account's
# source has in common; each [[accounts]] gives its name and its own
# [accounts.source] (URL with its user, its password's variable or file), which win
# over the shared keys. Each account's objects go under account=<name>/ in the
# destination, so a query engine sees "account" as a partition column.

[source]
timeout_secs = 30
retry_max_secs = 300
cdrs = "CDRs"
queue_calls = "QueueCalls"
recordings = "recordings"

[destination]
url = "s3://cdr-archive/provider"

[ingest]
categories = ["cdr", "queue", "recordings"]
lease_secs = 600

[schedule]
lookback_days = 7
cron = "0 15 1 * * *"

[retention]
recordings = 365
HEAD
for i in $(seq 1 "$n"); do
  name=$(printf 'acct%03d' "$i")
  upper=$(printf 'ACCT%03d' "$i")
  printf '\n[[accounts]]\nname = "%s"\n[accounts.source]\n' "$name"
  if (( i % 50 == 0 )); then
    # Some accounts deliver over SFTP with a key instead.
    printf 'url = "sftp://%s@sftp.provider.example:22"\n' "$name"
    printf 'key_file = "/run/secrets/%s/sftp_key"\n' "$name"
    printf 'known_hosts = "/etc/cdr-ingest/known_hosts"\n'
  elif (( i % 2 == 0 )); then
    printf 'url = "ftps://%s@ftp.provider.example:21"\n' "$name"
    printf 'password_file = "/run/secrets/%s/password"\n' "$name"
  else
    printf 'url = "ftps://%s@ftp.provider.example:21"\n' "$name"
    printf 'password_env = "CDR_PASSWORD_%s"\n' "$upper"
  fi
  if (( i % 25 == 0 )); then
    # An account that keeps its recordings longer and ingests a longer window.
    printf '[accounts.retention]\nrecordings = 730\n[accounts.schedule]\nlookback_days = 14\n'
  fi
done
