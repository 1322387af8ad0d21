#!/usr/bin/env bash
# Benchmark (not a test): `cdr-ingest serve` under 64 concurrent clients, into a
# `file://` destination and into moto (S3), beside the physical reference: a minimal
# receiver that only appends each body to a local file and answers
# (scripts/bench_serve_receiver.py).
#
#   scripts/bench-serve.sh
#
# Environment (all optional):
#   CDR_INGEST_BIN     binary to measure, default target/release/cdr-ingest (copied first)
#   BENCH_SECS         seconds of load per case, default 20
#   BENCH_CONNECTIONS  concurrent clients (connections), default 64
#   BENCH_THREADS      wrk threads, default 2
#   BENCH_CASES        which cases, default "reference file moto"
#
# The load tool is wrk (Debian's `wrk`, `apt-get install wrk`) with
# scripts/bench-serve.lua: each request a JSON record with a new ivruniqueid (so every
# one is stored, none is a resend), keep-alive connections. Per case: requests/s, p50
# and p99 latency (wrk --latency), the server's peak RSS (VmHWM) and CPU seconds, wrk's
# own CPU seconds (it runs on the same cores), and for serve the records compacted
# after the load (the inbox drained). Everything runs on this machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${BENCH_SECS:-20}
connections=${BENCH_CONNECTIONS:-64}
threads=${BENCH_THREADS:-2}
cases=${BENCH_CASES:-reference file moto}
work=$(mktemp -d /tmp/cdr-bench-serve.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
bin_src=${CDR_INGEST_BIN:-$root/target/release/cdr-ingest}
cp "$bin_src" "$work/cdr-ingest"
bin=$work/cdr-ingest
export CDR_PUSH_TOKEN=bench-token

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_secs() { # utime+stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2; return 1
}

# Runs wrk against $1 (URL) for server pid $2; prints one result line for case $3.
load() {
  local url=$1 pid=$2 name=$3 out=$work/wrk-$3.txt
  local before; before=$(cpu_secs "$pid")
  /usr/bin/time -f '%U %S' -o "$work/wrk-time-$name" \
    wrk -t"$threads" -c"$connections" -d"${secs}s" --latency -s "$root/scripts/bench-serve.lua" "$url" >"$out"
  local after; after=$(cpu_secs "$pid")
  local rps p50 p99 errors rss wrk_cpu
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1=="50%" {print $2}' "$out")
  p99=$(awk '$1=="99%" {print $2}' "$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$out" | tr '\n' ' ')
  rss=$(awk '/VmHWM/ {print $2 " " $3}' "/proc/$pid/status")
  wrk_cpu=$(awk '{print $1+$2}' "$work/wrk-time-$name")
  printf '%-10s %10s req/s  p50 %8s  p99 %8s  peak RSS %10s  server CPU %6.1f s  wrk CPU %5.1f s  %s\n' \
    "$name" "$rps" "$p50" "$p99" "$rss" "$(echo "$after - $before" | bc)" "$wrk_cpu" "$errors"
}

config() { # $1 destination block
  cat >"$work/serve.toml" <<TOML
[source]
url = "ftps://unused@h"
$1
[serve]
listen = "127.0.0.1:$port"
flush_secs = 5
TOML
}

drain() { # waits until the inbox under file dir $1 is empty (file:// only)
  for _ in $(seq 1 600); do
    [ -z "$(ls -A "$1/_state/push/inbox" 2>/dev/null)" ] && return 0
    sleep 0.5
  done
}

echo "wrk -t$threads -c$connections -d${secs}s, $(nproc) cores, $(git -C "$root" rev-parse --short HEAD)"
for case in $cases; do
  port=$(free_port)
  case $case in
    reference)
      python3 "$root/scripts/bench_serve_receiver.py" "$port" "$work/received.jsonl" &
      pid=$!; wait_port "$port"
      load "http://127.0.0.1:$port/push/x" "$pid" reference
      kill "$pid"; wait "$pid" 2>/dev/null || true
      ;;
    file)
      config "[destination]
url = \"file://$work/dest\""
      "$bin" --log-format json serve --config "$work/serve.toml" 2>"$work/serve-file.log" &
      pid=$!; wait_port "$port"
      load "http://127.0.0.1:$port/push/$CDR_PUSH_TOKEN" "$pid" file
      started=$(date +%s.%N); drain "$work/dest"
      echo "           inbox compacted $(echo "$(date +%s.%N) - $started" | bc | cut -c1-5) s after the load; $(python3 -c "import duckdb; print(duckdb.sql(\"select count(*) from read_parquet('$work/dest/push_cdr/**/*.parquet')\").fetchone()[0])" 2>/dev/null || echo '?') rows in push_cdr"
      kill "$pid"; wait "$pid" 2>/dev/null || true
      ;;
    moto)
      mport=$(free_port)
      moto_server -p "$mport" >"$work/moto.log" 2>&1 &
      mpid=$!; wait_port "$mport"
      python3 - "$mport" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/bench", method="PUT"))
PY
      config "[destination]
url = \"s3://bench/push\"
[destination.options]
endpoint = \"http://127.0.0.1:$mport\"
region = \"us-east-1\"
allow_http = \"true\"
virtual_hosted_style_request = \"false\"
access_key_id = \"x\"
secret_access_key = \"y\""
      "$bin" --log-format json serve --config "$work/serve.toml" 2>"$work/serve-moto.log" &
      pid=$!; wait_port "$port"
      load "http://127.0.0.1:$port/push/$CDR_PUSH_TOKEN" "$pid" moto
      echo "           moto CPU $(cpu_secs "$mpid") s in all (single-threaded Python)"
      kill "$pid" "$mpid"; wait "$pid" "$mpid" 2>/dev/null || true
      ;;
  esac
done
