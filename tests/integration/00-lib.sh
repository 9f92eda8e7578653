#!/usr/bin/env bash
# 00-lib: the test machinery itself. lib.sh (TAP helpers, cleanup of background process
# groups and of $T, polling), lc-writer (acknowledged commits, continuation, pacing, signals,
# busy handling, deletes/vacuum/big commits, --checkpoint), lc-dbcheck (content hash, --upto,
# read-only) and lc-walapply (a captured WAL reproduces the source). No litecast needed.
. "$(dirname "$0")/lib.sh"

W=$TOOLS/lc-writer
C=$TOOLS/lc-dbcheck
A=$TOOLS/lc-walapply
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }
nlines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
lines_ge() { [ "$(nlines "$1")" -ge "$2" ]; } # lines_ge FILE N
sq() { sqlite3 -batch "$@"; }

for t in lc-writer lc-dbcheck lc-walapply; do t_ok "$t is built" test -x "$TOOLS/$t"; done

# --- lib.sh ---------------------------------------------------------------------------------
inner=$T/inner.sh
cat > "$inner" <<EOF
. "$ROOT/tests/integration/lib.sh"
case "\$1" in
group)  # a background process group with a grandchild; exit without stopping it
    start_bg grp bash -c 'sleep 300 & echo \$!; wait'
    wait_for 5 test -s "\$T/grp.log" || exit 3
    echo "\$T \$(cat "\$T/grp.log") \$(cat "\$T/grp.pid")"
    exit 0 ;;
strict) # failures are reported, never abort the script, even under set -e and pipefail
    set -e -o pipefail
    t_ok "fails" false
    t_is a b "differs"
    t_like abc '^x' "no match"
    t_ok "passes" true
    echo "reached"
    done_testing ;;
none)   done_testing ;;
plan)   plan 2; t_ok "one" true; done_testing ;;
pass)   t_ok "one" true; t_is 1 1 "two"; t_like "a b" '^a' "three"; done_testing ;;
esac
EOF
out=$(bash "$inner" group)
read -r itmp ichild ipid <<< "$out"
t_like "$out" '^/tmp/lc\.[^ ]+ [0-9]+ [0-9]+$' "start_bg: log and pid files"
t_ok "exit trap killed the background process group (grandchild $ichild too)" \
    wait_for 2 bash -c "! kill -0 ${ichild:-0} && ! kill -0 ${ipid:-0}"
t_ok "exit trap removed \$T" test ! -e "${itmp:-/nonexistent}"
out=$(bash "$inner" strict); rc=$?
t_is "$rc" 1 "under set -e: failing checks do not abort, done_testing exits 1"
want=$'not ok 1 - fails\n.*not ok 2 - differs\n.*not ok 3 - no match\n.*ok 4 - passes\n'
t_like "$out" "${want}reached"$'\n''1\.\.4' \
    "TAP lines, diagnostics and a trailing plan"
bash "$inner" none > /dev/null; t_is "$?" 1 "done_testing: zero tests is a failure"
bash "$inner" plan > /dev/null; t_is "$?" 1 "done_testing: fewer tests than planned is a failure"
out=$(bash "$inner" pass); rc=$?
t_is "$rc:$(tail -n 1 <<< "$out")" "0:1..3" "done_testing: all passed, exit 0"

start_bg sleeper sleep 30
t_ok "start_bg writes NAME.pid" test "$(cat "$T/sleeper.pid")" = "$(bg_pid sleeper)"
stop_bg sleeper; t_is "$?" 143 "stop_bg returns the status (SIGTERM: 143)"
start_bg stubborn bash -c 'trap "" TERM; echo ready; while :; do sleep 0.05; done'
wait_log stubborn '^ready$' 5
LC_STOP_TIMEOUT=1 stop_bg stubborn > /dev/null; t_is "$?" 137 "stop_bg: SIGKILL after the timeout"
start_bg quick sh -c 'exit 5'
stop_bg quick wait; t_is "$?" 5 "stop_bg NAME wait: the exit status of a process ending by itself"
t0=${EPOCHREALTIME/[.,]/}
wait_for 0.3 false; rc=$?
t1=${EPOCHREALTIME/[.,]/}
t_ok "wait_for: 1 after a fractional timeout (rc=$rc, $(( (t1 - t0) / 1000 )) ms)" \
    test "$rc" = 1 -a $(( (t1 - t0) / 1000 )) -ge 250 -a $(( (t1 - t0) / 1000 )) -lt 2000
