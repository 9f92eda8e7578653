#!/usr/bin/env bash
# Crash loops. (1) The daemon is killed with SIGKILL at random moments and right after
# chosen log lines ('wal segment written', 'snapshot written', 'sync: wal restarted',
# 'replica position resumed', 'retention: deleting') to hit the copy / checkpoint /
# upload / snapshot / retention windows (retention keeps 5 s, checked every second),
# and restarted, while a writer commits continuously (--rate 200, small and occasional
# large rows, checkpoints every 8 pages). After every kill the replica restores to a
# database that passes integrity_check, whose n values are exactly {1..M} (no commit
# missing below its newest), with M never below the previous kill's M and never above the
# source's newest commit. (2) The WRITER is killed with SIGKILL in the middle of 2 MB
# transactions and restarted: a restore never holds a commit the source does not have.
# Each part ends with a clean stop: the final restore equals the source and holds every
# acknowledged commit.
#
# Short by default (~30 daemon kills, 9 writer kills). SOAK=1: rounds of KILLS_PER_ROUND
# daemon kills (a fresh database each round, so restores stay small) until SOAK_SECONDS
# (default 1200; the three 6x files together make an hour) is used, 3/4 of it for daemon
# kills and 1/4 for writer kills. SEED=N replays the same choices of moments.
. "$(dirname "$0")/lib.sh"

SEED=${SEED:-$$}
RANDOM=$SEED
if [ "${SOAK:-0}" = 1 ]; then
    BUDGET=${SOAK_SECONDS:-1200}
    KILLS_PER_ROUND=${KILLS_PER_ROUND:-60}
    DKILL_SECONDS=$((BUDGET * 3 / 4))
    WKILL_SECONDS=$((BUDGET / 4))
    WKILLS_PER_ROUND=${WKILLS_PER_ROUND:-12}
else
    KILLS_PER_ROUND=${KILLS:-30}
    DKILL_SECONDS=0 # one round
    WKILL_SECONDS=0
    WKILLS_PER_ROUND=${WKILLS:-9}
