#!/usr/bin/env bash
# 40-s3-store: the s3 store against a real S3 server (Ceph RGW on 127.0.0.1), through
# lc-storetool: put/get (single and multipart), list (prefixes, pagination), delete batches,
# not-found, auth failures (and that the secret never shows), retries against a closed port
# and across a gateway restart, and the URL forms. Prints TAP.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
tool=${LC_STORETOOL:-$top/build/tools/lc-storetool}
server=$top/scripts/s3-server
ports=$("$server" free-ports 3) || { echo "Bail out! no free ports"; exit 1; }
read -r free_rgw free_mon CLOSED_PORT <<< "$ports"
RGW_PORT=${LC_TEST_RGW_PORT:-$free_rgw}
export MON_PORT=${LC_TEST_MON_PORT:-$free_mon}
KEY=litecast-test
SECRET=litecast-test-secret-0123456789
EP=http://127.0.0.1:$RGW_PORT

tmp=$(mktemp -d)
cleanup() {
    "$server" stop "$tmp/s3" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

n=0
failed=0
ok() {
    n=$((n + 1))
    echo "ok $n - $1"
}
not_ok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
}
check() { # check DESCRIPTION COMMAND...
    local d=$1
    shift
    if "$@"; then ok "$d"; else not_ok "$d"; fi
}
diag() {
    sed 's/^/# /' "$@" >&2
}

st() { # the tool with the test credentials
    "$tool" --endpoint "$EP" --access-key "$KEY" --secret "$SECRET" "$@"
}

echo "1..18"

if [ ! -x "$tool" ]; then
    not_ok "lc-storetool is built ($tool)"
    exit 1
fi
if ! "$server" start "$tmp/s3" "$RGW_PORT" >"$tmp/server.out" 2>"$tmp/server.err"; then
    not_ok "rgw starts on 127.0.0.1:$RGW_PORT"
    diag "$tmp/server.err"
    exit 1
fi
check "rgw starts and prints its endpoint" grep -qx "endpoint=$EP" "$tmp/server.out"

U=s3://litecast/t40

# small object
printf 'hello, litecast\n' >"$tmp/small"
t_small() {
    st "$U" put gen/small.txt "$tmp/small" && st "$U" get gen/small.txt "$tmp/small.out" &&
        cmp -s "$tmp/small" "$tmp/small.out"
}
check "put/get of a small object is byte-equal" t_small

# 20 MiB: multipart (3 parts of at most 8 MiB), streamed back
head -c $((20 << 20)) /dev/urandom >"$tmp/big"
t_big() {
    if ! st --debug "$U" put gen/big.bin "$tmp/big" 2>"$tmp/big.log"; then
        diag "$tmp/big.log"
        return 1
    fi
    grep -q 'put=3 list=0 delete=0 post=2' "$tmp/big.log" || { diag "$tmp/big.log"; return 1; }
    st "$U" get gen/big.bin "$tmp/big.out" && cmp -s "$tmp/big" "$tmp/big.out"
}
check "20 MiB put is a multipart upload (3 parts) and gets back byte-equal" t_big

# listing one level: objects with size and time, sub-prefixes without '/'
t_list() {
    local k
    for k in dir/a dir/b.txt dir/sub/c dir/sub/d dir/sub2/e other/f; do
        st "$U" put "$k" "$tmp/small" || return 1
    done
    st "$U" list dir/ >"$tmp/list.out" || return 1
    awk '{print $1 ($2 == "" ? "" : " " $2)}' "$tmp/list.out" >"$tmp/list.got"
    printf '%s\n' "a 16" "b.txt 16" "sub/" "sub2/" >"$tmp/list.want"
    cmp -s "$tmp/list.want" "$tmp/list.got" || { diag "$tmp/list.out"; return 1; }
    # LastModified parsed into a plausible RFC 3339 time (this year)
    grep -q "^a 16 $(date -u +%Y)-" "$tmp/list.out"
}
check "list dir/ gives objects (size, mtime) and sub-prefixes" t_list

