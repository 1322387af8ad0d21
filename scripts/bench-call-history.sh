#!/usr/bin/env bash
# Benchmark (not a test): one 500,000-row call-history export, as XLSX and as the same
# rows in CSV (Russian headers, the generator's quirks: a summary sheet, a title row,
# Excel serial dates and durations, numbers as numbers, `;`-separated CSV with a BOM),
# ingested by `cdr-ingest run` (feed call_history, local folder → local folder) and,
# beside it, read by pandas (`read_excel` with openpyxl, `read_csv`) and written to
# Parquet (pyarrow). Wall time and peak RSS as GNU time reports them for the whole
# command. Writes the `call_history` section of bench/RESULTS.md.
#
#   scripts/bench-call-history.sh          BENCH_REPS (default 2), BENCH_DIR, BENCH_ROWS,
#                                          BENCH_BIN (a built binary to measure; the
#                                          export files must have been written before)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
reps=${BENCH_REPS:-2}
rows=${BENCH_ROWS:-500000}
work=${BENCH_DIR:-/tmp/cdr-bench-call-history}
out_file=${BENCH_OUT:-$repo/bench/RESULTS.md}

python3 -c 'import pandas, openpyxl, pyarrow' 2>/dev/null || pip install -q pandas openpyxl pyarrow
bin="$work/cdr-ingest"
mkdir -p "$work"
if [[ -n ${BENCH_BIN:-} ]]; then
    cp "$BENCH_BIN" "$bin"
else
    cargo build --release --quiet --bin cdr-ingest --example call_history_export
    cp target/release/cdr-ingest "$bin"
fi

for format in xlsx csv; do
    drop="$work/drop-$format/call_history"
    if [[ ! -s "$drop/export.$format" || "$(cat "$drop/.rows" 2>/dev/null)" != "$rows" ]]; then
        mkdir -p "$drop"
        flags=(--quirks)
        [[ $format == xlsx ]] && flags+=(--xlsx)
        target/release/examples/call_history_export "$drop/export.$format" "$rows" "${flags[@]}"
        touch -d '2024-03-10 00:00:00 UTC' "$drop/export.$format"
        echo "$rows" >"$drop/.rows"
    fi
done

# One timed command: prints "seconds peak_rss_mib".
timed() {
    /usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" >"$work/last.log" 2>&1 || {
        cat "$work/last.log" >&2
        exit 1
    }
    awk '{ printf "%s %.0f\n", $1, $2 / 1024 }' "$work/time.txt"
}

table="| tool | file | rows | min s | peak RSS MiB |\n|---|---|---:|---:|---:|\n"
for format in xlsx csv; do
    file="$work/drop-$format/call_history/export.$format"
    size=$(du -m "$file" | cut -f1)
    for tool in cdr-ingest pandas; do
        best=""; rss=0
        for ((r = 0; r < reps; r++)); do
            rm -rf "$work/out"
            if [[ $tool == cdr-ingest ]]; then
                cat >"$work/config.toml" <<TOML
[source]
url = "file://$work/drop-$format"
[destination]
url = "file://$work/out"
[ingest]
categories = ["call_history"]
call_history_timezone = "Europe/Moscow"
TOML
                result=$(timed "$bin" run --config "$work/config.toml")
            elif [[ $format == xlsx ]]; then
                mkdir -p "$work/out"
                result=$(timed python3 -c "import pandas as pd; pd.read_excel('$file', sheet_name='Звонки', header=2, engine='openpyxl', dtype=str).to_parquet('$work/out/p.parquet', compression='zstd')")
            else
                mkdir -p "$work/out"
                result=$(timed python3 -c "import pandas as pd; pd.read_csv('$file', sep=';', dtype=str).to_parquet('$work/out/p.parquet', compression='zstd')")
            fi
            read -r seconds mib <<<"$result"
            if [[ -z $best ]] || awk "BEGIN { exit !($seconds < $best) }"; then best=$seconds; fi
            ((mib > rss)) && rss=$mib
        done
        table+="| $tool | $format ($size MiB) | $rows | $best | $rss |\n"
        echo "$tool $format: ${best}s, ${rss} MiB" >&2
    done
done

cores=$(nproc)
section="<!-- bench:call_history -->
## 6. Call-history exports: cdr-ingest vs pandas

Measured $(date -u +%F), $reps run(s) each (min wall time, max peak RSS), on $cores cores; cdr-ingest $(git rev-parse --short HEAD), pandas $(python3 -c 'import pandas; print(pandas.__version__)') + openpyxl $(python3 -c 'import openpyxl; print(openpyxl.__version__)') + pyarrow $(python3 -c 'import pyarrow; print(pyarrow.__version__)').
One export of $rows calls (Russian headers, quirks on), from local disk to zstd Parquet on local disk. cdr-ingest does the whole pass (listing, change state, typing every column, the call key, newest wins and its index, quarantine); pandas only reads (told the sheet and the header row) and writes, with pandas' own types.

$(printf "$table")
<!-- /bench:call_history -->"
if grep -q '<!-- bench:call_history -->' "$out_file"; then
    python3 - "$out_file" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r"<!-- bench:call_history -->.*?<!-- /bench:call_history -->", lambda _: section, text, flags=re.S)
open(path, "w").write(text)
PY
else
    printf '\n%s\n' "$section" >>"$out_file"
fi
echo "wrote the call_history section of $out_file" >&2
