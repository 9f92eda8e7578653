#!/usr/bin/env bash
# A snapshot is written only once the replica holds every frame the database file may
# already contain. The database file is back-filled by checkpoints (ours, or the
# application's up to our read mark) from frames that are in the shadow WAL but perhaps
# not yet shipped; a snapshot of it stored before those frames makes a restore replay
# older page images over newer ones: a malformed database (found by the soak's VACUUM
# pass, where a 150 MB segment was still on its way when the periodic snapshot fired).
#
# Made deterministic here: segment writes into the replica fail (fault shim on the wal/
# directory only, so snapshots could still be written), a reader pins the WAL so that the
# checkpoint back-fills part of it and cannot restart it, and snapshot-interval passes
# several times. While segments cannot be shipped no snapshot may appear, and a restore
# stays whole; once they ship, the snapshot follows and the restore equals the source.
. "$(dirname "$0")/lib.sh"

cc -shared -fPIC -o "$T/faultshim.so" "$ROOT/tests/tools/faultshim/lc-faultshim.c" -ldl \
    2>"$T/cc.err"
t_is "$?" 0 "the fault shim builds"

DB=$T/app.db
REP=$T/replica
CTL=$T/faults-on
snaps() { grep -c 'snapshot written' "$T/daemon.log"; }
cat > "$T/lc.ini" <<CFG
[litecast]
log-level = debug
fallback-interval = 200ms

[db app]
path = $DB
min-checkpoint-pages = 4

[replica local]
db = app
url = file://$REP
snapshot-interval = 1s
CFG

"$TOOLS/lc-writer" "$DB" --count 50 --bytes 2000 --log "$T/acks.log" 2>/dev/null
start_bg daemon env LD_PRELOAD="$T/faultshim.so" LC_FAULT="open:eio:1" \
    LC_FAULT_PATH="$REP/generations/*/wal/*" LC_FAULT_CTL="$CTL" \
    "$LITECAST" replicate -c "$T/lc.ini"
t_ok "daemon up: first snapshot" wait_log daemon 'snapshot written' 10
t_ok "and the first segments" wait_log daemon 'wal segment written' 10
t_like "$(grep -E -m1 'snapshot written|wal segment written' "$T/daemon.log")" 'snapshot written' \
    "a new generation's snapshot is stored before any of its segments"
sleep 0.5

# readers pin the WAL (no restart, back-fill only up to the oldest one's mark): the first
# before batch A, which ships; then segments fail, batch B1, the second reader, the first
# one leaves, batch B2. A checkpoint then back-fills B1 (with a VACUUM): frames not in the
# replica.
pin() { # NAME FD
    mkfifo "$T/$1.fifo"
    start_bg "$1" bash -c "sqlite3 '$DB' < '$T/$1.fifo'"
    eval "exec $2>'$T/$1.fifo'"
    echo "BEGIN; SELECT COUNT(*) FROM t;" >&"$2"
    sleep 0.3
}
unpin() { # NAME FD
    echo "COMMIT;" >&"$2"
    eval "exec $2>&-"
    stop_bg "$1" TERM
}
pin reader1 7
"$TOOLS/lc-writer" "$DB" --count 100 --bytes 2000 --log "$T/acks.log" 2>/dev/null
t_ok "batch A ships" wait_for 10 bash -c "[ \$(grep -c 'wal segment written' '$T/daemon.log') -ge 2 ]"
sleep 0.5
touch "$CTL"
"$TOOLS/lc-writer" "$DB" --count 50 --bytes 2000 --log "$T/acks.log" 2>/dev/null
out=$(sqlite3 -cmd '.timeout 2000' "$DB" VACUUM 2>&1)
t_is "$out" "" "VACUUM (rewrites every page: a snapshot ahead of the replica shows at once)"
pin reader2 8
unpin reader1 7
"$TOOLS/lc-writer" "$DB" --count 50 --bytes 2000 --log "$T/acks.log" 2>/dev/null
s0=$(snaps)
sleep 3.5 # the snapshot interval passes three times over
t_ok "segment uploads failed meanwhile (the shim's doing)" \
    grep -q 'replica sync failed; retrying' "$T/daemon.log"
t_ok "the checkpoint back-filled part of the WAL but could not restart it (the reader)" \
    grep -q 'checkpoint: not fully back-filled' "$T/daemon.log"
t_is "$(snaps)" "$s0" "no snapshot is written while the frames it may hold are not shipped"

rm -f "$T/r.db"
"$LITECAST" restore -o "$T/r.db" "file://$REP" 2>"$T/restore.err"
t_is "$?" 0 "restore while segments fail succeeds"
line=$(db_check "$T/r.db" --upto)
t_is "$?" 0 "and is whole: $line"

# segments ship again: the snapshot follows, after them
segs=$(grep -c 'wal segment written' "$T/daemon.log")
s0=$(snaps)
rm -f "$CTL"
unpin reader2 8
t_ok "segments ship again" wait_for 15 bash -c "[ \$(grep -c 'wal segment written' '$T/daemon.log') -gt $segs ]"
t_ok "then the due snapshot is written" wait_for 10 bash -c "[ \$(grep -c 'snapshot written' '$T/daemon.log') -gt $s0 ]"
t_like "$(grep -E 'snapshot written|wal segment written' "$T/daemon.log" | tail -n 2 | head -n 1)" \
    'wal segment written' "the snapshot comes after the segments it needs"
rm -f "$T/r.db"
"$LITECAST" restore -o "$T/r.db" "file://$REP" 2>"$T/restore.err"
t_is "$(db_check "$T/r.db")" "$(db_check "$DB")" "restore now equals the source"
acked=$(tail -n 1 "$T/acks.log" | cut -d' ' -f1)
t_ok "and holds every acknowledged commit (1..$acked)" "$TOOLS/lc-dbcheck" "$T/r.db" --upto "$acked"
stop_bg daemon TERM
t_is "$?" 0 "daemon: clean exit"

done_testing
