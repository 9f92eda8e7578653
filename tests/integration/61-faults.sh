#!/usr/bin/env bash
# Injected I/O faults. An LD_PRELOAD shim (tests/tools/faultshim/lc-faultshim.c) makes the
# DAEMON's own calls fail -- write, pwrite, fsync, rename, open, ftruncate, mkdir, unlink
# with EIO, ENOSPC, EINTR or short writes, at random with a given probability or at the
# N-th call -- but only on paths under its meta dir and its replica dir (LC_FAULT_PATH), so
# SQLite's I/O on the database itself is never sabotaged. A writer commits all along
# (--rate 200, acknowledged in a log). Under each fault profile the daemon logs, retries and
# never crashes; every restore taken meanwhile (from the replica as it is) passes integrity
# and holds exactly the commits 1..M for an M the source has. Last, the daemon runs without
# the shim: it catches up and the final restore equals the source, every acked commit in it.
#
# Profiles: mixed (the shadow and the replica), replica-only heavy, shadow-only heavy,
# benign (EINTR and short writes only: absorbed without a single failure), exact N-th
# calls, a "disk full" storm switched on and off at run time (LC_FAULT_CTL) with no
# restart, and a replica stranded at a WAL index boundary across a restart. Short by
# default (~5 s a profile); SOAK=1 repeats the profile cycle with new seeds until
# SOAK_SECONDS (default 1200) is used. SEED=N replays the shim's choices.
. "$(dirname "$0")/lib.sh"

SEED=${SEED:-$$}
RANDOM=$SEED
PROFILE_SECS=${PROFILE_SECS:-5}
BUDGET=0
[ "${SOAK:-0}" = 1 ] && BUDGET=${SOAK_SECONDS:-1200} && PROFILE_SECS=${PROFILE_SECS_SOAK:-20}
diag "seed $SEED (SEED=$SEED replays it)"
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
src_max() { sqlite3 -readonly "$1" 'SELECT COALESCE(MAX(n), 0) FROM t' 2>/dev/null; }
restore_err() { grep -h 'level=error' "$1" | tail -n 1 | sed 's/.*error=//'; }

cc -shared -fPIC -o "$T/faultshim.so" "$ROOT/tests/tools/faultshim/lc-faultshim.c" -ldl \
    2>"$T/cc.err"
t_is "$?" 0 "the fault shim builds"

DB=$T/app.db
REP=$T/replica
META=$T/.app.db-litecast
cat > "$T/lc.ini" <<CFG
[litecast]
fallback-interval = 500ms
shutdown-timeout = 3s

[db app]
path = $DB
min-checkpoint-pages = 8
max-checkpoint-pages = 256

[replica local]
db = app
url = file://$REP
snapshot-interval = 3s
CFG

# the shim on the daemon alone; a quick self-check that it hits only the chosen paths, and
# only while the control file exists
shim_dd() { # FILE [CTL]: dd one byte into FILE under the shim; dd's exit status
    env LD_PRELOAD="$T/faultshim.so" LC_FAULT="write:enospc:1" LC_FAULT_PATH="$T/x" \
        LC_FAULT_CTL="${2:-}" dd if=/dev/zero of="$1" bs=1 count=1 status=none 2>/dev/null
}
shim_dd "$T/y"; a=$?
shim_dd "$T/x"; b=$?
: > "$T/ctl"; shim_dd "$T/x" "$T/ctl"; c=$?
rm -f "$T/ctl"; shim_dd "$T/x" "$T/ctl"; d=$?
t_is "$a$b$c$d" 0110 "the shim fails calls under LC_FAULT_PATH only, and only while LC_FAULT_CTL exists"

"$TOOLS/lc-writer" "$DB" --count 1 --log "$T/acks.log" 2>/dev/null
start_bg writer "$TOOLS/lc-writer" "$DB" --rate 200 --min-bytes 20 --max-bytes 3000 \
    --big-every 150 --big-bytes 200000 --log "$T/acks.log"

restores=0 bad=0 prev=0 crashed=0 injected_total=0 daemons=0
declare -a summary=()
check_restore() { # LABEL: restore the replica as it is now and check it
    local line rc m src
    rm -f "$T/r.db"
    restores=$((restores + 1))
    if ! "$LITECAST" restore -o "$T/r.db" "file://$REP" 2>"$T/restore.err"; then
        # before the first snapshot there is nothing to restore; anything else is a failure
        if grep -q 'no matching backups' "$T/restore.err" && [ "$prev" = 0 ]; then return 0; fi
        bad=$((bad + 1)); diag "$1: restore failed: $(restore_err "$T/restore.err")"; return 0
    fi
    src=$(src_max "$DB") # after the restore: the writer keeps committing meanwhile
    line=$(db_check "$T/r.db" --upto); rc=$?
    m=$(echo "$line" | field max)
    if [ $rc -ne 0 ] || [ "${m:-0}" -gt "${src:-0}" ] || [ "${m:-0}" -lt "$prev" ]; then
        bad=$((bad + 1)); diag "$1: restore $line; source max $src; previous restore max $prev"
        [ "${LC_KEEP:-0}" = 1 ] && cp -r "$REP" "$T/badrep-$restores"
    fi
    [ "${m:-0}" -gt "$prev" ] && prev=$m
    return 0
}

