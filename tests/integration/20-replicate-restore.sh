#!/usr/bin/env bash
# Replicate to a directory and restore: a round trip under a mixed workload (large
# transactions, deletes, VACUUM, checkpoints every few pages), point-in-time restores
# at a dozen recorded instants, and restores at every WAL index.
. "$(dirname "$0")/lib.sh"

DB=$T/app.db
REP=$T/replica
cat > "$T/lc.ini" <<CFG
[litecast]
fallback-interval = 1s

[db app]
path = $DB
min-checkpoint-pages = 16
max-checkpoint-pages = 256

[replica local]
db = app
url = file://$REP
CFG
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

"$TOOLS/lc-writer" "$DB" --count 1 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
t_ok "daemon writes the first snapshot" wait_log daemon 'snapshot written' 5

# --- round trip: thousands of commits of mixed sizes ------------------------------
start_bg writer "$TOOLS/lc-writer" "$DB" --count 2500 --rate 0 --min-bytes 10 \
    --max-bytes 6000 --big-every 500 --big-bytes 6000000 --delete-every 200 --keep 150 \
    --vacuum-every 900 --autocheckpoint 0
stop_bg writer wait
t_is "$?" 0 "writer: 2500 commits, no SQLITE_BUSY"
t_ok "replica caught up after the writer stopped" wait_log daemon 'wal segment written' 5
sleep 1
stop_bg daemon TERM
t_is "$?" 0 "daemon: final sync and clean exit"
t_ok "several WAL indexes were shipped" \
    test "$(ls "$REP"/generations/*/wal | sed 's/_.*//' | sort -u | wc -l)" -ge 3
"$LITECAST" restore -o "$T/out.db" "file://$REP" 2>"$T/restore.err"
t_is "$?" 0 "restore exits 0"
src=$(db_check "$DB")
out=$(db_check "$T/out.db")
t_like "$out" '^integrity=ok' "restored database passes integrity_check"
t_is "$out" "$src" "restored content equals the source"
t_ok "restore leaves no temporary files" bash -c "! ls '$T'/out.db.tmp* 2>/dev/null | grep -q ."

# --- point in time: pause between bursts, record (instant, last commit) -------------
start_bg daemon2 "$LITECAST" replicate -c "$T/lc.ini"
wait_log daemon2 'replica position resumed|snapshot written' 5
: > "$T/marks"
base=$(sqlite3 "$DB" 'SELECT MAX(n) FROM t')
for b in $(seq 1 13); do
    "$TOOLS/lc-writer" "$DB" --count 7 --rate 100 --min-bytes 50 --max-bytes 3000 \
        --autocheckpoint 0 --log "$T/pitr.log" 2>/dev/null
    [ "$b" -eq 13 ] && break   # the last burst only keeps the last mark inside the generation
    sleep 0.25
    printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" "$(tail -n 1 "$T/pitr.log" | cut -d' ' -f1)" >> "$T/marks"
    sleep 0.25
done
sleep 0.5
stop_bg daemon2 TERM
good=0
while read -r ts k; do
    rm -f "$T/pitr.db"
    "$LITECAST" restore -o "$T/pitr.db" --timestamp "$ts" "file://$REP" 2>>"$T/pitr.err" &&
        r=$(db_check "$T/pitr.db") &&
        got=$(sqlite3 "$T/pitr.db" "SELECT MAX(n), COUNT(DISTINCT n) FROM t WHERE n > $base") &&
        [ "$got" = "$k|$((k - base))" ] && [[ "$r" == integrity=ok* ]] && good=$((good + 1)) ||
        diag "timestamp $ts: want $k|$((k - base)), got: ${got:-restore failed}"
done < "$T/marks"
t_is "$good" 12 "12 point-in-time restores each hold exactly the commits up to their instant"

# --- every WAL index of the generation ---------------------------------------------
gen=$(ls "$REP/generations" | head -n 1)
idxs=$(ls "$REP/generations/$gen/wal" | sed 's/_.*//' | sort -u)
prev=0 ok_idx=0 n_idx=0
for i in $idxs; do
    n_idx=$((n_idx + 1))
    rm -f "$T/idx.db"
    if "$LITECAST" restore -o "$T/idx.db" --generation "$gen" --index "$i" "file://$REP" \
        2>>"$T/idx.err"; then
        r=$(db_check "$T/idx.db")
        m=$(echo "$r" | field max)
        # the writer deletes rows older than 150 commits, never newer: the last 100 are whole
        recent=$(sqlite3 "$T/idx.db" "SELECT COUNT(DISTINCT n) FROM t WHERE n > ${m:-0} - 100")
        want=$(( ${m:-0} < 100 ? ${m:-0} : 100 ))
        if [[ "$r" == integrity=ok* ]] && [ "$recent" = "$want" ] && [ "${m:-0}" -ge "$prev" ]; then
            ok_idx=$((ok_idx + 1)); prev=$m
        else diag "index $i: $r (previous max $prev)"; fi
    else
        diag "index $i: restore failed: $(tail -n 1 "$T/idx.err")"
    fi
done
t_is "$ok_idx" "$n_idx" "restore at each of $n_idx WAL indexes is whole and consistent, growing with the index"
t_is "$(db_check "$T/idx.db")" "$(db_check "$DB")" "the last index equals the source"

# --- restore options ----------------------------------------------------------------
"$LITECAST" restore -o "$T/out.db" "file://$REP" 2>"$T/exists.err"
t_is "$?" 1 "an existing output is refused (exit 1)"
t_like "$(cat "$T/exists.err")" 'already exists' "and says so"
"$LITECAST" restore --if-db-not-exists -o "$T/out.db" "file://$REP" 2>/dev/null
t_is "$?" 0 "--if-db-not-exists with an existing output: exit 0"
"$LITECAST" restore -o "$T/none.db" "file://$T/empty" 2>/dev/null
t_is "$?" 1 "an empty replica: exit 1"
"$LITECAST" restore --if-replica-exists -o "$T/none.db" "file://$T/empty" 2>/dev/null
t_is "$?" 0 "--if-replica-exists on an empty replica: exit 0"
"$LITECAST" restore --index zz -o "$T/x.db" "file://$REP" 2>/dev/null
t_is "$?" 2 "a bad --index is a usage error (exit 2)"
"$LITECAST" restore --timestamp yesterday -o "$T/x.db" "file://$REP" 2>/dev/null
t_is "$?" 2 "a bad --timestamp is a usage error (exit 2)"
"$LITECAST" restore -c "$T/lc.ini" -o "$T/bycfg.db" "$DB" 2>/dev/null
t_is "$(db_check "$T/bycfg.db")" "$(db_check "$DB")" "restore by database path through the config"

done_testing