write_config "$T/x.ini" <<EOF
[db a]
path = $T/a.db
EOF
t_is "$(cat "$T/x.ini")" $'[db a]\npath = '"$T/a.db" "write_config writes its stdin"
touch "$T/f.db" "$T/f.db-wal"
t_is "$(fresh_db f.db)" "$T/f.db" "fresh_db returns a path under \$T"
t_ok "fresh_db leaves nothing there" test ! -e "$T/f.db" -a ! -e "$T/f.db-wal"

# --- lc-writer ------------------------------------------------------------------------------
DB=$(fresh_db app.db)
"$W" "$DB" --count 100 --log "$T/acks" 2> "$T/w1.err"
t_is "$?" 0 "writer: 100 commits, exit 0"
t_is "$(tail -n 1 "$T/w1.err")" "lc-writer: 100 commits, last 100" "writer: summary line"
t_is "$(nlines "$T/acks")" 100 "writer: 100 acknowledgement lines"
t_is "$(grep -Evc '^[0-9]+ [0-9]{19}$' "$T/acks")" 0 "writer: each line is 'k wall_ns'"
t_is "$(cut -d' ' -f1 "$T/acks" | tr '\n' ' ')" "$(seq -s ' ' 1 100) " "writer: k is 1..100"
t_is "$(sq "$DB" 'PRAGMA journal_mode')" wal "writer: the database is in WAL mode"
"$W" "$DB" --count 50 --log "$T/acks" 2> "$T/w2.err"
t_is "$(tail -n 1 "$T/w2.err")" "lc-writer: 50 commits, last 150" "writer: a restart continues"
t_is "$(tail -n 1 "$T/acks" | cut -d' ' -f1):$(nlines "$T/acks")" "150:150" \
    "writer: the log continues 101..150"
t_is "$(db_check "$DB" --upto | sed 's/ hash=[0-9a-f]*//')" \
    "integrity=ok commits=150 max=150 rows=150 gaps=0" "dbcheck --upto: 1..150, no gaps"
t_ok "dbcheck --upto 150 passes" "$C" "$DB" --upto 150
t_ok "dbcheck --upto 151 fails (151 missing)" bash -c "! '$C' '$DB' --upto 151"

# --checkpoint, with frames held in the WAL by a second, idle connection
start_bg holder "$W" "$DB" --rate 0.01 --autocheckpoint 0 --log "$T/holder.acks"
wait_for 5 test -s "$T/holder.acks"
"$W" "$DB" --count 10 --autocheckpoint 0 2> /dev/null
t_ok "another connection open: the closing writer left its WAL" test -s "$DB-wal"
out=$("$W" "$DB" --checkpoint passive)
t_like "$out" '^0\|[1-9][0-9]*\|[1-9][0-9]*$' \
    "--checkpoint passive prints busy|log|checkpointed ($out)"
out=$("$W" "$DB" --checkpoint truncate)
t_like "$out" '^0\|[0-9]+\|[0-9]+$' "--checkpoint truncate prints busy|log|checkpointed ($out)"
t_is "$(stat -c %s "$DB-wal")" 0 "--checkpoint truncate emptied the WAL"
stop_bg holder TERM; t_is "$?" 0 "writer: SIGTERM while idle, exit 0"
t_like "$(tail -n 1 "$T/holder.log")" '^lc-writer: 1 commits, last 151$' \
    "writer: summary after SIGTERM"
t_is "$("$W" "$DB" --checkpoint bogus 2>&1; echo "rc=$?")" \
    $'lc-writer: bad checkpoint mode \'bogus\'\nrc=2' "--checkpoint: a bad mode is a usage error"

# SIGTERM under load: the current transaction finishes, its ack is logged, exit 0
start_bg paced "$W" "$DB" --rate 200 --log "$T/paced.acks"
wait_for 5 lines_ge "$T/paced.acks" 20
stop_bg paced TERM; rc=$?
t_is "$rc" 0 "writer: SIGTERM at 200 commits/s, exit 0"
n=$(nlines "$T/paced.acks"); last=$(tail -n 1 "$T/paced.acks" | cut -d' ' -f1)
t_is "$(tail -n 1 "$T/paced.log")" "lc-writer: $n commits, last $last" "writer: summary = the acks"
t_is "$(db_check "$DB" | field max)" "$last" "every acknowledged commit is in the database"

# pacing and --duration
DB2=$(fresh_db paced.db)
"$W" "$DB2" --duration 0.5 --rate 20 --log "$T/dur.acks" 2> /dev/null
t_is "$?" 0 "writer: --duration exits 0"
n=$(nlines "$T/dur.acks")
t_ok "writer: --rate 20 for 0.5 s made ~10 commits ($n)" test "$n" -ge 8 -a "$n" -le 11

