#!/usr/bin/env bash
# A replica directory that becomes unwritable and later writable again: capture never
# pauses, the other replica keeps shipping, nothing is lost, the replica catches up.
. "$(dirname "$0")/lib.sh"

DB=$T/app.db
cat > "$T/lc.ini" <<CFG
[db app]
path = $DB
min-checkpoint-pages = 64
max-spool = 400000

[replica a]
db = app
url = file://$T/a

[replica b]
db = app
url = file://$T/b
CFG
shadow_bytes() { cat "$T"/.app.db-litecast/generations/*/wal/*.wal 2>/dev/null | wc -c; }
"$TOOLS/lc-writer" "$DB" --count 1 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
wait_for 5 bash -c "ls '$T'/a/generations/*/snapshots/*.lz4 '$T'/b/generations/*/snapshots/*.lz4" >/dev/null 2>&1
t_ok "both replicas have a snapshot" ls "$T"/b/generations/*/snapshots/*.lz4

nb() { grep -c 'wal segment written.*replica=b' "$T/daemon.log"; }
before=$(nb)
# make b unwritable: its directory moves aside and a plain file takes its place
mv "$T/b" "$T/b.away" && : > "$T/b"
start_bg writer "$TOOLS/lc-writer" "$DB" --count 200 --rate 100 --min-bytes 100 \
    --max-bytes 3000 --autocheckpoint 0
sleep 1
s1=$(find "$T/a" -name '*.wal.lz4' | wc -l)
sleep 0.5
s2=$(find "$T/a" -name '*.wal.lz4' | wc -l)
t_ok "replica a keeps shipping while b fails ($s1 -> $s2 segments)" test "$s2" -gt "$s1"
t_ok "replica b's failure is logged with a retry" wait_log daemon 'replica=b.*retrying|retrying.*replica=b' 5
stop_bg writer wait
t_is "$?" 0 "writer never blocked or failed"
t_ok "the shadow spool stayed bounded by max-spool (backlog dropped, with a warning)" \
    grep -q 'shadow spool over max-spool' "$T/daemon.log"
spool=$(du -sb "$T/.app.db-litecast" | cut -f1)
t_ok "meta dir holds $spool bytes (max-spool 400000 + the current file)" test "$spool" -lt 1500000
# writable again
rm -f "$T/b" && mv "$T/b.away" "$T/b"
t_ok "replica b recovers and ships again" wait_for 40 bash -c "[ \$(grep -c 'wal segment written.*replica=b' '$T/daemon.log') -gt $before ]"
t_ok "replica b starts over from a new snapshot" grep -q 'replica fell behind.*replica=b\|replica=b.*fell behind' "$T/daemon.log"
sleep 1
stop_bg daemon TERM
"$LITECAST" restore -o "$T/from-b.db" "file://$T/b" 2>/dev/null
t_is "$(db_check "$T/from-b.db")" "$(db_check "$DB")" "replica b caught up: restore equals the source"
"$LITECAST" restore -o "$T/from-a.db" "file://$T/a" 2>/dev/null
t_is "$(db_check "$T/from-a.db")" "$(db_check "$DB")" "replica a restore equals the source"

done_testing
