#!/usr/bin/env bash
# Benchmark (not a test): what retention and the daily pass cost on a `file://`
# destination holding five years of history, and whether the daily cost grows with it.
#
#   scripts/bench-retention.sh
#
# Environment (all optional):
#   BENCH_DIR         work folder, default /tmp/cdr-bench-retention; a 5-year fixture
#                     left there by BENCH_KEEP=1 is reused (topped up to today's window)
#   BENCH_KEEP=1      keep the fixtures at the end (they are removed otherwise)
#   BENCH_REPS        repetitions of each repeated case, default 3
#   BENCH_DAYS        days of history, default 1825 (five years, ending yesterday UTC)
#   BENCH_RECORDINGS  recordings per day in the fixture, default 1000 (scaled down
#                     automatically, and said so, if the file system lacks inodes/space)
#   BENCH_SETTLE      seconds to let the file system settle after the first pass, default 20
#   CDR_INGEST_BIN    binary to measure, default target/release/cdr-ingest (copied first,
#                     so a rebuild during the benchmark cannot change what is measured)
#
# What it measures (wall time and peak RSS by /usr/bin/time, plus a millisecond wall
# time taken by this script around the same command):
#   1  building the fixture: per day cdr/, queue_call/, queue_user_call/ partitions,
#      recording_index/, BENCH_RECORDINGS recordings of 100 bytes, three ledger entries
#   1b `run --date YESTERDAY` (one generated day: 10,000 CDR rows, 100 recordings)
#      with retention "forever", into all five years of history
#   2a the first `retention` pass (no _state/retention yet) at 999 days: it discovers
#      the oldest day once, then deletes ~826 days
#   2b steady `retention` passes: the limit lowered by one day each time (998, 997, 996)
#      so exactly one day expires, as on each following calendar day
#   2c the same steady pass on a ~30-day destination, interleaved with 2b (~1,000 days)
#      so both see the same machine; then one more steady pass of each under strace
#      (if installed), counting system calls and folders opened, as evidence that does
#      not depend on timing noise
#   2d `retention --dry-run` that would delete one day (and, as 2d0, a dry run before
#      any state exists, which has to look at the whole expired history)
#   3  `run --date YESTERDAY` (one generated day: 10,000 CDR rows, 100 recordings) with
#      999-day limits, into (i) the destination left by 2a/2b (~1,000 days kept),
#      (ii) an empty destination, (iii) an empty destination holding only the one day
#      that expires, so (i) and (iii) do the same work and differ only in history.
# All figures are with a warm page cache (the fixture was just written or listed).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${BENCH_DIR:-/tmp/cdr-bench-retention}
keep_fixtures=${BENCH_KEEP:-0}
reps=${BENCH_REPS:-3}
history_days=${BENCH_DAYS:-1825}
recordings=${BENCH_RECORDINGS:-1000}
small_days=33           # first pass at 33 days deletes nothing; steady passes 32, 31, 30
file_size=100           # bytes of every dummy object (retention only lists and deletes)
fixture=$repo/scripts/bench_retention_fixture.py
source_bin=${CDR_INGEST_BIN:-$repo/target/release/cdr-ingest}

die() { echo "bench-retention: $*" >&2; exit 1; }

[[ -x $source_bin ]] || die "no binary at $source_bin (build it with cargo build --release)"
command -v python3 >/dev/null || die "python3 is needed for the fixture"
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time; }

# Dates by the real clock, fixed once: the binary reads the same clock, so a run that
# crosses midnight UTC would shift every expectation by a day (checked after each case).
today=$(date -u +%F)
day_before() { date -u -d "$today -$1 day" +%F; }
yesterday=$(day_before 1)

mkdir -p "$work"
big=$work/five-years/dest
small=$work/thirty-days/dest
logs=$work/logs
results=$work/results.tsv
rm -rf "$logs" "$work/cfg" "$work/drop" "$work/empty" "$work/control" "$work/thirty-days"
mkdir -p "$logs" "$work/cfg" "$work/empty-drop" "$work/bin" "$work/five-years" "$work/thirty-days"
: > "$results"

# Someone may rebuild target/release while this runs: measure a copy.
bin=$work/bin/cdr-ingest
cp "$source_bin" "$bin"
bin_sha=$(sha256sum "$bin" | cut -c1-12)

