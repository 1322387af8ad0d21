#!/usr/bin/env bash
# Benchmark (not a test): cdr-ingest against the tools a user would pick instead —
# rclone and lftp to move the files, DuckDB and pandas to turn the CSV into Parquet —
# on this machine, against the same real servers scripts/test.sh starts (vsftpd for
# explicit FTPS, OpenSSH for SFTP), all on loopback. Writes bench/RESULTS.md.
#
#   scripts/bench.sh [SECTION...]      default: all sections, in this order
#
# Sections (each replaces its own part of bench/RESULTS.md, so one can be rerun alone):
#   recordings  2,000 × 256 KiB and 200 × 4 MiB recordings, FTPS and SFTP: ours
#               (ingest.transfers 1/4/8), ours at rclone's work (no checksum, TLS 1.2
#               resumed) vs `rclone copy --transfers 1/4/8` vs `lftp mirror
#               --parallel=1/4/8`
#   cdr         one day of 1,000,000 CDR rows to zstd Parquet: ours over FTPS and from
#               local disk vs DuckDB and pandas from local disk, and rclone + DuckDB
#   scale       peak RSS and time with 1,000 / 10,000 / 100,000 recordings in the folder
#               (first copy, then a pass with nothing new) and with 100,000 / 1,000,000
#               / 10,000,000 CDR rows in one day, and `verify` of what each wrote
#   day         a full day (CDR, queue zip, 2,000 recordings) end to end, and where the
#               time goes (listing, transfer, parse, write) from the run's JSON log
#   history     a daily pass with five years of ledger and output vs the first day
#               (runs scripts/bench-retention.sh, which also measures retention)
#   latency     600 × 256 KiB recordings over FTPS and SFTP through the delay proxy
#               (examples/delay_proxy) at 0 / 10 / 40 ms round trip, ours (transfers
#               4/8/16, and "auto" up to BENCH_AUTO_MAX) vs `rclone copy --transfers
#               4/8/16`; and round trips
#               per file: on the critical path (the proxy's logical count, one
#               transfer, 40 ms) and FTP commands per file (vsftpd's protocol log).
#               Not in the default list (it takes about 15 minutes): name it.
#
# Environment (all optional):
#   BENCH_REPS      repetitions of each timed case, default 3 (scale: 1)
#   BENCH_DIR       work folder, default /tmp/cdr-bench (data is generated once, kept
#                   between runs of this script, and reused when its spec matches)
#   BENCH_OUT       results file, default bench/RESULTS.md
#   BENCH_PROTOCOLS protocols of the recordings and latency sections, default "ftps sftp"
#   BENCH_PROFILE   cargo profile of the binaries, default release (debug: a quick look
#                   whose wall times are not comparable with the release figures)
#   BENCH_RTTS      round trips (ms) of the latency section, default "0 10 40"
#   BENCH_TRANSFERS transfers of the latency section, default "4 8 16 auto"
#   BENCH_AUTO_MAX  source.max_connections of ours with transfers "auto", default 16
#
# Every figure is wall time (min and median of the repetitions) and peak RSS (max) as
# GNU time reports them for the whole command, startup included; output is written to
# local disk (file://) by every tool, with a warm page cache.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
reps=${BENCH_REPS:-3}
work=${BENCH_DIR:-/tmp/cdr-bench}
out_file=${BENCH_OUT:-$repo/bench/RESULTS.md}
sections=("$@")
((${#sections[@]})) || sections=(recordings cdr scale day history)
for s in "${sections[@]}"; do
    [[ $s =~ ^(recordings|cdr|scale|day|history|latency)$ ]] || { echo "unknown section: $s" >&2; exit 2; }
done

# ---------------------------------------------------------------------------------
# Tools: the peers at the versions Debian 12 and PyPI give today.
need=()
command -v /usr/bin/time >/dev/null || need+=(time)
command -v rclone >/dev/null || need+=(rclone)
command -v lftp >/dev/null || need+=(lftp)
if ((${#need[@]})); then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -c 'import duckdb' 2>/dev/null || pip install -q duckdb==1.4.4
python3 -c 'import pandas, pyarrow' 2>/dev/null || pip install -q pandas pyarrow

profile=${BENCH_PROFILE:-release}
cargo build --profile "${profile/debug/dev}" --quiet --bin cdr-ingest --example delay_proxy
mkdir -p "$work"
# A copy, so a rebuild while the benchmark runs cannot change what is measured.
export bin=$work/cdr-ingest
cp "$repo/target/$profile/cdr-ingest" "$bin"
cp "$repo/target/$profile/examples/delay_proxy" "$work/delay_proxy"

# Thousands of data connections a minute: give vsftpd a wide passive port range.
export CDR_TEST_FTPS_PASV_PORTS=${CDR_TEST_FTPS_PASV_PORTS:-1000}
# shellcheck source=scripts/test-servers.sh
source "$repo/scripts/test-servers.sh"
trap stop_test_servers EXIT
root=$CDR_TEST_FTPS_ROOT        # "/" of the FTPS session; SFTP sees it as $CDR_TEST_SFTP_ROOT

# run, section, case, tool, setting, units, bytes, wall s, peak RSS KiB. Kept between
# runs: the report takes each case's figures from the latest run that measured it.
results=$work/results.tsv
run_id=$(date -u +%Y%m%dT%H%M%S)
touch "$results" "$work/problems.txt"
day=2024-03-01

# ---------------------------------------------------------------------------------
# Helpers

# drop NAME ARGS...: a generated drop in $work/drops/NAME (kept while its arguments
# stay the same), put into the served folder as $root/NAME.
drop() {
    local name=$1; shift
    local dir=$work/drops/$name spec="$*"
    if [[ ! -f $dir/.spec || $(cat "$dir/.spec") != "$spec" ]]; then
        rm -rf "$dir"
        "$bin" generate --out "$dir" "$@" >/dev/null
        echo "$spec" >"$dir/.spec"
    fi
    chmod -R a+rX "$dir"
    rm -rf "${root:?}/$name"
    # Hard links when both are on one file system (a 10M-row CSV is 1.4 GB).
    cp -al "$dir" "$root/$name" 2>/dev/null || cp -a "$dir" "$root/$name"
}

# measure SECTION CASE TOOL SETTING UNITS BYTES -- COMMAND...: one timed run. A run
# that fails is reported in the results (with its log) and the benchmark goes on.
measure() {
    local section=$1 case=$2 tool=$3 setting=$4 units=$5 bytes=$6; shift 7
    local log=$work/logs/$section-$case-$tool-$setting.log
    mkdir -p "$work/logs"
    # Through bash, so the command can be one of the functions below (same small
    # start-up cost for every tool).
    if ! /usr/bin/time -f '%e %M' -o "$work/time.out" \
        bash -c "$(declare -f ours rclone_copy lftp_mirror latency_rclone); \"\$@\"" bench "$@" >"$log" 2>&1; then
        echo "FAILED: $section $case $tool $setting (log: $log)" >&2
        tail -5 "$log" >&2
        printf '%s\t%s: %s (%s) failed on %s; log: %s\n' "$run_id" "$section" "$tool" "$setting" \
            "$case" "$log" >>"$work/problems.txt"
        return 0
    fi
    read -r wall rss <"$work/time.out"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run_id" "$section" "$case" "$tool" "$setting" \
        "$units" "$bytes" "$wall" "$rss" >>"$results"
    printf '  %-10s %-14s %-16s %-4s %7.2f s %8.1f MiB\n' "$section" "$case" "$tool" "$setting" \
        "$wall" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
}

# ours_config FILE SOURCE_TOML CATEGORIES TRANSFERS DEST: a config for our binary.
# expect_files DIR COUNT WHAT: a copy that did not copy everything is not a result.
expect_files() {
    local found
    found=$(find "$1" -name '*.mp3' 2>/dev/null | wc -l)
    if ((found != $2)); then
        echo "WARNING: $3 left $found of $2 files" >&2
        printf '%s\trecordings: %s left %s of %s files\n' "$run_id" "$3" "$found" "$2" >>"$work/problems.txt"
    fi
}

# TRANSFERS "auto" copies with up to BENCH_AUTO_MAX (default 16) connections; a number,
# with that many (source.max_connections is raised to it: its default, 4, would cap
# every count above it).
ours_config() {
    local transfers=$4 max=$4
    if [[ $4 == auto ]]; then transfers='"auto"' max=${BENCH_AUTO_MAX:-16}; fi
    cat >"$1" <<TOML
[source]
$2
max_connections = $max
[destination]
url = "file://$5"
[ingest]
categories = [$3]
transfers = $transfers
recordings_min_age_secs = 0
TOML
}
ftps_source() {
    printf 'url = "ftps://%s@localhost:%s"\nca_file = "%s"\n%s' \
        "$CDR_TEST_FTPS_USER" "$CDR_TEST_FTPS_PORT" "$CDR_TEST_CA_FILE" "$1"
}
sftp_source() {
    printf 'url = "sftp://%s@localhost:%s"\nkey_file = "%s"\nknown_hosts = "%s"\n%s' \
        "$CDR_TEST_SFTP_USER" "$CDR_TEST_SFTP_PORT" "$CDR_TEST_SFTP_KEY" \
        "$CDR_TEST_SFTP_KNOWN_HOSTS" "$1"
}
ours() {
    env CDR_INGEST_SOURCE_PASSWORD="$CDR_TEST_FTPS_PASSWORD" CDR_INGEST_LOG_FORMAT=json "$bin" "$@"
}

# rclone, configured by environment (no config file, the password never in argv).
# vsftpd requires TLS session reuse on data connections, which Go's TLS 1.3 client
# does not offer there: rclone's documented disable_tls13 works around it. Hash
# checks over SFTP need a remote shell, which the test sshd (SFTP only) does not give.
export RCLONE_CONFIG=/dev/null
export RCLONE_FTP_HOST=localhost RCLONE_FTP_PORT=$CDR_TEST_FTPS_PORT RCLONE_FTP_USER=$CDR_TEST_FTPS_USER
export RCLONE_FTP_EXPLICIT_TLS=true RCLONE_FTP_DISABLE_TLS13=true
RCLONE_FTP_PASS=$(rclone obscure "$CDR_TEST_FTPS_PASSWORD")
export RCLONE_FTP_PASS
export RCLONE_SFTP_HOST=localhost RCLONE_SFTP_PORT=$CDR_TEST_SFTP_PORT RCLONE_SFTP_USER=$CDR_TEST_SFTP_USER
export RCLONE_SFTP_KEY_FILE=$CDR_TEST_SFTP_KEY RCLONE_SFTP_KNOWN_HOSTS_FILE=$CDR_TEST_SFTP_KNOWN_HOSTS
export RCLONE_SFTP_SHELL_TYPE=none RCLONE_SFTP_DISABLE_HASHCHECK=true
rclone_copy() { # PROTOCOL REMOTE_PATH DEST TRANSFERS
    SSL_CERT_FILE=$CDR_TEST_CA_FILE rclone copy ":$1:$2" "$3" --transfers "$4" --checkers 8
}
# lftp with TLS required and verified for control and data, like ours.
lftp_mirror() { # PROTOCOL REMOTE_PATH DEST PARALLEL
    local open
    if [[ $1 == ftp ]]; then
        open="set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file $CDR_TEST_CA_FILE; set ssl:verify-certificate true; open --env-password -u $CDR_TEST_FTPS_USER -p $CDR_TEST_FTPS_PORT ftp://localhost"
    else
        open="set sftp:connect-program 'ssh -a -x -i $CDR_TEST_SFTP_KEY -o UserKnownHostsFile=$CDR_TEST_SFTP_KNOWN_HOSTS -o StrictHostKeyChecking=yes'; open -u $CDR_TEST_SFTP_USER, -p $CDR_TEST_SFTP_PORT sftp://localhost"
    fi
    LFTP_PASSWORD=$CDR_TEST_FTPS_PASSWORD lftp -c "set cmd:fail-exit true; $open; mirror --parallel=$4 $2 $3"
}

# ---------------------------------------------------------------------------------
section_recordings() {
    echo "== recordings"
    local set count size dest proto n
    for set in "2000 262144" "200 4194304"; do
        read -r count size <<<"$set"
        local name=rec-$count-$size
        drop "$name" --from "$day" --to "$day" --rows-per-day $((count * 4)) \
            --recordings-per-day "$count" --recording-bytes "$size"
        local files bytes
        files=$(find "$root/$name/recordings" -name '*.mp3' | wc -l)
        bytes=$(du -sb --apparent-size "$root/$name/recordings" | cut -f1)
        ((files == count)) || { echo "generated $files recordings, wanted $count" >&2; exit 1; }
        for proto in ${BENCH_PROTOCOLS:-ftps sftp}; do
            local path=$name/recordings source
            [[ $proto == sftp ]] && path=$CDR_TEST_SFTP_ROOT/$name/recordings
            if [[ $proto == ftps ]]; then source=$(ftps_source "recordings = \"$path\"");
            else source=$(sftp_source "recordings = \"$path\""); fi
            # rclone's work: no checksum (rclone computes none over FTP, and hash checks
            # over SFTP are off above) and, over FTPS, TLS 1.2 resumed per data
            # connection (rclone's disable_tls13).
            local equal=$source
            [[ $proto == ftps ]] && equal+=$'\ntls_max_version = "1.2"'
            for n in 1 4 8; do
                dest=$work/out
                ours_config "$work/rec.toml" "$source" '"recordings"' "$n" "$dest"
                ours_config "$work/rec-equal.toml" "$equal" '"recordings"' "$n" "$dest"
                echo "recordings_sha256 = false" >>"$work/rec-equal.toml"
                for _ in $(seq "$reps"); do
                    rm -rf "$dest"
                    measure recordings "$count×$((size / 1024))KiB-$proto" cdr-ingest "$n" "$files" "$bytes" -- \
                        ours run --config "$work/rec.toml" --date "$day"
                    expect_files "$dest/recordings" "$files" "cdr-ingest $count×$size $proto $n"
                    rm -rf "$dest"
                    measure recordings "$count×$((size / 1024))KiB-$proto" cdr-ingest-equal "$n" "$files" "$bytes" -- \
                        ours run --config "$work/rec-equal.toml" --date "$day"
                    expect_files "$dest/recordings" "$files" "cdr-ingest-equal $count×$size $proto $n"
                    rm -rf "$dest"
                    measure recordings "$count×$((size / 1024))KiB-$proto" rclone "$n" "$files" "$bytes" -- \
                        rclone_copy "${proto/ftps/ftp}" "$path" "$dest" "$n"
                    expect_files "$dest" "$files" "rclone $count×$size $proto $n"
                    rm -rf "$dest"
                    measure recordings "$count×$((size / 1024))KiB-$proto" lftp "$n" "$files" "$bytes" -- \
                        lftp_mirror "${proto/ftps/ftp}" "$path" "$dest" "$n"
                    expect_files "$dest" "$files" "lftp $count×$size $proto $n"
                done
            done
        done
    done
    rm -rf "$work/out"
}

# The same work with each peer: read the CSV, keep the first row of each id, write
# zstd Parquet; text columns that look like numbers (ids, phone numbers) kept as text.
write_peer_scripts() {
    cat >"$work/duckdb_cdr.py" <<'PY'
import sys, duckdb
csv, out = sys.argv[1], sys.argv[2]
# "lenient": skip rows DuckDB cannot type (a file with the provider's bad rows).
lenient = ", ignore_errors = true" if sys.argv[3:] == ["lenient"] else ""
duckdb.connect().execute(f"""
COPY (
  SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY calldate) AS rn
    FROM read_csv('{csv}', header = true, types = {{'id': 'VARCHAR', 'src': 'VARCHAR', 'dst': 'VARCHAR', 'clid': 'VARCHAR', 'src_id': 'VARCHAR'}}{lenient})
  ) WHERE rn = 1
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
""")
PY
    # What a run does in DuckDB: the same typed, deduplicated table, then the calls
    # dataset from it (README's CDR mapping in SQL: times, direction, numbers, the
    # caller's name, outcome), both written as zstd Parquet.
    cat >"$work/duckdb_cdr_calls.py" <<'PY'
import sys, duckdb
csv, out, calls = sys.argv[1], sys.argv[2], sys.argv[3]
db = duckdb.connect()
db.execute(f"""
CREATE TEMP TABLE cdr AS
  SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY calldate) AS rn
    FROM read_csv('{csv}', header = true, types = {{'id': 'VARCHAR', 'src': 'VARCHAR', 'dst': 'VARCHAR', 'clid': 'VARCHAR', 'src_id': 'VARCHAR'}})
  ) WHERE rn = 1
""")
db.execute(f"COPY cdr TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
db.execute(f"""
COPY (
  SELECT 'hosted_pbx' AS provider, 'default' AS account, 'cdr' AS feed, id AS call_id,
    calldate AS started_at,
    CASE WHEN billsec > 0 THEN calldate + to_seconds(greatest(duration - billsec, 0)) END AS answered_at,
    calldate + to_seconds(duration) AS ended_at,
    direction, src AS from_number, dst AS to_number,
    CASE WHEN direction = 'inbound' THEN dst END AS did, destination,
    src_id AS agent_id,
    CASE WHEN direction <> 'inbound' THEN nullif(regexp_extract(clid, '^"(.*)" <', 1), '') END AS agent_name,
    NULL::VARCHAR AS queue_id, NULL::VARCHAR AS queue_name,
    greatest(duration - billsec, 0) AS ring_seconds, NULL::BIGINT AS wait_seconds, billsec AS talk_seconds,
    CASE
      WHEN upper(disposition || '/' || t_cause) = 'NO ANSWER/CANCELLED' THEN 'cancelled'
      WHEN upper(disposition || '/' || t_cause) = 'FAILED/CALL REJECTED' THEN 'rejected'
      WHEN upper(disposition) = 'ANSWERED' THEN 'answered'
      WHEN upper(disposition) = 'NO ANSWER' THEN 'no_answer'
      WHEN upper(disposition) = 'BUSY' THEN 'busy'
      WHEN upper(disposition) IN ('FAILED', 'CONGESTION') THEN 'failed'
      ELSE 'other' END AS outcome,
    disposition AS outcome_detail, charge AS cost, NULL::VARCHAR AS currency,
    NULL::VARCHAR AS recording_key, '{csv}' AS source_object, line AS source_line
  FROM (
    SELECT *,
      CASE WHEN src_id IS NOT NULL THEN 'outbound'
           WHEN regexp_full_match(src, '[0-9]{{2,6}}') AND regexp_full_match(dst, '[0-9]{{2,6}}') THEN 'internal'
           ELSE 'inbound' END AS direction,
      row_number() OVER () AS line
    FROM cdr)
) TO '{calls}' (FORMAT parquet, COMPRESSION zstd)
""")
PY
    cat >"$work/pandas_cdr.py" <<'PY'
import sys, pandas as pd
csv, out = sys.argv[1], sys.argv[2]
text = {c: "string" for c in ("id", "src_id", "src", "clid", "dst", "dst_name", "destination", "t_cause")}
df = pd.read_csv(csv, dtype=text, parse_dates=["calldate"])
df.drop_duplicates(subset="id", keep="first").to_parquet(out, compression="zstd", index=False)
PY
}

# cdr_day NAME ROWS: a drop with one day of ROWS CDR rows and nothing else.
cdr_day() {
    drop "$1" --from "$day" --to "$day" --rows-per-day "$2" --recordings-per-day 0
    rm -rf "${root:?}/$1/QueueCalls" "$root/$1/recordings"
}

section_cdr() {
    echo "== cdr"
    local rows=1000000 name=cdr-1000000
    write_peer_scripts
    cdr_day "$name" "$rows"
    local csv=$root/$name/CDRs/$day.csv bytes dest=$work/out
    bytes=$(stat -c %s "$csv")
    ours_config "$work/cdr-ftps.toml" "$(ftps_source "cdrs = \"$name/CDRs\"")" '"cdr"' 4 "$dest"
    ours_config "$work/cdr-local.toml" "url = \"file://$root\"
cdrs = \"$name/CDRs\"" '"cdr"' 4 "$dest"
    for _ in $(seq "$reps"); do
        rm -rf "$dest"
        measure cdr "1M rows" "cdr-ingest (FTPS)" - "$rows" "$bytes" -- ours run --config "$work/cdr-ftps.toml" --date "$day"
        rm -rf "$dest"
        measure cdr "1M rows" "cdr-ingest (local CSV)" - "$rows" "$bytes" -- ours run --config "$work/cdr-local.toml" --date "$day"
        rm -rf "$dest" && mkdir -p "$dest"
        measure cdr "1M rows" "DuckDB (local CSV)" - "$rows" "$bytes" -- python3 "$work/duckdb_cdr.py" "$csv" "$dest/duckdb.parquet"
        rm -rf "$dest" && mkdir -p "$dest"
        measure cdr "1M rows" "pandas (local CSV)" - "$rows" "$bytes" -- python3 "$work/pandas_cdr.py" "$csv" "$dest/pandas.parquet"
        rm -rf "$dest" && mkdir -p "$dest"
        measure cdr "1M rows" "rclone (FTPS) + DuckDB" - "$rows" "$bytes" -- bash -c "$(declare -f rclone_copy); set -e
            rclone_copy ftp $name/CDRs/$day.csv $dest/csv 1
            python3 $work/duckdb_cdr.py $dest/csv/$day.csv $dest/duckdb.parquet"
    done
    # Output sizes, for the note under the table.
    rm -rf "$dest"
    ours run --config "$work/cdr-local.toml" --date "$day" >/dev/null 2>&1
    mkdir -p "$dest/peers"
    python3 "$work/duckdb_cdr.py" "$csv" "$dest/peers/duckdb.parquet"
    python3 "$work/pandas_cdr.py" "$csv" "$dest/peers/pandas.parquet"
    printf 'Parquet written for %s rows (%s bytes of CSV): cdr-ingest %s bytes, DuckDB %s, pandas %s.\n' \
        "$rows" "$bytes" "$(du -sb "$dest/cdr" | cut -f1)" "$(stat -c %s "$dest/peers/duckdb.parquet")" \
        "$(stat -c %s "$dest/peers/pandas.parquet")" >"$work/cdr-sizes.txt"
    rm -rf "$dest"
}

section_scale() {
    echo "== scale"
    local n rows dest=$work/out
    for n in 1000 10000 100000; do
        # Spread over 10 days of 1 KiB files: the folder holds n names, as a provider's
        # recordings folder does after some days.
        local name=scale-rec-$n
        drop "$name" --from 2024-03-01 --to 2024-03-10 --rows-per-day $((n / 10 * 3)) \
            --recordings-per-day $((n / 10)) --recording-bytes 1024
        rm -rf "${root:?}/$name/CDRs" "$root/$name/QueueCalls"
        local bytes
        bytes=$(du -sb --apparent-size "$root/$name/recordings" | cut -f1)
        ours_config "$work/scale.toml" "$(ftps_source "recordings = \"$name/recordings\"")" '"recordings"' 8 "$dest"
        rm -rf "$dest"
        measure scale "recordings in folder" "copy all (8 transfers)" "$n" "$n" "$bytes" -- \
            ours run --config "$work/scale.toml" --from 2024-03-01 --to 2024-03-10
        measure scale "recordings in folder" "next pass, nothing new" "$n" "$n" "$bytes" -- \
            ours run --config "$work/scale.toml" --from 2024-03-01 --to 2024-03-10
        measure scale "recordings in folder" "one day, nothing new" "$n" "$n" "$bytes" -- \
            ours run --config "$work/scale.toml" --date 2024-03-10
    done
    write_peer_scripts
    for rows in 100000 1000000 10000000; do
        local name=cdr-$rows csv bytes
        cdr_day "$name" "$rows"
        csv=$root/$name/CDRs/$day.csv
        bytes=$(stat -c %s "$csv")
        ours_config "$work/scale.toml" "$(ftps_source "cdrs = \"$name/CDRs\"")" '"cdr"' 4 "$dest"
        rm -rf "$dest"
        measure scale "CDR rows in a day" "cdr-ingest (FTPS)" "$rows" "$rows" "$bytes" -- \
            ours run --config "$work/scale.toml" --date "$day"
        # What it wrote checked: each id once, and the date's calls rebuilt and compared.
        measure scale "CDR rows in a day" "cdr-ingest verify" "$rows" "$rows" "$bytes" -- \
            ours verify --config "$work/scale.toml"
        rm -rf "$dest" && mkdir -p "$dest"
        measure scale "CDR rows in a day" "DuckDB (local CSV)" "$rows" "$rows" "$bytes" -- \
            python3 "$work/duckdb_cdr.py" "$csv" "$dest/duckdb.parquet"
        rm -rf "$dest" && mkdir -p "$dest"
        measure scale "CDR rows in a day" "DuckDB, cdr and calls (local CSV)" "$rows" "$rows" "$bytes" -- \
            python3 "$work/duckdb_cdr_calls.py" "$csv" "$dest/duckdb.parquet" "$dest/calls.parquet"
    done
    # Another shape of the 10M-row day: the provider's quirks (BOM, CRLF, the day
    # before's last calls repeated, bad and duplicate rows, an extra column), then
    # columns in reverse order and every field quoted.
    local rows=10000000 name=cdr-10000000-reshaped csv bytes
    drop "$name" --from "$day" --to "$day" --rows-per-day "$rows" --recordings-per-day 0 --quirks
    rm -rf "${root:?}/$name/QueueCalls" "$root/$name/recordings" "$root/$name/sessions" "$root/$name/call_history"
    csv=$root/$name/CDRs/$day.csv
    local kept=$work/drops/$name/CDRs/$day.csv
    if [[ ! -f $work/drops/$name/.reshaped ]]; then
        python3 "$repo/scripts/reshape_cdr.py" "$kept" "$kept.new"
        mv "$kept.new" "$kept" && touch "$work/drops/$name/.reshaped"
    fi
    rm -f "$csv" && { ln "$kept" "$csv" 2>/dev/null || cp "$kept" "$csv"; }
    bytes=$(stat -c %s "$csv")
    ours_config "$work/scale.toml" "$(ftps_source "cdrs = \"$name/CDRs\"")" '"cdr"' 4 "$dest"
    rm -rf "$dest"
    measure scale "CDR rows in a day" "cdr-ingest (FTPS)" "$rows quirks, reshaped" "$rows" "$bytes" -- \
        ours run --config "$work/scale.toml" --date "$day"
    rm -rf "$dest" && mkdir -p "$dest"
    measure scale "CDR rows in a day" "DuckDB (local CSV)" "$rows quirks, reshaped" "$rows" "$bytes" -- \
        python3 "$work/duckdb_cdr.py" "$csv" "$dest/duckdb.parquet" lenient
    rm -rf "$dest"
}

section_day() {
    echo "== day"
    local name=full-day dest=$work/out
    drop "$name" --from "$day" --to "$day" --rows-per-day 20000 --recordings-per-day 2000 \
        --recording-bytes 262144 --quirks
    local bytes
    bytes=$(du -sb --apparent-size "$root/$name" | cut -f1)
    ours_config "$work/day.toml" "$(ftps_source "cdrs = \"$name/CDRs\"
queue_calls = \"$name/QueueCalls\"
recordings = \"$name/recordings\"")" '"cdr", "queue", "recordings"' 4 "$dest"
    for i in $(seq "$reps"); do
        rm -rf "$dest"
        measure day "full day" cdr-ingest 4 1 "$bytes" -- ours run --config "$work/day.toml" --date "$day"
        cp "$work/logs/day-full day-cdr-ingest-4.log" "$work/day-$i.log"
    done
    rm -rf "$dest"
}

section_history() {
    echo "== history (scripts/bench-retention.sh)"
    CDR_INGEST_BIN=$bin BENCH_REPS=$reps bash "$repo/scripts/bench-retention.sh" | tee "$work/history.out"
}

# proxy_start RTT_MS PORT [DATA_MIN-DATA_MAX]: the delay proxy on 127.0.0.2 in front
# of 127.0.0.1:PORT (the test certificate names 127.0.0.2 too); sets proxy_port.
proxy_start() {
    local data=()
    [[ -n ${3:-} ]] && data=(--data-ports "$3")
    : >"$work/proxy.out"
    "$work/delay_proxy" --listen 127.0.0.2:0 --to "127.0.0.1:$2" --rtt-ms "$1" "${data[@]}" \
        >"$work/proxy.out" 2>&1 &
    proxy_pid=$!
    local deadline=$((SECONDS + 20))
    until grep -q '^listening on ' "$work/proxy.out"; do
        ((SECONDS < deadline)) && kill -0 "$proxy_pid" 2>/dev/null || {
            echo "the delay proxy did not start:" >&2; cat "$work/proxy.out" >&2; exit 1; }
        sleep 0.05
    done
    proxy_port=$(sed -n 's/^listening on .*://p' "$work/proxy.out")
    export proxy_port proxy_known_hosts=$work/proxy_known_hosts
    # The SFTP server's key under the proxy's address.
    sed "s/^\[[a-z0-9.]*\]:[0-9]*/[127.0.0.2]:$proxy_port/" "$CDR_TEST_SFTP_KNOWN_HOSTS" >"$proxy_known_hosts"
}
# proxy_stop: stops it; sets proxy_round_trips (the logical count, see proxy.rs).
proxy_stop() {
    kill -TERM "$proxy_pid" && wait "$proxy_pid" || true
    proxy_round_trips=$(sed -n 's/.*round_trips=//p' "$work/proxy.out")
}
# vsftpd_commands: FTP commands in vsftpd's protocol log so far.
vsftpd_commands() { grep -c 'FTP command:' "$CDR_TEST_WORK_DIR/vsftpd.log" || true; }

section_latency() {
    echo "== latency"
    local count=600 size=262144 name=lat-600 rt_name=lat-40 rt_count=40
    drop "$name" --from "$day" --to "$day" --rows-per-day $((count * 4)) \
        --recordings-per-day "$count" --recording-bytes "$size"
    drop "$rt_name" --from "$day" --to "$day" --rows-per-day $((rt_count * 4)) \
        --recordings-per-day "$rt_count" --recording-bytes "$size"
    local pasv pmin pmax
    pmin=$(sed -n 's/^pasv_min_port=//p' "$CDR_TEST_WORK_DIR/vsftpd.conf")
    pmax=$(sed -n 's/^pasv_max_port=//p' "$CDR_TEST_WORK_DIR/vsftpd.conf")
    pasv=$pmin-$pmax
    local files bytes dest=$work/out proto rtt n tool upstream data path source
    files=$(find "$root/$name/recordings" -name '*.mp3' | wc -l)
    bytes=$(du -sb --apparent-size "$root/$name/recordings" | cut -f1)
    ((files == count)) || { echo "generated $files recordings, wanted $count" >&2; exit 1; }
    local counts=$work/latency-counts.tsv
    mkdir -p "$work/logs"
    for proto in ${BENCH_PROTOCOLS:-ftps sftp}; do
        if [[ $proto == ftps ]]; then upstream=$CDR_TEST_FTPS_PORT data=$pasv
        else upstream=$CDR_TEST_SFTP_PORT data=; fi
        # Round trips per file, counted: one transfer, 40 ms, a 40-file folder.
        for tool in cdr-ingest rclone; do
            path=$rt_name/recordings
            [[ $proto == sftp ]] && path=$CDR_TEST_SFTP_ROOT/$rt_name/recordings
            proxy_start 40 "$upstream" "$data"
            rm -rf "$dest"
            local before after
            before=$(vsftpd_commands)
            if [[ $tool == cdr-ingest ]]; then
                ours_config "$work/lat.toml" "$(latency_source "$proto" "$path")" '"recordings"' 1 "$dest"
                ours run --config "$work/lat.toml" --date "$day" >"$work/logs/latency-rt-$proto-$tool.log" 2>&1 || true
            else
                latency_rclone "$proto" "$path" "$dest" 1 >"$work/logs/latency-rt-$proto-$tool.log" 2>&1 || true
            fi
            after=$(vsftpd_commands)
            proxy_stop
            expect_files "$dest" "$rt_count" "latency round trips $tool $proto"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run_id" "$proto" "$tool" "$rt_count" \
                "$proxy_round_trips" "$([[ $proto == ftps ]] && echo $((after - before)) || echo -)" >>"$counts"
            echo "  latency    round trips    $proto $tool: $proxy_round_trips for $rt_count files, commands $((after - before))"
        done
        path=$name/recordings
        [[ $proto == sftp ]] && path=$CDR_TEST_SFTP_ROOT/$name/recordings
        for rtt in ${BENCH_RTTS:-0 10 40}; do
            for n in ${BENCH_TRANSFERS:-4 8 16 auto}; do
                proxy_start "$rtt" "$upstream" "$data"
                ours_config "$work/lat.toml" "$(latency_source "$proto" "$path")" '"recordings"' "$n" "$dest"
                for _ in $(seq "$reps"); do
                    rm -rf "$dest"
                    measure latency "${rtt}ms-$proto" cdr-ingest "$n" "$files" "$bytes" -- \
                        ours run --config "$work/lat.toml" --date "$day"
                    expect_files "$dest/recordings" "$files" "cdr-ingest latency $rtt ms $proto $n"
                    [[ $n == auto ]] && continue # rclone has no such setting
                    rm -rf "$dest"
                    measure latency "${rtt}ms-$proto" rclone "$n" "$files" "$bytes" -- \
                        latency_rclone "$proto" "$path" "$dest" "$n"
                    expect_files "$dest" "$files" "rclone latency $rtt ms $proto $n"
                done
                proxy_stop
            done
        done
    done
    rm -rf "$dest"
}
# latency_source PROTO PATH: our [source] through the proxy.
latency_source() {
    local out
    if [[ $1 == ftps ]]; then out=$(ftps_source "recordings = \"$2\"")
    else out=$(sftp_source "recordings = \"$2\""); fi
    sed "s/@localhost:[0-9]*/@127.0.0.2:$proxy_port/" <<<"$out" |
        sed "s|known_hosts = \".*\"|known_hosts = \"$proxy_known_hosts\"|"
}
# latency_rclone PROTO PATH DEST TRANSFERS: rclone through the proxy.
latency_rclone() {
    RCLONE_FTP_HOST=127.0.0.2 RCLONE_FTP_PORT=$proxy_port RCLONE_SFTP_HOST=127.0.0.2 \
        RCLONE_SFTP_PORT=$proxy_port RCLONE_SFTP_KNOWN_HOSTS_FILE=$proxy_known_hosts \
        rclone_copy "${1/ftps/ftp}" "$2" "$3" "$4"
}

for s in "${sections[@]}"; do
    "section_$s"
done

# ---------------------------------------------------------------------------------
machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ { print $2 }') GiB RAM, $(uname -sr)"
versions="cdr-ingest $(git -C "$repo" describe --always --dirty), $(rclone version | head -1), lftp $(lftp --version | head -1 | grep -o '[0-9][0-9.]*' | head -1), DuckDB $(python3 -c 'import duckdb; print(duckdb.__version__)'), pandas $(python3 -c 'import pandas; print(pandas.__version__)') + pyarrow $(python3 -c 'import pyarrow; print(pyarrow.__version__)'), $(dpkg-query -W -f '${Package} ${Version}' vsftpd), $(dpkg-query -W -f '${Package} ${Version}' openssh-server)"
mkdir -p "$(dirname "$out_file")" "$work/sections"
python3 "$repo/scripts/bench_report.py" "$results" "$work" "$out_file" "$machine" "$versions" "$reps" "${sections[@]}"
echo "wrote $out_file"
