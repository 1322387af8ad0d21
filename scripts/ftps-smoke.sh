#!/usr/bin/env bash
# scripts/ftps-smoke.sh — proves that scripts/test-servers.sh gives the
# integration tests a working FTPS server, using curl and openssl s_client
# as reference clients (so a failing Rust test can be told apart from a
# broken test server). Run as root: scripts/ftps-smoke.sh; exits 0 or 1.
# scripts/servers-smoke.sh does the same for the other servers (pure-ftpd,
# SFTP, S3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/test-servers.sh
source "$here/test-servers.sh"
trap stop_test_servers EXIT
# curl is only needed here, not by the Rust tests.
_cdr_ts_install curl:curl

host=$CDR_TEST_FTPS_HOST
port=$CDR_TEST_FTPS_PORT
root=$CDR_TEST_FTPS_ROOT
url="ftp://localhost:$port"
# Connect to 127.0.0.1 but verify the name "localhost", like the tests do;
# --resolve also stops curl from trying ::1 first.
common=(--silent --show-error --max-time 20 --ssl-reqd --resolve "localhost:$port:$host")
good=(--user "$CDR_TEST_FTPS_USER:$CDR_TEST_FTPS_PASSWORD")
out=$CDR_TEST_WORK_DIR/smoke.out

# Test data, written directly on disk as root (like the tests will).
mkdir -p "$root/x/CDRs"
printf 'id,caller,callee,seconds\n1,100,200,42\n' >"$root/x/CDRs/2024-03-01.csv"
touch -d '2024-03-01 12:34:56 UTC' "$root/x/CDRs/2024-03-01.csv"
echo old >"$root/x/CDRs/2022-old.csv"
touch -d '2 years ago' "$root/x/CDRs/2022-old.csv"

failures=0
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    sed 's/^/      | /' "$out" 2>/dev/null | tail -n 15
    failures=$((failures + 1))
}

# 1. Good password: directory listing over TLS; "/" is the served folder.
if curl "${common[@]}" --cacert "$CDR_TEST_CA_FILE" "${good[@]}" "$url/" >"$out" 2>&1 &&
   grep -q ' x$' "$out" && ! grep -qE ' (etc|usr)$' "$out"; then
    pass "login with good password, / is the served folder: $(tr '\n' ' ' <"$out")"
else
    fail "login with good password / listing of /"
fi

# 2. Wrong password: 530, curl exit 67 (login denied).
rc=0
curl "${common[@]}" --verbose --cacert "$CDR_TEST_CA_FILE" \
    --user "$CDR_TEST_FTPS_USER:wrong-password" "$url/" >"$out" 2>&1 || rc=$?
if ((rc == 67)) && grep -q '^< 530' "$out"; then
    pass "wrong password refused: $(grep '^< 530' "$out")"
else
    fail "wrong password not refused with 530 (curl exit $rc)"
fi

# 3. Login without TLS is refused (force_local_logins_ssl).
rc=0
curl --silent --show-error --max-time 20 --verbose --resolve "localhost:$port:$host" \
    "${good[@]}" "$url/" >"$out" 2>&1 || rc=$?
if ((rc != 0)) && grep -q '^< 530' "$out"; then
    pass "plain-text login refused: $(grep '^< 530' "$out")"
else
    fail "plain-text login was not refused (curl exit $rc)"
fi

# 4. Download over TLS with the trusted CA, relative path, content intact.
if curl "${common[@]}" --cacert "$CDR_TEST_CA_FILE" "${good[@]}" \
       "$url/x/CDRs/2024-03-01.csv" >"$out" 2>&1 &&
   cmp -s "$out" "$root/x/CDRs/2024-03-01.csv"; then
    pass "download x/CDRs/2024-03-01.csv ($(wc -c <"$out") bytes, identical)"
else
    fail "download of x/CDRs/2024-03-01.csv"
fi

# 5. SIZE and MDTM (curl -I): size and the UTC mtime set above.
size=$(stat -c %s "$root/x/CDRs/2024-03-01.csv")
if curl "${common[@]}" --cacert "$CDR_TEST_CA_FILE" "${good[@]}" -I \
       "$url/x/CDRs/2024-03-01.csv" >"$out" 2>&1 &&
   grep -q "^Content-Length: $size" "$out" &&
   grep -q '^Last-Modified: Fri, 01 Mar 2024 12:34:56 GMT' "$out"; then
    pass "SIZE/MDTM: $(tr -d '\r' <"$out" | grep -E '^(Content-Length|Last-Modified)' | tr '\n' ' ')"
else
    fail "SIZE/MDTM of x/CDRs/2024-03-01.csv"
fi

# 6. A file with an mtime two years back is listed (LIST and NLST).
if curl "${common[@]}" --cacert "$CDR_TEST_CA_FILE" "${good[@]}" \
       "$url/x/CDRs/" >"$out" 2>&1 && grep -q ' 2022-old.csv$' "$out" &&
   curl "${common[@]}" --cacert "$CDR_TEST_CA_FILE" "${good[@]}" --list-only \
       "$url/x/CDRs/" >"$out.nlst" 2>&1 && grep -qx '2022-old.csv' "$out.nlst"; then
    pass "old file listed: $(grep '2022-old.csv' "$out")"
else
    fail "old file not listed"
fi

# 7. Server certificate checked against the untrusted CA: refused (60).
rc=0
curl "${common[@]}" --cacert "$CDR_TEST_UNTRUSTED_CA_FILE" "${good[@]}" \
    "$url/" >"$out" 2>&1 || rc=$?
if ((rc == 60)); then
    pass "untrusted CA refused: $(head -n1 "$out")"
else
    fail "untrusted CA was not refused (curl exit $rc)"
fi

# 8. TLS versions: 1.2 and 1.3 accepted (verified against the CA, name
#    localhost); 1.1 refused.
for v in tls1_2 tls1_3 tls1_1; do
    rc=0
    echo QUIT | timeout 20 openssl s_client -starttls ftp -connect "$host:$port" \
        -servername localhost -verify_hostname localhost -verify_return_error \
        -CAfile "$CDR_TEST_CA_FILE" "-$v" -brief >"$out" 2>&1 || rc=$?
    proto=$(grep -m1 '^Protocol version' "$out" || true)
    if [[ $v == tls1_1 ]]; then
        if ((rc != 0)) && [[ -z $proto ]]; then
            pass "-$v refused"
        else
            fail "-$v was accepted ($proto)"
        fi
    elif ((rc == 0)) && [[ -n $proto ]] && grep -q 'Verification: OK' "$out"; then
        pass "-$v: $proto, $(grep -m1 '^Ciphersuite' "$out")"
    else
        fail "-$v handshake (openssl exit $rc)"
    fi
done

if ((failures)); then
    echo "ftps-smoke: $failures check(s) FAILED; logs in $CDR_TEST_WORK_DIR"
    echo "--- vsftpd.log (tail) ---"
    tail -n 40 "$CDR_TEST_WORK_DIR/vsftpd.log" || true
    exit 1
fi
echo "ftps-smoke: all checks passed (port $port, work dir $CDR_TEST_WORK_DIR)"
