#!/usr/bin/env bash
# scripts/test-servers.sh — start a real vsftpd (explicit FTPS) for the
# cdr-ingest integration tests.
#
# This file is meant to be SOURCED (by scripts/test.sh, or by a developer's
# shell), not executed:
#
#     source scripts/test-servers.sh          # starts the server, exports vars
#     trap stop_test_servers EXIT             # caller's job
#
# What it does, as root on Debian 12 (CI runs it in a fresh container):
#   * installs vsftpd and openssl if they are missing (apt-get update only then);
#   * creates a work dir (CDR_TEST_DIR, or a fresh /tmp/cdr-test.XXXXXX) with a
#     test CA, a server certificate signed by it, and a second unrelated CA;
#   * creates/updates the dedicated system account "cdrftp" (password login);
#   * starts vsftpd on a free loopback port with its own config file (the
#     system's /etc/vsftpd.conf is never read or touched), waits for its 220;
#   * exports CDR_TEST_* variables and writes them to "$WORK/env".
#
# Exported variables:
#   CDR_TEST_FTPS_HOST          127.0.0.1 (connect here, but verify the TLS
#                               server name "localhost": the certificate has
#                               SAN DNS:localhost and IP:127.0.0.1)
#   CDR_TEST_FTPS_PORT          control port (explicit FTPS: AUTH TLS first)
#   CDR_TEST_FTPS_USER          login name
#   CDR_TEST_FTPS_PASSWORD      login password
#   CDR_TEST_FTPS_ROOT          folder on disk that is "/" for the FTP session
#                               (tests create files there directly, as root;
#                               they may empty it but must not delete the
#                               folder itself: logins then end in a plain-text
#                               "500 OOPS" that clients report as a TLS error)
#   CDR_TEST_CA_FILE            PEM of the CA that signed the server cert
#   CDR_TEST_UNTRUSTED_CA_FILE  PEM of an unrelated CA (must be refused)
#   CDR_TEST_WORK_DIR           the work dir (logs: vsftpd.log, xferlog)
#
# Defines stop_test_servers, which the caller runs from its EXIT trap.
#
# Optional input: CDR_TEST_DIR (work dir to use instead of a fresh one; only
# reused if this script created it), CDR_TEST_FTPS_REQUIRE_SSL_REUSE=NO
# (default YES; see the vsftpd config below).
#
# Works with or without `set -euo pipefail` in the caller: every step checks
# its own result, and on failure this file returns non-zero (so a caller with
# `set -e` stops there).
#
# Why vsftpd is started as root and not as an unprivileged user: vsftpd 3.0.3
# cannot do password logins for real accounts when unprivileged. We tried it:
#   1. `run_as_launching_user=YES` forces vsftpd's "one process" model, which
#      only supports anonymous logins: a correct password for a local user
#      ends in "500 OOPS: bad state in vsf_one_process_login" (oneprocess.c).
#   2. Even before that, PAM cannot check the password: vsftpd sets
#      PR_SET_NO_NEW_PRIVS in its session process, so the set-gid helper
#      unix_chkpwd does not get group "shadow" and cannot read /etc/shadow,
#      not even for the user vsftpd runs as ("530 Login incorrect").
#   3. It also cannot chroot, so "/" would be the machine's root.
# So vsftpd is started as root, which is how it is designed to run: the
# listener and the pre-login process (as nopriv_user "nobody", chrooted into
# an empty dir) do not serve files; after login the session runs as "cdrftp",
# chrooted into CDR_TEST_FTPS_ROOT. It only listens on 127.0.0.1.

# Refuse to be executed: the exports and stop_test_servers would be lost.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "test-servers.sh: source this file (source $0), do not run it" >&2
    exit 2
fi

# Fixed names: the account and its PAM service persist between runs (they
# are system-wide), everything else lives in the per-run work dir.
_CDR_TS_USER=cdrftp
# The GECOS marker tells us the account is ours; we never change the password
# of an account that has a different comment.
_CDR_TS_GECOS="cdr-ingest FTPS test account (scripts/test-servers.sh)"
_CDR_TS_STATE_DIR=/var/lib/cdr-ingest-test-ftp
_CDR_TS_PAM_SERVICE=cdr-ingest-test-ftp