t_list_root() {
    st "$U" list "" >"$tmp/root.out" || return 1
    printf '%s\n' dir/ gen/ other/ >"$tmp/root.want"
    cmp -s "$tmp/root.want" "$tmp/root.out" || { diag "$tmp/root.out"; return 1; }
}
check "list of the store root gives its top-level prefixes" t_list_root

# 1100 objects: more than one ListObjectsV2 page
t_fill() {
    st "$U" fill many/ 1100 && [ "$(st "$U" list many/ | wc -l)" -eq 1100 ]
}
check "1100 concurrent small puts all land" t_fill

t_pages() {
    st --debug "$U" list many/ >"$tmp/p1000" 2>"$tmp/p1000.log" || return 1
    grep -q 'list=2 ' "$tmp/p1000.log" || { diag "$tmp/p1000.log"; return 1; }
    [ "$(wc -l <"$tmp/p1000")" -eq 1100 ] || return 1
    [ "$(head -1 "$tmp/p1000" | cut -d' ' -f1)" = 00000 ] || return 1
    [ "$(tail -1 "$tmp/p1000" | cut -d' ' -f1)" = 01099 ] || return 1
    cut -d' ' -f1 "$tmp/p1000" | sort -c
}
check "list of 1100 keys follows the continuation token (2 pages), sorted" t_pages

t_pages_small() {
    st --debug --page-size 100 "$U" list many/ >"$tmp/p100" 2>"$tmp/p100.log" || return 1
    grep -q 'list=11 ' "$tmp/p100.log" || { diag "$tmp/p100.log"; return 1; }
    cut -d' ' -f1 "$tmp/p100" | cmp -s - <(cut -d' ' -f1 "$tmp/p1000")
}
check "list with 100-key pages takes 11 requests and gives the same names" t_pages_small

# delete: 1100 keys in two DeleteObjects batches, plus keys that do not exist
t_del() {
    local keys
    keys=$(st "$U" list many/ | awk '{print "many/" $1}') || return 1
    # shellcheck disable=SC2086
    if ! st --debug "$U" del $keys many/never-existed 2>"$tmp/del.log"; then
        diag "$tmp/del.log"
        return 1
    fi
    grep -q 'delete=2 ' "$tmp/del.log" || { diag "$tmp/del.log"; return 1; }
    [ -z "$(st "$U" list many/)" ] && st "$U" del dir/a && ! st "$U" get dir/a "$tmp/x" 2>/dev/null
}
check "delete of 1101 keys is two batches and removes them all" t_del

# missing key
t_missing() {
    local out
    out=$(st "$U" get no/such/key "$tmp/missing.out" 2>&1)
    [ $? -eq 1 ] && [[ $out == *"s3 get no/such/key: not found"* ]] && [ ! -e "$tmp/missing.out" ]
}
check "get of a missing key fails with a not-found message" t_missing

# wrong secret: a clear 403, and the secret (right or wrong) is nowhere in the output
BAD=wrong-secret-do-not-print-4242
t_auth() {
    local out rc
    out=$("$tool" --debug --endpoint "$EP" --access-key "$KEY" --secret "$BAD" "$U" \
        put gen/x "$tmp/small" 2>&1)
    rc=$?
    echo "$out" >"$tmp/auth.out"
    out2=$("$tool" --debug --endpoint "$EP" --access-key "$KEY" --secret "$BAD" "$U" \
        get gen/small.txt "$tmp/auth.get" 2>&1)
    echo "$out2" >>"$tmp/auth.out"
    [ $rc -eq 1 ] || return 1
    if ! grep -q 's3 put gen/x: 403 SignatureDoesNotMatch' "$tmp/auth.out"; then
        diag "$tmp/auth.out"
        return 1
    fi
    grep -q 's3 get gen/small.txt: 403 SignatureDoesNotMatch' "$tmp/auth.out" || return 1
    ! grep -qF -e "$BAD" -e "$SECRET" "$tmp/auth.out"
}
check "a wrong secret fails at once with 403 SignatureDoesNotMatch, secret never printed" t_auth

