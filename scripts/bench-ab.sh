#!/usr/bin/env bash
# Benchmark (not a test): two builds of cdr-ingest on the same cases, alternated run
# by run so that both see the same machine, to tell whether a change made the worker
# slower. Cases, over explicit FTPS from vsftpd on loopback (as scripts/bench.sh):
#   cdr         one day of 1,000,000 CDR rows (about 140 MB) to zstd Parquet
#   recordings  2,000 × 256 KiB recordings, ingest.transfers = 4
#
#   scripts/bench-ab.sh OLD_BINARY NEW_BINARY [REPS]     (REPS default 5)
#
# Prints min and median wall time and the highest peak RSS (GNU time) of each binary
# per case. The data is `cdr-ingest generate`'s (made with NEW_BINARY), kept in
# BENCH_DIR (default /tmp/cdr-bench-ab) between runs.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
old=$(realpath "$1")
new=$(realpath "$2")
reps=${3:-5}
work=${BENCH_DIR:-/tmp/cdr-bench-ab}
mkdir -p "$work"

export CDR_TEST_FTPS_PASV_PORTS=${CDR_TEST_FTPS_PASV_PORTS:-1000}
# shellcheck source=scripts/test-servers.sh
source "$repo/scripts/test-servers.sh"
trap stop_test_servers EXIT
root=$CDR_TEST_FTPS_ROOT

# generate NAME ARGS...: a drop in $work/NAME (kept while its arguments stay the same),
# served as $root/NAME.
generate() {
    local name=$1; shift
    if [[ ! -f $work/$name/.spec || $(cat "$work/$name/.spec") != "$*" ]]; then
        rm -rf "${work:?}/$name"
        "$new" generate --out "$work/$name" "$@" >/dev/null
        echo "$*" >"$work/$name/.spec"
    fi
    chmod -R a+rX "$work/$name"
    rm -rf "${root:?}/$name"
    cp -al "$work/$name" "$root/$name" 2>/dev/null || cp -a "$work/$name" "$root/$name"
}
generate cdr --from 2024-03-01 --to 2024-03-01 --rows-per-day 1000000 --recordings-per-day 0
generate recordings --from 2024-03-01 --to 2024-03-01 --rows-per-day 2000 \
    --recordings-per-day 2000 --recording-bytes 262144

# config NAME CATEGORIES: a config reading $root/NAME's folders into $work/out.
config() {
    cat >"$work/$1.toml" <<TOML
[source]
url = "ftps://$CDR_TEST_FTPS_USER@localhost:$CDR_TEST_FTPS_PORT"
ca_file = "$CDR_TEST_CA_FILE"
cdrs = "$1/CDRs"
queue_calls = "$1/QueueCalls"
recordings = "$1/recordings"
[destination]
url = "file://$work/out"
[ingest]
categories = [$2]
transfers = 4
recordings_min_age_secs = 0
TOML
}
config cdr '"cdr"'
config recordings '"recordings"'

results=$work/results.tsv
: >"$results"
for ((rep = 1; rep <= reps; rep++)); do
    for case in cdr recordings; do
        for which in old new; do
            bin=$old
            [[ $which == new ]] && bin=$new
            rm -rf "$work/out"
            /usr/bin/time -f '%e %M' -o "$work/time.out" \
                env CDR_INGEST_SOURCE_PASSWORD="$CDR_TEST_FTPS_PASSWORD" CDR_INGEST_LOG_FORMAT=json \
                "$bin" run --config "$work/$case.toml" --date 2024-03-01 >"$work/$case-$which.log" 2>&1
            read -r wall rss <"$work/time.out"
            printf '%s\t%s\t%s\t%s\n' "$case" "$which" "$wall" "$rss" >>"$results"
            printf '  %-10s %-3s run %d: %6.2f s %7.1f MiB\n' "$case" "$which" "$rep" "$wall" \
                "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
        done
    done
done

echo
echo "case        build  min s  median s  peak MiB   ($reps runs each, alternated)"
for case in cdr recordings; do
    for which in old new; do
        awk -F'\t' -v c="$case" -v w="$which" '$1 == c && $2 == w { print $3, $4 }' "$results" |
            sort -n | awk -v c="$case" -v w="$which" '
                { wall[NR] = $1; if ($2 > rss) rss = $2 }
                END {
                    median = (NR % 2) ? wall[(NR + 1) / 2] : (wall[NR / 2] + wall[NR / 2 + 1]) / 2
                    printf "%-11s %-5s %6.2f  %8.2f  %8.1f\n", c, w, wall[1], median, rss / 1024
                }'
    done
done
