#!/usr/bin/env bash
# The application interferes while the daemon runs and a writer writes (--rate 100,
# --tolerate-busy): PRAGMA wal_checkpoint(TRUNCATE) from other processes (lc-writer
# --checkpoint and the sqlite3 CLI: busy, since litecast holds its read transaction -- the
# result row starts with 1), a tight TRUNCATE loop racing litecast's own checkpoints,
# journal_mode=DELETE and back to WAL (refused while litecast runs; should one ever get
# through, a new generation must follow), VACUUM, the database file replaced by rename
# ('database file replaced', a new generation), and the meta directory deleted (a new
# generation: 'shadow wal removed' or 'no generation exists'). After each, a restore of the
# replica passes integrity and holds exactly the commits 1..M for an M the source has;
# after the final catch-up it equals the source and holds every acknowledged commit. Also:
# an idle database is checkpointed after checkpoint-interval, and restores taken back to
# back while the daemon adds segments as fast as a writer commits all succeed.
#
# Short by default (~40 s). SOAK=1 repeats the whole sequence until SOAK_SECONDS (default
# 1200) is used.
. "$(dirname "$0")/lib.sh"

BUDGET=0
[ "${SOAK:-0}" = 1 ] && BUDGET=${SOAK_SECONDS:-1200}
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
src_max() { sqlite3 -readonly "$1" 'SELECT COALESCE(MAX(n), 0) FROM t' 2>/dev/null; }
restore_err() { grep -h 'level=error' "$1" | tail -n 1 | sed 's/.*error=//'; }
gens() { grep -c 'sync: new generation' "$T/daemon.log"; }
wal_frames() { # frames of the current WAL incarnation (by salt), 0 if none
    perl -e 'open(my $f, "<:raw", $ARGV[0]) or do { print "0\n"; exit };
        read($f, my $h, 32) == 32 or do { print "0\n"; exit };
        my (undef, undef, $ps, undef, $s1, $s2) = unpack("N6", $h); my $n = 0;
        while (read($f, my $fh, 24) == 24 && read($f, my $pg, $ps) == $ps) {
            my (undef, undef, $a, $b) = unpack("N4", $fh); last if $a != $s1 || $b != $s2; $n++ }
        print "$n\n"' "$1"
}
wal_quiet() { [ "$(wal_frames "$1")" -le 1 ]; }
# LC_KEEP=1: the files just before and after a replacement, to study one that goes wrong
keep_files() { # DIR [FILE...]: the source, its -wal and -shm (and FILEs) into $T/DIR
    [ "${LC_KEEP:-0}" = 1 ] || return 0
    local d=$T/$1; shift
    mkdir -p "$d"; cp "$DB" "$d/db"; cp "$DB-wal" "$d/wal"; cp "$DB-shm" "$d/shm"
    [ $# -eq 0 ] || cp "$@" "$d/"
}

DB=$T/app.db
REP=$T/replica
META=$T/.app.db-litecast
cat > "$T/lc.ini" <<CFG
[litecast]
log-level = debug
fallback-interval = 500ms

[db app]
path = $DB
min-checkpoint-pages = 8
max-checkpoint-pages = 256
checkpoint-interval = 1s

[replica local]
db = app
url = file://$REP
snapshot-interval = 1s
; a new generation every few seconds and a snapshot every second: without retention a
; 20-minute soak keeps every one of them and fills the disk
retention = 30s
retention-check-interval = 5s
CFG

"$TOOLS/lc-writer" "$DB" --count 1 --log "$T/acks.log" 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
t_ok "daemon up: first snapshot" wait_log daemon 'snapshot written' 10
writer_on() {
    start_bg writer "$TOOLS/lc-writer" "$DB" --rate 100 --min-bytes 20 --max-bytes 3000 \
        --big-every 200 --big-bytes 300000 --tolerate-busy --log "$T/acks.log"
}
writer_off() {
    stop_bg writer TERM
    local rc=$?
    [ "$rc" = 0 ] || { writer_failed=$((writer_failed + 1)); diag "writer exit $rc: $(tail -n 2 "$T/writer.log")"; }
}
writer_failed=0 restores=0 bad=0 prev=0
check_restore() { # LABEL: restore the replica as it is now; integrity and 1..M
    local line rc m src
    rm -f "$T/r.db"
    restores=$((restores + 1))
    if ! "$LITECAST" restore -o "$T/r.db" "file://$REP" 2>"$T/restore.err"; then
        bad=$((bad + 1)); diag "$1: restore failed: $(restore_err "$T/restore.err")"; return 1
    fi
    src=$(src_max "$DB")
    line=$(db_check "$T/r.db" --upto); rc=$?
    m=$(echo "$line" | field max)
    if [ $rc -ne 0 ] || [ "${m:-0}" -gt "${src:-0}" ]; then
        bad=$((bad + 1)); diag "$1: restore $line; source max $src"
        [ "${LC_KEEP:-0}" = 1 ] && cp -r "$REP" "$T/badrep-$restores"
        return 1
    fi
    prev=$m
    return 0
}

sequence() {
    local pass=$1 out i busy n g0 ok_n fails
    writer_on
    sleep 1

    # --- wal_checkpoint(TRUNCATE) from the application ---------------------------------
    # litecast lets go of its read transaction only for its own checkpoints (every 8 pages
    # here), so now and then one of these lands in that window and completes; that is safe
    # because litecast had copied everything first, which the restore below checks
    busy=0 done_n=0 n=0
    tally() { # RESULT_ROW: count one checkpoint as busy (1|...) or completed (0|...)
        n=$((n + 1))
        case $1 in 1\|*) busy=$((busy + 1)) ;; 0\|*) done_n=$((done_n + 1)) ;; esac
    }
    for i in 1 2 3 4 5; do
        out=$("$TOOLS/lc-writer" "$DB" --checkpoint truncate --busy-timeout 100 2>&1)
        tally "$out"
        tally "$(sqlite3 -cmd '.timeout 100' "$DB" 'PRAGMA wal_checkpoint(TRUNCATE)' 2>&1)"
        sleep 0.1
    done
    t_is "$((busy + done_n))" "$n" "pass $pass: all $n TRUNCATE checkpoints by the application returned a result row ($busy busy, $done_n completed)"
    t_ok "pass $pass: most of them ($busy of $n) were busy: litecast holds its read transaction" test "$busy" -gt $((n / 2))
    check_restore "pass $pass: after TRUNCATE checkpoints"
    t_is "$?" 0 "pass $pass: restore after the TRUNCATE checkpoints is whole"

    # the same, back to back for 4 s from one connection, racing litecast's own checkpoints
    # (every 8 pages); one that completes is fine if litecast had everything, which the
    # restore below checks
    local loops got
    out=$(yes 'PRAGMA wal_checkpoint(TRUNCATE);' | head -n 200000 |
        timeout 4 sqlite3 -cmd '.timeout 20' "$DB" 2>&1)
    loops=$(grep -c '|' <<< "$out"); got=$(grep -c '^0|' <<< "$out")
    diag "pass $pass: tight loop: $loops TRUNCATE checkpoints, $got of them completed"
    check_restore "pass $pass: after the TRUNCATE loop"
    t_is "$?" 0 "pass $pass: restore after $loops back-to-back TRUNCATE checkpoints is whole"

    # --- journal_mode=DELETE and back ---------------------------------------------------
    g0=$(gens); ok_n=0 fails=0
    for i in 1 2 3 4 5; do
        out=$(sqlite3 -cmd '.timeout 100' "$DB" 'PRAGMA journal_mode=DELETE' 2>&1)
        if [ "$out" = delete ]; then
            ok_n=$((ok_n + 1))
            diag "pass $pass: journal_mode=DELETE went through (attempt $i); back to WAL"
            out=$(sqlite3 -cmd '.timeout 2000' "$DB" 'PRAGMA journal_mode=WAL' 2>&1)
            [ "$out" = wal ] || diag "pass $pass: back to WAL: $out"
        else
            fails=$((fails + 1))
        fi
        sleep 0.1
    done
    if [ "$ok_n" = 0 ]; then
        t_is "$fails" 5 "pass $pass: journal_mode=DELETE is refused (busy/locked) while litecast runs"
    else
        t_ok "pass $pass: journal_mode left WAL $ok_n time(s): a new generation followed, with a reason" \
            wait_for 5 bash -c "[ \$(grep -c 'sync: new generation' '$T/daemon.log') -gt $g0 ]"
    fi
    check_restore "pass $pass: after journal_mode attempts"
    t_is "$?" 0 "pass $pass: restore after the journal_mode attempts is whole"

    # --- VACUUM ---------------------------------------------------------------------------
    out=$(sqlite3 -cmd '.timeout 5000' "$DB" 'VACUUM' 2>&1)
    t_is "$out" "" "pass $pass: VACUUM by the application succeeds while litecast runs"
    sleep 0.5
    check_restore "pass $pass: after VACUUM"
    t_is "$?" 0 "pass $pass: restore after VACUUM is whole"

    # --- the database file replaced by rename -------------------------------------------------
    # litecast keeps the -wal (and its connections keep the -shm) across the rename, and
    # SQLite applies that old WAL to whatever file is at the path: the copy must not
    # contradict it. So: the writer stops, litecast's idle checkpoint (checkpoint-interval)
    # back-fills everything and restarts the WAL (leaving its one-frame _litecast_seq
    # write), then the copy changes one row in place (no new page, no schema change: the
    # old WAL's commit frame still gives the right database size). The row must be one
    # without overflow pages: rewriting a 300 KB row allocates its new overflow chain
    # before freeing the old one, and right after VACUUM (no free pages) that grows the
    # file past the size the old WAL's commit frame states, so SQLite cuts the chain off
    # and the replaced source reads as malformed (seen once in 25 soak passes).
    writer_off
    local quiet=0
    wait_for 8 wal_quiet "$DB-wal" && quiet=1
    [ "$quiet" = 1 ] || diag "pass $pass: the WAL still holds $(wal_frames "$DB-wal") frames after 8 s idle"
    g0=$(gens)
    cp "$DB" "$T/new.db" || bail_out "pass $pass: cannot copy $DB (disk full?): the test would replace the source with a partial copy"
    local pages
    pages=$(sqlite3 "$T/new.db" 'PRAGMA page_count' 2>&1)
    sqlite3 "$T/new.db" "UPDATE t SET ts = -$pass WHERE n = (SELECT MAX(n) FROM t WHERE length(data) <= 3000)" 2>&1
    t_is "$(sqlite3 "$T/new.db" 'PRAGMA page_count' 2>&1)" "$pages" "pass $pass: the replacement's change leaves the page count as it was ($pages)"
    keep_files pre "$T/new.db"
    mv "$T/new.db" "$DB"
    t_ok "pass $pass: replacing the database file is noticed ('database file replaced')" \
        wait_log daemon 'database file replaced' 5
    out=$(sqlite3 -readonly "$DB" 'PRAGMA quick_check' 2>&1)
    t_is "$out" ok "pass $pass: the source is whole after the replacement"
    if [ "$out" != ok ] && [ "${LC_KEEP:-0}" = 1 ]; then
        keep_files post; bail_out "pass $pass: source malformed after the replacement; files kept in $T/pre and $T/post"
    fi
    t_ok "pass $pass: and starts a new generation (reason \"database replaced\")" \
        wait_for 5 bash -c "[ \$(grep -c 'reason=\"database replaced\"' '$T/daemon.log') -ge $pass ]"
    writer_on
    sleep 1
    check_restore "pass $pass: after the replacement"
    t_is "$?" 0 "pass $pass: restore after the replacement is whole"
    if [ "$quiet" = 1 ]; then
        t_is "$(sqlite3 "$T/r.db" "SELECT COUNT(*) FROM t WHERE ts = -$pass" 2>&1)" 1 \
            "pass $pass: and holds the replacement's own change"
    else # SQLite replayed the old WAL over the copy: the change is gone from the source too
        diag "pass $pass: not checking the replacement's own change (the old WAL was not idle)"
    fi

    # --- the meta directory deleted -------------------------------------------------------
    g0=$(gens)
    rm -rf "$META" 2>/dev/null || rm -rf "$META" # litecast may be writing into it meanwhile
    t_ok "pass $pass: deleting the meta directory starts a new generation" \
        wait_for 5 bash -c "[ \$(grep -c 'sync: new generation' '$T/daemon.log') -gt $g0 ]"
    t_like "$(grep 'sync: new generation' "$T/daemon.log" | tail -n 1)" \
        'reason="(shadow wal removed|no generation exists)"' "pass $pass: with reason 'shadow wal removed' or 'no generation exists'"
    t_ok "pass $pass: the meta directory is back" wait_for 5 test -s "$META/generation"
    sleep 1
    check_restore "pass $pass: after the meta dir was deleted"
    t_is "$?" 0 "pass $pass: restore after the meta dir was deleted is whole"
    writer_off
}

