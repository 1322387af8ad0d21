#!/usr/bin/env bash
# scripts/servers-smoke.sh — proves that scripts/test-servers.sh gives the
# integration tests working pure-ftpd (explicit FTPS), SFTP (OpenSSH) and S3
# (moto) servers, using reference clients (curl, openssl s_client, OpenSSH's
# sftp/ssh, boto3), so a failing Rust test can be told apart from a broken
# test server. scripts/ftps-smoke.sh does the same for vsftpd.
# Run as root: scripts/servers-smoke.sh; exits 0 or 1. Prints, for the
# record, pure-ftpd's FEAT and one LIST line from each FTP server.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/test-servers.sh
source "$here/test-servers.sh"
trap stop_test_servers EXIT
# Only needed here, not by the Rust tests: curl (FTPS client), sshpass
# (types the SFTP password), sftp/ssh (OpenSSH clients).
_cdr_ts_install curl:curl sshpass:sshpass sftp:openssh-client ssh:openssh-client

host=$CDR_TEST_FTPS_HOST
root=$CDR_TEST_FTPS_ROOT
work=$CDR_TEST_WORK_DIR
out=$work/servers-smoke.out

# Test data, written once on disk as root, in the folder all three file
# servers serve.
mkdir -p "$root/x/CDRs"
printf 'id,caller,callee,seconds\n1,100,200,42\n' >"$root/x/CDRs/2024-03-01.csv"
touch -d '2024-03-01 12:34:56 UTC' "$root/x/CDRs/2024-03-01.csv"
file_rel=x/CDRs/2024-03-01.csv
file_abs=$root/$file_rel

failures=0
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    sed 's/^/      | /' "$out" 2>/dev/null | tail -n 15
    failures=$((failures + 1))
}
# Runs "$@" with output in $out; returns its exit code (never fails the script).
run() {
    local rc=0
    "$@" >"$out" 2>&1 || rc=$?
    return "$rc"
}

echo "== pure-ftpd (explicit FTPS, -Y 3) on port $CDR_TEST_PUREFTPD_PORT"
pport=$CDR_TEST_PUREFTPD_PORT
purl="ftp://localhost:$pport"
# Connect to 127.0.0.1 but verify the name "localhost", like the tests do.
pcommon=(--silent --show-error --max-time 20 --resolve "localhost:$pport:$host")
ptls=("${pcommon[@]}" --ssl-reqd --cacert "$CDR_TEST_CA_FILE")
pgood=(--user "$CDR_TEST_PUREFTPD_USER:$CDR_TEST_PUREFTPD_PASSWORD")

if [[ $CDR_TEST_PUREFTPD_ROOT == "$CDR_TEST_FTPS_ROOT" ]]; then
    pass "pure-ftpd serves the same folder as vsftpd ($root)"
else
    fail "CDR_TEST_PUREFTPD_ROOT ($CDR_TEST_PUREFTPD_ROOT) is not CDR_TEST_FTPS_ROOT"
fi

# 1. Login over TLS; "/" is the served folder; LIST of the file's folder.
if run curl "${ptls[@]}" "${pgood[@]}" "$purl/x/CDRs/" &&
   grep -q ' 2024-03-01.csv$' "$out"; then
    pass "login + LIST over TLS: $(grep ' 2024-03-01.csv$' "$out")"
else
    fail "pure-ftpd login / LIST of x/CDRs/"
fi

# 2. Download, content identical to the file on disk.
if run curl "${ptls[@]}" "${pgood[@]}" "$purl/$file_rel" && cmp -s "$out" "$file_abs"; then
    pass "download $file_rel ($(wc -c <"$out") bytes, identical)"
else
    fail "pure-ftpd download of $file_rel"
fi

# 3. Resumed download (REST 10): the tail of the file.
if run curl "${ptls[@]}" "${pgood[@]}" -C 10 "$purl/$file_rel" &&
   cmp -s "$out" <(tail -c +11 "$file_abs"); then
    pass "REST 10 + RETR returns the last $(wc -c <"$out") bytes"
else
    fail "pure-ftpd resumed download (REST)"
fi

# 4. SIZE and MDTM (curl -I).
size=$(stat -c %s "$file_abs")
if run curl "${ptls[@]}" "${pgood[@]}" -I "$purl/$file_rel" &&
   grep -q "^Content-Length: $size" "$out" &&
   grep -q '^Last-Modified: Fri, 01 Mar 2024 12:34:56 GMT' "$out"; then
    pass "SIZE/MDTM: $(tr -d '\r' <"$out" | grep -E '^(Content-Length|Last-Modified)' | tr '\n' ' ')"
else
    fail "pure-ftpd SIZE/MDTM"
fi

