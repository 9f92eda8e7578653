#!/usr/bin/env bash
# The WAL index rolls (a lock-protected restart) before it grows past max-wal-index-bytes,
# so segment offsets stay far below 4 GiB (Litestream's 8 hex digits), even with the page
# thresholds out of reach; the replica still restores exactly.
. "$(dirname "$0")/lib.sh"

DB=$T/app.db
REP=$T/rep
LIMIT=65536
cat > "$T/lc.ini" <<CFG
[db app]
path = $DB
min-checkpoint-pages = 1000000
max-checkpoint-pages = 0
checkpoint-interval = 0
max-wal-index-bytes = $LIMIT

[replica local]
db = app
url = file://$REP
CFG
"$TOOLS/lc-writer" "$DB" --count 1 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
wait_log daemon 'snapshot written' 5
# paced first: each sync then finds the index past the limit and a gap to roll it in
"$TOOLS/lc-writer" "$DB" --count 300 --rate 300 --min-bytes 500 --max-bytes 3000 \
    --autocheckpoint 0 2>/dev/null
t_is "$?" 0 "paced writer ok"
# then flat out: the restart must still happen between commits, keeping the index bounded
"$TOOLS/lc-writer" "$DB" --count 3000 --min-bytes 500 --max-bytes 3000 --autocheckpoint 0 \
    2>/dev/null
t_is "$?" 0 "flat-out writer ok"
sleep 1
stop_bg daemon TERM
W=$(echo "$REP"/generations/*/wal)
n=$(ls "$W" | sed 's/_.*//' | sort -u | wc -l)
t_ok "the index rolled on size alone ($n WAL indexes, page thresholds out of reach)" test "$n" -ge 5
# the largest end stays near the limit: a writer running flat out (~100 MB/s of WAL here)
# adds what it commits while the restart waits for the write lock. Measured: 1.2-1.5 MB
# alone, up to 4.4 MB with the machine 4x oversubscribed; before busy_poll yielded
# (20 us sleeps) the lock was lost for 100 ms at a time and one index reached 26 MB.
max=0
for f in "$W"/*.wal.lz4; do
    b=$(basename "$f"); off=$((16#$(echo "$b" | cut -c10-17)))
    len=$(lz4 -d -q -c "$f" | wc -c)
    [ $((off + len)) -gt "$max" ] && max=$((off + len))
done
diag "largest index end $max bytes for max-wal-index-bytes $LIMIT"
t_ok "no index grew past the limit by more than 8 MiB (largest end $max)" \
    test "$max" -lt $((LIMIT + 8388608))
"$LITECAST" restore -o "$T/out.db" "file://$REP" 2>/dev/null
t_is "$(db_check "$T/out.db")" "$(db_check "$DB")" "restore equals the source"
done_testing
