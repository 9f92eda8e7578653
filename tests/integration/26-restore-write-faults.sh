#!/usr/bin/env bash
# A restore that cannot write its output fails with one line naming OUT.tmp and the
# error, exit 1, and leaves nothing at -o; short writes are absorbed. The snapshot is
# written by restore's writer thread (several 4 MiB buffers in flight), so a failed
# pwrite there must reach the decoder side and end the restore, whichever buffer it hit.
# The fault shim covers only OUT.tmp and its -wal: the replica and the source are never
# sabotaged.
. "$(dirname "$0")/lib.sh"

cc -shared -fPIC -o "$T/faultshim.so" "$ROOT/tests/tools/faultshim/lc-faultshim.c" -ldl \
    2>"$T/cc.err"
t_is "$?" 0 "the fault shim builds"

DB=$T/app.db
REP=$T/replica
cat > "$T/lc.ini" <<CFG
[db app]
path = $DB

[replica local]
db = app
url = file://$REP
CFG
# about 40 MiB in the snapshot (ten of the writer thread's buffers), then a WAL chain
"$TOOLS/lc-writer" "$DB" --count 200 --rows 10 --bytes 20000 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
t_ok "daemon up: first snapshot" wait_log daemon 'snapshot written' 20
"$TOOLS/lc-writer" "$DB" --count 100 --rate 200 --bytes 3000 2>/dev/null
t_ok "the WAL chain reaches the replica" wait_for 10 bash -c \
    "'$LITECAST' restore -o '$T/probe.db' 'file://$REP' 2>/dev/null &&
     [ \"\$('$TOOLS/lc-dbcheck' '$T/probe.db')\" = \"\$('$TOOLS/lc-dbcheck' '$DB')\" ] ||
     { rm -f '$T/probe.db'; false; }"
stop_bg daemon TERM
rm -f "$T/probe.db"
want=$(db_check "$DB")
snap=$(find "$REP" -name '*.snapshot.lz4' | head -n 1)
t_ok "the snapshot holds more than 12 MiB (three buffers)" \
    test "$(lz4 -d -c "$snap" 2>/dev/null | wc -c)" -gt $((12 << 20))

# restore_with NAME RULES: a restore to $T/NAME.db under the shim
restore_with() {
    env LD_PRELOAD="$T/faultshim.so" LC_FAULT="$2" LC_FAULT_PATH="$T/$1.db.tmp" \
        LC_FAULT_LOG="$T/$1.faults" "$LITECAST" restore -o "$T/$1.db" "file://$REP" \
        2>"$T/$1.err"
}
fails_cleanly() { # NAME RULES ERROR-REGEX
    local rc
    restore_with "$1" "$2"
    rc=$?
    t_is "$rc" 1 "$1: restore exits 1"
    t_ok "$1: the shim injected a fault" test -s "$T/$1.faults"
    t_like "$(grep 'level=error' "$T/$1.err")" "$3" "$1: the error names OUT.tmp and the cause"
    t_is "$(grep -c 'level=error' "$T/$1.err")" 1 "$1: one error line"
    t_ok "$1: nothing left at -o" bash -c "! ls '$T/$1'.db* 2>/dev/null | grep -q ."
}
fails_cleanly enospc-first "pwrite:enospc:#1" "write .*enospc-first\.db\.tmp: No space left on device"
fails_cleanly enospc-mid "pwrite:enospc:#6" "write .*enospc-mid\.db\.tmp: No space left on device"
fails_cleanly eio-all "pwrite:eio:#4+" "write .*eio-all\.db\.tmp: Input/output error"
# the snapshot takes ten 4 MiB writes; later ones are the WAL chain's pwritev of pages
fails_cleanly enospc-wal "pwrite:enospc:#14" \
    "write wal index [0-9a-f]{8} to .*enospc-wal\.db\.tmp: No space left on device"
fails_cleanly fsync-eio "fsync:eio:#1" "fsync .*fsync-eio\.db\.tmp: Input/output error"

restore_with short "pwrite:short:0.5"
t_is "$?" 0 "short writes: the restore succeeds"
t_ok "short writes: the shim shortened some" test -s "$T/short.faults"
t_ok "short writes: among them the WAL chain's (more than the snapshot's ten buffers)" \
    test "$(grep -c 'pwrite short' "$T/short.faults")" -gt 20
t_is "$(db_check "$T/short.db")" "$want" "short writes: the restore equals the source"

"$LITECAST" restore -o "$T/clean.db" "file://$REP" 2>"$T/clean.err"
t_is "$?" 0 "without faults the restore succeeds"
t_is "$(db_check "$T/clean.db")" "$want" "without faults the restore equals the source"
t_ok "the restored file is byte-identical to the short-writes one" cmp "$T/clean.db" "$T/short.db"

done_testing