cleanup() {
    if [[ $keep_fixtures != 1 ]]; then
        rm -rf "$work/five-years" "$work/thirty-days" "$work/empty" "$work/control" "$work/drop"
    fi
}
trap cleanup EXIT

check_clock() {
    [[ $(date -u +%F) == "$today" ]] || die "the UTC date changed during the benchmark; run it again"
}

# timed CASE HISTORY WORK COMMAND...: runs COMMAND under /usr/bin/time (stdout and
# stderr to $logs/CASE-N.out/.err) and appends one row to $results, with the 1-minute
# load average just before (this machine may be shared: a high load explains outliers).
timed() {
    local case=$1 history=$2 what=$3 n start end ms secs kib load
    shift 3
    n=$(awk -F'\t' -v c="$case" '$1 == c' "$results" | wc -l)
    local log=$logs/$case-$((n + 1))
    # Flush what the previous step wrote (a big deletion leaves seconds of metadata
    # writeback) so that it is not billed to this command.
    sync
    read -r load _ < /proc/loadavg
    start=$EPOCHREALTIME
    if ! /usr/bin/time -f '%e s %M KiB' -o "$log.time" "$@" >"$log.out" 2>"$log.err"; then
        tail -n 20 "$log.err" >&2
        die "$case failed: $*"
    fi
    end=$EPOCHREALTIME
    check_clock
    ms=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", (e - s) * 1000 }')
    read -r secs _ kib _ < <(tail -n 1 "$log.time")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$history" "$what" "$secs" "$ms" "$kib" "$load" >> "$results"
    last_out=$log.out
}

# expect FILE PATTERNS...: the command's output must match every pattern (grep -E; an
# argument may hold several, one a line): a benchmark of a pass that did not do the
# work it is meant to do is worthless.
expect() {
    local file=$1 arg pattern
    shift
    for arg in "$@"; do
        while IFS= read -r pattern; do
            grep -Eq -- "$pattern" "$file" || { cat "$file" >&2; die "expected /$pattern/ in $file"; }
        done <<< "$arg"
    done
}

# config FILE DEST LIMIT [SOURCE]: the three data categories kept LIMIT days.
config() {
    cat > "$1" <<TOML
[source]
url = "file://${4:-$work/empty-drop}"
[destination]
url = "file://$2"
[retention]
cdr = $3
queue = $3
recordings = $3
TOML
}

retention() { # retention CASE HISTORY WORK DEST LIMIT [--dry-run]
    local cfg=$work/cfg/$1-$5.toml
    config "$cfg" "$4" "$5"
    timed "$1" "$2" "$3" "$bin" retention --config "$cfg" "${@:6}"
}

# deleted DAYS [VERB]: the lines `retention` prints when it removed DAYS days of each
# category (objects per day: cdr 1 + ledger, queue 2 + ledger, recordings R + index + ledger).
deleted() {
    local days=$1 verb=${2:-deleted}
    echo "^cdr: kept .*; $verb $days day\(s\).*, $((days * 2)) objects"
    echo "^queue: kept .*; $verb $days day\(s\).*, $((days * 3)) objects"
    echo "^recordings: kept .*; $verb $days day\(s\).*, $((days * (recordings + 2))) objects"
}

echo "== machine"
machine="$(nproc) CPUs, Linux $(uname -r), $(df -T "$work" | awk 'NR == 2 { print $2 }') at $work, $(date -u '+%Y-%m-%d %H:%M UTC'), cdr-ingest $("$bin" --version | awk '{ print $2 }') (sha256 $bin_sha…)"
echo "$machine"

# ---------------------------------------------------------------------------------
echo "== 1. fixture: $history_days days ending $yesterday"
df -i "$work"
# Each day needs recordings + 7 files and ~6 folders, and a 100-byte file still takes
# one block. Scale the recordings down if inodes or space would run short (keeping
# 10% of both free); a fixture already here counts as available.
present=0
[[ -f $work/five-years/built.json ]] && present=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"])' "$work/five-years/built.json")
inodes_free=$(( $(df --output=iavail "$work" | tail -n 1) + present ))
inodes_total=$(df --output=itotal "$work" | tail -n 1)
block=$(stat -f -c %S "$work")
blocks_free=$(( $(df -B "$block" --output=avail "$work" | tail -n 1) + present ))
budget=$(( inodes_free - inodes_total / 10 ))
(( blocks_free - blocks_free / 10 < budget )) && budget=$(( blocks_free - blocks_free / 10 ))
fits=$(( budget / history_days - 13 ))
scaled=""
if (( fits < recordings )); then
    (( fits >= 1 )) || die "not enough inodes or space in $work for $history_days days"
    scaled="recordings scaled down from $recordings to $fits a day: only $inodes_free inodes / $blocks_free blocks free"
    echo "NOTE: $scaled"
    recordings=$fits
