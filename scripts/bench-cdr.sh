#!/usr/bin/env bash
# Benchmark (not a test): one day of CDRs served by vsftpd over explicit FTPS on
# loopback, through to zstd Parquet on file://, against DuckDB doing the same work
# from the CSV on local disk (read → drop duplicate ids → write zstd Parquet).
# Reports min and median wall time and peak RSS of each, REPS runs each.
#
#   scripts/bench-cdr.sh [ROWS] [REPS]        defaults: 1000000 rows, 3 repetitions
set -euo pipefail

rows=${1:-1000000}
reps=${2:-3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time; }
python3 -c 'import duckdb' 2>/dev/null || pip install -q duckdb==1.4.4

cargo build --release --quiet
bin=$repo/target/release/cdr-ingest

# shellcheck source=scripts/test-servers.sh
source "$repo/scripts/test-servers.sh"
trap stop_test_servers EXIT

day=2024-03-01
drop=$CDR_TEST_FTPS_ROOT/bench
"$bin" generate --out "$drop" --from "$day" --to "$day" --rows-per-day "$rows" --recordings-per-day 0 >/dev/null
rm -rf "$drop/QueueCalls"
csv=$drop/CDRs/$day.csv
bytes=$(stat -c %s "$csv")

work=$(mktemp -d /tmp/cdr-bench.XXXXXX)
cat > "$work/config.toml" <<TOML
[source]
url = "ftps://$CDR_TEST_FTPS_USER@localhost:$CDR_TEST_FTPS_PORT"
ca_file = "$CDR_TEST_CA_FILE"
cdrs = "bench/CDRs"
[destination]
url = "file://$work/out"
[ingest]
categories = ["cdr"]
TOML

cat > "$work/duckdb_cdr.py" <<'PY'
import sys, duckdb
csv, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"""
COPY (
  SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY calldate) AS rn
    FROM read_csv('{csv}', header = true, all_varchar = false, types = {{'id': 'VARCHAR', 'src': 'VARCHAR', 'dst': 'VARCHAR', 'clid': 'VARCHAR', 'src_id': 'VARCHAR'}})
  ) WHERE rn = 1
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
""")
PY

# measure NAME COMMAND...: appends "wall_seconds max_rss_kib" lines to $work/NAME
measure() {
    local name=$1; shift
    /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" >/dev/null 2>"$work/$name.stderr" || {
        echo "$name failed:"; cat "$work/$name.stderr"; exit 1; }
    cat "$work/time.out" >> "$work/$name"
}

for _ in $(seq "$reps"); do
    rm -rf "$work/out"
    measure ours env CDR_INGEST_SOURCE_PASSWORD="$CDR_TEST_FTPS_PASSWORD" CDR_INGEST_LOG_FORMAT=json \
        "$bin" run --config "$work/config.toml" --date "$day"
    rm -f "$work/duckdb.parquet"
    measure duckdb python3 "$work/duckdb_cdr.py" "$csv" "$work/duckdb.parquet"
done

summary() {
    sort -n "$work/$1" | awk -v name="$1" -v bytes="$bytes" -v rows="$rows" '
        { t[NR] = $1; if ($2 > rss) rss = $2 }
        END {
            med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
            printf "| %s | %.2f | %.2f | %.0f | %.1f | %.0f |\n", name, t[1], med, rows / med, bytes / med / 1048576, rss / 1024
        }'
}

echo
echo "CDR day: $rows rows, $bytes bytes; $reps runs each; $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
echo "| tool | min s | median s | rows/s | MiB/s | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
summary ours
summary duckdb
echo
echo "ours: $(du -sb "$work/out/cdr" | cut -f1) bytes of Parquet; duckdb: $(stat -c %s "$work/duckdb.parquet") bytes"
rm -rf "$work" "$drop"