# run_profile NAME SECONDS RULES PATHS [HOOK]: the daemon under the shim for SECONDS, a
# restore every ~0.5 s, then SIGTERM. HOOK, if given, runs instead of the plain wait: the
# shim then injects only while $T/ctl exists (LC_FAULT_CTL), which HOOK controls.
run_profile() {
    local name=$1 secs=$2 rules=$3 paths=$4 hook=${5:-} rc end n warns
    : > "$T/faults.log"
    rm -f "$T/ctl"
    start_bg daemon env LD_PRELOAD="$T/faultshim.so" LC_FAULT="$rules" \
        LC_FAULT_SEED=$((SEED + daemons)) LC_FAULT_PATH="$paths" LC_FAULT_LOG="$T/faults.log" \
        LC_FAULT_CTL="${hook:+$T/ctl}" "$LITECAST" replicate -c "${CFG:-$T/lc.ini}"
    daemons=$((daemons + 1))
    if [ -n "$hook" ]; then
        "$hook"
    else
        end=$(( $(date +%s) + secs ))
        while [ "$(date +%s)" -lt "$end" ] && kill -0 "${_pids[daemon]}" 2>/dev/null; do
            sleep 0.5
            check_restore "$name"
        done
    fi
    if ! kill -0 "${_pids[daemon]}" 2>/dev/null; then
        crashed=$((crashed + 1)); diag "$name: the daemon died: $(tail -n 3 "$T/daemon.log")"
    fi
    stop_bg daemon TERM; rc=$?
    cat "$T/daemon.log" >> "$T/history.txt"
    n=$(wc -l < "$T/faults.log")
    warns=$(grep -c 'level=warn' "$T/daemon.log")
    injected_total=$((injected_total + n))
    summary+=("$name: $n faults, $warns warnings")
    t_is "$rc" 0 "$name: the daemon ran under $n injected faults and exits 0 on SIGTERM"
    LAST_FAULTS=$n LAST_WARNS=$warns
}

both="$META:$REP"
# disk full for 2 s (every eligible call fails with ENOSPC), then space again: the daemon
# must recover by itself, without a restart, within its backoff (at most ~3 s here)
STORM_RECOVERED=1
storm() {
    local before after
    sleep 1
    : > "$T/ctl"
    sleep 1; check_restore disk-full; sleep 1
    rm -f "$T/ctl"
    before=$(wc -l < "$T/faults.log")
    sleep 0.2
    after=$(grep -c 'wal segment written' "$T/daemon.log")
    if ! wait_for 10 bash -c "[ \$(grep -c 'wal segment written' '$T/daemon.log') -gt $after ]"; then
        STORM_RECOVERED=0; diag "disk-full: no segment written within 10 s after the storm ($before faults)"
    fi
    check_restore disk-full
}
cycle() {
    run_profile mixed "$PROFILE_SECS" \
        "pwrite:eio:0.02,fsync:eio:0.05,rename:enospc:0.02,write:short:0.05,open:eio:0.01,write:eio:0.01" "$both"
    t_ok "mixed: faults were injected ($LAST_FAULTS) and logged with retries" \
        test "$LAST_FAULTS" -gt 0 -a "$LAST_WARNS" -gt 0
    run_profile replica-heavy "$PROFILE_SECS" \
        "write:enospc:0.1,fsync:eio:0.2,rename:eio:0.2,open:enospc:0.05,mkdir:eio:0.2,close:eio:0.05" "$REP"
    t_ok "replica-heavy: the replica logged failures and retried" \
        grep -q 'replica sync failed; retrying' "$T/daemon.log"
    run_profile shadow-heavy "$PROFILE_SECS" \
        "pwrite:eio:0.1,pwrite:short:0.1,ftruncate:eio:0.5,open:eio:0.05,rename:eio:0.1,fsync:eio:0.1,unlink:eio:0.3,write:enospc:0.1" "$META"
    t_ok "shadow-heavy: capture failures were logged" grep -q 'level=warn' "$T/daemon.log"
    run_profile benign "$PROFILE_SECS" \
        "write:eintr:0.2,write:short:0.2,pwrite:eintr:0.2,pwrite:short:0.2" "$both"
    t_is "$(grep -c 'level=warn' "$T/daemon.log")" 0 \
        "benign: $LAST_FAULTS EINTRs and short writes were absorbed without a single failure"
    run_profile exact "$PROFILE_SECS" \
        "rename:eio:#3,fsync:enospc:#5,pwrite:eio:#7,open:eio:#11,ftruncate:eio:#1,mkdir:eio:#2,write:eio:#13,unlink:eio:#1" "$both"
    STORM_RECOVERED=1
    run_profile disk-full 0 \
        "write:enospc:1,pwrite:enospc:1,open:enospc:1,rename:enospc:1,fsync:enospc:1,mkdir:enospc:1,ftruncate:enospc:1" "$both" storm
    t_ok "disk-full: 2 s of ENOSPC on every call ($LAST_FAULTS faults), then the replica shipped again without a restart" \
        test "$STORM_RECOVERED" = 1 -a "$LAST_FAULTS" -gt 0
    stranded
}

