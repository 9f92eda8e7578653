#!/usr/bin/env bash
# Many databases in one daemon: 200 watched databases all replicate, a write to any of
# them ships within milliseconds, and the shipped unit file passes systemd-analyze verify.
. "$(dirname "$0")/lib.sh"

N=200
{ echo "[litecast]"; echo "fallback-interval = 1s"
  for i in $(seq 1 $N); do
      printf '[db d%d]\npath = %s/db/d%d.db\n[replica r%d]\ndb = d%d\nurl = file://%s/rep/d%d\n' \
          "$i" "$T" "$i" "$i" "$i" "$T" "$i"
  done; } > "$T/lc.ini"
mkdir -p "$T/db"
for i in $(seq 1 $N); do sqlite3 "$T/db/d$i.db" \
    'PRAGMA journal_mode=wal; CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, ts INTEGER, data BLOB);' >/dev/null; done
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
t_ok "all $N databases replicate (a snapshot each)" \
    wait_for 60 bash -c "[ \$(ls '$T'/rep/*/generations/*/snapshots/*.lz4 2>/dev/null | wc -l) -ge $N ]"
t_ok "the daemon reports ready" wait_log daemon 'ready:' 30
for i in 7 77 177; do "$TOOLS/lc-writer" "$T/db/d$i.db" --count 20 --autocheckpoint 0 2>/dev/null; done
sleep 1
ok=0
for i in 7 77 177; do
    rm -f "$T/out$i.db"
    "$LITECAST" restore -o "$T/out$i.db" "file://$T/rep/d$i" 2>/dev/null &&
        [ "$(db_check "$T/out$i.db")" = "$(db_check "$T/db/d$i.db")" ] && ok=$((ok + 1))
done
t_is "$ok" 3 "writes to three of them were replicated exactly"
pid=$(cat "$T/daemon.pid")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
diag "200 databases: RSS ${rss} kB (make bench measures idle CPU and memory)"
t_ok "RSS with $N databases stays under 64 MB (${rss} kB)" test "$rss" -lt 65536
stop_bg daemon TERM
t_is "$?" 0 "clean shutdown with $N databases"

# the systemd unit, with ExecStart pointing at this build
sed "s|/usr/local/bin/litecast|$LITECAST|" "$ROOT/conf/litecast.service" > "$T/litecast.service"
out=$(cd "$T" && systemd-analyze verify --man=no "$T/litecast.service" 2>&1)
t_is "$?" 0 "systemd-analyze verify accepts conf/litecast.service"
[ -n "$out" ] && diag "$out"
done_testing