# two writers at once never see SQLITE_BUSY (BEGIN IMMEDIATE + busy timeout)
DB3=$(fresh_db two.db)
"$W" "$DB3" --count 0 2> /dev/null
start_bg w1 "$W" "$DB3" --count 300 --min-bytes 10 --max-bytes 2000 --log "$T/two.acks"
start_bg w2 "$W" "$DB3" --count 300 --min-bytes 10 --max-bytes 2000 --log "$T/two.acks"
stop_bg w1 wait; r1=$?
stop_bg w2 wait; r2=$?
t_is "$r1:$r2" "0:0" "two concurrent writers: both exit 0"
t_ok "two concurrent writers: no error printed" \
    bash -c "! grep -q 'commit [0-9]*:' '$T/w1.log' '$T/w2.log'"
t_is "$(nlines "$T/two.acks")" 600 "two concurrent writers: 600 acknowledged commits"

# a held write lock: SQLITE_BUSY is fatal, or retried with --tolerate-busy
start_bg locker bash -c \
    "(echo 'BEGIN IMMEDIATE;'; echo 'SELECT 1;'; sleep 1.5) | sqlite3 -batch '$DB3'"
wait_for 5 bash -c "! sqlite3 -batch '$DB3' 'BEGIN IMMEDIATE; ROLLBACK;' 2>/dev/null"
out=$("$W" "$DB3" --count 1 --busy-timeout 50 2>&1); rc=$?
t_is "$rc" 1 "writer: SQLITE_BUSY exits 1"
t_like "$out" '^lc-writer: commit [0-9]+: database is locked' "writer: 'commit K: <errmsg>'"
out=$("$W" "$DB3" --count 2 --busy-timeout 20 --tolerate-busy 2>&1); rc=$?
t_is "$rc" 0 "writer --tolerate-busy: retries until the lock goes, exit 0"
t_like "$out" 'busy commits retried.*lc-writer: 2 commits' \
    "writer --tolerate-busy: counts the retries"
stop_bg locker > /dev/null

# deletes, vacuum, big commits, rows, page size, journal modes
DB4=$(fresh_db mix.db)
"$W" "$DB4" --count 60 --rows 2 --delete-every 20 --keep 10 --vacuum-every 30 --big-every 25 \
    --big-bytes 3000000 --page-size 8192 --autocheckpoint 0 2> /dev/null
t_is "$?" 0 "writer: deletes, vacuum, big commits: exit 0"
t_is "$(db_check "$DB4" | sed 's/ hash=.*//')" "integrity=ok commits=11 max=60 rows=22" \
    "writer: commit 60 deleted n < 50 and kept its own rows"
t_is "$(sq "$DB4" 'SELECT length(data) FROM t WHERE n = 50 ORDER BY id LIMIT 1')" 3000000 \
    "writer: --big-every 25 wrote a 3 MB row at commit 50"
t_is "$(sq "$DB4" 'PRAGMA page_size')" 8192 "writer: --page-size 8192"
DB5=$(fresh_db rollback.db)
"$W" "$DB5" --count 3 --no-wal --min-bytes 1 --max-bytes 50 2> /dev/null
t_is "$(sq "$DB5" 'PRAGMA journal_mode'):$(sq "$DB5" \
    'SELECT min(length(data)) >= 1 AND max(length(data)) <= 50 FROM t')" "delete:1" \
    "writer: --no-wal keeps the rollback journal; sizes in range"
t_is "$("$W" "$DB5" --count nope 2>&1; echo "rc=$?")" \
    $'lc-writer: bad value for --count: \'nope\'\nrc=2' "writer: a bad number is a usage error"

# --- lc-dbcheck -----------------------------------------------------------------------------
cp "$DB" "$T/copy.db"
sq "$DB" "VACUUM INTO '$T/vacuumed.db'"
src=$(db_check "$DB")
t_like "$src" '^integrity=ok commits=[0-9]+ max=[0-9]+ rows=[0-9]+ hash=[0-9a-f]{16}$' \
    "dbcheck: one line ($src)"
t_is "$(db_check "$T/copy.db")" "$src" "dbcheck: a copy prints the same line"
t_is "$(db_check "$T/vacuumed.db")" "$src" "dbcheck: a vacuumed copy (other pages) too"
sq "$T/copy.db" 'CREATE TABLE _litecast_seq (id INTEGER PRIMARY KEY, seq INTEGER);
    INSERT INTO _litecast_seq VALUES (1, 42); CREATE TABLE _litestream_lock (id INTEGER);'
t_is "$(db_check "$T/copy.db")" "$src" "dbcheck: _litecast* and _litestream* tables are ignored"
sq "$T/copy.db" 'CREATE TABLE other (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
    INSERT INTO other VALUES ('"'a'"', 1.5);'
