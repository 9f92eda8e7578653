# lib.sh: sourced by every integration test (". "$(dirname "$0")/lib.sh"), from any cwd.
#
# Gives a test: TAP output (plan, ok, t_ok, t_is, t_like, diag, done_testing); a fresh temp
# dir $T, removed at exit unless LC_KEEP=1; background processes (start_bg/stop_bg) that are
# always killed at exit, with their process groups; polling helpers (wait_for, wait_log);
# and paths: ROOT, LITECAST, TOOLS, LITESTREAM.
#
# Strict-mode safe: the lib sets -u; its helpers also work under set -e and pipefail, which
# a test may turn on (a failing check is reported, it never aborts the test). A test that
# replaces the EXIT trap must call _cleanup from its own.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LITECAST=$ROOT/litecast
TOOLS=$ROOT/build/tools
LITESTREAM=$ROOT/.deps/node_modules/@flydotio/litestream-linux-x64/litestream
T=$(mktemp -d /tmp/lc.XXXXXX) || { echo "Bail out! cannot create a temp dir"; exit 1; }

_n=0        # tests run
_failed=0   # tests failed
_planned=0  # plan announced up front (0: print it at done_testing)
declare -A _pids=()   # NAME -> PID of a running background process
_groups=()            # every process group started, stopped or not