fi
diag "seed $SEED (SEED=$SEED replays it)"
now_s() { date +%s; }
ms_sleep() { sleep "$(printf '0.%03d' "$1")"; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
src_max() { sqlite3 -readonly "$1" 'SELECT COALESCE(MAX(n), 0) FROM t' 2>/dev/null; }

# The daemon, its stderr through a line reader that SIGKILLs it right after the
# SKIP+1-th line containing PATTERN (an empty PATTERN: never). Lines go to $T/daemon.log.
launch() { # CONFIG PATTERN SKIP
    rm -f "$T/fifo" "$T/dpid" && mkfifo "$T/fifo"
    # a subshell reaps it, so a SIGKILL prints no "Killed" job notice into the TAP stream
    ( "$LITECAST" replicate -c "$1" 2>"$T/fifo" < /dev/null & echo $! > "$T/dpid"; wait $! ) \
        2>/dev/null &
    _pids[daemon_sh]=$!
    until [ -s "$T/dpid" ]; do sleep 0.005; done
    DPID=$(cat "$T/dpid")
    _pids[daemon]=$DPID
    perl -e '$| = 1; my ($pid, $pat, $skip) = @ARGV; my $n = 0;
        while (<STDIN>) { print;
            if ($pat ne "" && index($_, $pat) >= 0 && $n++ >= $skip) {
                kill 9, $pid; print "# test: SIGKILL after: $pat (#$n)\n"; $pat = ""; } }' \
        "$DPID" "$2" "$3" < "$T/fifo" > "$T/daemon.log" &
    _pids[reader]=$!
}
reap() { # wait for the daemon and its reader to end; returns the daemon's status
    local rc=0
    wait "${_pids[daemon_sh]}" 2>/dev/null || rc=$?
    wait "${_pids[reader]}" 2>/dev/null
    unset "_pids[daemon]" "_pids[reader]" "_pids[daemon_sh]"
    cat "$T/daemon.log" >> "$T/history.txt"
    return $rc
}
restore_err() { grep -h 'level=error' "$1" | tail -n 1 | sed 's/.*error=//'; }

# ------------------------------------------------------------------------------------
# Part 1: the daemon crash loop
# ------------------------------------------------------------------------------------
kills=0 lost=0 corrupt=0 restores=0 triggered=0 gens=0 commits_total=0 rounds=0
declare -A modes=()
first_bad=""
part1_start=$(now_s)
round() {
    local r=$1 DB=$T/app$1.db REP=$T/replica$1 CFG=$T/lc$1.ini
    cat > "$CFG" <<CFG
[litecast]
log-level = debug
fallback-interval = 1s
shutdown-timeout = 20s

[db app]
path = $DB
min-checkpoint-pages = 8
max-checkpoint-pages = 64

[replica local]
db = app
url = file://$REP
snapshot-interval = 2s
retention = 5s
retention-check-interval = 1s
CFG
    "$TOOLS/lc-writer" "$DB" --count 1 --log "$T/acks$r.log" 2>/dev/null
    launch "$CFG" "" 0
    wait_log daemon 'snapshot written' 10 || diag "round $r: no first snapshot"
    start_bg writer "$TOOLS/lc-writer" "$DB" --rate 200 --min-bytes 20 --max-bytes 3000 \
        --big-every 97 --big-bytes 300000 --log "$T/acks$r.log"
    local prev=0 i mode pat skip m line rc src
    for i in $(seq 1 "$KILLS_PER_ROUND"); do
        # the daemon of the previous iteration (or the first) is running: pick the moment
        local p=$((RANDOM % 100))
        if [ "$p" -lt 32 ]; then mode=timed
        elif [ "$p" -lt 40 ]; then mode=retention pat='retention: deleting' skip=$((RANDOM % 3))
        elif [ "$p" -lt 65 ]; then mode=segment pat='wal segment written' skip=$((RANDOM % 40))
        elif [ "$p" -lt 80 ]; then mode=restart pat='sync: wal restarted' skip=$((RANDOM % 6))
        elif [ "$p" -lt 90 ]; then mode=snapshot pat='snapshot written' skip=0
        else mode=resumed pat='replica position resumed' skip=0; fi
        if [ "$i" -gt 1 ]; then
            if [ "$mode" = timed ]; then launch "$CFG" "" 0; else launch "$CFG" "$pat" "$skip"; fi
        elif [ "$mode" != timed ]; then
            mode=timed # the first daemon was started without a trigger
        fi
        if [ "$mode" = timed ]; then
            ms_sleep $((50 + RANDOM % 451))
            kill -KILL "$DPID" 2>/dev/null
        else
            # the trigger fires from the reader; give up after 4 s (snapshots come every 2 s)
            local t0; t0=$(date +%s%3N)
            while kill -0 "$DPID" 2>/dev/null && [ $(( $(date +%s%3N) - t0 )) -lt 4000 ]; do
                sleep 0.01
            done
            if kill -0 "$DPID" 2>/dev/null; then kill -KILL "$DPID"; mode="$mode(timeout)"; fi
        fi
        reap
        grep -q '^# test: SIGKILL after' "$T/daemon.log" && triggered=$((triggered + 1))
        kills=$((kills + 1))
        modes[$mode]=$(( ${modes[$mode]:-0} + 1 ))
        # restore the replica as the dead daemon left it (the writer keeps writing)
        rm -f "$T/r.db"
        restores=$((restores + 1))
        if ! "$LITECAST" restore -o "$T/r.db" "file://$REP" 2>"$T/restore.err"; then
            corrupt=$((corrupt + 1))
            diag "round $r kill $i ($mode): restore failed: $(restore_err "$T/restore.err")"
            [ -n "$first_bad" ] || first_bad="kill $i ($mode)"
            continue
        fi
        line=$(db_check "$T/r.db" --upto); rc=$?
        m=$(echo "$line" | field max)
        src=$(src_max "$DB")
        if [ $rc -ne 0 ] || [[ "$line" != integrity=ok* ]]; then
            corrupt=$((corrupt + 1))
            diag "round $r kill $i ($mode): bad restore: $line"
            [ -n "$first_bad" ] || first_bad="kill $i ($mode)"
            [ "${LC_KEEP:-0}" = 1 ] && cp "$T/r.db" "$T/bad-$r-$i.db"
        elif [ "${m:-0}" -lt "$prev" ] || [ "${m:-0}" -gt "${src:-0}" ]; then
            lost=$((lost + 1))
            diag "round $r kill $i ($mode): restore max $m, previous restore max $prev, source max $src"
            [ -n "$first_bad" ] || first_bad="kill $i ($mode)"
            [ "${LC_KEEP:-0}" = 1 ] && cp -r "$REP" "$T/badrep-$r-$i"
        fi
        [ "${m:-0}" -gt "$prev" ] && prev=$m
        if ! kill -0 "${_pids[writer]}" 2>/dev/null; then
            diag "round $r: the writer died: $(tail -n 2 "$T/writer.log")"
            break
        fi
    done
    # catch up: writer off, a clean daemon, SIGTERM (final sync, replica flushed)
    stop_bg writer TERM
    t_is "$?" 0 "round $r: the writer never failed (no SQLITE_BUSY, no error) across the kills"
    launch "$CFG" "" 0
    wait_log daemon 'replica position resumed|snapshot written' 10
    sleep 1
    kill -TERM "$DPID"
    reap
    t_is "$?" 0 "round $r: the last daemon exits 0 on SIGTERM after catching up"
    gens=$((gens + $(grep -c 'sync: new generation' "$T/history.txt")))
    rm -f "$T/r.db"
    "$LITECAST" restore -o "$T/r.db" "file://$REP" 2>"$T/restore.err"
    t_is "$?" 0 "round $r: final restore exits 0"
    local want; want=$(db_check "$DB")
    t_is "$(db_check "$T/r.db")" "$want" "round $r: final restore equals the source"
    local acked; acked=$(tail -n 1 "$T/acks$r.log" | cut -d' ' -f1)
    t_ok "round $r: final restore holds every acknowledged commit 1..$acked and nothing else" \
        "$TOOLS/lc-dbcheck" "$T/r.db" --upto "$acked"
    commits_total=$((commits_total + acked))
    rounds=$((rounds + 1))
    : > "$T/history.txt"
    if [ "${LC_KEEP:-0}" != 1 ]; then rm -rf "$DB" "$DB-wal" "$DB-shm" "$REP" "$T/.app$r.db-litecast"; fi
}
round 1
while [ "$DKILL_SECONDS" -gt 0 ] && [ $(( $(now_s) - part1_start )) -lt "$DKILL_SECONDS" ]; do
    round $((rounds + 1))
done
part1_secs=$(( $(now_s) - part1_start ))
mstr=$(for k in "${!modes[@]}"; do printf '%s=%s ' "$k" "${modes[$k]}"; done)
diag "daemon kills by moment: $mstr"
t_is "$corrupt" 0 "every one of $restores restores after a kill passed integrity (none corrupt, none failed)${first_bad:+; first bad: $first_bad}"
t_is "$lost" 0 "no restore after a kill lost a commit an earlier restore had, or held one the source lacks"
t_ok "the log triggers fired ($triggered of $kills kills came right after a log line)" test "$triggered" -ge $((kills / 4))

# ------------------------------------------------------------------------------------
# Part 2: the writer crash loop (2 MB transactions killed mid-way)
# ------------------------------------------------------------------------------------
# wal_tail WAL: frames of the current incarnation past its last commit (0: none), found by
# walking the salt and checksum chain from the header as SQLite's recovery does.
wal_tail() {
    perl -e '
        open(my $f, "<:raw", $ARGV[0]) or do { print "0\n"; exit };
        read($f, my $h, 32) == 32 or do { print "0\n"; exit };
        my ($magic, $ver, $ps, $seq, $s1, $s2) = unpack("N6", $h);
        my $le = ($magic == 0x377f0682); my $w = $le ? "V" : "N";
        sub ck { my ($a, $b, $d) = @_; my @x = unpack("$w*", $d);
            for (my $i = 0; $i < @x; $i += 2) { $a = ($a + $x[$i] + $b) & 0xffffffff;
                $b = ($b + $x[$i+1] + $a) & 0xffffffff; } return ($a, $b); }
        my ($a, $b) = ck(0, 0, substr($h, 0, 24));
        my ($frames, $last) = (0, 0);
        while (read($f, my $fh, 24) == 24 && read($f, my $pg, $ps) == $ps) {
            my ($pno, $commit, $f1, $f2, $c1, $c2) = unpack("N6", $fh);
            last if $f1 != $s1 || $f2 != $s2;
            ($a, $b) = ck($a, $b, substr($fh, 0, 8)); ($a, $b) = ck($a, $b, $pg);
            last if $a != $c1 || $b != $c2;
            $frames++; $last = $frames if $commit;
        }
        print $frames - $last, "\n";' "$1"
}
# A third of the kills are SIGKILLs at a random moment (mostly inside a 2 MB transaction);
# the others are exact, through the fault shim (the writer SIGKILLs itself): at the N-th
# pwrite to the -wal (inside a transaction: frames written, no commit frame), and at the
# N-th fsync of the -wal (the commit frame is in the WAL file, but SQLite has not yet
# published the commit in the wal-index, -shm: SQLite never counts that transaction, the
# next writer overwrites its frames). A replica must hold neither.
cc -shared -fPIC -o "$T/faultshim.so" "$ROOT/tests/tools/faultshim/lc-faultshim.c" -ldl 2>"$T/cc.err"
t_is "$?" 0 "the fault shim builds"
wk=0 wk_mid=0 wk_exact=0 wk_bad=0 wk_rounds=0 wk_commits=0 wk_phantom=0
part2_start=$(now_s)
wround() {
    local r=$1 DB=$T/w$1.db REP=$T/wrep$1 CFG=$T/lcw$1.ini
    cat > "$CFG" <<CFG
[litecast]
fallback-interval = 1s

[db w]
path = $DB
min-checkpoint-pages = 8
max-checkpoint-pages = 1024

[replica local]
db = w
url = file://$REP
CFG
    "$TOOLS/lc-writer" "$DB" --count 1 --log "$T/wacks$r.log" 2>/dev/null
    start_bg wdaemon "$LITECAST" replicate -c "$CFG"
    wait_log wdaemon 'snapshot written' 10 || diag "writer round $r: no first snapshot"
    local i line rc m src tail prev=0 how
    for i in $(seq 1 "$WKILLS_PER_ROUND"); do
        local kind=$((i % 3)) nth
        [ -s "$T/faultshim.so" ] || kind=0
        if [ "$kind" = 1 ]; then
            # inside a transaction: frames written, no commit frame yet
            nth=$((20 + RANDOM % 1500))
            how="self-kill at -wal pwrite #$nth"
            LD_PRELOAD=$T/faultshim.so LC_FAULT="pwrite:kill:#$nth" LC_FAULT_PATH=$DB-wal \
                start_bg writer "$TOOLS/lc-writer" "$DB" --rate 0 --min-bytes 20 \
                --max-bytes 3000 --big-every 3 --big-bytes 2000000 --log "$T/wacks$r.log"
            stop_bg writer wait
        elif [ "$kind" = 2 ]; then
            # commit frame written and synced, not yet published in the wal-index
            nth=$((2 + RANDOM % 3))
            how="self-kill at -wal fsync #$nth"
            LD_PRELOAD=$T/faultshim.so LC_FAULT="fsync:kill:#$nth" LC_FAULT_PATH=$DB-wal \
                start_bg writer "$TOOLS/lc-writer" "$DB" --rate 0 --min-bytes 20 \
                --max-bytes 3000 --big-every 3 --big-bytes 2000000 --log "$T/wacks$r.log"
            wk_exact=$((wk_exact + 1))
            stop_bg writer wait
        else
            how="random"
            start_bg writer "$TOOLS/lc-writer" "$DB" --rate 0 --min-bytes 20 --max-bytes 3000 \
                --big-every 3 --big-bytes 2000000 --log "$T/wacks$r.log"
            ms_sleep $((60 + RANDOM % 400))
            kill -KILL "${_pids[writer]}"
            stop_bg writer wait
        fi
        wk=$((wk + 1))
        tail=$(wal_tail "$DB-wal")
        [ "${tail:-0}" -gt 0 ] && wk_mid=$((wk_mid + 1))
        sleep 0.3 # let the daemon sync (and checkpoint) whatever the dead writer left behind
        rm -f "$T/w.db"
        src=$(src_max "$DB")
        if ! "$LITECAST" restore -o "$T/w.db" "file://$REP" 2>"$T/wrestore.err"; then
            wk_bad=$((wk_bad + 1))
            diag "writer kill $i ($how; $tail frames past the last commit): restore failed: $(restore_err "$T/wrestore.err")"
            continue
        fi
        line=$(db_check "$T/w.db" --upto); rc=$?
        m=$(echo "$line" | field max)
        if [ $rc -ne 0 ] || [ "${m:-0}" -gt "${src:-0}" ] || [ "${m:-0}" -lt "$prev" ]; then
            wk_bad=$((wk_bad + 1))
            [ "${m:-0}" -gt "${src:-0}" ] && wk_phantom=$((wk_phantom + 1))
            diag "writer kill $i ($how; $tail frames past the last commit): restore $line; source max $src; previous $prev"
            [ "${LC_KEEP:-0}" = 1 ] && cp -r "$REP" "$T/wbadrep-$r-$i"
        fi
        [ "${m:-0}" -gt "$prev" ] && prev=$m
    done
    # a clean run after the last kill, then catch up and stop
    "$TOOLS/lc-writer" "$DB" --count 20 --rate 0 --min-bytes 20 --max-bytes 3000 \
        --big-every 3 --big-bytes 2000000 --log "$T/wacks$r.log" 2>>"$T/writer.log"
    t_is "$?" 0 "writer round $r: a writer restarted after $WKILLS_PER_ROUND kills commits cleanly"
    sleep 1
    stop_bg wdaemon TERM
    t_is "$?" 0 "writer round $r: daemon exits 0 on SIGTERM"
    rm -f "$T/w.db"
    "$LITECAST" restore -o "$T/w.db" "file://$REP" 2>"$T/wrestore.err" ||
        diag "writer round $r: final restore failed: $(restore_err "$T/wrestore.err")"
    t_is "$(db_check "$T/w.db")" "$(db_check "$DB")" "writer round $r: final restore equals the source"
    local acked; acked=$(tail -n 1 "$T/wacks$r.log" | cut -d' ' -f1)
    t_ok "writer round $r: it holds every acknowledged commit (1..$acked, exactly)" \
        "$TOOLS/lc-dbcheck" "$T/w.db" --upto "$acked"
    wk_commits=$((wk_commits + acked))
    wk_rounds=$((wk_rounds + 1))
    if [ "${LC_KEEP:-0}" != 1 ]; then rm -rf "$DB" "$DB-wal" "$DB-shm" "$REP" "$T/.w$r.db-litecast" "$T/w.db"; fi
}
# Unpublished frames left in the WAL when litecast itself next restarts it: a writer dies at
# its commit fsync (a 300 KB transaction: its frames are in the file, not in the wal-index),
# nothing else is written, and litecast's idle checkpoint (checkpoint-interval) back-fills
# and restarts the WAL. The new WAL incarnation leaves the dead transaction's frames in place
# past the old end: they must not be taken as "the rest of the old incarnation".
phantom_restart() {
    local DB=$T/p.db REP=$T/prep CFG=$T/lcp.ini line src m
    printf '[litecast]\nfallback-interval = 200ms\n[db p]\npath = %s\ncheckpoint-interval = 1s\n[replica r]\ndb = p\nurl = file://%s\n' \
        "$DB" "$REP" > "$CFG"
    "$TOOLS/lc-writer" "$DB" --count 3 --log "$T/packs.log" 2>/dev/null
    start_bg pdaemon "$LITECAST" replicate -c "$CFG"
    wait_log pdaemon 'snapshot written' 10
    LD_PRELOAD=$T/faultshim.so LC_FAULT="fsync:kill:#1" LC_FAULT_PATH=$DB-wal \
        start_bg writer "$TOOLS/lc-writer" "$DB" --count 1 --bytes 300000 --log "$T/packs.log"
    stop_bg writer wait
    # idle past checkpoint-interval; the touch keeps an idle fallback sync from being
    # skipped as "nothing changed", so the idle checkpoint runs
    sleep 1.3; touch "$DB-wal"; sleep 1
    src=$(src_max "$DB")
    rm -f "$T/p-out.db"
    if "$LITECAST" restore -o "$T/p-out.db" "file://$REP" 2>"$T/prestore.err"; then
        line=$(db_check "$T/p-out.db" --upto); m=$(echo "$line" | field max)
    else
        line="restore failed: $(restore_err "$T/prestore.err")"; m=-1
    fi
    t_is "${m}" "$src" "unpublished frames still in the WAL when litecast restarts it never reach the replica ($line; source max $src)"
    "$TOOLS/lc-writer" "$DB" --count 5 --log "$T/packs.log" 2>/dev/null
    sleep 0.5
    stop_bg pdaemon TERM
    rm -f "$T/p-out.db"
    "$LITECAST" restore -o "$T/p-out.db" "file://$REP" 2>"$T/prestore.err" ||
        diag "after the next writes: restore failed: $(restore_err "$T/prestore.err")"
    t_is "$(db_check "$T/p-out.db")" "$(db_check "$DB")" "and after the next writes the restore equals the source"
}

wround 1
while [ "$WKILL_SECONDS" -gt 0 ] && [ $(( $(now_s) - part2_start )) -lt "$WKILL_SECONDS" ]; do
    wround $((wk_rounds + 1))
done
[ -s "$T/faultshim.so" ] && phantom_restart
part2_secs=$(( $(now_s) - part2_start ))
t_is "$wk_bad" 0 "after each of $wk writer kills the restore is whole and holds only commits the source has ($wk_phantom held one it never had)"
t_ok "kills landed mid-transaction ($wk_mid of $wk left uncommitted frames in the WAL)" test "$wk_mid" -ge 1

diag "crash-loop: $kills kills, $commits_total commits, $lost lost, $corrupt corrupt restores ($rounds rounds, $gens new generations, ${part1_secs}s); writer kills: $wk ($wk_exact at the commit fsync, $wk_mid left uncommitted frames), $wk_commits commits, $wk_bad bad restores ($wk_phantom with a commit the source never had) (${part2_secs}s)"
done_testing