# 5. MLSD (machine-readable listing) instead of LIST.
if run curl "${ptls[@]}" "${pgood[@]}" -X MLSD "$purl/x/CDRs/" &&
   grep -q 'type=file;size=[0-9]*;.*modify=20240301123456;.* 2024-03-01.csv' "$out"; then
    pass "MLSD: $(grep '2024-03-01.csv' "$out" | tr -d '\r')"
else
    fail "pure-ftpd MLSD"
fi

# 6. FEAT (for the record) must announce MLSD, MDTM, SIZE and REST STREAM.
if run curl "${ptls[@]}" "${pgood[@]}" --verbose -Q FEAT "$purl/" &&
   grep -q '^<  MLSD' "$out" && grep -q '^<  MDTM' "$out" &&
   grep -q '^<  SIZE' "$out" && grep -q '^<  REST STREAM' "$out"; then
    pass "FEAT announces MLSD, MDTM, SIZE, REST STREAM; full FEAT reply:"
    grep '^< ' "$out" | sed -n '/^< 211-/,/^< 211 /p' | tr -d '\r' | sed 's/^< /      /'
else
    fail "pure-ftpd FEAT"
fi

# 7. Wrong password: 530, curl exit 67.
rc=0
run curl "${ptls[@]}" --verbose --user "$CDR_TEST_PUREFTPD_USER:wrong-password" "$purl/" || rc=$?
if ((rc == 67)) && grep -q '^< 530' "$out"; then
    pass "wrong password refused: $(grep -m1 '^< 530' "$out" | tr -d '\r')"
else
    fail "pure-ftpd wrong password not refused with 530 (curl exit $rc)"
fi

# 8. Login without TLS refused (-Y 3).
rc=0
run curl "${pcommon[@]}" --verbose "${pgood[@]}" "$purl/" || rc=$?
if ((rc != 0)) && grep -qE '^< (530|421|5[0-9][0-9])' "$out"; then
    pass "plain-text login refused: $(grep -E '^< [45][0-9][0-9]' "$out" | tail -n1 | tr -d '\r')"
else
    fail "pure-ftpd plain-text login was not refused (curl exit $rc)"
fi

# 9. TLS login but clear-text data connection (PROT C): refused (-Y 3).
rc=0
run curl "${pcommon[@]}" --ftp-ssl-control --cacert "$CDR_TEST_CA_FILE" --verbose \
    "${pgood[@]}" "$purl/$file_rel" || rc=$?
if ((rc != 0)); then
    pass "clear-text data connection refused (curl exit $rc): $(grep -E '^< [45][0-9][0-9]' "$out" | tail -n1 | tr -d '\r')"
else
    fail "pure-ftpd served a file over a clear-text data connection"
fi

# 10. Untrusted CA refused (curl exit 60).
rc=0
run curl "${pcommon[@]}" --ssl-reqd --cacert "$CDR_TEST_UNTRUSTED_CA_FILE" "${pgood[@]}" \
    "$purl/" || rc=$?
if ((rc == 60)); then
    pass "untrusted CA refused: $(head -n1 "$out")"
else
    fail "pure-ftpd: untrusted CA was not refused (curl exit $rc)"
fi

# 11. TLS 1.2 and 1.3 accepted (verified as localhost against the CA), 1.1 refused.
for v in tls1_2 tls1_3 tls1_1; do
    rc=0
    echo QUIT | run timeout 20 openssl s_client -starttls ftp -connect "$host:$pport" \
        -servername localhost -verify_hostname localhost -verify_return_error \
        -CAfile "$CDR_TEST_CA_FILE" "-$v" -brief || rc=$?
    proto=$(grep -m1 '^Protocol version' "$out" || true)
    if [[ $v == tls1_1 ]]; then
        if ((rc != 0)) && [[ -z $proto ]]; then pass "-$v refused"; else fail "-$v was accepted ($proto)"; fi
    elif ((rc == 0)) && [[ -n $proto ]] && grep -q 'Verification: OK' "$out"; then
        pass "-$v: $proto, $(grep -m1 '^Ciphersuite' "$out")"
    else
        fail "-$v handshake with pure-ftpd (openssl exit $rc)"
    fi
done

# 12. The same file through vsftpd: LIST formats side by side (for the record).
vurl="ftp://localhost:$CDR_TEST_FTPS_PORT"
if run curl --silent --show-error --max-time 20 --ssl-reqd --cacert "$CDR_TEST_CA_FILE" \
       --resolve "localhost:$CDR_TEST_FTPS_PORT:$host" \
       --user "$CDR_TEST_FTPS_USER:$CDR_TEST_FTPS_PASSWORD" "$vurl/x/CDRs/" &&
   vline=$(grep ' 2024-03-01.csv$' "$out") &&
   run curl "${ptls[@]}" "${pgood[@]}" "$purl/x/CDRs/" &&
   pline=$(grep ' 2024-03-01.csv$' "$out"); then
    pass "same file, both FTP servers; LIST lines:"
    echo "      vsftpd:    $vline"
    echo "      pure-ftpd: $pline"