t_ok "dbcheck: another user table changes the hash" \
    test "$(db_check "$T/copy.db" | field hash)" != "$(field hash <<< "$src")"
sq "$T/vacuumed.db" 'UPDATE t SET ts = ts + 1 WHERE n = 7'
t_ok "dbcheck: one changed value changes the hash" \
    test "$(db_check "$T/vacuumed.db" | field hash)" != "$(field hash <<< "$src")"
t_ok "dbcheck: created no -wal or -shm beside a closed WAL database" \
    test ! -e "$DB-wal" -a ! -e "$DB-shm"
t_ok "dbcheck: a missing database exits 1" bash -c "! '$C' '$T/missing.db'"
t_ok "dbcheck: ... and is not created" test ! -e "$T/missing.db"
cp "$T/vacuumed.db" "$T/bad.db"
dd if=/dev/zero of="$T/bad.db" bs=4096 seek=1 count=1 conv=notrunc status=none
t_ok "dbcheck: a corrupted database exits 1" bash -c "! '$C' '$T/bad.db' 2>/dev/null"
sq "$T/notable.db" 'CREATE TABLE x (a)'
t_is "$(db_check "$T/notable.db" | sed 's/ hash=.*//')" "integrity=ok commits=0 max=0 rows=0" \
    "dbcheck: no table t counts as empty"

# --- lc-walapply ----------------------------------------------------------------------------
# base = the db before; the WAL is kept by an idle second connection (the writer's close
# cannot checkpoint), copied as the shadow chain 00000000.wal, and replayed onto the base
DB6=$(fresh_db wal.db)
"$W" "$DB6" --count 5 2> /dev/null
cp "$DB6" "$T/base.db"
start_bg holder6 "$W" "$DB6" --rate 0.01 --autocheckpoint 0 --log "$T/holder6.acks"
wait_for 5 test -s "$T/holder6.acks"
"$W" "$DB6" --count 200 --min-bytes 10 --max-bytes 3000 --autocheckpoint 0 2> /dev/null
mkdir -p "$T/wal"
cp "$DB6-wal" "$T/wal/00000000.wal"
want=$(db_check "$DB6")
out=$("$A" "$T/base.db" "$T/wal" "$T/out.db"); rc=$?
t_is "$rc" 0 "walapply: exit 0"
t_like "$out" '^applied 00000000\.wal frames=[1-9][0-9]*$' "walapply: one line per index ($out)"
t_is "$(db_check "$T/out.db")" "$want" "walapply: the replayed chain equals the source"
t_is "$(db_check "$T/out.db" --upto | field gaps)" 0 "walapply: commits 1..206 without a gap"
stop_bg holder6 TERM > /dev/null

# second index: a new WAL, started after the last close checkpointed the first one
start_bg holder7 "$W" "$DB6" --rate 0.01 --autocheckpoint 0 --log "$T/holder7.acks"
wait_for 5 test -s "$T/holder7.acks"
"$W" "$DB6" --count 50 --autocheckpoint 0 2> /dev/null
cp "$DB6-wal" "$T/wal/00000001.wal"
want2=$(db_check "$DB6")
stop_bg holder7 TERM > /dev/null
out=$("$A" "$T/base.db" "$T/wal" "$T/out2.db"); rc=$?
t_is "$rc:$(wc -l <<< "$out")" "0:2" "walapply: two indexes applied in order"
t_is "$(db_check "$T/out2.db")" "$want2" "walapply: ... and equal the source"
"$A" "$T/base.db" "$T/wal" "$T/out3.db" --upto-index 0 > /dev/null
t_is "$(db_check "$T/out3.db")" "$want" "walapply --upto-index 0 stops after the first index"
cp "$T/wal/00000001.wal" "$T/wal/00000003.wal"
t_ok "walapply: a missing index (2) fails" \
    bash -c "! '$A' '$T/base.db' '$T/wal' '$T/o4.db' 2>/dev/null"
rm -f "$T/wal/00000003.wal"
size=$(stat -c %s "$T/wal/00000001.wal")
printf '\xff\xff\xff\xff' | dd of="$T/wal/00000001.wal" bs=1 seek=$((size / 2)) conv=notrunc \
    status=none
out=$("$A" "$T/base.db" "$T/wal" "$T/o5.db" 2>&1); rc=$?
t_is "$rc" 1 "walapply: a broken checksum chain fails"
t_like "$out" 'sqlite applied [0-9]+ of its [0-9]+ frames' "walapply: ... saying how far SQLite got"

done_testing