fi
first_build=$work/five-years/first-build.txt
start=$EPOCHREALTIME
python3 "$fixture" sync "$big" --end "$yesterday" --days "$history_days" \
    --recordings "$recordings" --size "$file_size" > "$work/five-years/built.json"
fixture_secs=$(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }')
# The files are in the page cache when Python returns; writing them out is extra.
start=$EPOCHREALTIME
sync
flush_secs=$(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }')
read -r fx_files fx_bytes fx_created fx_removed < <(python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))
print(b["files"], b["bytes"], b["created"], b["removed"])' "$work/five-years/built.json")
if [[ ! -f $first_build ]]; then
    echo "$fixture_secs s (+ $flush_secs s sync) to create $fx_created files" > "$first_build"
fi
fixture_allocated=$(du -s -B1 "$big" | cut -f1)
fixture_note="$fx_files files ($history_days days × ($recordings recordings + 7)), $fx_bytes bytes of content ($file_size B each), $fixture_allocated bytes allocated on disk; this run: ${fixture_secs} s (created $fx_created, removed $fx_removed) + ${flush_secs} s of sync; first build: $(cat "$first_build")"
echo "$fixture_note"
printf 'fixture\t%s days\tcreate or top up the fixture\t%s\t%s\t\t\n' "$history_days" "$fixture_secs" \
    "$(awk -v s="$fixture_secs" 'BEGIN { printf "%.0f", s * 1000 }')" >> "$results"

# ---------------------------------------------------------------------------------
echo "== 1b. daily run pass with all five years kept (retention forever)"
drop=$work/drop
timed generate "-" "generate the day's drop" \
    "$bin" generate --out "$drop" --from "$yesterday" --to "$yesterday" --rows-per-day 10000 --recordings-per-day 100
