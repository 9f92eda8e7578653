#!/usr/bin/env bash
# Observability: Prometheus text at /metrics (checked by promtool) whose counters and lag
# move with writes, and `litecast status` over the UNIX socket, exiting non-zero when a
# replica is failing.
. "$(dirname "$0")/lib.sh"

DB=$T/app.db
PORT=$((20000 + RANDOM % 10000))
: > "$T/blocked"
cat > "$T/lc.ini" <<CFG
[litecast]
metrics-addr = 127.0.0.1:$PORT
status-socket = $T/status.sock

[db app]
path = $DB

[replica good]
db = app
url = file://$T/rep
CFG
"$TOOLS/lc-writer" "$DB" --count 1 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
t_ok "daemon ready" wait_log daemon 'ready:' 5
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {print $2; exit}'; }
curl -s "http://127.0.0.1:$PORT/metrics" > "$T/m1.txt"
t_ok "GET /metrics answers" test -s "$T/m1.txt"
t_ok "promtool check metrics accepts it" bash -c "promtool check metrics < '$T/m1.txt'"
t_like "$(cat "$T/m1.txt")" 'litecast_replica_lag_seconds\{db="app",name="good"\}' "lag per replica"
s1=$(metric litecast_sync_runs_total)
w1=$(metric litecast_replica_wal_bytes_total)
"$TOOLS/lc-writer" "$DB" --count 50 --rate 200 --autocheckpoint 0 2>/dev/null
sleep 0.5
t_ok "sync count moved with writes ($s1 -> $(metric litecast_sync_runs_total))" \
    test "$(metric litecast_sync_runs_total)" -gt "$s1"
t_ok "replica bytes moved with writes ($w1 -> $(metric litecast_replica_wal_bytes_total))" \
    test "$(metric litecast_replica_wal_bytes_total)" -gt "$w1"
t_is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/nope")" 404 "other paths: 404"

out=$("$LITECAST" status -c "$T/lc.ini" 2>&1)
t_is "$?" 0 "status of a healthy daemon exits 0"
t_like "$out" 'app' "status names the database"
t_like "$out" 'good' "status names the replica"
t_like "$("$LITECAST" status -c "$T/lc.ini" --json 2>&1)" '"databases"' "--json prints JSON"
t_is "$(stat -c %a "$T/status.sock")" 600 "status socket is mode 0600"

# add a failing replica by reload
cat >> "$T/lc.ini" <<CFG

[replica bad]
db = app
url = file://$T/blocked
CFG
kill -HUP "$(cat "$T/daemon.pid")"
wait_log daemon 'replica sync failed; retrying.*replica=bad' 5
"$LITECAST" status -c "$T/lc.ini" > "$T/status.txt" 2>&1
t_is "$?" 1 "status exits 1 when a replica is failing"
t_like "$(cat "$T/status.txt")" 'bad' "and names the failing replica"
t_like "$(metric 'litecast_replica_errors_total\{db="app",name="bad"\}')" '^[1-9]' \
    "replica errors counted in metrics"
stop_bg daemon TERM
"$LITECAST" status -c "$T/lc.ini" > /dev/null 2>&1
t_is "$?" 1 "status exits 1 when the daemon is not running"
done_testing
