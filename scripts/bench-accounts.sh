#!/usr/bin/env bash
# scripts/bench-accounts.sh — issue 22's benchmark: many provider accounts in one
# bucket, backfilled by 1, 2 and 4 identical `cdr-ingest backfill` processes sharing
# one destination, and a run where one of 4 is killed with -9 half-way.
#
#   bash scripts/bench-accounts.sh                     # 40 accounts x 30 days
#   BENCH_ACCOUNTS=4 BENCH_DAYS=2 BENCH_WORKERS="1 2" BENCH_KILL_OF=0 \
#       bash scripts/bench-accounts.sh     # a smoke run: that it all works, in about a minute
#
# The figures in bench/RESULTS.md ran with BENCH_DAYS=7: at 20 ms a day of an account
# costs about 1.2 s of one worker's time (per-file round trips, not data), so 40 x 30
# days take about half an hour with one worker.
#
# What it sets up (all on loopback, all stopped by the EXIT trap):
#   * the test servers of scripts/test-servers.sh (for their CA, server certificate
#     and the system account "cdrftp"), and beside them a vsftpd of its own with one
#     virtual user per account (acct01 … acctNN, all working as cdrftp, each chrooted
#     into its own drop: local_root=<root>/$USER), the password checked by pam_userdb
#     against a file in the work folder (PAM service cdr-ingest-bench-accounts-PID);
#   * each account's drop written by `cdr-ingest generate` (seed = account number, kept
#     between runs while the sizes stay the same), with its manifest;
#   * examples/delay_proxy in front of that vsftpd on 127.0.0.2 (the certificate names
#     it), BENCH_RTT_MS round trip, its passive ports included: the source is a network
#     away, so the work is bound by round trips, not by this machine's CPU;
#   * s3s-fs (an S3 server over a folder, ~/.cargo/bin/s3s-fs; install it with
#     `cargo install s3s-fs@0.14.1 --features binary --locked`) as the destination: not
#     the bottleneck, and its objects are plain files that DuckDB reads from disk.
#
# Each case starts N workers at once (`backfill --from … --to …` over the whole range,
# the same config, each with its own HOSTNAME so that a dead one's leases wait for
# their expiry as another machine's would), waits for all (polling, with a deadline),
# and checks the output with DuckDB: per account, the rows of cdr, queue_call,
# queue_user_call and recording_index and the copied recordings equal the generator's
# manifest, and no call id is there twice (cdr.id, queue_call.id,
# recording_index.unique_id). The killed case kills worker 1 with -9 once half of the
# accounts' CDR days are in the ledger; the others must finish the whole range (its
# units taken over once their leases, BENCH_LEASE_SECS, expire). Every case must also
# leave the same objects (keys and bytes, _state/ aside) as the first case.
#
# Prints a table (wall time, speed-up against 1 worker, user+sys CPU of all workers,
# peak RSS of the largest, duplicates, complete or not, each worker's exit code) and
# writes it to
# $BENCH_DIR/table.md. Exits 1 if a case left a wrong output or a worker failed.
#
# Environment (all optional):
#   BENCH_BIN          the cdr-ingest binary to measure (default: target/release/cdr-ingest,
#                      built with cargo if missing)
#   BENCH_PROXY_BIN    the delay proxy (default: target/release/examples/delay_proxy, else
#                      target/debug/…, else built)
#   BENCH_S3S_FS       the s3s-fs binary (default: s3s-fs on PATH, or ~/.cargo/bin/s3s-fs)
#   BENCH_DIR          work folder (default /tmp/cdr-bench-accounts; drops kept there)
#   BENCH_ACCOUNTS     accounts (default 40)
#   BENCH_DAYS         days per account, from 2024-03-01 (default 30)
#   BENCH_ROWS_PER_DAY CDR rows per account and day (default 100)
#   BENCH_RECORDINGS_PER_DAY  recordings per account and day (default 2)
#   BENCH_RECORDING_BYTES     size of each recording (default 16384)
#   BENCH_RTT_MS       round trip of the delay proxy (default 20)
#   BENCH_WORKERS      worker counts of the timed cases, in the order run (default "1 2 4";
#                      speed-ups are against the one-worker case, wherever it is)
#   BENCH_KILL_OF      workers of the killed case, 0 for none (default 4)
#   BENCH_LEASE_SECS   ingest.lease_secs (default 30)
#   BENCH_PARALLEL     backfill --parallel (default 2, the command's default)
#   BENCH_MAX_CONNECTIONS  source.max_connections per account (default: the default, 4)
#   BENCH_DEADLINE_SECS    longest a case may take (default 3600)
#   BENCH_KEEP         1: keep each case's output in the bucket folder
set -euo pipefail
# One compound command, read whole before it runs: editing this file meanwhile cannot
# change a run in progress.
{

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
work=${BENCH_DIR:-/tmp/cdr-bench-accounts}
accounts=${BENCH_ACCOUNTS:-40}
days=${BENCH_DAYS:-30}
rows=${BENCH_ROWS_PER_DAY:-100}
recordings=${BENCH_RECORDINGS_PER_DAY:-2}
recording_bytes=${BENCH_RECORDING_BYTES:-16384}
rtt=${BENCH_RTT_MS:-20}
read -r -a worker_counts <<<"${BENCH_WORKERS:-1 2 4}"
kill_of=${BENCH_KILL_OF:-4}
lease=${BENCH_LEASE_SECS:-30}
parallel=${BENCH_PARALLEL:-2}
max_connections=${BENCH_MAX_CONNECTIONS:-}
deadline_secs=${BENCH_DEADLINE_SECS:-3600}
from=2024-03-01
to=$(date -u -d "$from + $((days - 1)) days" +%F)

log() { echo "bench-accounts: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------------------------
# Tools
python3 -c 'import duckdb' 2>/dev/null || pip install -q duckdb==1.4.4
s3s_fs=${BENCH_S3S_FS:-$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")}
[[ -x $s3s_fs ]] || die "no s3s-fs ($s3s_fs): cargo install s3s-fs@0.14.1 --features binary --locked"
bin=${BENCH_BIN:-$repo/target/release/cdr-ingest}
if [[ ! -x $bin ]]; then
    [[ -z ${BENCH_BIN:-} ]] || die "BENCH_BIN=$bin is not an executable"
    cargo build --release --quiet --bin cdr-ingest
fi
proxy_bin=${BENCH_PROXY_BIN:-}
if [[ -z $proxy_bin ]]; then
    for p in "$repo/target/release/examples/delay_proxy" "$repo/target/debug/examples/delay_proxy"; do
        [[ -x $p ]] && { proxy_bin=$p; break; }
    done
    if [[ -z $proxy_bin ]]; then
        cargo build --quiet --example delay_proxy
        proxy_bin=$repo/target/debug/examples/delay_proxy
    fi
fi
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
# Copies, so that a rebuild meanwhile cannot change what is measured.
cp "$bin" "$work/cdr-ingest"
cp "$proxy_bin" "$work/delay_proxy"
bin=$work/cdr-ingest

# ---------------------------------------------------------------------------------
# Servers. The test servers first (CA, certificate, the cdrftp account, free ports).
# shellcheck source=scripts/test-servers.sh
source "$repo/scripts/test-servers.sh"
# Its own PAM service per run: two runs at once must not check against each other's users.
pam_service=cdr-ingest-bench-accounts-$$
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -f "/etc/pam.d/$pam_service"
    stop_test_servers
}
trap cleanup EXIT

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds.
wait_for() {
    local what=$1 limit=$(( SECONDS + $2 )); shift 2
    until "$@" 2>/dev/null; do
        ((SECONDS < limit)) || die "$what did not come up within the deadline"
        sleep 0.05
    done
}

# The accounts' drops, generated once per spec.
root=$CDR_TEST_WORK_DIR/bench-ftproot
drops=$work/drops
spec="$accounts $from $to $rows $recordings $recording_bytes"
if [[ ! -f $drops/.spec || $(cat "$drops/.spec") != "$spec" ]]; then
    log "generating $accounts accounts x $days days ($rows CDRs, $recordings recordings of $recording_bytes bytes a day each)"
    rm -rf "$drops"
    mkdir -p "$drops"
    for i in $(seq 1 "$accounts"); do
        name=$(printf 'acct%02d' "$i")
        "$bin" generate --out "$drops/$name" --from "$from" --to "$to" --seed "$i" \
            --rows-per-day "$rows" --recordings-per-day "$recordings" \
            --recording-bytes "$recording_bytes" --sessions-per-day 0 \
            --manifest "$drops/$name.manifest.json" >/dev/null
    done
    echo "$spec" >"$drops/.spec"
fi
chmod -R a+rX "$drops"
mkdir -p "$root"
for i in $(seq 1 "$accounts"); do
    name=$(printf 'acct%02d' "$i")
    cp -al "$drops/$name" "$root/$name" 2>/dev/null || cp -a "$drops/$name" "$root/$name"
done
chmod 755 "$root"

# vsftpd with a virtual user per account, checked by pam_userdb against a Berkeley DB
# file of user/password pairs (db5.3_load, Debian's db5.3-util). (pam_exec, which
# forks a checker, leaves vsftpd 3.0.3's privileged process waiting on its pre-login
# child after a good password: every login hangs.)
password=$(openssl rand -hex 16)
command -v db5.3_load >/dev/null || apt-get install -y -qq --no-install-recommends db5.3-util >/dev/null
rm -f "$work/ftp-users.db"
for i in $(seq 1 "$accounts"); do printf 'acct%02d\n%s\n' "$i" "$password"; done |
    (umask 077 && db5.3_load -T -t hash "$work/ftp-users.db")
printf 'auth required pam_userdb.so db=%s\naccount required pam_permit.so\n' \
    "$work/ftp-users" >"/etc/pam.d/$pam_service"
read -r ftp_port pasv_min pasv_max <<<"$(_cdr_ts_pick_ports 1000)"
_cdr_ts_reserve "$ftp_port"
_cdr_ts_reserve "$pasv_min" "$pasv_max"
vsftpd_conf=$work/vsftpd.conf
# The test vsftpd's configuration (TLS, passive mode on loopback, privilege
# separation), with its own port, passive range, PAM service and logs, and the
# virtual users.
sed -e "s/^listen_port=.*/listen_port=$ftp_port/" \
    -e "s/^pasv_min_port=.*/pasv_min_port=$pasv_min/" \
    -e "s/^pasv_max_port=.*/pasv_max_port=$pasv_max/" \
    -e "s/^pam_service_name=.*/pam_service_name=$pam_service/" \
    -e "s|^local_root=.*|local_root=$root/\$USER|" \
    -e "s|^xferlog_enable=.*|xferlog_enable=NO|" \
    -e "s|^log_ftp_protocol=.*|log_ftp_protocol=NO|" \
    -e "s|^debug_ssl=.*|debug_ssl=NO|" \
    -e "s|^vsftpd_log_file=.*|vsftpd_log_file=$work/vsftpd.log|" \
    -e "s|^xferlog_file=.*|xferlog_file=$work/xferlog|" \
    "$CDR_TEST_WORK_DIR/vsftpd.conf" >"$vsftpd_conf"
cat >>"$vsftpd_conf" <<'EOF'
# Virtual users (scripts/bench-accounts.sh): every login works as cdrftp, in its own folder.
guest_enable=YES
guest_username=cdrftp
virtual_use_local_privs=YES
user_sub_token=$USER
EOF
chmod 600 "$vsftpd_conf"
: >"$work/vsftpd.out"
vsftpd_bin=$(command -v vsftpd || echo /usr/sbin/vsftpd)
"$vsftpd_bin" "$vsftpd_conf" 0<>"$work/vsftpd.out" 1>&0 2>&0 &
pids+=($!)
wait_for vsftpd 20 _cdr_ts_probe "$ftp_port"

# The delay proxy in front of it, its passive ports on 127.0.0.2. (Its output file is
# emptied first: the poll below must not read the port of an earlier run's proxy.)
: >"$work/proxy.out"
"$work/delay_proxy" --listen 127.0.0.2:0 --to "127.0.0.1:$ftp_port" --rtt-ms "$rtt" \
    --data-ports "$pasv_min-$pasv_max" >"$work/proxy.out" 2>&1 &
pids+=($!)
wait_for "the delay proxy" 20 grep -q '^listening on ' "$work/proxy.out"
proxy_port=$(sed -n 's/^listening on .*://p' "$work/proxy.out")

# s3s-fs over a folder; the bucket is a folder in it.
s3_root=$work/s3
rm -rf "$s3_root"
mkdir -p "$s3_root/bench"
s3_port=$(_cdr_ts_pick_port)
export AWS_ACCESS_KEY_ID=AKIABENCHACCOUNTS001 AWS_SECRET_ACCESS_KEY=bench-accounts-secret
"$s3s_fs" --host 127.0.0.1 --port "$s3_port" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" "$s3_root" >"$work/s3s-fs.log" 2>&1 &
pids+=($!)
s3_up() { (exec 3<>"/dev/tcp/127.0.0.1/$s3_port"); }
wait_for s3s-fs 20 s3_up
log "vsftpd :$ftp_port (passive $pasv_min-$pasv_max) behind the delay proxy 127.0.0.2:$proxy_port ($rtt ms), s3s-fs :$s3_port over $s3_root"

# ---------------------------------------------------------------------------------
# config CASE: the configuration of a case (its own prefix in the bucket).
config() {
    local file=$work/$1.toml i name
    {
        printf '[source]\npassword_env = "CDR_BENCH_PASSWORD"\nca_file = "%s"\n' "$CDR_TEST_CA_FILE"
        [[ -n $max_connections ]] && printf 'max_connections = %s\n' "$max_connections"
        printf '[destination]\nurl = "s3://bench/%s"\n' "$1"
        printf '[destination.options]\nendpoint = "http://127.0.0.1:%s"\nregion = "us-east-1"\n' "$s3_port"
        printf 'allow_http = "true"\nvirtual_hosted_style_request = "false"\n'
        printf '[ingest]\ncategories = ["cdr", "queue", "recordings"]\n'
        printf 'recordings_min_age_secs = 0\nlease_secs = %s\n' "$lease"
        for i in $(seq 1 "$accounts"); do
            name=$(printf 'acct%02d' "$i")
            printf '\n[[accounts]]\nname = "%s"\n[accounts.source]\nurl = "ftps://%s@127.0.0.2:%s"\n' \
                "$name" "$name" "$proxy_port"
        done
    } >"$file"
    echo "$file"
}

# ledger_days CASE: the accounts' CDR days in the ledger so far.
ledger_days() {
    find "$s3_root/bench/$1" -path '*/_state/ledger/cdr/*' -name '*.json' 2>/dev/null | wc -l
}

# check CASE: checks the case's output against the manifests; prints
# "DUPLICATES COMPLETE DETAIL" (COMPLETE yes/no).
check() {
    python3 - "$s3_root/bench/$1" "$drops" "$accounts" <<'PY'
import glob, json, os, sys
import duckdb

base, drops, accounts = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = [f"acct{i:02d}" for i in range(1, accounts + 1)]
want = {}
for name in names:
    days = json.load(open(os.path.join(drops, f"{name}.manifest.json")))["days"]
    want[name] = {
        "cdr": sum(d["calls"] for d in days),
        "queue_call": sum(d["queue_calls"] for d in days),
        "queue_user_call": sum(d["queue_user_calls"] for d in days),
        "recording_index": sum(len(d["recordings"]) for d in days),
        "mp3": sum(len(d["recordings"]) for d in days),
    }
con = duckdb.connect()
got = {name: {} for name in names}
duplicates = 0
for dataset, key in [("cdr", "id"), ("queue_call", "id"), ("queue_user_call", None),
                     ("recording_index", "unique_id")]:
    pattern = f"{base}/account=*/{dataset}/date=*/*.parquet"
    if not glob.glob(pattern):
        continue
    ids = f"count(DISTINCT {key})" if key else "count(*)"
    for account, n, distinct in con.sql(
        f"SELECT account, count(*), {ids} FROM read_parquet('{pattern}', hive_partitioning = true) "
        "GROUP BY account"
    ).fetchall():
        got[account][dataset] = n
        duplicates += n - distinct
for name in names:
    got[name]["mp3"] = len(glob.glob(f"{base}/account={name}/recordings/**/*.mp3", recursive=True))
wrong = [
    f"{name} {k}: {got[name].get(k, 0)} of {v}"
    for name in names
    for k, v in want[name].items()
    if got[name].get(k, 0) != v
]
total = {k: sum(got[n].get(k, 0) for n in names) for k in want[names[0]]}
detail = ", ".join(f"{k} {v}" for k, v in total.items())
if wrong:
    detail += "; WRONG: " + "; ".join(wrong[:5]) + (f" (+{len(wrong) - 5})" if len(wrong) > 5 else "")
print(duplicates, "no" if wrong else "yes", detail)
PY
}

# digest CASE: every object outside _state/ with its SHA-256 (sorted), to compare
# cases.
digest() {
    (cd "$s3_root/bench/$1" && find . -type f ! -path '*/_state/*' ! -name '.*' -print0 |
        sort -z | xargs -0 sha256sum)
}

results=$work/results.tsv
: >"$results"
baseline_wall=
baseline_digest=
failed=0

# run_case NAME WORKERS KILL(0/1): one timed case.
run_case() {
    local name=$1 n=$2 kill_one=$3 cfg i start end wall half killed_at= code
    cfg=$(config "$name")
    rm -rf "${s3_root:?}/bench/$name"
    mkdir -p "$work/logs/$name"
    half=$(( accounts * days / 2 ))
    local -a timers=() codes=()
    start=$(date +%s.%N)
    for ((i = 1; i <= n; i++)); do
        HOSTNAME=bench-worker-$i CDR_BENCH_PASSWORD=$password CDR_INGEST_LOG_FORMAT=json \
            /usr/bin/time -f '%e %U %S %M' -o "$work/logs/$name/worker-$i.time" \
            "$bin" backfill --config "$cfg" --from "$from" --to "$to" --parallel "$parallel" \
            >"$work/logs/$name/worker-$i.out" 2>"$work/logs/$name/worker-$i.log" &
        timers+=($!)
    done
    local limit=$(( SECONDS + deadline_secs )) running=$n polls=0
    while ((running > 0)); do
        polls=$((polls + 1))
        running=0
        for i in "${!timers[@]}"; do
            kill -0 "${timers[$i]}" 2>/dev/null && running=$((running + 1))
        done
        # The ledger is looked at every second.
        if ((kill_one && polls % 10 == 0)) && [[ -z $killed_at ]] &&
            (( $(ledger_days "$name") >= half )); then
            # Worker 1 itself (the child of its `time`), not the timer.
            local victim
            victim=$(pgrep -P "${timers[0]}" -x cdr-ingest || true)
            if [[ -n $victim ]]; then
                kill -KILL "$victim"
                killed_at=$(date +%s.%N)
                log "$name: killed worker 1 (pid $victim) at $(awk -v a="$start" -v b="$killed_at" 'BEGIN { printf "%.1f", b - a }') s, $(ledger_days "$name") of $((accounts * days)) CDR days done"
            fi
        fi
        if ((SECONDS > limit)); then
            for i in "${timers[@]}"; do pkill -KILL -P "$i" 2>/dev/null || true; done
            die "$name: the workers did not finish within $deadline_secs s (logs: $work/logs/$name)"
        fi
        ((running > 0)) && sleep 0.1
    done
    end=$(date +%s.%N)
    for i in "${!timers[@]}"; do
        code=0
        wait "${timers[$i]}" || code=$?
        codes+=("$code")
    done
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    # CPU of all workers (the killed one's too, until it died), largest peak RSS.
    local cpu rss
    read -r cpu rss < <(cat "$work/logs/$name"/worker-*.time | awk '
        /^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+$/ { cpu += $2 + $3; if ($4 > rss) rss = $4 }
        END { printf "%.1f %.0f\n", cpu, rss / 1024 }')
    # Leases a worker found taken from it (s3s-fs's create-only put is not atomic: see
    # the notes in bench/RESULTS.md).
    local lost
    lost=$(cat "$work/logs/$name"/worker-*.log | grep -c '"lease lost' || true)
    local bad=() exits=()
    for i in "${!codes[@]}"; do
        if ((kill_one && i == 0)); then exits+=(killed); continue; fi
        exits+=("${codes[i]}")
        ((codes[i] == 0)) || bad+=("worker $((i + 1)) exited ${codes[i]}")
    done
    local duplicates complete detail
    read -r duplicates complete detail < <(check "$name")
    local digest_now same=
    digest_now=$(digest "$name" | sha256sum | cut -c1-16)
    if [[ -z $baseline_digest ]]; then baseline_digest=$digest_now; same=-
    elif [[ $digest_now == "$baseline_digest" ]]; then same=yes
    else same=no; fi
    local takeover=-
    if [[ -n $killed_at ]]; then
        # When the survivors took over the dead worker's first and last lease.
        takeover=$(python3 - "$killed_at" "$work/logs/$name" <<'PY'
import datetime, glob, json, sys
killed = float(sys.argv[1])
times = []
for path in glob.glob(sys.argv[2] + "/worker-*.log"):
    for line in open(path, errors="replace"):
        if "taking over an expired lease" not in line:
            continue
        try:
            t = json.loads(line)["timestamp"]
        except (ValueError, KeyError):
            continue
        times.append(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() - killed)
print(f"{len(times)} leases, {min(times):.1f}-{max(times):.1f} s after the kill" if times else "none")
PY
)
    fi
    [[ -z $baseline_wall && $n == 1 && $kill_one == 0 ]] && baseline_wall=$wall
    local speedup=-
    [[ -n $baseline_wall ]] && speedup=$(awk -v a="$baseline_wall" -v b="$wall" 'BEGIN { printf "%.2f", a / b }')
    # (The table works the speed-ups out again, for cases run before the one-worker one.)
    if ((${#bad[@]})) || [[ $complete != yes || $duplicates != 0 || $same == no ]]; then
        failed=1
        log "$name: FAILED: ${bad[*]:-} complete=$complete duplicates=$duplicates same-objects=$same ($detail; logs: $work/logs/$name)"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$n" "$wall" "$speedup" "$cpu" \
        "$rss" "$duplicates" "$complete" "$same" "$takeover" "${exits[*]}; $lost leases lost" "$detail" >>"$results"
    log "$name: $wall s wall, speed-up $speedup, cpu $cpu s, $duplicates duplicates, complete $complete, same objects $same${killed_at:+, takeover $takeover}"
    [[ ${BENCH_KEEP:-0} == 1 ]] || rm -rf "${s3_root:?}/bench/$name"
}

# Every account logs in through the proxy and sees its folders.
CDR_BENCH_PASSWORD=$password CDR_INGEST_LOG_FORMAT=text \
    "$bin" validate --connect --config "$(config validate)" >"$work/validate.log" 2>&1 ||
    { tail -20 "$work/validate.log" >&2; die "validate --connect failed (log: $work/validate.log)"; }

for n in "${worker_counts[@]}"; do
    run_case "workers-$n" "$n" 0
done
if ((kill_of > 0)); then
    run_case "workers-$kill_of-one-killed" "$kill_of" 1
fi

# ---------------------------------------------------------------------------------
table=$work/table.md
{
    echo "$accounts accounts x $days days ($from..$to; per account and day $rows CDRs, a queue zip, $recordings recordings of $recording_bytes bytes), source behind ${rtt} ms RTT, s3s-fs destination, lease_secs $lease, backfill --parallel $parallel, max_connections ${max_connections:-4 (default)}; $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| case | workers | wall s | speed-up | user+sys s | peak RSS MiB | duplicate ids | complete | same objects | takeover after kill | exit codes; leases lost |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v base="$baseline_wall" '{
        speedup = base == "" ? "-" : sprintf("%.2f", base / $3)
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, speedup, $5, $6, $7, $8, $9, $10, $11 }' "$results"
    echo
    echo "output per case: $(head -1 "$results" | cut -f12)"
} | tee "$table"
exit "$failed"
}
