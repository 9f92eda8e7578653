#!/usr/bin/env bash
# Interoperability with the real Litestream v0.3.13 (npm @flydotio/litestream-linux-x64):
# it restores and lists what litecast writes, and litecast restores what it writes.
. "$(dirname "$0")/lib.sh"

t_ok "litestream v0.3.13 is installed" bash -c "'$LITESTREAM' version | grep -q v0.3.13"
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

# --- ours -> theirs ---------------------------------------------------------------
DB=$T/ours.db
REP=$T/ours-rep
cat > "$T/lc.ini" <<CFG
[db ours]
path = $DB
min-checkpoint-pages = 32

[replica local]
db = ours
url = file://$REP
CFG
"$TOOLS/lc-writer" "$DB" --count 1 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
wait_log daemon 'snapshot written' 5
"$TOOLS/lc-writer" "$DB" --count 600 --min-bytes 100 --max-bytes 8000 --delete-every 100 \
    --keep 50 --autocheckpoint 0 2>/dev/null
t_is "$?" 0 "writer ok"
# a VACUUM shrinks the file inside a WAL index (its commit gives fewer pages than the
# snapshot had), then the database grows again in the same index. Like any writer next
# to litecast, it waits for the lock (a checkpoint of the writer's WAL may still hold it).
pages0=$(sqlite3 "$DB" 'PRAGMA page_count')
out=$(sqlite3 -cmd '.timeout 5000' "$DB" \
    'PRAGMA wal_autocheckpoint = 0; DELETE FROM t WHERE n % 2 = 0; VACUUM' 2>&1 >/dev/null)
t_is "$out" "" "the DELETE and VACUUM run (busy timeout 5 s)"
t_ok "the VACUUM shrank the database ($pages0 pages before)" \
    test "$(sqlite3 "$DB" 'PRAGMA page_count')" -lt "$pages0"
"$TOOLS/lc-writer" "$DB" --count 50 --min-bytes 100 --max-bytes 8000 --autocheckpoint 0 \
    2>/dev/null
sleep 1
stop_bg daemon TERM
"$LITESTREAM" restore -o "$T/theirs-of-ours.db" "file://$REP" 2>"$T/ls-restore.log"
t_is "$?" 0 "litestream restore of a litecast replica exits 0"
t_is "$(db_check "$T/theirs-of-ours.db")" "$(db_check "$DB")" \
    "litestream's restore of our replica equals the source"
"$LITECAST" restore -o "$T/ours-of-ours.db" "file://$REP" 2>/dev/null
t_ok "litecast's restore of our replica is byte-identical to litestream's (SQLite's replay)" \
    cmp "$T/theirs-of-ours.db" "$T/ours-of-ours.db"
nobj=$(find "$REP/generations" -name '*.wal.lz4' | wc -l)
nsnap=$(find "$REP/generations" -name '*.snapshot.lz4' | wc -l)
nls=$("$LITESTREAM" wal "file://$REP" 2>/dev/null | tail -n +2 | wc -l)
t_is "$nls" "$nobj" "litestream wal lists every segment we wrote ($nobj)"
nls=$("$LITESTREAM" snapshots "file://$REP" 2>/dev/null | tail -n +2 | wc -l)
t_is "$nls" "$nsnap" "litestream snapshots lists every snapshot ($nsnap)"
t_like "$("$LITESTREAM" generations "file://$REP" 2>/dev/null)" "$(ls "$REP/generations")" \
    "litestream generations lists our generation"
# our listings print the same rows as theirs (lag column aside)
t_is "$("$LITECAST" wal "file://$REP" | awk '{print $2,$3,$4,$5}')" \
    "$("$LITESTREAM" wal "file://$REP" 2>/dev/null | awk '{print $2,$3,$4,$5}')" \
    "litecast wal prints the same rows as litestream wal"
t_is "$("$LITECAST" snapshots "file://$REP" | awk '{print $2,$3,$4}')" \
    "$("$LITESTREAM" snapshots "file://$REP" 2>/dev/null | awk '{print $2,$3,$4}')" \
    "litecast snapshots prints the same rows as litestream snapshots"

# --- theirs -> ours ---------------------------------------------------------------
DB2=$T/theirs.db
REP2=$T/theirs-rep
cat > "$T/ls.yml" <<YML
dbs:
  - path: $DB2
    min-checkpoint-page-count: 64
    replicas:
      - url: file://$REP2
        sync-interval: 100ms
YML
"$TOOLS/lc-writer" "$DB2" --count 1 2>/dev/null
start_bg litestream "$LITESTREAM" replicate -config "$T/ls.yml"
wait_for 10 bash -c "ls '$REP2'/generations/*/snapshots/*.lz4 >/dev/null 2>&1"
"$TOOLS/lc-writer" "$DB2" --count 400 --rate 400 --min-bytes 500 --max-bytes 9000 \
    --autocheckpoint 0 2>/dev/null
t_is "$?" 0 "writer ok beside litestream"
sleep 3
stop_bg litestream INT
"$LITESTREAM" restore -o "$T/ls-latest.db" "file://$REP2" 2>/dev/null
"$LITECAST" restore -o "$T/lc-latest.db" "file://$REP2" 2>"$T/lc-restore.err"
t_is "$?" 0 "litecast restores a litestream replica"
t_is "$(db_check "$T/lc-latest.db")" "$(db_check "$T/ls-latest.db")" \
    "litecast's restore equals litestream's at the latest state"
t_is "$(db_check "$T/lc-latest.db" | field hash)" "$(db_check "$DB2" | field hash)" \
    "and equals the source"
t_ok "and is byte-identical to litestream's" cmp "$T/lc-latest.db" "$T/ls-latest.db"
gen=$(ls "$REP2/generations" | head -n 1)
idx=$(ls "$REP2/generations/$gen/wal" | sed 's/_.*//' | sort -u | sed -n 2p)
t_ok "litestream wrote more than one WAL index" test -n "$idx"
"$LITESTREAM" restore -o "$T/ls-idx.db" -index "$idx" "file://$REP2" 2>/dev/null
"$LITECAST" restore -o "$T/lc-idx.db" --index "$idx" "file://$REP2" 2>/dev/null
t_is "$(db_check "$T/lc-idx.db")" "$(db_check "$T/ls-idx.db")" \
    "litecast's restore at --index $idx equals litestream's -index $idx"
t_ok "byte for byte" cmp "$T/lc-idx.db" "$T/ls-idx.db"

done_testing