_cdr_ts_log() { echo "test-servers: $*" >&2; }

# Install what is missing. Arguments are extra "command:package" pairs
# (ftps-smoke.sh adds curl). apt-get update only runs if something is
# missing, because it is slow and needs the network.
# shellcheck disable=SC2120 # extra arguments come from ftps-smoke.sh
_cdr_ts_install() {
    local pair cmd pkg missing=()
    for pair in vsftpd:vsftpd openssl:openssl useradd:passwd chpasswd:passwd \
                setsid:util-linux "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        # vsftpd lives in /usr/sbin, which may not be in a CI user's PATH.
        if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$cmd" ]]; then
            missing+=("$pkg")
        fi
    done
    # pam_unix (libpam-modules) is what checks the password.
    if ! compgen -G '/lib/*/security/pam_unix.so' >/dev/null &&
       ! compgen -G '/usr/lib/*/security/pam_unix.so' >/dev/null; then
        missing+=(libpam-modules)
    fi
    ((${#missing[@]} == 0)) && return 0

    if [[ $EUID -ne 0 ]]; then
        _cdr_ts_log "missing packages (${missing[*]}) and not root; install them first"
        return 1
    fi
    _cdr_ts_log "installing: ${missing[*]}"
    # noninteractive: no debconf prompts in CI. The vsftpd package may try to
    # start the system's own vsftpd (port 21, /etc/vsftpd.conf); that does
    # not interfere with ours, and Docker images usually block it anyway.
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2 || return 1
}

_cdr_ts_vsftpd_bin() {
    command -v vsftpd 2>/dev/null || echo /usr/sbin/vsftpd
}

# All TCP ports currently bound on this machine (any state, IPv4 and IPv6),
# read from /proc so no extra tool (ss, python3) is needed.
_cdr_ts_used_ports() {
    local f line local_addr
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        while read -r _ local_addr _; do
            [[ $local_addr == *:* ]] || continue # header line
            line=${local_addr##*:}
            echo $((16#$line))
        done <"$f"
    done
}

# Prints "CONTROL_PORT PASV_MIN PASV_MAX": a free control port and a free
# block of 40 passive ports. They are taken below the kernel's ephemeral
# range so outgoing connections do not grab them meanwhile. A race with
# another program is still possible; the caller retries if vsftpd cannot bind.
_cdr_ts_pick_ports() {
    local lo=10000 hi=32768 eph_lo n=40 try p q ok
    local -A used=()
    if read -r eph_lo _ 2>/dev/null </proc/sys/net/ipv4/ip_local_port_range &&
       ((eph_lo > lo + 1000)); then
        hi=$eph_lo
    fi
    for p in $(_cdr_ts_used_ports); do used[$p]=1; done

    local ctl=0 pasv=0
    for ((try = 0; try < 200; try++)); do
        p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
        [[ -z ${used[$p]:-} ]] && { ctl=$p; break; }
    done
    for ((try = 0; try < 200 && pasv == 0; try++)); do
        p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo - n)))
        ok=1
        for ((q = p; q < p + n; q++)); do
            if [[ -n ${used[$q]:-} ]] || ((q == ctl)); then ok=0; break; fi
        done
        ((ok)) && pasv=$p
    done
    if ((ctl == 0 || pasv == 0)); then
        _cdr_ts_log "could not find free ports in $lo-$hi"
        return 1
    fi
    echo "$ctl $pasv $((pasv + n - 1))"
}

# Test PKI: trusted CA, server cert signed by it, and an unrelated CA.
# `openssl req -new` + `openssl x509 -req -extfile` (rather than -addext)
# so the extensions are explicit; without an extfile `x509 -req` would
# produce X.509 v1 certificates, which rustls/webpki refuse.
_cdr_ts_make_pki() {
    local dir=$1 name
    (
        umask 077
        cd "$dir" || exit 1

        cat >ca.ext <<'EOF'
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
EOF
        # rustls rejects a leaf without CA:FALSE; the SAN carries both the
        # name tests verify (localhost) and the IP they connect to.
        cat >server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
        for name in ca untrusted-ca; do
            openssl req -new -newkey rsa:2048 -nodes -keyout "$name.key" \
                -subj "/O=cdr-ingest tests/CN=cdr-ingest $name" -out "$name.csr" &&
            openssl x509 -req -in "$name.csr" -signkey "$name.key" -days 30 \
                -sha256 -set_serial "0x$(openssl rand -hex 8)" \
                -extfile ca.ext -out "$name.pem" || exit 1
        done
        openssl req -new -newkey rsa:2048 -nodes -keyout server.key \
            -subj "/O=cdr-ingest tests/CN=localhost" -out server.csr &&
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -days 30 \
            -sha256 -set_serial "0x$(openssl rand -hex 8)" \
            -extfile server.ext -out server.pem || exit 1
        # Certificates are public; keys stay root-only (vsftpd reads its key
        # as root, before dropping privileges).
        chmod 644 ca.pem untrusted-ca.pem server.pem
        rm -f ./*.csr
    ) >"$dir/openssl.log" 2>&1 || {
        _cdr_ts_log "certificate generation failed:"
        cat "$dir/openssl.log" >&2
        return 1
    }
}

# The login account. It persists between runs (creating a user per run would
# litter /etc/passwd); its password is kept in a root-only file so that
# concurrent or repeated runs agree on it.
_cdr_ts_setup_account() {
    local home="$_CDR_TS_STATE_DIR/home" pwfile="$_CDR_TS_STATE_DIR/password"
    local entry gecos cur_home shadow_hash salt want i

    mkdir -p "$_CDR_TS_STATE_DIR" && chmod 755 "$_CDR_TS_STATE_DIR" || return 1
    # vsftpd always chdir()s into the account's home directory before the
    # chroot into local_root, and answers "500 OOPS: cannot change directory"
    # (plain text inside TLS, which clients report as a TLS error) if it is
    # missing; so make sure it exists on every start.
    mkdir -p "$home" && chmod 755 "$home" || return 1

    if ! entry=$(getent passwd "$_CDR_TS_USER"); then
        # nologin shell: the password only works for our FTP PAM service.
        # A concurrent run may create it at the same moment: re-check.
        useradd --system --user-group --no-create-home --home-dir "$home" \
            --shell /usr/sbin/nologin --comment "$_CDR_TS_GECOS" \
            "$_CDR_TS_USER" >&2 ||
            entry=$(getent passwd "$_CDR_TS_USER") || {
                _cdr_ts_log "useradd $_CDR_TS_USER failed"
                return 1
            }
        entry=$(getent passwd "$_CDR_TS_USER") || return 1
    fi
    IFS=: read -r _ _ _ _ gecos cur_home _ <<<"$entry"
    if [[ $gecos != "$_CDR_TS_GECOS" ]]; then
        _cdr_ts_log "user $_CDR_TS_USER exists but was not created by this script" \
            "(comment: '$gecos'); refusing to change its password"
        return 1
    fi
    if [[ $cur_home != "$home" ]]; then
        usermod --home "$home" "$_CDR_TS_USER" >&2 || return 1
    fi

    if [[ ! -s $pwfile ]]; then
        (umask 077 && openssl rand -hex 16 >"$pwfile.$$" && mv "$pwfile.$$" "$pwfile") ||
            return 1
    fi
    _CDR_TS_PASSWORD=$(<"$pwfile")

    # Only rewrite /etc/shadow when the stored hash does not match (chpasswd
    # takes a lock, and concurrent runs would otherwise collide on it).
    shadow_hash=$(getent shadow "$_CDR_TS_USER" | cut -d: -f2)
    if [[ $shadow_hash == "\$6\$"* ]]; then
        salt=${shadow_hash#"\$6\$"}
        salt=${salt%%'$'*}
        want=$(printf '%s\n' "$_CDR_TS_PASSWORD" | openssl passwd -6 -salt "$salt" -stdin)
        [[ $want == "$shadow_hash" ]] && return 0
    fi
    want=$(printf '%s\n' "$_CDR_TS_PASSWORD" | openssl passwd -6 -stdin) || return 1
    for ((i = 0; i < 10; i++)); do
        printf '%s:%s\n' "$_CDR_TS_USER" "$want" | chpasswd -e >&2 && return 0
        sleep 0.2 # /etc/shadow locked by a concurrent run
    done
    _cdr_ts_log "chpasswd failed for $_CDR_TS_USER"
    return 1
}

# Our own PAM service: Debian's /etc/pam.d/vsftpd also requires a shell
# listed in /etc/shells (pam_shells), which would mean giving the test
# account a real login shell. "nodelay" because tests check wrong passwords
# and do not need pam_unix's 2 s anti-brute-force delay.
_cdr_ts_setup_pam() {
    local f="/etc/pam.d/$_CDR_TS_PAM_SERVICE" tmp
    tmp=$(mktemp "$f.XXXXXX") || return 1
    cat >"$tmp" <<'EOF'
# Managed by cdr-ingest scripts/test-servers.sh (loopback FTPS test server).
auth     required  pam_unix.so nodelay
account  required  pam_unix.so
EOF
    chmod 644 "$tmp" && mv -f "$tmp" "$f"
}

# Only offer TLS options this vsftpd knows: vsftpd dies on unknown options
# ("unrecognised variable in config file"). Debian 12 ships 3.0.3, which
# has only ssl_sslv2/ssl_sslv3/ssl_tlsv1 (the latter = TLS 1.0 only) and
# negotiates TLS 1.2 and 1.3 through OpenSSL's TLS_server_method; newer
# vsftpd (3.0.5, Debian 13) has per-version switches.
_cdr_ts_tls_options() {
    local bin opt
    bin=$(_cdr_ts_vsftpd_bin)
    echo "ssl_sslv2=NO"
    echo "ssl_sslv3=NO"
    echo "ssl_tlsv1=NO"
    for opt in ssl_tlsv1_1=NO ssl_tlsv1_2=YES ssl_tlsv1_3=YES; do
        if grep -qaF "${opt%%=*}" "$bin"; then echo "$opt"; fi
    done
}

_cdr_ts_write_config() {
    local work=$1 port=$2 pasv_min=$3 pasv_max=$4
    # Escape hatch for debugging a client that cannot resume TLS sessions on
    # data connections (vsftpd then answers "522 SSL connection failed;
    # session reuse required"): CDR_TEST_FTPS_REQUIRE_SSL_REUSE=NO.
    local reuse=${CDR_TEST_FTPS_REQUIRE_SSL_REUSE:-YES}
    if [[ $reuse != YES && $reuse != NO ]]; then
        _cdr_ts_log "CDR_TEST_FTPS_REQUIRE_SSL_REUSE must be YES or NO, not '$reuse'"
        return 1
    fi
    (
        umask 077
        cat >"$work/vsftpd.conf" <<EOF
# Generated by scripts/test-servers.sh — loopback FTPS server for tests.
# Standalone, in the foreground: the script backgrounds it and keeps the pid.
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
background=NO

# Password logins for the local account only.
anonymous_enable=NO
local_enable=YES
pam_service_name=$_CDR_TS_PAM_SERVICE
userlist_enable=NO
tcp_wrappers=NO
session_support=NO
delay_failed_login=0
# Tests run in parallel: no connection limits.
max_clients=0
max_per_ip=0

# Read-only; tests put files into the served folder on disk.
write_enable=NO
download_enable=YES
dirlist_enable=YES
ls_recurse_enable=NO
# Listings and MDTM in UTC.
use_localtime=NO

# "/" of the FTP session is the served folder, so tests use relative paths.
# The folder is root-owned (not writable by the session user), so the
# writable-root check would pass anyway; allowed in case tests chmod it.
chroot_local_user=YES
allow_writeable_chroot=YES
local_root=$work/ftproot
passwd_chroot_enable=NO

# Privilege separation: the pre-login process runs as nobody in an empty,
# root-owned dir (our own, so /usr/share/empty or /var/run/vsftpd/empty
# need not exist).
nopriv_user=nobody
secure_chroot_dir=$work/empty
# Debian already defaults to NO; the seccomp filter is known to kill
# sessions on some kernel/libc combinations.
seccomp_sandbox=NO

# Passive mode only, on loopback.
pasv_enable=YES
pasv_address=127.0.0.1
pasv_addr_resolve=NO
pasv_min_port=$pasv_min
pasv_max_port=$pasv_max
port_enable=NO
connect_from_port_20=NO

# Explicit FTPS (AUTH TLS on the control port), required for login and data.
ssl_enable=YES
implicit_ssl=NO
allow_anon_ssl=NO
force_local_logins_ssl=YES
force_local_data_ssl=YES
# Data connections must resume the control connection's TLS session (the
# safe default, and what the PBX's server is assumed to do).
require_ssl_reuse=$reuse
$(_cdr_ts_tls_options)
# TLS 1.2 suites rustls supports with an RSA key (TLS 1.3 suites are not
# affected by this list).
ssl_ciphers=ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305
rsa_cert_file=$work/server.pem
rsa_private_key_file=$work/server.key
ssl_request_cert=NO
require_cert=NO

# Logs in the work dir, for debugging failed tests.
syslog_enable=NO
xferlog_enable=YES
dual_log_enable=YES
xferlog_file=$work/xferlog
vsftpd_log_file=$work/vsftpd.log
log_ftp_protocol=YES
debug_ssl=YES
EOF
    )
}

# "PID:STARTTIME" of a process (field 22 of /proc/PID/stat), so that later
# signals go to that very process and never to an unrelated one that got
# the same PID after it exited.
_cdr_ts_ident() {
    local stat rest
    local -a f
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    rest=${stat##*) } # the command name may contain spaces and ')'
    read -r -a f <<<"$rest"
    echo "$1:${f[19]}"
}

# Sends signal $1 to each "PID:STARTTIME" that still is that process;
# returns 0 if at least one was still there.
_cdr_ts_signal() {
    local sig=$1 id any=1
    shift
    for id in "$@"; do
        [[ $(_cdr_ts_ident "${id%%:*}" 2>/dev/null) == "$id" ]] || continue
        any=0
        [[ $sig == 0 ]] || kill "-$sig" "${id%%:*}" 2>/dev/null || true
    done
    return $any
}

# Every process below $1 as "PID:STARTTIME", each parent before its children.
_cdr_ts_descendants() {
    local parent=$1 f stat rest ppid pid
    local -a kids=()
    for f in /proc/[0-9]*/stat; do
        read -r stat 2>/dev/null <"$f" || continue
        rest=${stat##*) }
        read -r _ ppid _ <<<"$rest"
        if [[ $ppid == "$parent" ]]; then
            pid=${f#/proc/}
            kids+=("${pid%/stat}")
        fi
    done
    for pid in "${kids[@]}"; do
        _cdr_ts_ident "$pid" || continue
        _cdr_ts_descendants "$pid"
    done
}

# Stops the process identified by $1 ("PID:STARTTIME") and everything below
# it. The session processes get SIGTERM first (leaves first), then the
# listener, so each is reaped by its own parent rather than left as a
# zombie for PID 1 (which in some CI containers never reaps); whatever is
# left after 5 s gets SIGKILL.
_cdr_ts_kill_tree() {
    local id=$1 i
    local -a ids rev=()
    [[ -n $id ]] || return 0
    _cdr_ts_signal 0 "$id" || return 0
    mapfile -t ids < <(_cdr_ts_descendants "${id%%:*}")
    for ((i = ${#ids[@]} - 1; i >= 0; i--)); do rev+=("${ids[i]}"); done
    if ((${#rev[@]})); then
        _cdr_ts_signal TERM "${rev[@]}" || true
        for ((i = 0; i < 20; i++)); do
            _cdr_ts_signal 0 "${rev[@]}" || break
            sleep 0.1
        done
    fi
    _cdr_ts_signal TERM "$id" || true
    for ((i = 0; i < 50; i++)); do
        _cdr_ts_signal 0 "$id" || break
        sleep 0.1
    done
    _cdr_ts_signal KILL "$id" "${rev[@]}" || true
}

# Stops vsftpd (and its session processes) and the watchdog. Safe to call
# more than once, and when nothing was started. Keeps the work dir (logs).
stop_test_servers() {
    local pid=${_CDR_TS_VSFTPD_PID:-} id=${_CDR_TS_VSFTPD_ID:-}
    local dog=${_CDR_TS_WATCHDOG_PID:-}
    _CDR_TS_VSFTPD_PID=
    _CDR_TS_VSFTPD_ID=
    _CDR_TS_WATCHDOG_PID=
    # Both are children of this shell and not yet reaped, so their PIDs
    # cannot have been reused.
    if [[ -n $dog ]]; then
        kill -TERM "$dog" 2>/dev/null || true
        wait "$dog" 2>/dev/null || true
    fi
    if [[ -n $pid ]]; then
        _cdr_ts_kill_tree "$id"
        # Reap it so no "Terminated" notice or zombie stays.
        wait "$pid" 2>/dev/null || true
    fi
    return 0
}

# 0 when something on the port answers with an FTP greeting.
_cdr_ts_probe() {
    local port=$1 line
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        IFS= read -r -t 2 line <&3 || exit 1
        [[ $line == 220* ]]
    ) 2>/dev/null
}

# Starts vsftpd on a free port; retries with new ports if the bind loses a
# race. Sets _CDR_TS_VSFTPD_PID, _CDR_TS_VSFTPD_ID and _CDR_TS_PORT.
_cdr_ts_launch() {
    local work=$1 bin attempt ports port pmin pmax pid deadline
    bin=$(_cdr_ts_vsftpd_bin)
    for ((attempt = 1; attempt <= 5; attempt++)); do
        ports=$(_cdr_ts_pick_ports) || return 1
        read -r port pmin pmax <<<"$ports"
        _cdr_ts_write_config "$work" "$port" "$pmin" "$pmax" || return 1
        # The served folder (local_root) must exist at every start, or
        # logins fail with a plain-text 500 OOPS inside TLS.
        mkdir -p "$work/ftproot" || return 1

        # stdin/stdout/stderr detached from the caller: otherwise a
        # `test.sh | tee` pipeline would wait for vsftpd to close the pipe.
        # vsftpd writes its fatal "500 OOPS" messages to fd 0 (the FTP
        # control fd), so fd 0 is the (writable) output file as well.
        : >"$work/vsftpd.out"
        "$bin" "$work/vsftpd.conf" 0<>"$work/vsftpd.out" 1>&0 2>&0 &
        pid=$!
        _CDR_TS_VSFTPD_PID=$pid
        _CDR_TS_VSFTPD_ID=$(_cdr_ts_ident "$pid") || _CDR_TS_VSFTPD_ID=

        deadline=$((SECONDS + 20))
        while ((SECONDS < deadline)); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if _cdr_ts_probe "$port"; then
                _CDR_TS_PORT=$port
                return 0
            fi
            sleep 0.05
        done

        if kill -0 "$pid" 2>/dev/null; then
            _cdr_ts_log "vsftpd did not answer 220 on port $port within 20 s"
            stop_test_servers
            break
        fi
        wait "$pid" 2>/dev/null || true
        _CDR_TS_VSFTPD_PID=
        _CDR_TS_VSFTPD_ID=
        if grep -q "could not bind" "$work/vsftpd.out" 2>/dev/null; then
            _cdr_ts_log "port $port was taken meanwhile, retrying ($attempt/5)"
            continue
        fi
        _cdr_ts_log "vsftpd exited during startup"
        break
    done
    _cdr_ts_log "vsftpd failed to start; config: $work/vsftpd.conf"
    _cdr_ts_log "--- vsftpd output ---"
    cat "$work/vsftpd.out" >&2 2>/dev/null || true
    _cdr_ts_log "--- vsftpd.log ---"
    tail -n 50 "$work/vsftpd.log" >&2 2>/dev/null || true
    return 1
}

# Kills vsftpd if the shell that sourced us dies without running its EXIT
# trap (SIGKILL, OOM): no stray servers after a crash.
_cdr_ts_start_watchdog() {
    local shell_id server_id=$1
    shell_id=$(_cdr_ts_ident $$) || return 0
    (
        nap=
        # Also end (and reap) the current sleep, so nothing is left behind.
        trap 'kill "$nap" 2>/dev/null; wait "$nap"; exit 0' TERM
        while _cdr_ts_signal 0 "$shell_id"; do
            sleep 1 &
            nap=$!
            wait "$nap" || true
        done
        _cdr_ts_kill_tree "$server_id"
    ) </dev/null >/dev/null 2>&1 &
    _CDR_TS_WATCHDOG_PID=$!
}

_cdr_ts_start() {
    local work
    # useradd, chpasswd and vsftpd live in sbin, which a CI job's PATH may
    # lack; `local` keeps the caller's PATH unchanged.
    local PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

    if [[ $EUID -ne 0 ]]; then
        _cdr_ts_log "must run as root (creates a system account, starts vsftpd as root)"
        return 1
    fi
    # Sourced again in the same shell: replace the previous server.
    stop_test_servers

    _cdr_ts_install || return 1

    if [[ -n ${CDR_TEST_DIR:-} ]]; then
        work=$CDR_TEST_DIR
        mkdir -p "$work" || return 1
        # Only reuse a directory we created, never wipe someone's folder.
        if [[ -n $(ls -A "$work") && ! -e $work/.cdr-test-servers ]]; then
            _cdr_ts_log "CDR_TEST_DIR=$work is not empty and not ours; refusing"
            return 1
        fi
        rm -rf "${work:?}/ftproot" "$work/empty"
        rm -f "$work"/{vsftpd.out,vsftpd.log,xferlog,env}
    else
        work=$(mktemp -d /tmp/cdr-test.XXXXXX) || return 1
    fi
    work=$(cd "$work" && pwd -P) || return 1
    : >"$work/.cdr-test-servers"
    # The session user must be able to traverse to ftproot (vsftpd does the
    # chdir with the user's ids); mktemp creates 0700.
    chmod 755 "$work" || return 1
    mkdir -p "$work/ftproot" "$work/empty" &&
        chmod 755 "$work/ftproot" && chmod 555 "$work/empty" || return 1

    if ! getent passwd nobody >/dev/null; then
        _cdr_ts_log "user 'nobody' (vsftpd's nopriv_user) does not exist"
        return 1
    fi
    _cdr_ts_make_pki "$work" || return 1
    _cdr_ts_setup_account || return 1
    _cdr_ts_setup_pam || return 1
    _cdr_ts_launch "$work" || return 1
    _cdr_ts_start_watchdog "$_CDR_TS_VSFTPD_ID"

    export CDR_TEST_FTPS_HOST=127.0.0.1 # TLS server name to verify: localhost
    export CDR_TEST_FTPS_PORT=$_CDR_TS_PORT
    export CDR_TEST_FTPS_USER=$_CDR_TS_USER
    export CDR_TEST_FTPS_PASSWORD=$_CDR_TS_PASSWORD
    export CDR_TEST_FTPS_ROOT=$work/ftproot
    export CDR_TEST_CA_FILE=$work/ca.pem
    export CDR_TEST_UNTRUSTED_CA_FILE=$work/untrusted-ca.pem
    export CDR_TEST_WORK_DIR=$work

    # For a developer shell: set -a; source "$work/env"; set +a
    {
        local v
        for v in CDR_TEST_FTPS_HOST CDR_TEST_FTPS_PORT CDR_TEST_FTPS_USER \
                 CDR_TEST_FTPS_PASSWORD CDR_TEST_FTPS_ROOT CDR_TEST_CA_FILE \
                 CDR_TEST_UNTRUSTED_CA_FILE CDR_TEST_WORK_DIR; do
            printf '%s=%q\n' "$v" "${!v}"
        done
    } >"$work/env" || return 1
    chmod 600 "$work/env"

    _cdr_ts_log "vsftpd (pid $_CDR_TS_VSFTPD_PID) ready on 127.0.0.1:$_CDR_TS_PORT," \
        "root $CDR_TEST_FTPS_ROOT, env in $work/env"
}

_cdr_ts_start
