#!/usr/bin/env bash
# Running under a supervisor: sd_notify readiness, watchdog and stopping; SIGHUP reload
# (add, remove, change, survive an invalid file); --exec with the child's exit status.
. "$(dirname "$0")/lib.sh"

mkcfg() { # DBS... : one [db] and one file replica per name
    { echo "[litecast]"; echo "fallback-interval = 1s"
      for n in "$@"; do
          printf '[db %s]\npath = %s\n[replica %s-r]\ndb = %s\nurl = file://%s\n' \
              "$n" "$T/$n.db" "$n" "$n" "$T/rep-$n${SUFFIX:-}"
      done; } > "$T/lc.ini"
}
for n in a b c; do "$TOOLS/lc-writer" "$T/$n.db" --count 1 2>/dev/null; done

# --- sd_notify ----------------------------------------------------------------
start_bg notify "$TOOLS/lc-notifylisten" "$T/notify.sock"
wait_for 5 test -S "$T/notify.sock"
mkcfg a b
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=200000 start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
t_ok "READY=1 arrives" wait_log notify '^READY=1' 5
t_ok "READY=1 only after the first sync: both replicas already hold a snapshot" \
    bash -c "ls '$T'/rep-a/generations/*/snapshots/*.lz4 '$T'/rep-b/generations/*/snapshots/*.lz4"
t_like "$(cat "$T/notify.log")" 'STATUS=replicating 2 database' "STATUS= summarises the state"
sleep 1
t_ok "WATCHDOG=1 pings at half of WATCHDOG_USEC (>= 5 in 1 s)" \
    test "$(grep -c '^WATCHDOG=1' "$T/notify.log")" -ge 5

# --- SIGHUP reload --------------------------------------------------------------
gen_a=$(cat "$T/.a.db-litecast/generation")
mkcfg a c                                   # b removed, c added
echo "[replica a-extra]
db = a
url = file://$T/rep-a-extra" >> "$T/lc.ini"  # a replica added to a kept database
kill -HUP "${_pids[daemon]}"
t_ok "reload logs its summary" wait_log daemon 'configuration reloaded.*kept=1 added=1 removed=1' 5
t_ok "added database c is replicated" wait_for 5 bash -c "ls '$T'/rep-c/generations/*/snapshots/*.lz4"
t_ok "added replica of the kept database is replicated" \
    wait_for 5 bash -c "ls '$T'/rep-a-extra/generations/*/snapshots/*.lz4"
"$TOOLS/lc-writer" "$T/a.db" --count 20 --autocheckpoint 0 2>/dev/null
"$TOOLS/lc-writer" "$T/b.db" --count 20 --autocheckpoint 0 2>/dev/null
sleep 0.5
t_is "$(cat "$T/.a.db-litecast/generation")" "$gen_a" "the kept database keeps its generation"
t_ok "kept database still ships segments" \
    wait_for 5 bash -c "[ \$(grep -c 'wal segment written.*db=a replica=a-r' '$T/daemon.log') -ge 2 ]"
nb=$(grep -c 'db=b ' "$T/daemon.log")
"$TOOLS/lc-writer" "$T/b.db" --count 5 --autocheckpoint 0 2>/dev/null
sleep 0.5
t_is "$(grep -c 'db=b ' "$T/daemon.log")" "$nb" "the removed database is no longer watched"
echo "[db broken" >> "$T/lc.ini"
kill -HUP "${_pids[daemon]}"
t_ok "an invalid file is reported" wait_log daemon 'reload failed; keeping the running configuration' 5
t_ok "and the daemon keeps running" kill -0 "${_pids[daemon]}"
stop_bg daemon TERM
t_is "$?" 0 "SIGTERM: exit 0"
t_ok "STOPPING=1 on shutdown" wait_log notify '^STOPPING=1' 2
stop_bg notify TERM

# --- --exec -----------------------------------------------------------------------
mkcfg a
"$LITECAST" replicate -c "$T/lc.ini" --exec "exit 0" 2>"$T/exec0.log"
t_is "$?" 0 "--exec: the child's exit status 0 is ours"
"$LITECAST" replicate -c "$T/lc.ini" --exec "sh -c 'exit 3'" 2>"$T/exec3.log"
t_is "$?" 3 "--exec: the child's exit status 3 is ours"
t_like "$(cat "$T/exec3.log")" 'exec: child exited.*status=3' "the child's exit is logged"
start_bg execd "$LITECAST" replicate -c "$T/lc.ini" --exec "trap 'exit 7' TERM; while :; do sleep 0.05; done"
wait_log execd 'exec: started' 5
sleep 0.3
stop_bg execd TERM
t_is "$?" 7 "--exec forwards SIGTERM to the child and returns its status (7)"

done_testing
