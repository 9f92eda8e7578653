#!/usr/bin/env bash
# Under a real supervisor: runit's runsv (started here on a service dir in $T, not as PID 1)
# runs the daemon through the shipped conf/runit/run, its log through conf/runit/log/run
# (svlogd). A SIGKILL mid-write: runsv restarts it with a new PID and the same generation
# continues; `sv down` is SIGTERM, a final sync and exit 0; the replica restores to exactly
# the source. Then `make install` into a prefix: binary, man page, example config.
. "$(dirname "$0")/lib.sh"

if ! command -v runsv > /dev/null || ! command -v sv > /dev/null ||
    ! command -v svlogd > /dev/null; then
    echo "1..1"
    echo "not ok 1 - runit (runsv, sv, svlogd) is installed: run scripts/deps --test"
    exit 1
fi

DB=$T/app.db
REP=$T/rep
SV=$T/sv/litecast       # the service directory runsv supervises
SVLOG=$T/svlog          # svlogd's directory: the daemon's log is $SVLOG/current
META=$T/.app.db-litecast

cat > "$T/lc.ini" <<CFG
[litecast]
fallback-interval = 1s

[db app]
path = $DB
min-checkpoint-pages = 64
max-checkpoint-pages = 1024

[replica local]
db = app
url = file://$REP
CFG

# The shipped run scripts, pointed at this test's binary, config and log directory; a
# finish script records how each run ended: "EXIT_CODE SIGNAL" (-1 N when killed by N).
mkdir -p "$SV/log"
sed -e "s|/usr/local/bin/litecast|\"$LITECAST\"|" -e "s|/etc/litecast.ini|\"$T/lc.ini\"|" \
    "$ROOT/conf/runit/run" > "$SV/run"
sed -e "s|/var/log/litecast|\"$SVLOG\"|g" "$ROOT/conf/runit/log/run" > "$SV/log/run"
printf '#!/bin/sh\necho "$1 $2" >> "%s"\n' "$T/exits" > "$SV/finish"
chmod 0755 "$SV/run" "$SV/log/run" "$SV/finish"

svpid() { # the PID runsv reports for the service (nothing when it is not running)
    sv status "$SV" 2> /dev/null | sed -n 's/^run: [^(]*(pid \([0-9]*\)).*/\1/p'
}
svlog() { cat "$SVLOG/current" 2> /dev/null; }
gen() { cat "$META/generation" 2> /dev/null; }
restarted() { local p; p=$(svpid); [ -n "$p" ] && [ "$p" != "$pid1" ]; }
# log lines of the second run on
after_restart() { svlog | awk '/litecast started/ { n++ } n >= 2'; }
caught_up() { # the replica restores to exactly the source, now
    rm -f "$T/probe.db"
    "$LITECAST" restore -o "$T/probe.db" "file://$REP" 2> /dev/null &&
        [ "$(db_check "$T/probe.db")" = "$(db_check "$DB")" ]
}
# EXIT: ask runsv to take the service and its logger down and exit; whatever is left of
# its process group (runsv, litecast, svlogd) is then killed by _cleanup.
sv_cleanup() {
    local p
    p=$(bg_pid runsv)
    [ -n "$p" ] || return 0
    sv exit "$SV" > /dev/null 2>&1 || true
    wait_for 5 bash -c "! kill -0 $p" || diag "runsv did not exit on 'sv exit'; killing it"
}
trap 'sv_cleanup; _cleanup' EXIT

t_ok "run scripts generated from conf/runit/run and conf/runit/log/run" \
    grep -qF "exec \"$LITECAST\" replicate -c \"$T/lc.ini\"" "$SV/run"

# --- runsv starts the daemon ------------------------------------------------------------
"$TOOLS/lc-writer" "$DB" --count 1 2> /dev/null
start_bg runsv env -u NOTIFY_SOCKET -u WATCHDOG_USEC runsv "$SV"
t_ok "runsv starts litecast; its log reaches svlogd" wait_for 10 grep -q 'snapshot written' "$SVLOG/current"
pid1=$(svpid)
t_is "$(readlink "/proc/${pid1:-0}/exe" 2> /dev/null)" "$(readlink -f "$LITECAST")" \
    "sv status names the litecast process itself (run exec'd it)"
g1=$(gen)
t_like "$g1" '^[0-9a-f]{16}$' "a generation was started"

# --- SIGKILL mid-write: runsv restarts it, the generation continues ------------------------
start_bg writer "$TOOLS/lc-writer" "$DB" --rate 100 --count 600 --log "$T/commits.log" \
    --autocheckpoint 0