else
    fail "the shared file is not listed by both FTP servers"
fi

echo "== sshd (SFTP only) on port $CDR_TEST_SFTP_PORT"
sport=$CDR_TEST_SFTP_PORT
suser=$CDR_TEST_SFTP_USER
# Batch mode, our known_hosts only, no agent, no ~/.ssh config or keys.
sshopts=(-F /dev/null -o StrictHostKeyChecking=yes -o IdentityAgent=none
         -o ConnectTimeout=20 -o AddressFamily=inet -o LogLevel=ERROR)
keyopts=(-o IdentitiesOnly=yes -i "$CDR_TEST_SFTP_KEY" -o PasswordAuthentication=no
         -o KbdInteractiveAuthentication=no -o BatchMode=yes)
got=$work/sftp-got.csv

# sftp batch ($1 = known_hosts, $2 = host name, rest = options) with the
# commands on stdin.
sftp_batch() {
    local kh=$1 name=$2
    shift 2
    timeout 30 sftp "${sshopts[@]}" -o "UserKnownHostsFile=$kh" "$@" -b - \
        -P "$sport" "$suser@$name"
}

# 1. Key login; the session starts in the served folder; ls and get
#    (relative path) work; content identical.
rm -f "$got"
if printf 'pwd\nls -l x/CDRs\nget %s %s\n' "$file_rel" "$got" |
       run sftp_batch "$CDR_TEST_SFTP_KNOWN_HOSTS" 127.0.0.1 "${keyopts[@]}" &&
   grep -qF "Remote working directory: $CDR_TEST_SFTP_ROOT" "$out" &&
   grep -q ' x/CDRs/2024-03-01.csv$' "$out" && cmp -s "$got" "$file_abs"; then
    pass "key login, pwd = CDR_TEST_SFTP_ROOT, ls, get (identical): $(grep ' x/CDRs/2024-03-01.csv$' "$out")"
else
    fail "SFTP key login / ls / get"
fi

# 2. Absolute path (CDR_TEST_SFTP_ROOT/...), host name "localhost", hashed
#    known_hosts.
rm -f "$got"
if printf 'get %s %s\n' "$file_abs" "$got" |
       run sftp_batch "$CDR_TEST_SFTP_KNOWN_HOSTS_HASHED" localhost "${keyopts[@]}" &&
   cmp -s "$got" "$file_abs"; then
    pass "hashed known_hosts, [localhost]:$sport entry, absolute path get"
else
    fail "SFTP with hashed known_hosts / localhost / absolute path"
fi

# 3. Password login (password method), and keyboard-interactive (PAM).
for method in password keyboard-interactive; do
    rm -f "$got"
    # -oBatchMode=no must come before -b, which would otherwise forbid prompts.
    if printf 'get %s %s\n' "$file_rel" "$got" |
           SSHPASS=$CDR_TEST_SFTP_PASSWORD run timeout 30 sshpass -e sftp "${sshopts[@]}" \
               -o BatchMode=no -o "UserKnownHostsFile=$CDR_TEST_SFTP_KNOWN_HOSTS" \
               -o PubkeyAuthentication=no -o "PreferredAuthentications=$method" \
               -b - -P "$sport" "$suser@127.0.0.1" &&
       cmp -s "$got" "$file_abs"; then
        pass "$method login, get (identical)"
    else
        fail "SFTP $method login"
    fi
done

# 4. Wrong password refused (sshpass exit 5: the server asked again).
rc=0
echo pwd | SSHPASS=wrong-password run timeout 30 sshpass -e sftp "${sshopts[@]}" \
    -o BatchMode=no -o "UserKnownHostsFile=$CDR_TEST_SFTP_KNOWN_HOSTS" \
    -o PubkeyAuthentication=no -o PreferredAuthentications=password \
    -b - -P "$sport" "$suser@127.0.0.1" || rc=$?
if ((rc == 5)); then
    pass "wrong password refused (sshpass exit 5)"
else
    fail "wrong SFTP password not refused as expected (exit $rc)"
fi

# 5. Changed host key (known_hosts.wrong): refused before authentication.
rc=0
echo pwd | run sftp_batch "$CDR_TEST_SFTP_KNOWN_HOSTS_WRONG" 127.0.0.1 "${keyopts[@]}" \
    -o LogLevel=INFO || rc=$?
if ((rc != 0)) && grep -q 'REMOTE HOST IDENTIFICATION HAS CHANGED' "$out" &&
   grep -q 'Host key verification failed' "$out"; then
    pass "wrong known_hosts refused: $(grep -m1 'Host key for' "$out" || grep -m1 'verification failed' "$out")"
else
    fail "a changed host key was not refused (exit $rc)"
fi

