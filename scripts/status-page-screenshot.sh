#!/usr/bin/env bash
# The status page (`cdr-ingest status --html`) in a real browser: a generated drop
# with a day of each kind (ingested, late, overdue, failed, expired by retention, not
# due) is ingested into a local destination, its page is written, and headless
# Chromium renders it to a PNG and dumps the DOM it parsed, which is checked (one
# cell per day and feed, the failure's reason, no script). Look at the PNG.
#
#     scripts/status-page-screenshot.sh [OUT.png]      (default: status-page.png)
#
# Installs Debian's `chromium` if it is missing (large: kept out of scripts/test.sh).
# Uses the debug build (CARGO_BUILD_JOBS=1 cargo build) unless CDR_INGEST_BIN is set.
set -euo pipefail
cd "$(dirname "$0")/.."
png=$(realpath -m "${1:-status-page.png}")

if ! command -v chromium >/dev/null; then
    echo "installing chromium (Debian package)…" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bin=${CDR_INGEST_BIN:-}
if [ -z "$bin" ]; then
    CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --quiet
    bin=$PWD/target/debug/cdr-ingest
fi

work=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
day() { date -u -d "$1 days ago" +%F; }
from=$(day 12) to=$(day 1) today=$(day 0)
"$bin" generate --out "$work/drop" --from "$from" --to "$to" --quirks \
    --rows-per-day 200 --recordings-per-day 10 >/dev/null
# Yesterday's files are not there yet (late), nor those of 3 days ago (overdue), and
# the CDR file of 5 days ago has lost a required column (failed, with the reason).
rm -f "$work/drop/CDRs/$to.csv" "$work/drop/QueueCalls/$to-queue-calls.zip" \
    "$work/drop/recordings/${to//-/_}"_* "$work/drop/CDRs/$(day 3).csv"
sed -i '1s/billsec/billed/' "$work/drop/CDRs/$(day 5).csv"
# Days more than 10 days old are past the retention limit (expired).
cat >"$work/config.toml" <<EOF
[source]
url = "file://$work/drop"
[destination]
url = "file://$work/out"
[ingest]
recordings_min_age_secs = 0
[retention]
cdr = 10
queue = 10
recordings = 10
EOF
"$bin" run --config "$work/config.toml" --from "$from" --to "$to" >/dev/null 2>&1 || true
# Today is in the window too: not due yet.
"$bin" status --config "$work/config.toml" --from "$from" --to "$today" \
    --html "$work/status.html" || true

browser() {
    timeout 120 chromium --headless --no-sandbox --disable-gpu \
        --disable-background-networking --disable-component-update --disable-sync \
        --no-first-run --user-data-dir="$work/profile" "$@" 2>/dev/null
}
browser --screenshot="$png" --window-size=1280,900 "file://$work/status.html" >/dev/null
browser --dump-dom "file://$work/status.html" >"$work/dom.html"

fail() { echo "status-page-screenshot: $*" >&2; exit 1; }
cells=$(grep -o '<td class="cell ' "$work/dom.html" | wc -l)
[ "$cells" -eq $((13 * 3)) ] || fail "$cells cells in the rendered page, want 13 days x 3 feeds"
for state in ingested late overdue failed expired not_due; do
    grep -q "class=\"cell s-$state\"" "$work/dom.html" || fail "no $state cell in the rendered page"
done
grep -q 'lacks the required column billsec' "$work/dom.html" || fail "the failure's reason is not in the page"
! grep -q '<script' "$work/dom.html" || fail "the page has a script"
[ -s "$png" ] || fail "no screenshot"
echo "status page rendered by $(chromium --version 2>/dev/null | head -1): $cells cells; screenshot in $png"