kill_at=$((100 + RANDOM % 300))   # a different moment each run: mid-copy, mid-checkpoint...
wait_for 10 bash -c "[ \$(wc -l < '$T/commits.log') -ge $kill_at ]"
t_ok "segments shipped while the writer runs" wait_for 5 grep -q 'wal segment written' "$SVLOG/current"
kill -KILL "$pid1"
killed_at=$(wc -l < "$T/commits.log")
t_ok "runsv restarted litecast with a new PID" wait_for 10 restarted
pid2=$(svpid)
t_ok "the new PID ($pid2, was $pid1) is litecast" \
    test "$(readlink "/proc/${pid2:-0}/exe" 2> /dev/null)" = "$(readlink -f "$LITECAST")"
t_ok "the restarted daemon is up and logging" \
    wait_for 10 bash -c "[ \$(grep -c 'litecast started' '$SVLOG/current') -ge 2 ]"
t_ok "killed mid-write (commit $killed_at of 600)" test "$killed_at" -lt 600
t_is "$(head -n 1 "$T/exits" 2> /dev/null)" "-1 9" "runsv saw the first run end by SIGKILL"
stop_bg writer wait
t_is "$?" 0 "writer: 600 commits, no error while litecast was killed and restarted"
t_ok "replica caught up after the writer stopped" wait_for 15 caught_up
t_is "$(gen)" "$g1" "the generation file is unchanged"
post=$(after_restart)
[[ -n "$post" && "$post" != *"new generation"* ]]
ok $? "no 'new generation' logged after the restart"
t_like "$post" 'replica position resumed' "the replica resumed its position"
t_is "$(ls "$REP/generations")" "$g1" "the replica holds that one generation only"

# --- sv down: SIGTERM, final sync, exit 0 ----------------------------------------------------
sv -w 20 -v down "$SV" > "$T/sv-down.out" 2>&1
t_is "$?" 0 "sv down: the service went down within 20 s"
t_ok "runsv recorded the run's end" wait_for 5 bash -c "[ \$(wc -l < '$T/exits') -ge 2 ]"
t_is "$(tail -n 1 "$T/exits")" "0 0" "SIGTERM from sv down: exit status 0"
t_ok "final sync logged" grep -q 'shutting down: final sync' "$SVLOG/current"
t_ok "and runsv did not restart it" bash -c "sv status '$SV' | grep -q '^down:'"
"$LITECAST" restore -o "$T/out.db" "file://$REP" 2> "$T/restore.log"
t_is "$?" 0 "restore exits 0"
out=$(db_check "$T/out.db")
t_like "$out" '^integrity=ok' "restored database passes integrity_check"
t_is "$out" "$(db_check "$DB")" "restored content equals the source"
pg=$(bg_pid runsv)
sv_cleanup
stop_bg runsv
t_ok "sv exit: runsv and everything it started are gone" bash -c "! pgrep -g '$pg'"

# --- make install ------------------------------------------------------------------------------
P=$T/prefix
make --no-print-directory -C "$ROOT" install PREFIX="$P" > "$T/install.log" 2>&1
t_is "$?" 0 "make install PREFIX=\$T/prefix"
t_is "$(stat -c %a "$P/bin/litecast" 2> /dev/null)" 755 "bin/litecast installed, mode 0755"
t_like "$("$P/bin/litecast" version 2>&1)" '^litecast [0-9]' "the installed binary runs"
t_ok "man page installed as share/man/man1/litecast.1" \
    cmp "$ROOT/conf/litecast.1" "$P/share/man/man1/litecast.1"
t_is "$(MANPATH=$P/share/man man -w litecast 2> /dev/null)" "$P/share/man/man1/litecast.1" \
    "man finds it under the prefix"
t_ok "the man page renders without groff warnings" \
    groff -man -ww -z "$P/share/man/man1/litecast.1"
t_ok "example config installed as share/litecast/litecast.ini" \
    cmp "$ROOT/conf/litecast.ini" "$P/share/litecast/litecast.ini"
t_ok "the installed example config passes --check" \
    "$P/bin/litecast" replicate --check -c "$P/share/litecast/litecast.ini"
make --no-print-directory -C "$ROOT" install PREFIX=/usr DESTDIR="$T/stage" >> "$T/install.log" 2>&1
t_ok "DESTDIR staging: make install PREFIX=/usr DESTDIR=\$T/stage" \
    test -x "$T/stage/usr/bin/litecast" -a -f "$T/stage/usr/share/man/man1/litecast.1" \
    -a -f "$T/stage/usr/share/litecast/litecast.ini"

done_testing