# --- an idle database is checkpointed after checkpoint-interval ----------------------------
# (the precondition of a safe replacement above; on its own database, so that nothing but
# the idle checkpoint can back-fill: min-checkpoint-pages is far above what is written)
idle_checkpoint() {
    local IDB=$T/idle.db quiet=0
    printf '[litecast]\nfallback-interval = 200ms\n[db idle]\npath = %s\ncheckpoint-interval = 1s\n[replica r]\ndb = idle\nurl = file://%s\n' \
        "$IDB" "$T/idle-rep" > "$T/idle.ini"
    "$TOOLS/lc-writer" "$IDB" --count 1 2>/dev/null
    start_bg idaemon "$LITECAST" replicate -c "$T/idle.ini"
    wait_log idaemon 'snapshot written' 5
    "$TOOLS/lc-writer" "$IDB" --count 5 --autocheckpoint 0 2>/dev/null
    wait_for 6 wal_quiet "$IDB-wal" && quiet=1
    t_is "$quiet" 1 "idle for 6 s, litecast checkpoints within checkpoint-interval (1 s): WAL left with $(wal_frames "$IDB-wal") frames, want <= 1"
    stop_bg idaemon TERM
}
idle_checkpoint

# --- restores taken back to back while the replica is being written --------------------
# Another process (litecast restore) reads the replica directory while the daemon adds
# segments to it as fast as a writer commits. A restore may see the newest state or an
# older one, but it must not fail.
live_restores() {
    local end ok=0 failed=0 first=""
    start_bg fastwriter "$TOOLS/lc-writer" "$DB" --rate 0 --bytes 200 --tolerate-busy \
        --log "$T/acks.log"
    sleep 2
    end=$(( $(date +%s) + ${LIVE_SECS:-8} ))
    while [ "$(date +%s)" -lt "$end" ]; do
        rm -f "$T/live.db"
        if "$LITECAST" restore -o "$T/live.db" "file://$REP" 2>"$T/live.err" &&
            "$TOOLS/lc-dbcheck" "$T/live.db" --upto >/dev/null 2>&1; then
            ok=$((ok + 1))
        else
            failed=$((failed + 1)); [ -n "$first" ] || first=$(restore_err "$T/live.err")
        fi
    done
    stop_bg fastwriter TERM || writer_failed=$((writer_failed + 1))
    t_is "$failed" 0 "$((ok + failed)) restores taken while $(ls "$REP"/generations/*/wal | wc -l) segments were being written all succeeded${first:+ (first failure: $first)}"
}