# Stranded at an index boundary: every attempt to create the first segment of shadow index
# hi+2 fails. The replica ships index hi+1 whole, moves on to hi+2 and fails there; the
# daemon drops its local copy of hi+1 (nothing needs it any more). After a restart without
# the shim, the store says "end of index hi+1", which the shadow no longer holds: the
# replica must start over (a snapshot) and ship again, not resume in a loop.
stranded() {
    local gen hi target resumed
    gen=$(cat "$META/generation" 2>/dev/null)
    hi=$(ls "$META/generations/$gen/wal" 2>/dev/null | sort | tail -n 1 | cut -c1-8)
    target=$(printf '%08x' $(( 16#${hi:-0} + 2 )))
    # no periodic snapshot here: a new one would hide the stranded position
    grep -v '^snapshot-interval' "$T/lc.ini" > "$T/lc-nosnap.ini"
    CFG=$T/lc-nosnap.ini run_profile stranded "$PROFILE_SECS" "open:eio:1" \
        "$REP/generations/$gen/wal/${target}_00000000.wal.lz4*"
    t_ok "stranded: the first segment of index $target could never be written ($LAST_FAULTS faults)" \
        test "$LAST_FAULTS" -gt 0
    start_bg daemon "$LITECAST" replicate -c "$T/lc-nosnap.ini"
    wait_for 5 grep -q 'wal segment written\|snapshot written' "$T/daemon.log"
    sleep 1
    stop_bg daemon TERM
    cat "$T/daemon.log" >> "$T/history.txt"
    resumed=$(grep -c 'replica position resumed' "$T/daemon.log")
    t_ok "stranded: restarted without the shim, the replica ships again (resumed $resumed times)" \
        grep -q 'wal segment written\|snapshot written' "$T/daemon.log"
    t_ok "stranded: and does not resume over and over ($resumed 'replica position resumed' in ~2 s)" \
        test "$resumed" -le 3
    check_restore "stranded: after the restart"
}
cycle_start=$(date +%s)
cycles=1
cycle
while [ "$BUDGET" -gt 0 ] && [ $(( $(date +%s) - cycle_start )) -lt "$BUDGET" ]; do
    SEED=$((SEED + 1000)); cycles=$((cycles + 1)); cycle
done

# --- without the shim: catch up, stop, compare ------------------------------------------
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
sleep 2
check_restore "clean daemon, writer running"
stop_bg writer TERM
t_is "$?" 0 "the writer never failed while the daemon's I/O did"
sleep 1
stop_bg daemon TERM
t_is "$?" 0 "the clean daemon exits 0 on SIGTERM"
t_is "$crashed" 0 "the daemon never died under faults"
t_is "$bad" 0 "all $restores restores taken under faults passed integrity and held exactly 1..M for an M the source has"
rm -f "$T/r.db"
"$LITECAST" restore -o "$T/r.db" "file://$REP" 2>"$T/restore.err" ||
    diag "final restore failed: $(restore_err "$T/restore.err")"
t_is "$(db_check "$T/r.db")" "$(db_check "$DB")" "after the faults stop, the final restore equals the source"
acked=$(tail -n 1 "$T/acks.log" | cut -d' ' -f1)
t_ok "and holds every acknowledged commit (1..$acked, exactly)" "$TOOLS/lc-dbcheck" "$T/r.db" --upto "$acked"
gens=$(grep -c 'sync: new generation' "$T/history.txt")
for s in "${summary[@]}"; do diag "  $s"; done
diag "faults: $cycles cycles, $daemons daemons, $injected_total injected faults, $acked commits, $restores restores, $bad bad, $crashed crashes, $gens new generations"
done_testing
