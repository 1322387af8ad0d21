#!/usr/bin/env bash
# scripts/test-servers.sh — start the real servers the cdr-ingest integration
# tests talk to: vsftpd, pure-ftpd and ProFTPD (explicit FTPS; ProFTPD also
# SFTP through mod_sftp), OpenSSH (SFTP only),
# moto (an S3 emulator) and a Prometheus Pushgateway, each on its own free
# loopback port.
#
# This file is meant to be SOURCED (by scripts/test.sh, or by a developer's
# shell), not executed:
#
#     source scripts/test-servers.sh          # starts the servers, exports vars
#     trap stop_test_servers EXIT             # caller's job
#
# What it does, as root on Debian 12 (CI runs it in a fresh container):
#   * installs vsftpd, openssh-server/-client, openssl, util-linux,
#     prometheus-pushgateway and prometheus (for promtool, which checks
#     deploy/prometheus-rules.yaml) if they are missing (apt-get update only
#     then), with service starts blocked so no system vsftpd/sshd/Prometheus
#     is started on ports 21/22/9090;
#   * unpacks Debian's pure-ftpd package into /var/lib/cdr-ingest-test-pureftpd
#     instead of installing it (see "Why pure-ftpd is unpacked" below);
#   * pip-installs moto[server] if python3 cannot import it;
#   * creates a work dir (CDR_TEST_DIR, or a fresh /tmp/cdr-test.XXXXXX) with a
#     test CA, a server certificate signed by it, and a second unrelated CA;
#   * creates/updates the dedicated system accounts "cdrftp" (vsftpd login,
#     and the uid pure-ftpd's virtual user works as) and "cdrsftp" (SFTP);
#   * starts each server with its own config (the system's /etc/vsftpd.conf,
#     /etc/ssh/sshd_config, /etc/pure-ftpd are never read or touched), waits
#     until it answers (no fixed sleeps), creates the S3 test bucket;
#   * exports CDR_TEST_* variables and writes them to "$WORK/env".
#
# Exported variables:
#   CDR_TEST_FTPS_HOST          127.0.0.1 (connect here, but verify the TLS
#                               server name "localhost": the certificate has
#                               SAN DNS:localhost and IP:127.0.0.1); also the
#                               host of every other server below
#   CDR_TEST_FTPS_PORT          vsftpd control port (explicit FTPS: AUTH TLS first)
#   CDR_TEST_FTPS_USER          login name
#   CDR_TEST_FTPS_PASSWORD      login password
#   CDR_TEST_FTPS_ROOT          folder on disk that is "/" for the FTP session
#                               (tests create files there directly, as root;
#                               they may empty it but must not delete the
#                               folder itself: logins then end in a plain-text
#                               "500 OOPS" that clients report as a TLS error)
#   CDR_TEST_CA_FILE            PEM of the CA that signed the server cert
#   CDR_TEST_UNTRUSTED_CA_FILE  PEM of an unrelated CA (must be refused)
#   CDR_TEST_WORK_DIR           the work dir (vsftpd.pid and sftp/sshd.pid;
#                               logs: vsftpd.log, xferlog,
#                               pure-ftpd.out, pure-ftpd-xfer.log, sshd.log,
#                               moto.log, pushgateway.log)
#
#   CDR_TEST_PUREFTPD_PORT      pure-ftpd control port: explicit FTPS, TLS
#                               required for login and data (-Y 3); same
#                               certificate (same CA, name localhost) as vsftpd
#   CDR_TEST_PUREFTPD_USER      login name (a pure-ftpd virtual user)
#   CDR_TEST_PUREFTPD_PASSWORD  its password (new each run)
#   CDR_TEST_PUREFTPD_ROOT      "/" of its FTP session: the SAME folder as
#                               CDR_TEST_FTPS_ROOT (put a file once, read it
#                               from both servers; their LIST formats differ)
#
#   CDR_TEST_PROFTPD_PORT       ProFTPD (Debian's proftpd-core + proftpd-mod-crypto,
#                               unpacked like pure-ftpd) control port: explicit
#                               FTPS, "TLSRequired on", data connections must
#                               reuse the control connection's TLS session (mod_tls's
#                               default); MLSD; same certificate as vsftpd
#   CDR_TEST_PROFTPD_USER       login name (a mod_auth_file virtual user working as
#                               cdrftp's uid), for FTPS and SFTP
#   CDR_TEST_PROFTPD_PASSWORD   its password (new each run)
#   CDR_TEST_PROFTPD_ROOT       "/" of its sessions (chrooted): the SAME folder as
#                               CDR_TEST_FTPS_ROOT
#   CDR_TEST_PROFTPD_SFTP_PORT  ProFTPD's mod_sftp port: password, or the key
#                               CDR_TEST_SFTP_KEY; relative paths start at "/" =
#                               CDR_TEST_PROFTPD_ROOT
#   CDR_TEST_PROFTPD_SFTP_KNOWN_HOSTS  known_hosts with mod_sftp's RSA host key
#                               (logs: proftpd.log, proftpd-tls.log,
#                               proftpd-sftp.log, proftpd-xfer.log, and
#                               proftpd-commands.log: "PID COMMAND ARGS")
#
#   CDR_TEST_SFTP_PORT          sshd port (SFTP only; no shell, no forwarding)
#   CDR_TEST_SFTP_USER          login name (system account cdrsftp)
#   CDR_TEST_SFTP_PASSWORD      its password (password and keyboard-interactive
#                               login both work)
#   CDR_TEST_SFTP_KEY           private ed25519 key (OpenSSH format, no
#                               passphrase) accepted for CDR_TEST_SFTP_USER
#   CDR_TEST_SFTP_ROOT          absolute path of the served folder as the SFTP
#                               client sees it: the SAME folder as
#                               CDR_TEST_FTPS_ROOT (no chroot, see below); it
#                               is also the session's starting directory, so
#                               relative paths work as with FTPS
#   CDR_TEST_SFTP_KNOWN_HOSTS   known_hosts with the server's key, for
#                               [127.0.0.1]:PORT and [localhost]:PORT
#   CDR_TEST_SFTP_KNOWN_HOSTS_HASHED  the same entries, hashed (ssh-keygen -H)
#   CDR_TEST_SFTP_KNOWN_HOSTS_WRONG   the same host names with a DIFFERENT
#                               ed25519 key (a "changed host key": must be refused)
#   CDR_TEST_SFTP_HOST_KEY_SHA256     the server key's fingerprint as
#                               `ssh-keygen -lf` prints it ("SHA256:...")
#
#   CDR_TEST_S3_ENDPOINT        http://127.0.0.1:PORT (moto; path-style
#                               addressing, plain HTTP)
#   CDR_TEST_S3_BUCKET          cdr-test (created empty at every start)
#   CDR_TEST_S3_REGION          us-east-1
#   CDR_TEST_S3_ACCESS_KEY_ID / CDR_TEST_S3_SECRET_ACCESS_KEY
#                               dummy credentials (moto does not check
#                               signatures; AWS_* variables are NOT exported)
#
#   CDR_TEST_PUSHGATEWAY_URL    http://127.0.0.1:PORT (Debian's
#                               prometheus-pushgateway, in memory; tests push
#                               under their own instance label, since they
#                               share it)
#
# Defines stop_test_servers, which the caller runs from its EXIT trap.
#
# Optional input: CDR_TEST_DIR (work dir to use instead of a fresh one; only
# reused if this script created it), CDR_TEST_FTPS_REQUIRE_SSL_REUSE=NO
# (default YES; see the vsftpd config below), CDR_TEST_FTPS_PASV_PORTS (size
# of vsftpd's passive port range, default 40; benchmarks that open thousands
# of data connections a minute want more).
#
# Works with or without `set -euo pipefail` in the caller: every step checks
# its own result, and on failure this file stops whatever it had started and
# returns non-zero (so a caller with `set -e` stops there).
#
# Which server runs as which user, and why:
#
# vsftpd is started as root, not as an unprivileged user: vsftpd 3.0.3
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
#
# pure-ftpd is started as root too: Debian builds it without --with-nonroot,
# and started as an ordinary user every login ends in "421 Sorry, but I
# can't trust you" (it cannot chroot and switch to the account's uid; we
# tried it). As root it works as designed: after login the session process
# is chrooted into the served folder and runs as uid/gid "cdrftp" (the
# virtual user is mapped to that account, so both FTP servers read the
# folder with the same rights). Logins are checked against its own PureDB
# file in the work dir, not against system accounts or PAM.
#
# sshd runs UNPRIVILEGED, as the account "cdrsftp" it serves (an sshd that
# is not root can only log in the user it runs as). Public-key login needs
# nothing special. Password login works through PAM: pam_unix, when not
# root, asks its set-gid helper unix_chkpwd, which checks the password of
# the calling user itself (here the same account) — unlike vsftpd, sshd
# does not set PR_SET_NO_NEW_PRIVS in the process that runs PAM. Without
# root there is no chroot, hence the absolute CDR_TEST_SFTP_ROOT.
#
# moto runs as root: pip installs it (and Python itself, via pyenv) under
# /root, which is mode 0700 on these machines, so no other account can
# import it. It only listens on 127.0.0.1, keeps buckets in memory and
# serves no files.
#
# Why pure-ftpd is unpacked and not installed: Debian's vsftpd and pure-ftpd
# packages both "Provide/Conflict: ftp-server", so installing pure-ftpd
# REMOVES vsftpd (and the other way round). Its .deb is fetched with
# `apt-get download` and unpacked with dpkg-deb into a fixed folder (kept
# between runs); only its shared libraries are installed as packages. This
# also means no system pure-ftpd (and no inetd) is ever started.