start=$(date +%s)
passes=1
sequence 1
live_restores
while [ "$BUDGET" -gt 0 ] && [ $(( $(date +%s) - start )) -lt "$BUDGET" ]; do
    passes=$((passes + 1)); sequence "$passes"
done

# --- catch up, stop, compare ----------------------------------------------------------------
sleep 1
stop_bg daemon TERM
t_is "$?" 0 "daemon: clean exit on SIGTERM after all the interference"
t_is "$writer_failed" 0 "the writer never failed"
rm -f "$T/r.db"
"$LITECAST" restore -o "$T/r.db" "file://$REP" 2>"$T/restore.err" ||
    diag "final restore failed: $(restore_err "$T/restore.err")"
t_is "$(db_check "$T/r.db")" "$(db_check "$DB")" "final restore equals the source"
acked=$(tail -n 1 "$T/acks.log" | cut -d' ' -f1)
t_ok "and holds every acknowledged commit (1..$acked, exactly)" "$TOOLS/lc-dbcheck" "$T/r.db" --upto "$acked"
t_is "$bad" 0 "all $restores restores along the way were whole"
reasons=$(grep -o 'reason="[^"]*"' "$T/daemon.log" | sort | uniq -c | sed 's/^ *//' | tr '\n' ';')
diag "interference: $passes passes, $acked commits, $restores restores, $bad bad, $(gens) generations ($reasons)"
done_testing
