#!/usr/bin/env bash
# 41-s3-replicate: the daemon against a real S3 server (one Ceph RGW on 127.0.0.1 for the
# whole file). A round trip under writes with checkpoints every few pages, point-in-time
# restores, Litestream v0.3.13 interop both ways through its S3 client, a wrong secret
# (clear 403, never printed), a 20 s RGW outage under writes (no acknowledged commit
# lost), replication and restore through a fault-injecting proxy (500/503/stalls/cuts),
# a --parallelism 8 restore of a chain of 500+ segments through that proxy, and the
# request count of an idle minute (zero PUTs, zero LISTs).
. "$(dirname "$0")/lib.sh"

SERVER=$ROOT/scripts/s3-server
ports=$("$SERVER" free-ports 2) || { echo "Bail out! no free ports"; exit 1; }
RGW_PORT=${LC_TEST_RGW_PORT41:-${ports% *}}
export MON_PORT=${LC_TEST_MON_PORT41:-${ports#* }}
S3DIR=$T/s3
KEY=litecast-test
SECRET=litecast-test-secret-0123456789
BAD=wrong-secret-never-print-7321
EP=http://127.0.0.1:$RGW_PORT
PROXY=$TOOLS/lc-faultproxy
IDLE_SECONDS=${LC_IDLE_SECONDS:-60}
trap '"$SERVER" stop "$S3DIR" >/dev/null 2>&1; _cleanup' EXIT

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
ms() { date +%s%3N; }
T0=$(ms)
lap() { diag "$1: $(( ($(ms) - T0) / 1000 )) s since start"; }
st() { "$TOOLS/lc-storetool" --endpoint "$EP" --access-key "$KEY" --secret "$SECRET" "$@"; }
# the config of one database replicated to s3://litecast/PREFIX through ENDPOINT
config() { # config FILE DB PREFIX ENDPOINT SECRET [db-section lines...]
    local f=$1 db=$2 prefix=$3 ep=$4 secret=$5
    shift 5
    {
        printf '[litecast]\nfallback-interval = 1s\nshutdown-timeout = 60s\n\n'
        printf '[db app]\npath = %s\nmin-checkpoint-pages = 16\nmax-checkpoint-pages = 256\n' "$db"
        for l in "$@"; do printf '%s\n' "$l"; done
        printf '\n[replica s3]\ndb = app\nurl = s3://litecast/%s\nendpoint = %s\n' "$prefix" "$ep"
        printf 'access-key-id = %s\nsecret-access-key = %s\nsync-interval = 0\n' "$KEY" "$secret"
    } > "$f"
}
# restore by URL (path style on localhost:PORT) with the credentials in the environment
restore_url() { # restore_url OUT PREFIX [options...]
    local out=$1 prefix=$2
    shift 2
    AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET \
        "$LITECAST" restore "$@" -o "$out" "s3://litecast.localhost:$RGW_PORT/$prefix"
}
ls_restore() { # ls_restore OUT PREFIX [options...]: the real Litestream, through its S3 client
    local out=$1 prefix=$2
    shift 2
    LITESTREAM_ACCESS_KEY_ID=$KEY LITESTREAM_SECRET_ACCESS_KEY=$SECRET \
        "$LITESTREAM" restore "$@" -o "$out" "s3://litecast.localhost:$RGW_PORT/$prefix"
}
# wait until FILE has not grown for QUIET seconds (at most LIMIT seconds)
settle() { # settle FILE QUIET LIMIT
    local f=$1 quiet=$2 deadline=$(( $(ms) + $3 * 1000 )) last=-1 since
    since=$(ms)
    while [ "$(ms)" -lt "$deadline" ]; do
        local sz
        sz=$(stat -c %s "$f" 2>/dev/null || echo 0)
        if [ "$sz" != "$last" ]; then last=$sz since=$(ms); fi
        [ $(( $(ms) - since )) -ge $(( quiet * 1000 )) ] && return 0
        sleep 0.2
    done
    return 1
}
# start a fault proxy NAME in front of RGW; sets PPORT
start_proxy() { # start_proxy NAME SEED PCT [WEIGHTS of 500:503:stall:cut]
    start_bg "$1" "$PROXY" --upstream "$RGW_PORT" --seed "$2" --fault-pct "$3" \
        --stall-ms 2000 --weights "${4:-1:1:1:1}" --log "$T/$1.req"
    wait_log "$1" 'listening port=' 5
    PPORT=$(sed -n 's/^listening port=//p' "$T/$1.log")
}
faults() { # faults REQLOG: "pass=.. 500=.. 503=.. stall=.. cut=.."
    awk '/^req/ { for (i = 1; i <= NF; i++) if ($i ~ /^fault=/) c[substr($i, 7)]++ }
         END { printf "pass=%d 500=%d 503=%d stall=%d cut=%d", c["pass"], c["500"], c["503"],
               c["stall"], c["cut"] }' "$1"
}

# ---- the server --------------------------------------------------------------------
if ! "$SERVER" start "$S3DIR" "$RGW_PORT" > "$T/server.out" 2> "$T/server.err.log"; then
    t_ok "rgw starts on 127.0.0.1:$RGW_PORT" false
    diag "$(tail -n 20 "$T/server.err.log")"
    done_testing
fi
t_ok "rgw starts and prints its endpoint" grep -qx "endpoint=$EP" "$T/server.out"
t_ok "lc-faultproxy is built" test -x "$PROXY"
t_ok "litestream v0.3.13 is installed" bash -c "'$LITESTREAM' version | grep -q v0.3.13"
lap "rgw up"

# ---- 1. round trip under writes, checkpoints every 16 pages --------------------------
DB=$T/app.db
config "$T/a.ini" "$DB" a "$EP" "$SECRET"
"$TOOLS/lc-writer" "$DB" --count 1 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/a.ini"
t_ok "daemon writes the first snapshot to rgw" wait_log daemon 'snapshot written' 10
# one commit every 16 ms, most of them a segment of their own, until the daemon shipped
# 540 segments (a chain of 500+ for the parallel restore below, however loaded the
# machine); 9 MB commits make segments bigger than a part (multipart uploads)
start_bg writer-a "$TOOLS/lc-writer" "$DB" --count 3000 --rate 60 --min-bytes 50 \
    --max-bytes 2000 --big-every 250 --big-bytes 9000000 --autocheckpoint 0 --log "$T/a.acks"
wait_for 90 bash -c "[ \$(grep -c 'wal segment written' '$T/daemon.log') -ge 540 ]"
stop_bg writer-a TERM
t_is "$?" 0 "writer: $(wc -l < "$T/a.acks") commits beside the daemon"
# point in time: bursts, each followed by a recorded (instant, last commit)
base=$(sqlite3 "$DB" 'SELECT MAX(n) FROM t')
: > "$T/marks"
for b in 1 2 3; do
    "$TOOLS/lc-writer" "$DB" --count 7 --rate 100 --min-bytes 50 --max-bytes 3000 \
        --autocheckpoint 0 --log "$T/pitr.acks" 2>/dev/null
    [ "$b" -eq 3 ] && break
    sleep 0.3
    printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$(tail -n 1 "$T/pitr.acks" | cut -d' ' -f1)" >> "$T/marks"
    sleep 0.3
done
settle "$T/daemon.log" 2 20
stop_bg daemon TERM
t_is "$?" 0 "daemon: final sync and clean exit"
t_ok "the daemon shipped several WAL indexes" \
    test "$(grep 'wal segment written' "$T/daemon.log" | field position | cut -d: -f1 | sort -u | wc -l)" -ge 3
t_ok "and multipart-sized segments (over 8 MiB)" \
    bash -c "grep 'wal segment written' '$T/daemon.log' | grep -Eq 'size=[0-9]{7,}'"
restore_url "$T/a-out.db" a 2> "$T/a-restore.err"
t_is "$?" 0 "litecast restore from rgw exits 0"
out=$(db_check "$T/a-out.db")
t_like "$out" '^integrity=ok' "restored database passes integrity_check"
t_is "$out" "$(db_check "$DB")" "restored content equals the source"
good=0
while read -r ts k; do
    rm -f "$T/pitr.db"
    if restore_url "$T/pitr.db" a --timestamp "$ts" 2>> "$T/pitr.err"; then
        r=$(db_check "$T/pitr.db")
        got=$(sqlite3 "$T/pitr.db" "SELECT MAX(n), COUNT(DISTINCT n) FROM t WHERE n > $base")
        if [ "$got" = "$k|$((k - base))" ] && [[ "$r" == integrity=ok* ]]; then
            good=$((good + 1))
        else diag "timestamp $ts: want $k|$((k - base)), got $got ($r)"; fi
    else diag "timestamp $ts: restore failed: $(tail -n 1 "$T/pitr.err")"; fi
done < "$T/marks"
t_is "$good" 2 "2 point-in-time restores from rgw each hold exactly the commits up to their instant"
lap "round trip"

# ---- 2. Litestream interop through S3 ------------------------------------------------
ls_restore "$T/ls-of-ours.db" a 2> "$T/ls-restore.err"
t_is "$?" 0 "litestream restore of our s3 replica exits 0"
t_is "$(db_check "$T/ls-of-ours.db")" "$(db_check "$DB")" "litestream's restore of our s3 replica equals the source"

DB2=$T/theirs.db
cat > "$T/ls.yml" <<YML
dbs:
  - path: $DB2
    min-checkpoint-page-count: 64
    replicas:
      - type: s3
        bucket: litecast
        path: ls/theirs
        endpoint: "$EP"
        region: us-east-1
        force-path-style: true
        access-key-id: $KEY
        secret-access-key: $SECRET
        sync-interval: 100ms
YML
"$TOOLS/lc-writer" "$DB2" --count 1 2>/dev/null
start_bg litestream "$LITESTREAM" replicate -config "$T/ls.yml"
wait_for 15 bash -c "'$TOOLS/lc-storetool' --endpoint '$EP' --access-key '$KEY' --secret '$SECRET' \
    s3://litecast/ls/theirs list generations/ | grep -q ."
"$TOOLS/lc-writer" "$DB2" --count 400 --rate 200 --min-bytes 500 --max-bytes 9000 \
    --autocheckpoint 0 2>/dev/null
t_is "$?" 0 "writer ok beside litestream"
sleep 3
stop_bg litestream INT
ls_restore "$T/ls-latest.db" ls/theirs 2> "$T/ls-latest.err"
t_is "$?" 0 "litestream restores its own s3 replica"
restore_url "$T/lc-of-theirs.db" ls/theirs 2> "$T/lc-of-theirs.err"
t_is "$?" 0 "litecast restores a litestream s3 replica"
t_is "$(db_check "$T/lc-of-theirs.db")" "$(db_check "$T/ls-latest.db")" \
    "litecast's restore of the litestream s3 replica equals litestream's"
t_is "$(db_check "$T/lc-of-theirs.db" | field hash)" "$(db_check "$DB2" | field hash)" \
    "and equals the source"
lap "litestream interop"

# ---- 3. a wrong secret ---------------------------------------------------------------
DB3=$T/bad.db
config "$T/bad.ini" "$DB3" bad "$EP" "$BAD"
"$TOOLS/lc-writer" "$DB3" --count 5 2>/dev/null
start_bg daemon-bad "$LITECAST" replicate -c "$T/bad.ini"
t_ok "a wrong secret: the daemon logs a 403 SignatureDoesNotMatch" \
    wait_log daemon-bad 'level=warn.*replica=s3.*403 SignatureDoesNotMatch' 15
diag "$(grep -m1 '403' "$T/daemon-bad.log" | cut -c1-300)"
t_ok "the daemon keeps running (and retrying) with a wrong secret" kill -0 "$(cat "$T/daemon-bad.pid")"
stop_bg daemon-bad TERM
AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$BAD \
    "$LITECAST" restore -o "$T/bad-out.db" "s3://litecast.localhost:$RGW_PORT/a" 2> "$T/bad-restore.err"
t_is "$?" 1 "restore with a wrong secret exits 1"
t_like "$(cat "$T/bad-restore.err")" '403 SignatureDoesNotMatch' "and says why (403 SignatureDoesNotMatch)"
t_ok "restore with a wrong secret leaves no output" test ! -e "$T/bad-out.db"
"$LITECAST" restore -c "$T/bad.ini" -o "$T/bad-out2.db" "$DB3" 2>> "$T/bad-restore.err"
t_is "$?" 1 "restore through a config with a wrong secret exits 1"
lap "wrong secret"

# ---- 4. RGW down for 20 s under writes --------------------------------------------------
DB4=$T/outage.db
config "$T/outage.ini" "$DB4" outage "$EP" "$SECRET"
"$TOOLS/lc-writer" "$DB4" --count 1 2>/dev/null
start_bg daemon-out "$LITECAST" replicate -c "$T/outage.ini"
wait_log daemon-out 'snapshot written' 10
start_bg writer-out "$TOOLS/lc-writer" "$DB4" --count 1400 --rate 50 --min-bytes 100 \
    --max-bytes 3000 --autocheckpoint 0 --log "$T/outage.acks"
sleep 2
"$SERVER" stop-rgw "$S3DIR"
t_ok "rgw stopped" wait_for 10 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$RGW_PORT) 2>/dev/null"
down_at=$(wc -l < "$T/outage.acks")
sleep 20
before=$(grep -c 'wal segment written' "$T/daemon-out.log")
t_ok "the daemon logs the outage and retries" grep -q 'replica sync failed; retrying' "$T/daemon-out.log"
"$SERVER" start-rgw "$S3DIR" 2> "$T/rgw-restart.err.log"
t_is "$?" 0 "rgw started again"
up_at=$(wc -l < "$T/outage.acks")
t_ok "the writer kept committing while rgw was down ($down_at -> $up_at acks)" \
    test "$up_at" -gt $((down_at + 500))
t_ok "the replica ships again after the outage" \
    wait_for 60 bash -c "[ \$(grep -c 'wal segment written' '$T/daemon-out.log') -gt $before ]"
stop_bg writer-out wait
t_is "$?" 0 "writer: 1400 commits, never blocked by the outage"
settle "$T/daemon-out.log" 2 60
stop_bg daemon-out TERM
t_is "$?" 0 "daemon: clean exit after catching up"
restore_url "$T/outage-out.db" outage 2> "$T/outage-restore.err"
t_is "$?" 0 "restore after the outage exits 0"
t_is "$(db_check "$T/outage-out.db")" "$(db_check "$DB4")" "the replica caught up: restore equals the source"
sqlite3 "$T/outage-out.db" 'SELECT DISTINCT n FROM t' 2>/dev/null | sort > "$T/outage.have"
missing=$(cut -d' ' -f1 "$T/outage.acks" | sort | comm -23 - "$T/outage.have" | wc -l)
t_is "$missing" 0 "every acknowledged commit ($(wc -l < "$T/outage.acks")) is in the restored database"
lap "outage"

# ---- 5 and 7. through the fault proxy; then an idle minute ---------------------------------
start_proxy proxy1 41 40
DB5=$T/proxied.db
# an idle database's WAL is checkpointed (and restarted: one more segment) once, after
# checkpoint-interval; 3 s here (default 1m) so the idle window below starts after it
config "$T/proxy.ini" "$DB5" proxied "http://127.0.0.1:$PPORT" "$SECRET" "checkpoint-interval = 3s"
"$TOOLS/lc-writer" "$DB5" --count 1 2>/dev/null
start_bg daemon-px "$LITECAST" replicate -c "$T/proxy.ini"
t_ok "snapshot through the fault proxy" wait_log daemon-px 'snapshot written' 30
"$TOOLS/lc-writer" "$DB5" --count 400 --rate 100 --min-bytes 100 --max-bytes 4000 \
    --big-every 200 --big-bytes 2000000 --autocheckpoint 0 --log "$T/proxied.acks" 2>/dev/null
t_is "$?" 0 "writer: 400 commits while the replica goes through the fault proxy"
# caught up, idle checkpoint done: nothing on the wire for 6 s
t_ok "the replica settles (no request for 6 s)" settle "$T/proxy1.req" 6 90
f=$(faults "$T/proxy1.req")
diag "proxy during replication: $f"
nreq=$(grep -c '^req' "$T/proxy1.req")
nfault=$(( nreq - $(echo "$f" | field pass) ))
t_ok "about 40% of the replication's requests were faults ($nfault of $nreq)" \
    test $((nfault * 100)) -ge $((nreq * 25)) -a $((nfault * 100)) -le $((nreq * 55))
t_ok "every fault kind happened (500, 503, stall, cut)" \
    bash -c "echo '$f' | grep -Eq '500=[1-9].*503=[1-9].*stall=[1-9].*cut=[1-9]'"
# the idle window: nothing else runs
lap "idle window starts"
w0=$(wc -l < "$T/proxy1.req")
sleep "$IDLE_SECONDS"
tail -n +$((w0 + 1)) "$T/proxy1.req" > "$T/idle.req"
lap "idle window ends"
for k in PUT LIST POST DELETE GET; do
    eval "idle_$k=\$(grep -c '^req .* kind=$k ' '$T/idle.req')"
done
diag "requests in the idle ${IDLE_SECONDS}s: PUT=$idle_PUT LIST=$idle_LIST POST=$idle_POST DELETE=$idle_DELETE GET=$idle_GET"
t_is "$idle_PUT" 0 "an idle ${IDLE_SECONDS}s makes zero PUT requests"
t_is "$idle_LIST" 0 "an idle ${IDLE_SECONDS}s makes zero LIST requests"
t_is "$((idle_POST + idle_DELETE + idle_GET))" 0 "and no other request either"
stop_bg daemon-px TERM
t_is "$?" 0 "daemon behind the fault proxy: clean exit"
w1=$(wc -l < "$T/proxy1.req")
"$LITECAST" restore -c "$T/proxy.ini" -o "$T/proxied-out.db" "$DB5" 2> "$T/proxied-restore.err"
t_is "$?" 0 "restore through the fault proxy exits 0"
t_is "$(db_check "$T/proxied-out.db")" "$(db_check "$DB5")" "restore through the fault proxy equals the source"
diag "proxy during that restore: $(tail -n +$((w1 + 1)) "$T/proxy1.req" | faults /dev/stdin)"
restore_url "$T/proxied-direct.db" proxied 2>/dev/null
t_is "$(db_check "$T/proxied-direct.db")" "$(db_check "$DB5")" "the replica written through the proxy, restored directly, equals the source"
lap "fault proxy"

# ---- 6. --parallelism 8 over 500+ segments, through the fault proxy --------------------
gen=$(st s3://litecast/a list generations/ | sed -n 's,/$,,p' | tail -n 1)
nseg=$(st s3://litecast/a list "generations/$gen/wal/" | grep -c '\.wal\.lz4 ')
t_ok "replica a holds a chain of at least 500 segments ($nseg)" test "$nseg" -ge 500
stop_bg proxy1 TERM
t_ok "the proxy logged its counts" grep -q '^summary conns=' "$T/proxy1.req"
diag "$(grep '^summary' "$T/proxy1.req")"
# 30% faults, stalls rarer (1.6% of requests): restore keeps its download window at
# --parallelism segments, so each 2 s stall at the window's head holds all 8 slots
start_proxy proxy2 6 30 6:6:1:6
config "$T/a-proxy.ini" "$DB" a "http://127.0.0.1:$PPORT" "$SECRET"
t1=$(ms)
"$LITECAST" restore -c "$T/a-proxy.ini" --parallelism 8 -o "$T/par.db" "$DB" 2> "$T/par-restore.err"
t_is "$?" 0 "restore --parallelism 8 of $nseg segments through the fault proxy exits 0"
cp "$T/proxy2.req" "$T/par.req"
f=$(faults "$T/par.req")
diag "parallel restore: $(( $(ms) - t1 )) ms, $(grep -c '^req' "$T/par.req") requests, $f"
t_ok "faults were injected during it" bash -c "echo '$f' | grep -Eq '500=[1-9].*503=[1-9].*stall=[1-9].*cut=[1-9]'"
out=$(db_check "$T/par.db")
t_like "$out" '^integrity=ok' "parallel restore passes integrity_check"
t_is "$out" "$(db_check "$DB")" "parallel restore through the fault proxy equals the source"
stop_bg proxy2 TERM
t_ok "no secret (wrong or right) appears in any daemon log or restore stderr" \
    bash -c "! cat '$T'/*.log '$T'/*.err | grep -qF -e '$BAD' -e '$SECRET'"
lap "done"

done_testing