t_akid() {
    local out
    out=$("$tool" --endpoint "$EP" --access-key nobody --secret "$BAD" "$U" list "" 2>&1)
    [ $? -eq 1 ] && [[ $out == *"403 InvalidAccessKeyId"* ]] && [[ $out != *"$BAD"* ]]
}
check "an unknown access key fails with 403 InvalidAccessKeyId" t_akid

# closed port: retried with backoff (8 attempts), then a clear error, in bounded time
t_closed() {
    local port=$CLOSED_PORT t0 t1 out
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "# port $port is no longer closed" >&2
        return 1
    fi
    t0=$(date +%s%N)
    out=$("$tool" --endpoint "http://127.0.0.1:$port" --access-key "$KEY" --secret "$SECRET" \
        "$U" put gen/x "$tmp/small" 2>&1)
    local rc=$?
    t1=$(date +%s%N)
    local ms=$(((t1 - t0) / 1000000))
    echo "# closed port: ${ms} ms: $out" >&2
    [ $rc -eq 1 ] && [[ $out == *"s3 put gen/x: "*"(after 8 attempts)"* ]] &&
        [ "$ms" -ge 2000 ] && [ "$ms" -le 20000 ]
}
check "a put to a closed port retries 8 times and fails within 20 s" t_closed

# gateway outage: a put started while RGW is down succeeds once it is back
t_outage() {
    head -c 100000 /dev/urandom >"$tmp/mid"
    "$server" stop-rgw "$tmp/s3" || return 1
    st --debug "$U" put gen/outage.bin "$tmp/mid" 2>"$tmp/outage.log" &
    local pid=$!
    sleep 1.5
    "$server" start-rgw "$tmp/s3" >/dev/null 2>"$tmp/rgw.err" || { diag "$tmp/rgw.err"; return 1; }
    wait "$pid" || { diag "$tmp/outage.log"; return 1; }
    grep -q 'retrying' "$tmp/outage.log" || { diag "$tmp/outage.log"; return 1; }
    st "$U" get gen/outage.bin "$tmp/mid.out" && cmp -s "$tmp/mid" "$tmp/mid.out"
}
check "a put during an RGW restart is retried and lands" t_outage

# a store without a path prefix, and the ?/&/space-safe key encoding
t_root_store() {
    local k='odd key+&=;@.bin'
    st s3://litecast put "$k" "$tmp/small" && st s3://litecast get "$k" "$tmp/odd.out" &&
        cmp -s "$tmp/small" "$tmp/odd.out" &&
        st s3://litecast list "" | grep -qF "$k 16 " &&
        st s3://litecast del "$k"
}
check "keys with reserved characters round-trip at the bucket root" t_root_store

# URL forms (no network: info only opens the store)
t_url_localhost() {
    local want="endpoint=http://localhost:$RGW_PORT bucket=litecast prefix=pre/fix/"
    want="$want region=us-east-1 path_style=1"
    "$tool" --debug "s3://litecast.localhost:$RGW_PORT/pre/fix" info 2>&1 | grep -qF "$want"
}
check "s3://B.localhost:PORT/path means http://localhost:PORT, path style" t_url_localhost

t_url_aws() {
    local want="endpoint=https://my-bucket.s3.eu-west-1.amazonaws.com bucket=my-bucket"
    want="$want prefix=db/ region=eu-west-1 path_style=0"
    "$tool" --debug --region eu-west-1 s3://my-bucket/db info 2>&1 | grep -qF "$want"
}
check "s3://BUCKET/path without endpoint is AWS virtual-host style" t_url_aws

t_stop() {
    "$server" stop "$tmp/s3" && [ ! -e "$tmp/s3" ] &&
        ! (exec 3<>"/dev/tcp/127.0.0.1/$RGW_PORT") 2>/dev/null
}
check "s3-server stop kills the daemons and removes its directory" t_stop

[ "$n" -eq 18 ] || echo "# planned 18 tests, ran $n" >&2
[ "$failed" -eq 0 ] && [ "$n" -eq 18 ]