# 6. Unknown host (empty known_hosts) refused with StrictHostKeyChecking=yes.
rc=0
: >"$work/known_hosts.empty"
echo pwd | run sftp_batch "$work/known_hosts.empty" 127.0.0.1 "${keyopts[@]}" || rc=$?
if ((rc != 0)) && grep -q 'Host key verification failed' "$out"; then
    pass "unknown host key refused"
else
    fail "an unknown host key was not refused (exit $rc)"
fi

# 7. The exported fingerprint is the one the server presents.
if run ssh-keyscan -T 10 -t ed25519 -p "$sport" 127.0.0.1 &&
   fp=$(grep -v '^#' "$out" | ssh-keygen -lf - | awk '{print $2}') &&
   [[ $fp == "$CDR_TEST_SFTP_HOST_KEY_SHA256" ]]; then
    pass "CDR_TEST_SFTP_HOST_KEY_SHA256 matches the served key ($fp)"
else
    fail "fingerprint mismatch: served ${fp:-?}, exported $CDR_TEST_SFTP_HOST_KEY_SHA256"
fi

# 8. No shell: a command runs internal-sftp instead (ForceCommand).
rc=0
run timeout 20 ssh "${sshopts[@]}" -o "UserKnownHostsFile=$CDR_TEST_SFTP_KNOWN_HOSTS" \
    "${keyopts[@]}" -n -p "$sport" "$suser@127.0.0.1" echo shell-ran || rc=$?
if ! grep -q shell-ran "$out"; then
    pass "no shell: 'ssh ... echo' did not run (exit $rc)"
else
    fail "ssh ran a shell command"
fi

echo "== moto (S3) at $CDR_TEST_S3_ENDPOINT"
# Credentials from the CDR_TEST_S3_* variables, passed explicitly (not
# through AWS_* variables, which the script does not export).
if run "$_CDR_TS_PYTHON" - <<'EOF'
import os, sys
import boto3, botocore
from botocore.config import Config

env = os.environ
s3 = boto3.client(
    "s3",
    endpoint_url=env["CDR_TEST_S3_ENDPOINT"],
    region_name=env["CDR_TEST_S3_REGION"],
    aws_access_key_id=env["CDR_TEST_S3_ACCESS_KEY_ID"],
    aws_secret_access_key=env["CDR_TEST_S3_SECRET_ACCESS_KEY"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
bucket = env["CDR_TEST_S3_BUCKET"]
ok = True
def check(cond, what):
    global ok
    print(("PASS: " if cond else "FAIL: ") + what)
    ok = ok and cond

listing = s3.list_objects_v2(Bucket=bucket)
check(listing.get("KeyCount") == 0, f"bucket {bucket} exists and is empty")
body = b"call_date,rows\n2024-03-01,1\n"
s3.put_object(Bucket=bucket, Key="cdr/date=2024-03-01/part-0.parquet", Body=body)
got = s3.get_object(Bucket=bucket, Key="cdr/date=2024-03-01/part-0.parquet")["Body"].read()
check(got == body, f"put + get ({len(got)} bytes, identical)")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="cdr/")["Contents"]]
check(keys == ["cdr/date=2024-03-01/part-0.parquet"], f"list: {keys}")
try:
    s3.put_object(Bucket=bucket, Key="cdr/date=2024-03-01/part-0.parquet",
                  Body=b"other", IfNoneMatch="*")
    check(False, "conditional put (If-None-Match: *) over an existing key was accepted")
except botocore.exceptions.ClientError as e:
    status = e.response["ResponseMetadata"]["HTTPStatusCode"]
    code = e.response["Error"].get("Code")
    check(status == 412, f"conditional put (If-None-Match: *) over an existing key: {status} {code}")
r = s3.put_object(Bucket=bucket, Key="cdr/date=2024-03-02/part-0.parquet",
                  Body=b"new", IfNoneMatch="*")
check(r["ResponseMetadata"]["HTTPStatusCode"] == 200,
      "conditional put (If-None-Match: *) of a new key: 200")
got = s3.get_object(Bucket=bucket, Key="cdr/date=2024-03-01/part-0.parquet")["Body"].read()
check(got == body, "the existing object was not overwritten")
sys.exit(0 if ok else 1)
EOF
then
    cat "$out"
else
    cat "$out"
    echo "FAIL: S3 checks (see above)"
    failures=$((failures + 1))
fi

if ((failures)); then
    echo "servers-smoke: $failures check(s) FAILED; logs in $work"
    for log in pure-ftpd.out sshd.log moto.log; do
        echo "--- $log (tail) ---"
        tail -n 20 "$work/$log" || true
    done
    exit 1
fi
echo "servers-smoke: all checks passed (pure-ftpd :$pport, sftp :$sport," \
    "s3 $CDR_TEST_S3_ENDPOINT, work dir $work)"