# Kill everything started through start_bg (whole process groups: a daemon's --exec child,
# a pipeline) and remove $T. Safe to call twice; keeps the shell's exit status.
_cleanup() {
    local pg pid
    for pg in "${_groups[@]}"; do
        kill -KILL -- "-$pg" 2>/dev/null || true
    done
    for pid in "${_pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    _groups=()
    _pids=()
    if [ -d "$T" ]; then
        if [ "${LC_KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
    fi
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- TAP ------------------------------------------------------------------------------------
plan() { _planned=$1; echo "1..$1"; }
diag() { local l; while IFS= read -r l; do echo "# $l"; done <<< "$*"; }
bail_out() { echo "Bail out! $*"; exit 1; } # the harness itself cannot go on

# ok STATUS DESC: one test result from an exit status (0 = ok). Like every check below it
# returns 0 even when the test fails, so set -e never cuts a test script short.
ok() {
    _n=$((_n + 1))
    if [ "$1" -eq 0 ] 2>/dev/null; then
        echo "ok $_n - $2"
    else
        echo "not ok $_n - $2"
        _failed=$((_failed + 1))
    fi
}

# t_ok DESC CMD...: CMD's exit status is the result (its output is kept out of the TAP
# stream; on failure its last lines are shown as diagnostics)
t_ok() {
    local d=$1 rc=0
    shift
    "$@" > "$T/.t_ok.out" 2>&1 || rc=$?
    ok "$rc" "$d"
    if [ "$rc" -ne 0 ]; then
        diag "command: $* (exit $rc)"
        if [ -s "$T/.t_ok.out" ]; then diag "$(tail -n 10 "$T/.t_ok.out")"; fi
    fi
    return 0
}

# t_skip DESC REASON: a test that cannot run here, reported as a TAP skip (never as a pass
# of what it would have checked)
t_skip() { _n=$((_n + 1)); echo "ok $_n - $1 # SKIP $2"; }

# t_is GOT WANT DESC
t_is() {
    if [ "$1" = "$2" ]; then ok 0 "$3"; return 0; fi
    ok 1 "$3"
    diag "got:  '$1'"
    diag "want: '$2'"
}

# t_like STRING REGEX DESC (bash ERE)
t_like() {
    if [[ "$1" =~ $2 ]]; then ok 0 "$3"; return 0; fi
    ok 1 "$3"
    diag "got: '${1:0:600}'"
    diag "want match: $2"
}

# done_testing: last line of a test. Prints the plan if none was given; exits 1 if a test
# failed, none ran, or the count differs from the plan (showing the background logs).
done_testing() {
    local f
    [ "$_planned" -eq 0 ] && echo "1..$_n"
    if [ "$_n" -eq 0 ]; then diag "no tests ran"; exit 1; fi
    if [ "$_planned" -ne 0 ] && [ "$_planned" -ne "$_n" ]; then
        diag "planned $_planned tests but ran $_n"
        _failed=$((_failed + 1))
    fi
    if [ "$_failed" -ne 0 ]; then
        diag "$_failed of $_n failed; logs in $T:"
        for f in "$T"/*.log; do
            [ -f "$f" ] || continue
            diag "== $f"
            tail -n 15 "$f" | sed 's/^/#   /'
        done
        exit 1
    fi
    exit 0
}

# --- background processes -------------------------------------------------------------------
# start_bg NAME CMD...: run CMD (a program or a shell function) in the background, in its
# own process group and with default signal dispositions (job control is on for the fork:
# without it bash starts background jobs with SIGINT ignored); stdin from /dev/null, stdout
# and stderr to $T/NAME.log, PID in $T/NAME.pid. Env prefixes work: VAR=x start_bg NAME CMD
start_bg() {
    local name=$1 pid monitor=0
    shift
    [[ $- == *m* ]] && monitor=1
    set -m
    "$@" < /dev/null > "$T/$name.log" 2>&1 &
    pid=$!
    [ "$monitor" = 1 ] || set +m
    _pids[$name]=$pid
    _groups+=("$pid")
    echo "$pid" > "$T/$name.pid"
}

# bg_pid NAME: the PID of a running background process
bg_pid() { echo "${_pids[$1]:-}"; }

# stop_bg NAME [SIGNAL|wait]: send SIGNAL (default TERM) to the process (not its group),
# wait up to LC_STOP_TIMEOUT seconds (default 15: longer than litecast's own 10 s shutdown
# bound), then SIGKILL. "wait" sends nothing and waits without limit for it to exit by itself.
# Returns its exit status (128+N if killed by signal N); 127 for an unknown NAME.
stop_bg() {
    local name=$1 sig=${2:-TERM} pid=${_pids[$1]:-} rc=0 deadline
    [ -n "$pid" ] || { diag "stop_bg: no process named $name"; return 127; }
    if [ "$sig" != wait ]; then
        kill -"$sig" "$pid" 2>/dev/null || true
        deadline=$(( $(_now_ms) + ${LC_STOP_TIMEOUT:-15} * 1000 ))
        while kill -0 "$pid" 2>/dev/null && [ "$(_now_ms)" -lt "$deadline" ]; do
            sleep 0.02
        done
        if kill -0 "$pid" 2>/dev/null; then
            diag "stop_bg: $name (pid $pid) ignored SIG$sig; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || rc=$?
    unset "_pids[$name]"
    return "$rc"
}

# --- polling --------------------------------------------------------------------------------
_now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $(( ${t:0:-3} )); }
_sec_to_ms() { # "1", "0.5", "2.25" -> milliseconds
    local s=$1 i f
    i=${s%%.*}; f=
    [ "$s" != "$i" ] && f=${s#*.}
    f=${f}000
    echo $(( 10#${i:-0} * 1000 + 10#${f:0:3} ))
}

# wait_for SECONDS CMD...: run CMD (quietly) every 20 ms until it succeeds; 1 on timeout.
# SECONDS may be fractional.
wait_for() {
    local deadline
    deadline=$(( $(_now_ms) + $(_sec_to_ms "$1") ))
    shift
    while :; do
        "$@" > /dev/null 2>&1 && return 0
        [ "$(_now_ms)" -ge "$deadline" ] && return 1
        sleep 0.02
    done
}

# wait_log NAME REGEX [SECONDS]: until $T/NAME.log has a line matching REGEX (ERE); default 10 s
wait_log() { wait_for "${3:-10}" grep -Eq -- "$2" "$T/$1.log"; }

# --- files ----------------------------------------------------------------------------------
# write_config FILE <<EOF ... EOF: write stdin to FILE
write_config() { cat > "$1"; }

# db_check DB [--upto [K]]: lc-dbcheck's one line (its errors too, so a failure never
# compares equal to a good line); its exit status
db_check() { "$TOOLS/lc-dbcheck" "$@" 2>&1; }

# fresh_db NAME: a path $T/NAME with no database, -wal, -shm or litecast meta dir there yet
fresh_db() {
    local p=$T/$1
    mkdir -p "$(dirname "$p")"
    rm -rf "$p" "$p-wal" "$p-shm" "$p-journal" "$(dirname "$p")/.$(basename "$p")-litecast"
    echo "$p"
}