# Refuse to be executed: the exports and stop_test_servers would be lost.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    echo "test-servers.sh: source this file (source $0), do not run it" >&2
    exit 2
fi

# Fixed names: the accounts, their PAM services and the unpacked pure-ftpd
# persist between runs (they are system-wide), everything else lives in the
# per-run work dir.
_CDR_TS_USER=cdrftp
# The GECOS marker tells us the account is ours; we never change the password
# of an account that has a different comment.
_CDR_TS_GECOS="cdr-ingest FTPS test account (scripts/test-servers.sh)"
_CDR_TS_STATE_DIR=/var/lib/cdr-ingest-test-ftp
_CDR_TS_PAM_SERVICE=cdr-ingest-test-ftp

_CDR_TS_SFTP_USER=cdrsftp
_CDR_TS_SFTP_GECOS="cdr-ingest SFTP test account (scripts/test-servers.sh)"
_CDR_TS_SFTP_STATE_DIR=/var/lib/cdr-ingest-test-sftp
# OpenSSH 9.2 (Debian 12) names its PAM service after the program name it
# was started as (argv[0]); it is started through a symlink with this name
# (see _cdr_ts_launch_sshd), so the system's /etc/pam.d/sshd is not used.
# Newer OpenSSH defaults to "sshd" and has a PAMServiceName option instead,
# which is set when this sshd knows it (_cdr_ts_sshd_extra_options).
_CDR_TS_SFTP_PAM_SERVICE=cdr-ingest-test-sftp

_CDR_TS_PUREFTPD_USER=cdrpure
_CDR_TS_PUREFTPD_DIR=/var/lib/cdr-ingest-test-pureftpd

_CDR_TS_PROFTPD_USER=cdrpro
_CDR_TS_PROFTPD_DIR=/var/lib/cdr-ingest-test-proftpd

_CDR_TS_S3_BUCKET=cdr-test
_CDR_TS_S3_REGION=us-east-1
_CDR_TS_S3_ACCESS_KEY_ID=AKIACDRINGESTTEST001
_CDR_TS_S3_SECRET_ACCESS_KEY=cdr-ingest-test-secret-key

# Written as /usr/sbin/policy-rc.d while apt-get runs, if there is none.
_CDR_TS_POLICY_MARK="cdr-ingest scripts/test-servers.sh: temporary, blocks service starts"

# Ports handed out in this run (control ports and passive ranges), so that
# the next server's pick avoids them even before they are bound.
declare -gA _CDR_TS_RESERVED=()

_cdr_ts_log() { echo "test-servers: $*" >&2; }

_CDR_TS_APT_UPDATED=
_cdr_ts_apt_update() {
    [[ -n $_CDR_TS_APT_UPDATED ]] && return 0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    _CDR_TS_APT_UPDATED=1
}

# apt-get install with service starts blocked: openssh-server would start
# the system's sshd on port 22 and vsftpd the system's vsftpd on port 21.
# Neither is needed, and a port-22 sshd allowing password logins is not
# something a test run should leave behind. Docker images usually ship a
# policy-rc.d that does exactly this; if there is none, one is put in place
# for the duration of the install (ours carries a marker, so a copy left by
# an interrupted run is recognised and removed).
_cdr_ts_apt_install() {
    local policy=/usr/sbin/policy-rc.d ours=0 rc=0
    if [[ ! -e $policy ]] || grep -qF "$_CDR_TS_POLICY_MARK" "$policy" 2>/dev/null; then
        printf '#!/bin/sh\n# %s\nexit 101\n' "$_CDR_TS_POLICY_MARK" >"$policy" &&
            chmod 755 "$policy" || return 1
        ours=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$@" >&2 || rc=$?
    if ((ours)); then rm -f "$policy"; fi
    return "$rc"
}

# Install what is missing. Arguments are extra "command:package" pairs
# (the smoke scripts add curl, sshpass). apt-get update only runs if
# something is missing, because it is slow and needs the network.
# shellcheck disable=SC2120 # extra arguments come from the smoke scripts
_cdr_ts_install() {
    local pair cmd pkg missing=()
    for pair in vsftpd:vsftpd openssl:openssl useradd:passwd chpasswd:passwd \
                setsid:util-linux setpriv:util-linux sshd:openssh-server \
                ssh-keygen:openssh-client \
                prometheus-pushgateway:prometheus-pushgateway promtool:prometheus "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        # vsftpd and sshd live in /usr/sbin, which may not be in a CI user's PATH.
        if ! command -v "$cmd" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$cmd" ]]; then
            missing+=("$pkg")
        fi
    done
    # pam_unix (libpam-modules) is what checks the passwords.
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
    # noninteractive: no debconf prompts in CI.
    _cdr_ts_apt_update || return 1
    _cdr_ts_apt_install "${missing[@]}"
}

_cdr_ts_pureftpd_bin() { echo "$_CDR_TS_PUREFTPD_DIR/root/usr/sbin/pure-ftpd"; }
_cdr_ts_purepw_bin() { echo "$_CDR_TS_PUREFTPD_DIR/root/usr/bin/pure-pw"; }

# 0 when the unpacked pure-ftpd and pure-pw find all their shared libraries.
_cdr_ts_pureftpd_usable() {
    local bin pw out
    bin=$(_cdr_ts_pureftpd_bin)
    pw=$(_cdr_ts_purepw_bin)
    [[ -x $bin && -x $pw ]] || return 1
    out=$(ldd "$bin" "$pw" 2>&1) || return 1
    [[ $out != *"not found"* ]]
}

