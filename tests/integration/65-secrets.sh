#!/usr/bin/env bash
# Secrets and permissions. An S3 replica whose secret is a unique marker points at a port
# where nothing listens, so every upload fails and is retried with errors in the log; the
# daemon runs at log-level debug with metrics and the status socket on. The marker never
# shows in the daemon's output, `litecast status` (text and --json), /metrics, the errors of
# `litecast restore`, `generations`, `snapshots` and `wal`, nor in any file the daemon
# creates. Files litecast creates (meta dir, shadow WAL, a file replica) never allow more
# than the database file does (0600 and 0640 databases). A config file writing a secret
# literally and readable by others draws one warning naming it; 0640, or a secret taken
# from ${VAR}, draws none. (A wrong secret against a real S3 server: 40 and 41.)
. "$(dirname "$0")/lib.sh"

MARK=never-print-this-secret-8f3a71
KEYID=AKIDMARKER65
PORT=$((20000 + RANDOM % 10000))
# a loopback port where nothing listens
for _ in 1 2 3 4 5; do
    DEAD=$((30000 + RANDOM % 20000))
    (exec 3<> "/dev/tcp/127.0.0.1/$DEAD") 2> /dev/null || break
done

DB=$T/app.db
"$TOOLS/lc-writer" "$DB" --count 5 2> /dev/null
chmod 0600 "$DB"
cat > "$T/lc.ini" << CFG
[litecast]
log-level = debug
shutdown-timeout = 1s
metrics-addr = 127.0.0.1:$PORT
status-socket = $T/status.sock

[db app]
path = $DB

[replica s3]
db = app
url = s3://bucket/app
endpoint = http://127.0.0.1:$DEAD
access-key-id = $KEYID
secret-access-key = $MARK
sync-interval = 0

[replica local]
db = app
url = file://$T/replica
CFG
chmod 0600 "$T/lc.ini"

start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
wait_log daemon 'snapshot written.*replica=local' 10
"$TOOLS/lc-writer" "$DB" --count 20 --rate 50 2> /dev/null
wait_for 20 grep -Eq 'level=(warn|error).*replica=s3' "$T/daemon.log"
t_ok "uploads to the dead endpoint fail and are logged" \
    grep -Eq 'level=(warn|error).*replica=s3' "$T/daemon.log"
"$LITECAST" status -c "$T/lc.ini" > "$T/status.txt" 2>&1
"$LITECAST" status -c "$T/lc.ini" --json > "$T/status.json" 2>&1
t_like "$(cat "$T/status.txt")" "s3" "status answers and lists the s3 replica"
curl -s "http://127.0.0.1:$PORT/metrics" > "$T/metrics.txt"
t_like "$(cat "$T/metrics.txt")" "litecast_" "metrics answer"
stop_bg daemon TERM

# the same replica from the command line: listings and restore fail (nothing listens)
"$LITECAST" generations -c "$T/lc.ini" --replica s3 "$DB" > "$T/generations.out" 2>&1 &
"$LITECAST" snapshots -c "$T/lc.ini" --replica s3 "$DB" > "$T/snapshots.out" 2>&1 &
"$LITECAST" wal -c "$T/lc.ini" --replica s3 "$DB" > "$T/wal.out" 2>&1 &
"$LITECAST" restore -c "$T/lc.ini" --replica s3 -o "$T/r.db" "$DB" > "$T/restore.out" 2>&1
wait
t_like "$(cat "$T/restore.out")" "level=error" "restore from the dead endpoint fails with an error"
t_like "$(cat "$T/wal.out")" "error" "so do the listings"

leaks=$(grep -rlF -e "$MARK" "$T"/*.log "$T"/*.txt "$T"/*.json "$T"/*.out \
    "$T/.app.db-litecast" "$T/replica" 2> /dev/null)
t_is "$leaks" "" "the secret is in no output, log, status, metrics or file litecast made"
t_ok "the access key id is not logged either" \
    test -z "$(grep -lF "$KEYID" "$T/daemon.log" "$T"/*.out)"

# modes: nothing litecast creates allows more than the database does
loose_than_db() { # loose_than_db DBMODE DIR...: paths whose mode exceeds the db's
    local dbm=$1 f m allow
    shift
    find "$@" -mindepth 1 | while read -r f; do
        m=$(stat -c %a "$f")
        allow=$((8#$dbm))
        [ -d "$f" ] && allow=$((allow | (allow & 8#444) >> 2))
        [ $((8#$m & ~allow)) -eq 0 ] || echo "$f $m"
    done
}
t_is "$(loose_than_db 600 "$T/.app.db-litecast" "$T/replica")" "" \
    "a 0600 database: meta and replica files are 0600 (dirs 0700) or stricter"

DB2=$T/team.db
"$TOOLS/lc-writer" "$DB2" --count 5 2> /dev/null
chmod 0640 "$DB2"
printf '[db team]\npath = %s\n[replica r]\ndb = team\nurl = file://%s\n' "$DB2" "$T/rep2" \
    > "$T/team.ini"
(umask 0000 && exec "$LITECAST" replicate -c "$T/team.ini") 2> "$T/team.log" &
tpid=$!
wait_log team 'ready:' 10
kill -TERM "$tpid"
wait "$tpid"
t_is "$(loose_than_db 640 "$T/.team.db-litecast" "$T/rep2")" "" \
    "a 0640 database under umask 0: nothing created beyond 0640 (dirs 0750)"
t_is "$(stat -c %a "$T/.team.db-litecast")" 750 "its meta dir is 0750"

# the config file's own mode
chmod 0644 "$T/lc.ini"
"$LITECAST" replicate --check -c "$T/lc.ini" > /dev/null 2> "$T/check644.err"
t_like "$(cat "$T/check644.err")" \
    "level=warn msg=\"config file holds a secret and is readable by others\" path=\"$T/lc.ini\" mode=0644 line=15" \
    "a 0644 config with a literal secret draws a warning naming file, mode and line"
t_is "$(grep -c . "$T/check644.err")" 1 "one line"
chmod 0640 "$T/lc.ini"
"$LITECAST" replicate --check -c "$T/lc.ini" > /dev/null 2> "$T/check640.err"
t_is "$(cat "$T/check640.err")" "" "a 0640 config draws no warning"
sed -i "s/^secret-access-key = .*/secret-access-key = \${LC_TEST_SECRET}/" "$T/lc.ini"
chmod 0644 "$T/lc.ini"
LC_TEST_SECRET=$MARK "$LITECAST" replicate --check -c "$T/lc.ini" > /dev/null \
    2> "$T/checkenv.err"
t_is "$(cat "$T/checkenv.err")" "" "a secret taken from \${VAR} draws no warning at 0644"

done_testing
