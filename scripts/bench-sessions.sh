#!/usr/bin/env bash
# Benchmark (not a test) of the `sessions` feed (issue 18): 100,000 session files in one
# folder, read from a local folder, from a moto S3 bucket and from an s3s-fs one, into a
# local destination.
#
#   scripts/bench-sessions.sh [local] [s3] [s3s]      default: local s3s
#
# For each source: the first pass (every file new); a pass after 1,000 of the files are
# rewritten with a newer updated_at, ids evenly apart, so on every one of the 28 days
# (every date's objects are merged); a pass after 1,000 more are rewritten as the
# platform rewrites them, 15 minutes after the session ends: the newest ids, on the
# last day; a pass with nothing new. Each rewritten pass must read only those 1,000:
# its report line gives the files taken and the bytes read, and the JSON log the time
# of the listing. Figures are wall time, user+sys CPU and peak RSS of the whole command
# (GNU time). moto's listing is quadratic in the objects of a bucket, so its figures say
# more about moto than about us: s3s-fs (an S3 server over a folder, whose drop is
# written into its folder directly) is the bucket to measure by.
#
# Environment: BENCH_DIR (default /tmp/cdr-bench-sessions), BENCH_FILES (100000),
# BENCH_REWRITTEN (1000), BENCH_BIN (a binary to measure instead of building the
# release one), BENCH_S3S_FS (the s3s-fs binary; default s3s-fs on PATH or
# ~/.cargo/bin/s3s-fs: `cargo install s3s-fs@0.14.1 --features binary --locked`). The s3
# section starts the test servers (moto) itself.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
work=${BENCH_DIR:-/tmp/cdr-bench-sessions}
files=${BENCH_FILES:-100000}
rewritten=${BENCH_REWRITTEN:-1000}
sections=("$@")
((${#sections[@]})) || sections=(local s3s)

mkdir -p "$work"
export TOTAL=$files
bin="$work/cdr-ingest"
if [[ -n ${BENCH_BIN:-} ]]; then
    cp "$BENCH_BIN" "$bin"
else
    cargo build --release --quiet
    cp target/release/cdr-ingest "$bin"
fi

# The drop: one folder of $files documents (about 700 bytes each: every common field,
# two participants, one transfer), ids growing with time over 28 days, modified an
# hour ago; then $rewritten of them again: `spread`, ids evenly apart (on every day),
# or `recent`, the newest ids (on the last day).
write_sessions() { # FOLDER COUNT VERSION [spread|recent]
    python3 - "$@" <<'EOF'
import json, os, sys, time
folder, count, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pick = sys.argv[4] if len(sys.argv) > 4 else "spread"
total = int(os.environ["TOTAL"])
os.makedirs(folder, exist_ok=True)
stamp = time.time() - 3600 + version
numbers = range(total - count, total) if pick == "recent" else range(0, total, total // count)
for n in numbers:
    day = 1 + n * 28 // total
    doc = {
        "id": 1_000_000 + n, "lang": "en", "call_type": "Voice Inbound (App)",
        "session_type_v2": "Voice Inbound (IVR using Mobile)",
        "status": "finished", "subStatus": "connected_with_agent",
        "created_at": f"2024-03-{day:02d}T10:00:00Z",
        "queued_at": f"2024-03-{day:02d}T10:00:05Z",
        "ends_at": f"2024-03-{day:02d}T10:05:00Z",
        "updated_at": f"2024-03-{day:02d}T10:{20 + version:02d}:00Z",
        "wait_duration": 5, "call_duration": 295,
        "menu_path": {"id": 6205, "name": "Sales", "materialized_path": "2420/4563/6205"},
        "agent_info": {"id": 12, "name": "Agent 12"},
        "participants": [
            {"id": 1, "type": "end_user", "status": "finished"},
            {"id": 2, "type": "agent", "status": "finished", "user_id": 12},
        ],
        "transfers": [{"id": 1, "status": "finished"}],
        "version": version,
    }
    path = os.path.join(folder, f"{1_000_000 + n}.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    os.utime(path, (stamp, stamp))
EOF
}

measure() { # LABEL CONFIG
    local label=$1 config=$2 log="$work/$1.log"
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$bin" run --config "$config" >"$log.out" 2>"$log"
    read -r secs user sys kib <"$work/time"
    local line list_ms
    line=$(grep '^sessions:' "$log.out")
    list_ms=$(grep -o '"list_ms":[0-9]*' "$log" | head -1 || true)
    printf '%-24s %7s s wall %7s s cpu %5d MiB  %s %s\n' "$label" "$secs" \
        "$(echo "$user + $sys" | bc)" $((kib / 1024)) "$line" "$list_ms"
}

config() { # NAME SOURCE-LINES
    local out="$work/$1-out"
    rm -rf "$out"
    printf '[source]\n%s\n[destination]\nurl = "file://%s"\n[ingest]\ncategories = ["sessions"]\nsessions_min_age_secs = 0\n' \
        "$2" "$out" >"$work/$1.toml"
    echo "$work/$1.toml"
}

for section in "${sections[@]}"; do
    case $section in
    local)
        drop="$work/local-drop"
        rm -rf "$drop"
        write_sessions "$drop/sessions" "$files" 0
        cfg=$(config local "url = \"file://$drop\"")
        echo "local folder, $files files of $(du -sh "$drop" | cut -f1):"
        measure local-first "$cfg"
        write_sessions "$drop/sessions" "$rewritten" 1 spread
        measure local-rewritten-spread "$cfg"
        write_sessions "$drop/sessions" "$rewritten" 2 recent
        measure local-rewritten-recent "$cfg"
        measure local-nothing-new "$cfg"
        ;;
    s3)
        # shellcheck source=/dev/null
        source scripts/test-servers.sh
        trap stop_test_servers EXIT
        drop="$work/s3-drop"
        rm -rf "$drop"
        write_sessions "$drop/sessions" "$files" 0
        upload() { # FOLDER FIRST COUNT
            python3 - "$@" <<'EOF'
import os, sys, boto3
from concurrent.futures import ThreadPoolExecutor
folder, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=os.environ["CDR_TEST_S3_ENDPOINT"],
                  region_name=os.environ["CDR_TEST_S3_REGION"],
                  aws_access_key_id=os.environ["CDR_TEST_S3_ACCESS_KEY_ID"],
                  aws_secret_access_key=os.environ["CDR_TEST_S3_SECRET_ACCESS_KEY"])
bucket = os.environ["CDR_TEST_S3_BUCKET"]
def put(n):
    name = f"{1_000_000 + n}.json"
    with open(os.path.join(folder, name), "rb") as f:
        s3.put_object(Bucket=bucket, Key=f"bench/sessions/{name}", Body=f.read())
with ThreadPoolExecutor(8) as pool:
    list(pool.map(put, range(first, first + count)))
EOF
        }
        upload "$drop/sessions" 0 "$files"
        cfg=$(config s3 "url = \"s3://$CDR_TEST_S3_BUCKET/bench\"
[source.options]
endpoint = \"$CDR_TEST_S3_ENDPOINT\"
region = \"$CDR_TEST_S3_REGION\"
allow_http = \"true\"
virtual_hosted_style_request = \"false\"
access_key_id = \"$CDR_TEST_S3_ACCESS_KEY_ID\"
secret_access_key = \"$CDR_TEST_S3_SECRET_ACCESS_KEY\"")
        echo "moto bucket, $files objects:"
        measure s3-first "$cfg"
        write_sessions "$drop/sessions" "$rewritten" 1 spread
        upload "$drop/sessions" 0 "$rewritten"
        measure s3-rewritten-spread "$cfg"
        measure s3-nothing-new "$cfg"
        ;;
    s3s)
        s3s_fs=${BENCH_S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")}
        root="$work/s3s-root"
        rm -rf "$root"
        # The bucket `bench` is a folder of the root: the drop is written into it.
        write_sessions "$root/bench/drop/sessions" "$files" 0
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        "$s3s_fs" --host 127.0.0.1 --port "$port" --access-key bench --secret-key bench-secret \
            "$root" >"$work/s3s-fs.log" 2>&1 &
        s3s_pid=$!
        trap 'kill $s3s_pid' EXIT
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$port/" && break
            sleep 0.1
        done
        cfg=$(config s3s "url = \"s3://bench/drop\"
[source.options]
endpoint = \"http://127.0.0.1:$port\"
region = \"us-east-1\"
allow_http = \"true\"
virtual_hosted_style_request = \"false\"
access_key_id = \"bench\"
secret_access_key = \"bench-secret\"")
        echo "s3s-fs bucket, $files objects:"
        measure s3s-first "$cfg"
        write_sessions "$root/bench/drop/sessions" "$rewritten" 1 spread
        measure s3s-rewritten-spread "$cfg"
        write_sessions "$root/bench/drop/sessions" "$rewritten" 2 recent
        measure s3s-rewritten-recent "$cfg"
        measure s3s-nothing-new "$cfg"
        ;;
    *)
        echo "unknown section: $section" >&2
        exit 2
        ;;
    esac
done