run_expect=(
    "CDRs/$yesterday.csv: ingested, 10000 rows"
    "QueueCalls/$yesterday-queue-calls.zip: ingested"
    "^recordings: 100 copied"
)
# forget_yesterday DEST: take yesterday out, so that the pass really ingests it.
forget_yesterday() {
    for category in cdr queue_call queue_user_call recording_index; do
        rm -rf "$1/$category/date=$yesterday"
    done
    rm -rf "$1/recordings/${yesterday//-//}" "$1"/_state/ledger/*/"$yesterday.json"
}
forget_yesterday "$big"
config "$work/cfg/run-forever.toml" "$big" '"forever"' "$drop"
for _ in $(seq "$reps"); do
    touch "$work/marker"
    sleep 0.05
    timed 1b "$history_days days" "ingest 1 day" "$bin" run --config "$work/cfg/run-forever.toml" --date "$yesterday"
    expect "$last_out" "${run_expect[@]}"
    find "$big" -newer "$work/marker" -type f -delete
done

# ---------------------------------------------------------------------------------
echo "== 2d0. dry run before any retention state: the whole expired history is listed"
expired=$(( history_days - 999 ))          # days older than 999 days: today-1825 … today-1000
retention 2d0 "$history_days days" "dry run, no state: would delete $expired days" "$big" 999 --dry-run
expect "$last_out" "$(deleted "$expired" "would delete")"

echo "== 2a. first retention pass at 999 days (finds the oldest day once, deletes $expired days)"
retention 2a "$history_days days" "first pass: delete $expired days" "$big" 999
expect "$last_out" "$(deleted "$expired")"
[[ $(cat "$big/_state/retention/cdr.json") == *"\"$(day_before 1000)\""* ]] \
    || die "first pass did not record deleted_through $(day_before 1000)"

# The first pass leaves the file system busy (ext4 frees 800,000 inodes in the
# background; the load average rose to 4-7 on 2 CPUs in our runs). Let it settle,
# and interleave the steady passes on both destinations below so that whatever
# remains hits both.
sync
sleep "${BENCH_SETTLE:-20}"

echo "== 2c. a ~30-day destination for comparison: fixture and its first pass"
python3 "$fixture" sync "$small" --end "$yesterday" --days "$small_days" \
    --recordings "$recordings" --size "$file_size" > "$work/thirty-days/built.json"
retention 2c0 "$small_days days" "first pass: nothing to delete" "$small" "$small_days"
expect "$last_out" "$(deleted 0)"

echo "== 2b/2c. steady passes, one more day expiring each time, ~1,000 vs ~30 days"
for i in $(seq "$reps"); do
    limit=$((999 - i))
    retention 2b "$((limit + 1)) days" "steady: delete 1 day" "$big" "$limit"
    expect "$last_out" "$(deleted 1)" "^cdr: .*\($(day_before $((limit + 1))) to $(day_before $((limit + 1)))\)"
    limit=$((small_days - i))
    retention 2c "$((limit + 1)) days" "steady: delete 1 day" "$small" "$limit"
    expect "$last_out" "$(deleted 1)" "^cdr: .*\($(day_before $((limit + 1))) to $(day_before $((limit + 1)))\)"
done

# Evidence beyond the clock: one more steady pass on each destination under strace,
# counting the file-system calls and the folders it opened. A pass whose work grew
# with history would show it here whatever the machine's noise.
evidence=""
if command -v strace >/dev/null; then
    echo "== 2b/2c evidence: system calls of one steady pass"
    for side in big small; do
        if [[ $side == big ]]; then dest=$big limit=$((999 - reps - 1)); else dest=$small limit=$((small_days - reps - 1)); fi
        config "$work/cfg/strace-$side.toml" "$dest" "$limit"
        strace -f -qq -o "$logs/strace-$side.txt" \
            -e trace=openat,getdents64,statx,newfstatat,unlink,unlinkat,rename,renameat2 \
            "$bin" retention --config "$work/cfg/strace-$side.toml" > "$logs/strace-$side.out" 2>&1
        expect "$logs/strace-$side.out" "$(deleted 1)"
        # Lines are "PID  call(args) = result"; skip "<... call resumed>" halves and exits.
        counts=$(grep -Ev '^[0-9]+ +(<\.\.\.|\+\+\+)' "$logs/strace-$side.txt" \
            | sed -E 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/' | sort | uniq -c | awk '{ printf "%s %s, ", $1, $2 }')
        folders=$(grep -E 'O_DIRECTORY' "$logs/strace-$side.txt" | grep -c "\"$dest/" || true)
        line="$side ($(find "$dest/cdr" -mindepth 2 -name '*.parquet' | wc -l) days kept): ${counts}folders opened under the destination: $folders"
        echo "$line"
        evidence+="$line; "
    done
fi

echo "== 2d. dry run of a pass that would delete one day (repeatable: a dry run records nothing)"
limit=$((999 - reps - 2))
for _ in $(seq "$reps"); do
    retention 2d "$((limit + 1)) days" "dry run: would delete 1 day" "$big" "$limit" --dry-run
    expect "$last_out" "$(deleted 1 "would delete")"
done

# ---------------------------------------------------------------------------------
echo "== 3. daily run pass: one day of drop, 999-day limits"
expiring=$(day_before 1000)                 # the day a 999-day limit lets go today
before_expiring=$(day_before 1001)
deleted_one=(
    "^retention cdr: deleted 1 day\(s\), 2 objects"
    "^retention queue: deleted 1 day\(s\), 3 objects"
    "^retention recordings: deleted 1 day\(s\), $((recordings + 2)) objects"
)
# put_back_expiring DEST: the day that expires today, and state saying retention has
# deleted everything before it, so the pass deletes exactly one day as on any day.
put_back_expiring() {
    python3 "$fixture" day "$1" --day "$expiring" --recordings "$recordings" --size "$file_size" >/dev/null
    python3 "$fixture" state "$1" --through "$before_expiring"
}

# (i) The destination 2a/2b left: ~1,000 days of data (the most a 999-day limit ever
# keeps, so the realistic "years of history" state) and 1,825 days of now-empty
# partition folders (file:// does not remove folders). Yesterday is taken out so the
# pass really ingests it; after each repetition every file the pass wrote is removed
# (find -newer a marker), so each repetition starts from the same state.
forget_yesterday "$big"
kept=$(find "$big/cdr" -mindepth 2 -name '*.parquet' | wc -l)
config "$work/cfg/run-history.toml" "$big" 999 "$drop"
for _ in $(seq "$reps"); do
    put_back_expiring "$big"
    touch "$work/marker"
    sleep 0.05
    timed 3i "$kept days + the expiring one" "ingest 1 day + delete 1 day" "$bin" run --config "$work/cfg/run-history.toml" --date "$yesterday"
    expect "$last_out" "${run_expect[@]}" "${deleted_one[@]}"
    find "$big" -newer "$work/marker" -type f -delete
done

# (ii) An empty destination, new for each repetition: ingest only; retention's first
# pass finds nothing older than the limit.
config "$work/cfg/run-empty.toml" "$work/empty" 999 "$drop"
for _ in $(seq "$reps"); do
    rm -rf "$work/empty"
    timed 3ii "0 days" "ingest 1 day" "$bin" run --config "$work/cfg/run-empty.toml" --date "$yesterday"
    expect "$last_out" "${run_expect[@]}"
done

# (iii) The fair control for (i): empty but for the one day that expires and the
# retention state, so the pass does exactly (i)'s work with no history around it.
config "$work/cfg/run-control.toml" "$work/control" 999 "$drop"
for _ in $(seq "$reps"); do
    rm -rf "$work/control"
    mkdir -p "$work/control"
    put_back_expiring "$work/control"
    timed 3iii "the expiring day only" "ingest 1 day + delete 1 day" "$bin" run --config "$work/cfg/run-control.toml" --date "$yesterday"
    expect "$last_out" "${run_expect[@]}" "${deleted_one[@]}"
done

# ---------------------------------------------------------------------------------
echo "== results"
python3 - "$results" "$machine" "$fixture_note" "$scaled" "$evidence" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
names = {
    "fixture": "1 build the fixture (Python, os.open)",
    "2d0": "2d0 retention --dry-run, no state yet",
    "2a": "2a retention, first pass",
    "2c0": "2c retention, first pass (30-day destination)",
    "2b": "2b retention, steady (≈1,000-day destination)",
    "2c": "2c retention, steady (≈30-day destination)",
    "2d": "2d retention --dry-run, one day",
    "generate": "1b generate the day's drop",
    "1b": "1b run --date, five years kept (forever)",
    "3i": "3(i) run --date, ≈1,000 days kept",
    "3ii": "3(ii) run --date, empty destination",
    "3iii": "3(iii) run --date, only the expiring day",
}
order, groups = [], {}
for case, history, what, secs, ms, kib, load in rows:
    if case not in groups:
        order.append(case)
        groups[case] = []
    groups[case].append((history, what, secs, int(ms), kib, load))
print(f"Machine: {sys.argv[2]}  ")
print(f"Fixture: {sys.argv[3]}  ")
if sys.argv[4]:
    print(f"NOTE: {sys.argv[4]}  ")
if sys.argv[5]:
    print(f"Steady pass under strace: {sys.argv[5].rstrip('; ')}  ")
print()
print("| case | history in destination | work | runs: wall s (`%e`) | runs: wall ms | median ms | peak RSS MiB (max) | load before (max) |")
print("|---|---|---|---|---|---|---|---|")
for case in order:
    g = groups[case]
    histories = " → ".join(dict.fromkeys(r[0] for r in g))
    rss = [int(r[4]) for r in g if r[4]]
    loads = [float(r[5]) for r in g if r[5]]
    print("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
        names.get(case, case), histories, g[0][1],
        ", ".join(r[2] for r in g), ", ".join(str(r[3]) for r in g),
        round(statistics.median(r[3] for r in g)),
        f"{max(rss) / 1024:.1f}" if rss else "–",
        f"{max(loads):.2f}" if loads else "–"))
PY
echo
echo "logs: $logs (kept); fixtures $( [[ $keep_fixtures == 1 ]] && echo "kept in $work" || echo "removed (BENCH_KEEP=1 keeps them)")"