# Fetches Debian's pure-ftpd package and unpacks it into
# $_CDR_TS_PUREFTPD_DIR/root (see "Why pure-ftpd is unpacked" above), then
# installs the libraries it depends on (libsodium23, ...) as packages.
_cdr_ts_install_pureftpd() {
    local dir=$_CDR_TS_PUREFTPD_DIR tmp deb libs=()
    _cdr_ts_pureftpd_usable && return 0
    if [[ $EUID -ne 0 ]]; then
        _cdr_ts_log "pure-ftpd is not unpacked in $dir and not root"
        return 1
    fi
    if [[ ! -x $dir/root/usr/sbin/pure-ftpd || ! -x $dir/root/usr/bin/pure-pw ]]; then
        _cdr_ts_log "fetching Debian's pure-ftpd package, unpacking it into $dir"
        mkdir -p "$dir" && chmod 755 "$dir" || return 1
        tmp=$(mktemp -d "$dir/tmp.XXXXXX") || return 1
        # apt-get download drops privileges to _apt and warns when that
        # user cannot write the target folder.
        chown _apt "$tmp" 2>/dev/null || true
        # The package lists may be missing (fresh image) or out of date.
        if ! (cd "$tmp" && apt-get download -qq pure-ftpd) >&2 2>&1; then
            if ! _cdr_ts_apt_update ||
               ! (cd "$tmp" && apt-get download -qq pure-ftpd) >&2 2>&1; then
                _cdr_ts_log "apt-get download pure-ftpd failed"
                rm -rf "$tmp"
                return 1
            fi
        fi
        deb=$(compgen -G "$tmp/pure-ftpd_*.deb" | head -n 1)
        if [[ -z $deb ]] || ! dpkg-deb -x "$deb" "$tmp/root" ||
           ! dpkg-deb -f "$deb" Depends >"$tmp/root/DEBIAN-Depends" ||
           ! dpkg-deb -f "$deb" Version >"$tmp/root/DEBIAN-Version"; then
            _cdr_ts_log "could not unpack the pure-ftpd package"
            rm -rf "$tmp"
            return 1
        fi
        # A half-unpacked copy (interrupted run) is replaced; a concurrent
        # run that finished first wins (mv -T then fails on the non-empty dir).
        if [[ -e $dir/root && ! -x $dir/root/usr/sbin/pure-ftpd ]]; then
            rm -rf "$dir/root"
        fi
        mv -T "$tmp/root" "$dir/root" 2>/dev/null || true
        rm -rf "$tmp"
    fi
    if ! _cdr_ts_pureftpd_usable; then
        # Depends: "lsb-base (>= 3.2-14), openbsd-inetd | inet-superserver,
        # pure-ftpd-common (= ...), libc6 (>= 2.33), ..." — only the lib*
        # entries matter for running the binaries.
        mapfile -t libs < <(tr ',' '\n' <"$dir/root/DEBIAN-Depends" |
            sed -e 's/|.*//' -e 's/(.*//' -e 's/[[:space:]]//g' | grep '^lib')
        if ((${#libs[@]})); then
            _cdr_ts_log "installing pure-ftpd's libraries: ${libs[*]}"
            _cdr_ts_apt_update && _cdr_ts_apt_install "${libs[@]}" || return 1
        fi
    fi
    if ! _cdr_ts_pureftpd_usable; then
        _cdr_ts_log "the unpacked pure-ftpd in $dir/root does not run:"
        ldd "$(_cdr_ts_pureftpd_bin)" >&2 || true
        return 1
    fi
}

_cdr_ts_proftpd_bin() { echo "$_CDR_TS_PROFTPD_DIR/root/usr/sbin/proftpd"; }

# 0 when the unpacked proftpd and its mod_tls/mod_sftp find their libraries.
_cdr_ts_proftpd_usable() {
    local root=$_CDR_TS_PROFTPD_DIR/root out
    [[ -x $root/usr/sbin/proftpd && -e $root/usr/lib/proftpd/mod_tls.so &&
       -e $root/usr/lib/proftpd/mod_sftp.so ]] || return 1
    out=$(ldd "$root/usr/sbin/proftpd" "$root/usr/lib/proftpd/mod_tls.so" \
        "$root/usr/lib/proftpd/mod_sftp.so" 2>&1) || return 1
    [[ $out != *"not found"* ]]
}

# Fetches Debian's proftpd-core and proftpd-mod-crypto (mod_tls, mod_sftp)
# and unpacks them into $_CDR_TS_PROFTPD_DIR/root, as pure-ftpd: installing
# them would remove vsftpd (both provide ftp-server). Then installs the
# libraries they depend on.
_cdr_ts_install_proftpd() {
    local dir=$_CDR_TS_PROFTPD_DIR tmp deb libs=()
    _cdr_ts_proftpd_usable && return 0
    if [[ $EUID -ne 0 ]]; then
        _cdr_ts_log "proftpd is not unpacked in $dir and not root"
        return 1
    fi
    if [[ ! -x $dir/root/usr/sbin/proftpd || ! -e $dir/root/usr/lib/proftpd/mod_sftp.so ]]; then
        _cdr_ts_log "fetching Debian's proftpd-core and proftpd-mod-crypto, unpacking them into $dir"
        mkdir -p "$dir" && chmod 755 "$dir" || return 1
        tmp=$(mktemp -d "$dir/tmp.XXXXXX") || return 1
        chown _apt "$tmp" 2>/dev/null || true
        if ! (cd "$tmp" && apt-get download -qq proftpd-core proftpd-mod-crypto) >&2 2>&1; then
            if ! _cdr_ts_apt_update ||
               ! (cd "$tmp" && apt-get download -qq proftpd-core proftpd-mod-crypto) >&2 2>&1; then
                _cdr_ts_log "apt-get download proftpd-core proftpd-mod-crypto failed"
                rm -rf "$tmp"
                return 1
            fi
        fi
        : >"$tmp/Depends"
        for deb in "$tmp"/proftpd-core_*.deb "$tmp"/proftpd-mod-crypto_*.deb; do
            if [[ ! -e $deb ]] || ! dpkg-deb -x "$deb" "$tmp/root" ||
               ! { dpkg-deb -f "$deb" Depends && echo ,; } >>"$tmp/Depends"; then
                _cdr_ts_log "could not unpack $deb"
                rm -rf "$tmp"
                return 1
            fi
        done
        mv "$tmp/Depends" "$tmp/root/DEBIAN-Depends" || return 1
        if [[ -e $dir/root && ! -e $dir/root/usr/lib/proftpd/mod_sftp.so ]]; then
            rm -rf "$dir/root"
        fi
        mv -T "$tmp/root" "$dir/root" 2>/dev/null || true
        rm -rf "$tmp"
    fi
    if ! _cdr_ts_proftpd_usable; then
        mapfile -t libs < <(tr ',' '\n' <"$dir/root/DEBIAN-Depends" |
            sed -e 's/|.*//' -e 's/(.*//' -e 's/[[:space:]]//g' | grep '^lib' | sort -u)
        if ((${#libs[@]})); then
            _cdr_ts_log "installing proftpd's libraries: ${libs[*]}"
            _cdr_ts_apt_update && _cdr_ts_apt_install "${libs[@]}" || return 1
        fi
    fi
    if ! _cdr_ts_proftpd_usable; then
        _cdr_ts_log "the unpacked proftpd in $dir/root does not run:"
        ldd "$(_cdr_ts_proftpd_bin)" >&2 || true
        return 1
    fi
}

# moto (S3 emulator) with its server extras. Sets _CDR_TS_PYTHON to the
# interpreter's real path (not a pyenv shim), so the server's PID is python's.
_cdr_ts_install_moto() {
    local py check='import importlib.util as u, sys
print(sys.executable if all(u.find_spec(m) for m in ("moto", "flask", "flask_cors")) else "")'
    if ! command -v python3 >/dev/null 2>&1; then
        _cdr_ts_log "python3 (with pip) is needed for the moto S3 server"
        return 1
    fi
    py=$(python3 -c "$check") || return 1
    if [[ -z $py ]]; then
        _cdr_ts_log "installing moto[server] with pip"
        python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' >&2 ||
            return 1
        py=$(python3 -c "$check") || return 1
        if [[ -z $py ]]; then
            _cdr_ts_log "moto[server] installed but python3 cannot import it"
            return 1
        fi
    fi
    _CDR_TS_PYTHON=$py
}

_cdr_ts_vsftpd_bin() {
    command -v vsftpd 2>/dev/null || echo /usr/sbin/vsftpd
}

_cdr_ts_sshd_bin() {
    command -v sshd 2>/dev/null || echo /usr/sbin/sshd
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

# Marks ports $1..$2 (or just $1) as handed out in this run.
_cdr_ts_reserve() {
    local p
    for ((p = $1; p <= ${2:-$1}; p++)); do _CDR_TS_RESERVED[$p]=1; done
}

# Prints "CONTROL_PORT PASV_MIN PASV_MAX": a free control port and a free
# block of N passive ports (N = $1, default 40). They are taken below the
# kernel's ephemeral range so outgoing connections do not grab them
# meanwhile, and avoid the ports already handed out to the other servers
# of this run. A race with another program is still possible; the caller
# retries if its server cannot bind.
_cdr_ts_pick_ports() {
    local lo=10000 hi=32768 eph_lo n=${1:-40} try p q ok
    local -A used=()
    if read -r eph_lo _ 2>/dev/null </proc/sys/net/ipv4/ip_local_port_range &&
       ((eph_lo > lo + 1000)); then
        hi=$eph_lo
    fi
    for p in $(_cdr_ts_used_ports) "${!_CDR_TS_RESERVED[@]}"; do used[$p]=1; done

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

# One free port (same rules as _cdr_ts_pick_ports).
_cdr_ts_pick_port() {
    local ports
    ports=$(_cdr_ts_pick_ports 1) || return 1
    echo "${ports%% *}"
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
        # rustls rejects a leaf without CA:FALSE; the SAN carries the
        # name tests verify (localhost), the IP they connect to, and 127.0.0.2,
        # where the delay proxy (examples/delay_proxy) listens in front of them.
        cat >server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:127.0.0.2
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
        # Certificates are public; keys stay root-only (vsftpd and pure-ftpd
        # read the key as root, before dropping privileges).
        chmod 644 ca.pem untrusted-ca.pem server.pem
        rm -f ./*.csr
    ) >"$dir/openssl.log" 2>&1 || {
        _cdr_ts_log "certificate generation failed:"
        cat "$dir/openssl.log" >&2
        return 1
    }
}

# A login account (USER GECOS STATE_DIR). It persists between runs
# (creating a user per run would litter /etc/passwd); its password is kept
# in a root-only file in STATE_DIR so that concurrent or repeated runs agree
# on it. Sets _CDR_TS_ACCOUNT_PASSWORD.
_cdr_ts_ensure_account() {
    local user=$1 want_gecos=$2 state=$3
    local home="$state/home" pwfile="$state/password"
    local entry gecos cur_home shadow_hash salt want i

    mkdir -p "$state" && chmod 755 "$state" || return 1
    # vsftpd always chdir()s into the account's home directory before the
    # chroot into local_root, and answers "500 OOPS: cannot change directory"
    # (plain text inside TLS, which clients report as a TLS error) if it is
    # missing; sshd prints "Could not chdir to home directory" to the
    # client. So make sure it exists on every start.
    mkdir -p "$home" && chmod 755 "$home" || return 1

    if ! entry=$(getent passwd "$user"); then
        # nologin shell: the password only works for our PAM services (and
        # the SFTP account's sshd only ever runs internal-sftp).
        # A concurrent run may create it at the same moment: re-check.
        useradd --system --user-group --no-create-home --home-dir "$home" \
            --shell /usr/sbin/nologin --comment "$want_gecos" \
            "$user" >&2 ||
            entry=$(getent passwd "$user") || {
                _cdr_ts_log "useradd $user failed"
                return 1
            }
        entry=$(getent passwd "$user") || return 1
    fi
    IFS=: read -r _ _ _ _ gecos cur_home _ <<<"$entry"
    if [[ $gecos != "$want_gecos" ]]; then
        _cdr_ts_log "user $user exists but was not created by this script" \
            "(comment: '$gecos'); refusing to change its password"
        return 1
    fi
    if [[ $cur_home != "$home" ]]; then
        usermod --home "$home" "$user" >&2 || return 1
    fi

    if [[ ! -s $pwfile ]]; then
        (umask 077 && openssl rand -hex 16 >"$pwfile.$$" && mv "$pwfile.$$" "$pwfile") ||
            return 1
    fi
    _CDR_TS_ACCOUNT_PASSWORD=$(<"$pwfile")

    # Only rewrite /etc/shadow when the stored hash does not match (chpasswd
    # takes a lock, and concurrent runs would otherwise collide on it).
    shadow_hash=$(getent shadow "$user" | cut -d: -f2)
    if [[ $shadow_hash == "\$6\$"* ]]; then
        salt=${shadow_hash#"\$6\$"}
        salt=${salt%%'$'*}
        want=$(printf '%s\n' "$_CDR_TS_ACCOUNT_PASSWORD" | openssl passwd -6 -salt "$salt" -stdin)
        [[ $want == "$shadow_hash" ]] && return 0
    fi
    want=$(printf '%s\n' "$_CDR_TS_ACCOUNT_PASSWORD" | openssl passwd -6 -stdin) || return 1
    for ((i = 0; i < 10; i++)); do
        printf '%s:%s\n' "$user" "$want" | chpasswd -e >&2 && return 0
        sleep 0.2 # /etc/shadow locked by a concurrent run
    done
    _cdr_ts_log "chpasswd failed for $user"
    return 1
}

# The FTPS account (vsftpd's login; pure-ftpd's virtual user runs as it).
_cdr_ts_setup_account() {
    _cdr_ts_ensure_account "$_CDR_TS_USER" "$_CDR_TS_GECOS" "$_CDR_TS_STATE_DIR" ||
        return 1
    _CDR_TS_PASSWORD=$_CDR_TS_ACCOUNT_PASSWORD
}

# Writes PAM service file $1 with the content on stdin (atomically).
_cdr_ts_write_pam() {
    local f="/etc/pam.d/$1" tmp
    tmp=$(mktemp "$f.XXXXXX") || return 1
    if ! cat >"$tmp" || ! chmod 644 "$tmp" || ! mv -f "$tmp" "$f"; then
        rm -f "$tmp"
        return 1
    fi
}

# Our own PAM service: Debian's /etc/pam.d/vsftpd also requires a shell
# listed in /etc/shells (pam_shells), which would mean giving the test
# account a real login shell. "nodelay" because tests check wrong passwords
# and do not need pam_unix's 2 s anti-brute-force delay.
_cdr_ts_setup_pam() {
    _cdr_ts_write_pam "$_CDR_TS_PAM_SERVICE" <<'EOF'
# Managed by cdr-ingest scripts/test-servers.sh (loopback FTPS test server).
auth     required  pam_unix.so nodelay
account  required  pam_unix.so
EOF
}

# The same for the unprivileged sshd, instead of Debian's /etc/pam.d/sshd
# (pam_loginuid, pam_limits, pam_selinux, ... which need root). sshd opens
# a PAM session, hence the session line.
_cdr_ts_setup_sftp_pam() {
    _cdr_ts_write_pam "$_CDR_TS_SFTP_PAM_SERVICE" <<'EOF'
# Managed by cdr-ingest scripts/test-servers.sh (loopback SFTP test server).
auth     required  pam_unix.so nodelay
account  required  pam_unix.so
session  required  pam_permit.so
EOF
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
# the same PID after it exited. In the watchdog (_CDR_TS_ORPHANED=1) a
# zombie counts as gone: the shell that would reap the servers is dead, so
# they are zombies of PID 1, which in some CI containers never reaps.
# Elsewhere a zombie still counts, so that _cdr_ts_kill_tree waits until a
# session process is reaped by its own server.
_cdr_ts_ident() {
    local stat rest
    local -a f
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    rest=${stat##*) } # the command name may contain spaces and ')'
    read -r -a f <<<"$rest"
    if [[ -n ${_CDR_TS_ORPHANED:-} && ${f[0]} == [ZX] ]]; then return 1; fi
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

# The servers, by the prefix of their _CDR_TS_<NAME>_PID/_ID variables, in
# the order they are stopped.
_CDR_TS_SERVERS=(PUSHGATEWAY MOTO PROFTPD SSHD PUREFTPD VSFTPD)

_cdr_ts_stop_watchdog() {
    local dog=${_CDR_TS_WATCHDOG_PID:-}
    _CDR_TS_WATCHDOG_PID=
    # A child of this shell, not yet reaped: its PID cannot have been reused.
    if [[ -n $dog ]]; then
        kill -TERM "$dog" 2>/dev/null || true
        wait "$dog" 2>/dev/null || true
    fi
}

# Stops one server ($1: MOTO, SSHD, ...) and everything below it.
_cdr_ts_stop_server() {
    local pidvar="_CDR_TS_$1_PID" idvar="_CDR_TS_$1_ID"
    local pid=${!pidvar:-} id=${!idvar:-}
    printf -v "$pidvar" '%s' ''
    printf -v "$idvar" '%s' ''
    if [[ -n $pid ]]; then
        _cdr_ts_kill_tree "$id"
        # Reap it so no "Terminated" notice or zombie stays.
        wait "$pid" 2>/dev/null || true
    fi
}

# Stops all servers (and their session processes) and the watchdog. Safe
# to call more than once, and when nothing was started. Keeps the work dir
# (logs).
stop_test_servers() {
    local name
    _cdr_ts_stop_watchdog
    for name in "${_CDR_TS_SERVERS[@]}"; do
        _cdr_ts_stop_server "$name"
    done
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

# 0 when something on the port answers with an SSH-2.0 banner.
_cdr_ts_probe_ssh() {
    local port=$1 line
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        IFS= read -r -t 2 line <&3 || exit 1
        [[ $line == SSH-2.0-* ]]
    ) 2>/dev/null
}

# One bodiless S3 request ($2 = method, $3 = path) to moto on port $1;
# prints the HTTP status code. Plain bash (/dev/tcp), because starting a
# Python with boto3 costs more than the server start itself. moto does not
# check signatures, but it routes a request by the service named in the
# Authorization header's credential scope, so the header is there (with a
# dummy signature).
_cdr_ts_s3_request() {
    local port=$1 method=$2 path=$3 now day proto code
    now=$(date -u +%Y%m%dT%H%M%SZ) || return 1
    day=${now%%T*}
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf '%s\r\n' \
            "$method $path HTTP/1.0" \
            "Host: 127.0.0.1:$port" \
            "x-amz-date: $now" \
            "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
            "Authorization: AWS4-HMAC-SHA256 Credential=$_CDR_TS_S3_ACCESS_KEY_ID/$day/$_CDR_TS_S3_REGION/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=$(printf '0%.0s' {1..64})" \
            "Content-Length: 0" \
            "" >&3 || exit 1
        IFS=' ' read -r -t 5 proto code _ <&3 || exit 1
        [[ $proto == HTTP/* ]] || exit 1
        echo "$code"
    ) 2>/dev/null
}

# 0 when moto on the port answers an S3 ListBuckets with any HTTP status.
_cdr_ts_probe_http() {
    [[ -n $(_cdr_ts_s3_request "$1" GET /) ]]
}

# Polls until PROBE PORT succeeds ($1 = pid of the server, $2 = port,
# $3 = probe function). Returns 0 when ready, 1 if the process exited,
# 2 after 20 s.
_cdr_ts_await() {
    local pid=$1 port=$2 probe=$3 deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        "$probe" "$port" && return 0
        sleep 0.05
    done
    return 2
}

# Starts vsftpd on a free port; retries with new ports if the bind loses a
# race. Sets _CDR_TS_VSFTPD_PID, _CDR_TS_VSFTPD_ID, _CDR_TS_PORT and
# _CDR_TS_VSFTPD_PORTS ("CONTROL PASV_MIN PASV_MAX").
_cdr_ts_launch() {
    local work=$1 bin attempt ports port pmin pmax pid deadline
    bin=$(_cdr_ts_vsftpd_bin)
    for ((attempt = 1; attempt <= 5; attempt++)); do
        ports=$(_cdr_ts_pick_ports "${CDR_TEST_FTPS_PASV_PORTS:-40}") || return 1
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
        # For tests that kill one of its session processes (found by parent PID).
        echo "$pid" >"$work/vsftpd.pid"

        deadline=$((SECONDS + 20))
        while ((SECONDS < deadline)); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if _cdr_ts_probe "$port"; then
                _CDR_TS_PORT=$port
                _CDR_TS_VSFTPD_PORTS="$port $pmin $pmax"
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

# Starts "$@" in the background from "/", with stdin from /dev/null and
# stdout/stderr appended to $1 (detached from the caller, so a `test.sh |
# tee` pipeline does not wait for the server), as server $2 (MOTO, SSHD,
# ...): sets _CDR_TS_<NAME>_PID and _ID (by name, so shellcheck cannot see
# these assignments: SC2153 below). The subshell execs the command, so the
# PID is the server's.
_cdr_ts_spawn() {
    local log=$1 name=$2 pid
    shift 2
    (cd / && exec "$@") </dev/null >>"$log" 2>&1 &
    pid=$!
    printf -v "_CDR_TS_${name}_PID" '%s' "$pid"
    printf -v "_CDR_TS_${name}_ID" '%s' "$(_cdr_ts_ident "$pid")"
}

# After server $1 exited during startup (the caller checked): reaps it and
# returns 0 if its log $2 says the port was taken (worth a retry).
_cdr_ts_exited_on_bind() {
    local pidvar="_CDR_TS_$1_PID"
    wait "${!pidvar}" 2>/dev/null || true
    printf -v "$pidvar" '%s' ''
    printf -v "_CDR_TS_$1_ID" '%s' ''
    grep -qiE 'address already in use|is in use|could not bind|cannot bind' "$2" 2>/dev/null
}

# pure-ftpd's virtual-user database: one user, mapped to the cdrftp
# account's uid/gid, home = the served folder ("/./" = chroot there).
# The line is written here and compiled with `pure-pw mkdb` rather than
# made by `pure-pw useradd`, because useradd hashes with argon2id at
# parameters that cost ~2 s of CPU for every login check on these 2-core
# machines; pure-ftpd checks a SHA-512 crypt hash (openssl passwd -6) via
# crypt(3) in milliseconds.
_cdr_ts_setup_pureftpd_users() {
    local work=$1 uid gid hash
    uid=$(id -u "$_CDR_TS_USER") && gid=$(id -g "$_CDR_TS_USER") || return 1
    _CDR_TS_PUREFTPD_PASSWORD=$(openssl rand -hex 16) || return 1
    hash=$(printf '%s\n' "$_CDR_TS_PUREFTPD_PASSWORD" | openssl passwd -6 -stdin) ||
        return 1
    (
        umask 077
        printf '%s:%s:%s:%s::%s/./::::::::::::\n' "$_CDR_TS_PUREFTPD_USER" "$hash" \
            "$uid" "$gid" "$work/ftproot" >"$work/pureftpd.passwd" &&
        "$(_cdr_ts_purepw_bin)" mkdb "$work/pureftpd.pdb" -f "$work/pureftpd.passwd"
    ) >&2 || {
        _cdr_ts_log "pure-pw mkdb failed"
        return 1
    }
}

# Starts pure-ftpd on a free port with its own passive range (100 ports:
# pure-ftpd caps its client count at half the range). Sets
# _CDR_TS_PUREFTPD_PID/_ID/_PORT. Options, all on the command line (it has
# no config file of its own; Debian's wrapper reads /etc/pure-ftpd, unused):
#   -S 127.0.0.1,PORT -4      listen on loopback, IPv4 only
#   -p MIN:MAX -P 127.0.0.1   passive ports, address given in PASV replies
#   -Y 3                      TLS required for login and for data
#   -2 CERT,KEY               vsftpd's certificate (same CA, SAN localhost)
#   -l puredb:FILE -E         virtual users only, no anonymous login
#   -A                        chroot every user (virtual users already are)
#   -u 1                      uids >= 1 may log in (cdrftp is a system uid)
#   -c 50 -C 50               tests run in parallel: generous limits
#   -H                        no reverse DNS lookups
#   -O clf:FILE -g FILE       transfer log and pid file in the work dir
# pure-ftpd logs everything else to syslog only (facility ftp; nothing
# when there is no syslog daemon, as in CI); TZ=UTC makes its LIST times
# UTC like vsftpd's (MDTM is UTC anyway).
_cdr_ts_launch_pureftpd() {
    local work=$1 bin attempt ports port pmin pmax rc
    local out="$work/pure-ftpd.out"
    bin=$(_cdr_ts_pureftpd_bin)
    for ((attempt = 1; attempt <= 5; attempt++)); do
        ports=$(_cdr_ts_pick_ports 100) || return 1
        read -r port pmin pmax <<<"$ports"
        : >"$out"
        _cdr_ts_spawn "$out" PUREFTPD env TZ=UTC "$bin" \
            -S "127.0.0.1,$port" -4 -p "$pmin:$pmax" -P 127.0.0.1 \
            -Y 3 -2 "$work/server.pem,$work/server.key" \
            -l "puredb:$work/pureftpd.pdb" -E -A -u 1 -c 50 -C 50 -H \
            -O "clf:$work/pure-ftpd-xfer.log" -g "$work/pure-ftpd.pid"
        rc=0
        # shellcheck disable=SC2153 # set by _cdr_ts_spawn
        _cdr_ts_await "$_CDR_TS_PUREFTPD_PID" "$port" _cdr_ts_probe || rc=$?
        if ((rc == 0)); then
            _CDR_TS_PUREFTPD_PORT=$port
            _cdr_ts_reserve "$port"
            _cdr_ts_reserve "$pmin" "$pmax"
            return 0
        fi
        if ((rc == 2)); then
            _cdr_ts_log "pure-ftpd did not answer 220 on port $port within 20 s"
            break
        fi
        if _cdr_ts_exited_on_bind PUREFTPD "$out"; then
            _cdr_ts_log "port $port was taken meanwhile, retrying pure-ftpd ($attempt/5)"
            continue
        fi
        _cdr_ts_log "pure-ftpd exited during startup"
        break
    done
    _cdr_ts_log "pure-ftpd failed to start; --- its output ---"
    cat "$out" >&2 2>/dev/null || true
    return 1
}

# ProFTPD's users (mod_auth_file): one virtual user mapped to the cdrftp
# account's uid/gid, home = the served folder (DefaultRoot ~ chroots
# there), a SHA-512 crypt password made for this run; an RSA host key in
# PEM form and the client key in RFC 4716 form for mod_sftp, which reads
# only those. Sets _CDR_TS_PROFTPD_PASSWORD.
_cdr_ts_setup_proftpd_files() {
    local work=$1 dir="$1/proftpd" uid gid hash
    uid=$(id -u "$_CDR_TS_USER") && gid=$(id -g "$_CDR_TS_USER") || return 1
    _CDR_TS_PROFTPD_PASSWORD=$(openssl rand -hex 16) || return 1
    hash=$(printf '%s\n' "$_CDR_TS_PROFTPD_PASSWORD" | openssl passwd -6 -stdin) ||
        return 1
    rm -rf "$dir" && mkdir -m 700 "$dir" || return 1
    (
        umask 077
        printf '%s:%s:%s:%s::%s:/usr/sbin/nologin\n' "$_CDR_TS_PROFTPD_USER" "$hash" \
            "$uid" "$gid" "$work/ftproot" >"$dir/ftpd.passwd" &&
        printf '%s:x:%s:\n' "$_CDR_TS_PROFTPD_USER" "$gid" >"$dir/ftpd.group" &&
        ssh-keygen -q -t rsa -b 2048 -m PEM -N '' -C "cdr-ingest test proftpd host" \
            -f "$dir/ssh_host_rsa_key" &&
        ssh-keygen -e -f "$work/sftp_client_ed25519.pub" >"$dir/authorized_keys"
    ) >&2 || {
        _cdr_ts_log "could not write ProFTPD's users and keys"
        return 1
    }
}

# $1 work dir, $2 FTPS port, $3/$4 passive range, $5 SFTP port.
_cdr_ts_write_proftpd_config() {
    local work=$1 port=$2 pmin=$3 pmax=$4 sftp_port=$5 dir="$1/proftpd"
    cat >"$dir/proftpd.conf" <<EOF
# Generated by scripts/test-servers.sh — loopback ProFTPD for tests: explicit
# FTPS (mod_tls, TLS required, data connections must reuse the control
# connection's TLS session: mod_tls's default) on $port, and SFTP (mod_sftp)
# on $sftp_port. Started as root in the foreground (-n); sessions run as
# $_CDR_TS_USER's uid, chrooted into the served folder.
ServerName "cdr-ingest test ProFTPD"
ServerType standalone
Port $port
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User nobody
Group nogroup
PidFile $dir/proftpd.pid
ScoreboardFile $dir/proftpd.scoreboard
DelayTable none
WtmpLog off
UseReverseDNS off
TimesGMT on
MaxInstances 100
PassivePorts $pmin $pmax
SystemLog $work/proftpd.log
TransferLog $work/proftpd-xfer.log
# Every command (FTP and SFTP) with its session's PID, so a test finds its
# sessions in the other logs (they name sessions by PID).
LogFormat cdrcmd "%P %m %J"
ExtendedLog $work/proftpd-commands.log ALL cdrcmd
ModulePath $_CDR_TS_PROFTPD_DIR/root/usr/lib/proftpd
LoadModule mod_tls.c
LoadModule mod_sftp.c

AuthOrder mod_auth_file.c
AuthUserFile $dir/ftpd.passwd
AuthGroupFile $dir/ftpd.group
RequireValidShell off
DefaultRoot ~
<Limit WRITE>
  DenyAll
</Limit>

TLSEngine on
TLSLog $work/proftpd-tls.log
TLSProtocol TLSv1.2 TLSv1.3
TLSRSACertificateFile $work/server.pem
TLSRSACertificateKeyFile $work/server.key
TLSRequired on
TLSVerifyClient off

<VirtualHost 127.0.0.1>
  Port $sftp_port
  TLSEngine off
  SFTPEngine on
  SFTPLog $work/proftpd-sftp.log
  SFTPHostKey $dir/ssh_host_rsa_key
  SFTPAuthMethods publickey password
  SFTPAuthorizedUserKeys file:$dir/authorized_keys
  AuthOrder mod_auth_file.c
  AuthUserFile $dir/ftpd.passwd
  AuthGroupFile $dir/ftpd.group
  RequireValidShell off
  DefaultRoot ~
  TimesGMT on
  <Limit WRITE>
    DenyAll
  </Limit>
</VirtualHost>
EOF
}

# 0 when both of ProFTPD's ports answer; $1 is "FTPS_PORT SFTP_PORT"
# (_cdr_ts_await passes one argument).
_cdr_ts_probe_proftpd() {
    local ftps=${1% *} sftp=${1#* }
    _cdr_ts_probe "$ftps" && _cdr_ts_probe_ssh "$sftp"
}

# Starts ProFTPD (FTPS and SFTP) as root on free ports. It rewrites its
# process title ("proftpd: (accepting connections)"), so it is known by its
# PID only. Sets _CDR_TS_PROFTPD_PID/_ID/_PORT/_SFTP_PORT.
_cdr_ts_launch_proftpd() {
    local work=$1 attempt ports port pmin pmax sftp_port rc
    local out="$work/proftpd.out"
    for ((attempt = 1; attempt <= 5; attempt++)); do
        ports=$(_cdr_ts_pick_ports 40) || return 1
        read -r port pmin pmax <<<"$ports"
        _cdr_ts_reserve "$port"
        _cdr_ts_reserve "$pmin" "$pmax"
        sftp_port=$(_cdr_ts_pick_port) || return 1
        _cdr_ts_reserve "$sftp_port"
        _cdr_ts_write_proftpd_config "$work" "$port" "$pmin" "$pmax" "$sftp_port" || return 1
        : >"$out"
        _cdr_ts_spawn "$out" PROFTPD "$(_cdr_ts_proftpd_bin)" -n -c "$work/proftpd/proftpd.conf"
        rc=0
        # shellcheck disable=SC2153 # set by _cdr_ts_spawn
        _cdr_ts_await "$_CDR_TS_PROFTPD_PID" "$port $sftp_port" _cdr_ts_probe_proftpd || rc=$?
        if ((rc == 0)); then
            _CDR_TS_PROFTPD_PORT=$port
            _CDR_TS_PROFTPD_SFTP_PORT=$sftp_port
            return 0
        fi
        if ((rc == 2)); then
            _cdr_ts_log "ProFTPD did not answer on ports $port and $sftp_port within 20 s"
            break
        fi
        if _cdr_ts_exited_on_bind PROFTPD "$out"; then
            _cdr_ts_log "a port was taken meanwhile, retrying ProFTPD ($attempt/5)"
            continue
        fi
        _cdr_ts_log "ProFTPD exited during startup"
        break
    done
    _cdr_ts_log "ProFTPD failed to start; config: $work/proftpd/proftpd.conf; --- its output ---"
    cat "$out" >&2 2>/dev/null || true
    return 1
}

# known_hosts for ProFTPD's SFTP port (its RSA host key).
_cdr_ts_write_proftpd_known_hosts() {
    local work=$1 port=$2 key
    read -r key <"$work/proftpd/ssh_host_rsa_key.pub" || return 1
    key=$(cut -d' ' -f1,2 <<<"$key")
    printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' "$port" "$key" "$port" "$key" \
        >"$work/known_hosts.proftpd" && chmod 644 "$work/known_hosts.proftpd"
}

# Host key, client key, authorized_keys for the SFTP server. $work/sftp
# belongs to cdrsftp (sshd runs as that user and must read its host key
# and authorized_keys, and write its pid file there); the client's private
# key stays root-only in $work (the tests run as root).
_cdr_ts_setup_sftp_files() {
    local work=$1
    local dir="$work/sftp"
    rm -rf "$dir" && mkdir -m 700 "$dir" || return 1
    (
        umask 077
        rm -f "$work"/sftp_client_ed25519{,.pub} "$work/wrong_host_ed25519"{,.pub}
        ssh-keygen -q -t ed25519 -N '' -C "cdr-ingest test sftp host" \
            -f "$dir/ssh_host_ed25519_key" &&
        ssh-keygen -q -t ed25519 -N '' -C "cdr-ingest test sftp client" \
            -f "$work/sftp_client_ed25519" &&
        ssh-keygen -q -t ed25519 -N '' -C "cdr-ingest test WRONG host key" \
            -f "$work/wrong_host_ed25519" || exit 1
        # "restrict": no forwarding, no pty, no ~/.ssh/rc; SFTP still works.
        { printf 'restrict '; cat "$work/sftp_client_ed25519.pub"; } \
            >"$dir/authorized_keys" || exit 1
        # Only its public half is used (in known_hosts.wrong).
        rm -f "$work/wrong_host_ed25519"
        chmod 644 "$work/sftp_client_ed25519.pub" "$work/wrong_host_ed25519.pub"
    ) >&2 || {
        _cdr_ts_log "ssh-keygen failed"
        return 1
    }
    chown -R "$_CDR_TS_SFTP_USER:" "$dir" || return 1
    # A symlink to sshd under the PAM service's name (see
    # _CDR_TS_SFTP_PAM_SERVICE); made after the chown so that sshd itself
    # can never be chowned through it.
    ln -s "$(_cdr_ts_sshd_bin)" "$dir/$_CDR_TS_SFTP_PAM_SERVICE"
}

# Only offer sshd options this sshd knows (it refuses to start on unknown
# ones; its keyword table is in the binary). Debian 12's 9.2 knows neither:
#   PerSourcePenalties (OpenSSH >= 9.8) would lock 127.0.0.1 out after the
#     tests' deliberate failed logins;
#   PAMServiceName (newer OpenSSH) replaces the argv[0] naming.
_cdr_ts_sshd_extra_options() {
    local bin
    bin=$(_cdr_ts_sshd_bin)
    if grep -qaiF persourcepenalties "$bin"; then
        echo "PerSourcePenalties no"
    fi
    if grep -qaiF pamservicename "$bin"; then
        echo "PAMServiceName $_CDR_TS_SFTP_PAM_SERVICE"
    fi
}

_cdr_ts_write_sshd_config() {
    local work=$1 port=$2
    local dir="$work/sftp"
    cat >"$dir/sshd_config" <<EOF
# Generated by scripts/test-servers.sh — loopback SFTP-only server for tests.
# Runs as $_CDR_TS_SFTP_USER (not root), in the foreground (-D -e): logs go
# to stderr, i.e. $work/sshd.log.
ListenAddress 127.0.0.1:$port
AddressFamily inet
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid

# Only the SFTP account; key, password or keyboard-interactive (PAM).
AllowUsers $_CDR_TS_SFTP_USER
PermitRootLogin no
PubkeyAuthentication yes
AuthorizedKeysFile $dir/authorized_keys
PasswordAuthentication yes
KbdInteractiveAuthentication yes
PermitEmptyPasswords no
UsePAM yes
# StrictModes would refuse authorized_keys: it checks every directory up
# to "/", and /tmp is world-writable.
StrictModes no
# Tests run in parallel and log in wrongly on purpose: no throttling.
MaxStartups 100
MaxAuthTries 6
LoginGraceTime 30
UseDNS no
$(_cdr_ts_sshd_extra_options)

# SFTP only, starting in the served folder (relative paths work as with
# FTPS; absolute ones are the real paths: no chroot without root).
Subsystem sftp internal-sftp -d $work/ftproot
ForceCommand internal-sftp -d $work/ftproot
AllowTcpForwarding no
AllowStreamLocalForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PermitTTY no
PermitUserRC no
PrintMotd no
PrintLastLog no

LogLevel VERBOSE
EOF
}

# Starts sshd as cdrsftp on a free port, through the symlink named after
# our PAM service. Sets _CDR_TS_SSHD_PID/_ID/_PORT.
_cdr_ts_launch_sshd() {
    local work=$1 attempt port rc
    local out="$work/sshd.log"
    for ((attempt = 1; attempt <= 5; attempt++)); do
        port=$(_cdr_ts_pick_port) || return 1
        _cdr_ts_write_sshd_config "$work" "$port" &&
            chown "$_CDR_TS_SFTP_USER:" "$work/sftp/sshd_config" || return 1
        : >"$out"
        # sshd re-executes itself for every connection, by the (absolute)
        # path it was started with: the symlink, so PAM keeps our service.
        _cdr_ts_spawn "$out" SSHD setpriv --reuid="$_CDR_TS_SFTP_USER" \
            --regid="$_CDR_TS_SFTP_USER" --init-groups -- \
            "$work/sftp/$_CDR_TS_SFTP_PAM_SERVICE" -D -e -f "$work/sftp/sshd_config"
        rc=0
        _cdr_ts_await "$_CDR_TS_SSHD_PID" "$port" _cdr_ts_probe_ssh || rc=$?
        if ((rc == 0)); then
            _CDR_TS_SSHD_PORT=$port
            _cdr_ts_reserve "$port"
            return 0
        fi
        if ((rc == 2)); then
            _cdr_ts_log "sshd did not send its banner on port $port within 20 s"
            break
        fi
        if _cdr_ts_exited_on_bind SSHD "$out"; then
            _cdr_ts_log "port $port was taken meanwhile, retrying sshd ($attempt/5)"
            continue
        fi
        _cdr_ts_log "sshd exited during startup"
        break
    done
    _cdr_ts_log "sshd failed to start; config: $work/sftp/sshd_config; --- sshd.log ---"
    cat "$out" >&2 2>/dev/null || true
    return 1
}

# known_hosts files for the running sshd (port $2): the right key, the
# same hashed, and a wrong key for the same names. Sets
# _CDR_TS_SSHD_FINGERPRINT.
_cdr_ts_write_known_hosts() {
    local work=$1 port=$2 key wrong fp
    read -r key <"$work/sftp/ssh_host_ed25519_key.pub" || return 1
    read -r wrong <"$work/wrong_host_ed25519.pub" || return 1
    key=$(cut -d' ' -f1,2 <<<"$key")     # "ssh-ed25519 AAAA..." (no comment)
    wrong=$(cut -d' ' -f1,2 <<<"$wrong")
    # ssh-keygen -H hashes the file in place and keeps a .old copy.
    if ! printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' \
            "$port" "$key" "$port" "$key" >"$work/known_hosts" ||
       ! printf '[127.0.0.1]:%s %s\n[localhost]:%s %s\n' \
            "$port" "$wrong" "$port" "$wrong" >"$work/known_hosts.wrong" ||
       ! cp "$work/known_hosts" "$work/known_hosts.hashed" ||
       ! ssh-keygen -H -f "$work/known_hosts.hashed" >/dev/null 2>&1 ||
       ! rm -f "$work/known_hosts.hashed.old" ||
       ! chmod 644 "$work"/known_hosts{,.hashed,.wrong}; then
        _cdr_ts_log "could not write the known_hosts files"
        return 1
    fi
    read -r _ fp _ < <(ssh-keygen -lf "$work/sftp/ssh_host_ed25519_key.pub") || return 1
    [[ $fp == SHA256:* ]] || return 1
    _CDR_TS_SSHD_FINGERPRINT=$fp
}

# Starts moto without waiting for it: its Python start-up (~0.5 s) then
# overlaps with the other servers' setup; _cdr_ts_finish_moto waits.
_cdr_ts_spawn_moto() {
    local work=$1 port
    port=$(_cdr_ts_pick_port) || return 1
    _cdr_ts_reserve "$port"
    : >"$work/moto.log"
    # -u: unbuffered, so moto.log shows each request as it happens.
    _cdr_ts_spawn "$work/moto.log" MOTO "$_CDR_TS_PYTHON" -u -m moto.server \
        -H 127.0.0.1 -p "$port"
    _CDR_TS_MOTO_PORT=$port
}

# Waits for moto (restarting it on a new port if it lost the port to
# another program) and creates the test bucket.
_cdr_ts_finish_moto() {
    local work=$1 attempt rc code
    for ((attempt = 1; attempt <= 5; attempt++)); do
        if [[ -z ${_CDR_TS_MOTO_PID:-} ]]; then
            _cdr_ts_spawn_moto "$work" || return 1
        fi
        rc=0
        _cdr_ts_await "$_CDR_TS_MOTO_PID" "$_CDR_TS_MOTO_PORT" _cdr_ts_probe_http || rc=$?
        if ((rc == 0)); then
            code=$(_cdr_ts_s3_request "$_CDR_TS_MOTO_PORT" PUT "/$_CDR_TS_S3_BUCKET")
            if [[ $code == 200 ]]; then
                return 0
            fi
            _cdr_ts_log "moto: creating bucket $_CDR_TS_S3_BUCKET answered '${code:-nothing}'"
            break
        fi
        if ((rc == 2)); then
            _cdr_ts_log "moto did not answer HTTP on port $_CDR_TS_MOTO_PORT within 20 s"
            break
        fi
        if _cdr_ts_exited_on_bind MOTO "$work/moto.log"; then
            _cdr_ts_log "port $_CDR_TS_MOTO_PORT was taken meanwhile, retrying moto ($attempt/5)"
            continue
        fi
        _cdr_ts_log "moto exited during startup"
        break
    done
    _cdr_ts_log "moto failed to start; --- moto.log ---"
    tail -n 30 "$work/moto.log" >&2 2>/dev/null || true
    return 1
}

# 0 when the Pushgateway on the port says it is ready.
_cdr_ts_probe_pushgateway() {
    local port=$1 proto code
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n' "$port" >&3 || exit 1
        IFS=' ' read -r -t 5 proto code _ <&3 || exit 1
        [[ $proto == HTTP/* && $code == 200 ]]
    ) 2>/dev/null
}

# Starts the Pushgateway (metrics kept in memory only) on a free port and
# waits for it. Sets _CDR_TS_PUSHGATEWAY_PID/_ID/_PORT.
_cdr_ts_launch_pushgateway() {
    local work=$1 attempt port rc
    local out="$work/pushgateway.log"
    for ((attempt = 1; attempt <= 5; attempt++)); do
        port=$(_cdr_ts_pick_port) || return 1
        : >"$out"
        _cdr_ts_spawn "$out" PUSHGATEWAY prometheus-pushgateway \
            --web.listen-address="127.0.0.1:$port"
        rc=0
        _cdr_ts_await "$_CDR_TS_PUSHGATEWAY_PID" "$port" _cdr_ts_probe_pushgateway || rc=$?
        if ((rc == 0)); then
            _CDR_TS_PUSHGATEWAY_PORT=$port
            _cdr_ts_reserve "$port"
            return 0
        fi
        if ((rc == 2)); then
            _cdr_ts_log "the Pushgateway was not ready on port $port within 20 s"
            break
        fi
        if _cdr_ts_exited_on_bind PUSHGATEWAY "$out"; then
            _cdr_ts_log "port $port was taken meanwhile, retrying the Pushgateway ($attempt/5)"
            continue
        fi
        _cdr_ts_log "the Pushgateway exited during startup"
        break
    done
    _cdr_ts_log "the Pushgateway failed to start; --- pushgateway.log ---"
    tail -n 30 "$out" >&2 2>/dev/null || true
    return 1
}

# Kills the servers if the shell that sourced us dies without running its
# EXIT trap (SIGKILL, OOM): no stray servers after a crash. Restarted after
# each server start, so it always knows all of them.
_cdr_ts_start_watchdog() {
    local shell_id name idvar
    local -a ids=()
    _cdr_ts_stop_watchdog
    for name in "${_CDR_TS_SERVERS[@]}"; do
        idvar="_CDR_TS_${name}_ID"
        [[ -n ${!idvar:-} ]] && ids+=("${!idvar}")
    done
    ((${#ids[@]})) || return 0
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
        _CDR_TS_ORPHANED=1
        for id in "${ids[@]}"; do _cdr_ts_kill_tree "$id"; done
    ) </dev/null >/dev/null 2>&1 &
    _CDR_TS_WATCHDOG_PID=$!
}

# Every exported variable, in the order written to "$WORK/env".
_CDR_TS_EXPORTS=(
    CDR_TEST_FTPS_HOST CDR_TEST_FTPS_PORT CDR_TEST_FTPS_USER
    CDR_TEST_FTPS_PASSWORD CDR_TEST_FTPS_ROOT CDR_TEST_CA_FILE
    CDR_TEST_UNTRUSTED_CA_FILE CDR_TEST_WORK_DIR
    CDR_TEST_PUREFTPD_PORT CDR_TEST_PUREFTPD_USER CDR_TEST_PUREFTPD_PASSWORD
    CDR_TEST_PUREFTPD_ROOT
    CDR_TEST_PROFTPD_PORT CDR_TEST_PROFTPD_USER CDR_TEST_PROFTPD_PASSWORD
    CDR_TEST_PROFTPD_ROOT CDR_TEST_PROFTPD_SFTP_PORT CDR_TEST_PROFTPD_SFTP_KNOWN_HOSTS
    CDR_TEST_SFTP_PORT CDR_TEST_SFTP_USER CDR_TEST_SFTP_PASSWORD
    CDR_TEST_SFTP_KEY CDR_TEST_SFTP_ROOT CDR_TEST_SFTP_KNOWN_HOSTS
    CDR_TEST_SFTP_KNOWN_HOSTS_HASHED CDR_TEST_SFTP_KNOWN_HOSTS_WRONG
    CDR_TEST_SFTP_HOST_KEY_SHA256
    CDR_TEST_S3_ENDPOINT CDR_TEST_S3_BUCKET CDR_TEST_S3_REGION
    CDR_TEST_S3_ACCESS_KEY_ID CDR_TEST_S3_SECRET_ACCESS_KEY
    CDR_TEST_PUSHGATEWAY_URL
)

_cdr_ts_start() {
    local work pmin pmax
    # useradd, chpasswd, vsftpd and sshd live in sbin, which a CI job's PATH
    # may lack; `local` keeps the caller's PATH unchanged.
    local PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

    if [[ $EUID -ne 0 ]]; then
        _cdr_ts_log "must run as root (creates system accounts, starts vsftpd and pure-ftpd as root)"
        return 1
    fi
    # Sourced again in the same shell: replace the previous servers.
    stop_test_servers
    _CDR_TS_RESERVED=()

    _cdr_ts_install || return 1
    _cdr_ts_install_pureftpd || return 1
    _cdr_ts_install_proftpd || return 1
    _cdr_ts_install_moto || return 1

    if [[ -n ${CDR_TEST_DIR:-} ]]; then
        work=$CDR_TEST_DIR
        mkdir -p "$work" || return 1
        # Only reuse a directory we created, never wipe someone's folder.
        if [[ -n $(ls -A "$work") && ! -e $work/.cdr-test-servers ]]; then
            _cdr_ts_log "CDR_TEST_DIR=$work is not empty and not ours; refusing"
            return 1
        fi
        rm -rf "${work:?}/ftproot" "$work/empty" "$work/sftp" "$work/proftpd"
        rm -f "$work"/{vsftpd.out,vsftpd.log,vsftpd.pid,xferlog,env} \
            "$work"/{pure-ftpd.out,pure-ftpd-xfer.log,pure-ftpd.pid,pureftpd.passwd,pureftpd.pdb} \
            "$work"/{sshd.log,known_hosts,known_hosts.hashed,known_hosts.wrong,moto.log} \
            "$work/pushgateway.log" \
            "$work"/{proftpd.out,proftpd.log,proftpd-xfer.log,proftpd-tls.log,proftpd-sftp.log,proftpd-commands.log,known_hosts.proftpd}
    else
        work=$(mktemp -d /tmp/cdr-test.XXXXXX) || return 1
    fi
    work=$(cd "$work" && pwd -P) || return 1
    : >"$work/.cdr-test-servers"
    # The session users must be able to traverse to ftproot (vsftpd does the
    # chdir with the user's ids, sshd runs as cdrsftp); mktemp creates 0700.
    chmod 755 "$work" || return 1
    mkdir -p "$work/ftproot" "$work/empty" &&
        chmod 755 "$work/ftproot" && chmod 555 "$work/empty" || return 1

    # Started first, waited for last.
    _cdr_ts_spawn_moto "$work" || return 1

    if ! getent passwd nobody >/dev/null; then
        _cdr_ts_log "user 'nobody' (vsftpd's nopriv_user) does not exist"
        return 1
    fi
    _cdr_ts_make_pki "$work" || return 1
    _cdr_ts_setup_account || return 1
    _cdr_ts_setup_pam || return 1
    _cdr_ts_launch "$work" || return 1
    read -r _ pmin pmax <<<"$_CDR_TS_VSFTPD_PORTS"
    _cdr_ts_reserve "$_CDR_TS_PORT"
    _cdr_ts_reserve "$pmin" "$pmax"
    _cdr_ts_start_watchdog

    _cdr_ts_setup_pureftpd_users "$work" || return 1
    _cdr_ts_launch_pureftpd "$work" || return 1
    _cdr_ts_start_watchdog

    _cdr_ts_ensure_account "$_CDR_TS_SFTP_USER" "$_CDR_TS_SFTP_GECOS" \
        "$_CDR_TS_SFTP_STATE_DIR" || return 1
    _CDR_TS_SFTP_PASSWORD=$_CDR_TS_ACCOUNT_PASSWORD
    _cdr_ts_setup_sftp_pam || return 1
    _cdr_ts_setup_sftp_files "$work" || return 1
    _cdr_ts_launch_sshd "$work" || return 1
    _cdr_ts_start_watchdog
    _cdr_ts_write_known_hosts "$work" "$_CDR_TS_SSHD_PORT" || return 1

    _cdr_ts_setup_proftpd_files "$work" || return 1
    _cdr_ts_launch_proftpd "$work" || return 1
    _cdr_ts_start_watchdog
    _cdr_ts_write_proftpd_known_hosts "$work" "$_CDR_TS_PROFTPD_SFTP_PORT" || return 1

    _cdr_ts_finish_moto "$work" || return 1
    _cdr_ts_start_watchdog

    _cdr_ts_launch_pushgateway "$work" || return 1
    _cdr_ts_start_watchdog

    export CDR_TEST_FTPS_HOST=127.0.0.1 # TLS server name to verify: localhost
    export CDR_TEST_FTPS_PORT=$_CDR_TS_PORT
    export CDR_TEST_FTPS_USER=$_CDR_TS_USER
    export CDR_TEST_FTPS_PASSWORD=$_CDR_TS_PASSWORD
    export CDR_TEST_FTPS_ROOT=$work/ftproot
    export CDR_TEST_CA_FILE=$work/ca.pem
    export CDR_TEST_UNTRUSTED_CA_FILE=$work/untrusted-ca.pem
    export CDR_TEST_WORK_DIR=$work

    export CDR_TEST_PUREFTPD_PORT=$_CDR_TS_PUREFTPD_PORT
    export CDR_TEST_PUREFTPD_USER=$_CDR_TS_PUREFTPD_USER
    export CDR_TEST_PUREFTPD_PASSWORD=$_CDR_TS_PUREFTPD_PASSWORD
    export CDR_TEST_PUREFTPD_ROOT=$work/ftproot

    export CDR_TEST_PROFTPD_PORT=$_CDR_TS_PROFTPD_PORT
    export CDR_TEST_PROFTPD_USER=$_CDR_TS_PROFTPD_USER
    export CDR_TEST_PROFTPD_PASSWORD=$_CDR_TS_PROFTPD_PASSWORD
    export CDR_TEST_PROFTPD_ROOT=$work/ftproot
    export CDR_TEST_PROFTPD_SFTP_PORT=$_CDR_TS_PROFTPD_SFTP_PORT
    export CDR_TEST_PROFTPD_SFTP_KNOWN_HOSTS=$work/known_hosts.proftpd

    export CDR_TEST_SFTP_PORT=$_CDR_TS_SSHD_PORT
    export CDR_TEST_SFTP_USER=$_CDR_TS_SFTP_USER
    export CDR_TEST_SFTP_PASSWORD=$_CDR_TS_SFTP_PASSWORD
    export CDR_TEST_SFTP_KEY=$work/sftp_client_ed25519
    export CDR_TEST_SFTP_ROOT=$work/ftproot
    export CDR_TEST_SFTP_KNOWN_HOSTS=$work/known_hosts
    export CDR_TEST_SFTP_KNOWN_HOSTS_HASHED=$work/known_hosts.hashed
    export CDR_TEST_SFTP_KNOWN_HOSTS_WRONG=$work/known_hosts.wrong
    export CDR_TEST_SFTP_HOST_KEY_SHA256=$_CDR_TS_SSHD_FINGERPRINT

    export CDR_TEST_S3_ENDPOINT=http://127.0.0.1:$_CDR_TS_MOTO_PORT
    export CDR_TEST_S3_BUCKET=$_CDR_TS_S3_BUCKET
    export CDR_TEST_S3_REGION=$_CDR_TS_S3_REGION
    export CDR_TEST_S3_ACCESS_KEY_ID=$_CDR_TS_S3_ACCESS_KEY_ID
    export CDR_TEST_S3_SECRET_ACCESS_KEY=$_CDR_TS_S3_SECRET_ACCESS_KEY

    export CDR_TEST_PUSHGATEWAY_URL=http://127.0.0.1:$_CDR_TS_PUSHGATEWAY_PORT

    # For a developer shell: set -a; source "$work/env"; set +a
    {
        local v
        for v in "${_CDR_TS_EXPORTS[@]}"; do
            printf '%s=%q\n' "$v" "${!v}"
        done
    } >"$work/env" || return 1
    chmod 600 "$work/env"

    _cdr_ts_log "ready on 127.0.0.1: vsftpd (pid $_CDR_TS_VSFTPD_PID) :$_CDR_TS_PORT," \
        "pure-ftpd (pid $_CDR_TS_PUREFTPD_PID) :$_CDR_TS_PUREFTPD_PORT," \
        "sshd/sftp (pid $_CDR_TS_SSHD_PID) :$_CDR_TS_SSHD_PORT," \
        "ProFTPD (pid $_CDR_TS_PROFTPD_PID) :$_CDR_TS_PROFTPD_PORT ftps, :$_CDR_TS_PROFTPD_SFTP_PORT sftp," \
        "moto S3 (pid $_CDR_TS_MOTO_PID) :$_CDR_TS_MOTO_PORT," \
        "Pushgateway (pid $_CDR_TS_PUSHGATEWAY_PID) :$_CDR_TS_PUSHGATEWAY_PORT;" \
        "root $CDR_TEST_FTPS_ROOT, env in $work/env"
}

# On failure, stop whatever was started before returning non-zero.
if ! _cdr_ts_start; then
    stop_test_servers
    return 1
fi
