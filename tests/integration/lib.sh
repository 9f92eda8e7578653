# lib.sh: sourced by every integration test. TAP output, a fresh temp dir, background
# processes that are always cleaned up, and polling helpers. Run from anywhere.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LITECAST=$ROOT/litecast
TOOLS=$ROOT/build/tools
LITESTREAM=$ROOT/.deps/node_modules/@flydotio/litestream-linux-x64/litestream
T=$(mktemp -d /tmp/lc.XXXXXX)
_n=0 _failed=0 _planned=0
declare -A _pids=()

_cleanup() {
    for name in "${!_pids[@]}"; do
        kill -KILL "${_pids[$name]}" 2>/dev/null
    done
    wait 2>/dev/null
    [ "${LC_KEEP:-0}" = 1 ] && echo "# kept $T" || rm -rf "$T"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

plan() { _planned=$1; echo "1..$1"; }
diag() { echo "# $*"; }
_result() { # status desc
    _n=$((_n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $_n - $2"; else echo "not ok $_n - $2"; _failed=$((_failed + 1)); fi
}
t_ok() { local d=$1; shift; "$@" >/dev/null 2>&1; _result $? "$d"; }
t_is() {
    if [ "$1" = "$2" ]; then _result 0 "$3"; else _result 1 "$3"; diag "got:  '$1'"; diag "want: '$2'"; fi
}
t_like() {
    if [[ "$1" =~ $2 ]]; then _result 0 "$3"; else _result 1 "$3"; diag "got: '$(echo "$1" | head -c 600)'"; diag "want match: $2"; fi
}
done_testing() {
    [ "$_planned" -eq 0 ] && echo "1..$_n"
    if [ "$_n" -eq 0 ]; then diag "no tests ran"; exit 1; fi
    if [ "$_failed" -ne 0 ]; then
        diag "$_failed of $_n failed; logs:"
        for f in "$T"/*.log; do [ -f "$f" ] && { diag "== $f"; tail -n 15 "$f" | sed 's/^/#   /'; }; done
        exit 1
    fi
    exit 0
}

# start_bg NAME CMD...: run in the background, output to $T/NAME.log
start_bg() {
    local name=$1; shift
    "$@" > "$T/$name.log" 2>&1 &
    _pids[$name]=$!
    echo $! > "$T/$name.pid"
}
# stop_bg NAME [SIGNAL|wait]: signal (default TERM) and wait up to 15 s; returns its status
stop_bg() {
    local name=$1 sig=${2:-TERM} pid=${_pids[$1]:-} i rc
    [ -n "$pid" ] || return 127
    if [ "$sig" != wait ]; then kill -"$sig" "$pid" 2>/dev/null; fi
    for i in $(seq 1 1500); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
    if [ "$sig" = wait ]; then
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    unset "_pids[$name]"
    return $rc
}
# wait_for SECONDS CMD...: poll every 20 ms until CMD succeeds
wait_for() {
    local deadline=$(( $(date +%s%3N) + ${1%.*} * 1000 )); shift
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ "$(date +%s%3N)" -ge "$deadline" ] && return 1
        sleep 0.02
    done
}
# wait_log NAME REGEX SECONDS: until $T/NAME.log matches
wait_log() { wait_for "${3:-10}" grep -Eq "$2" "$T/$1.log"; }
db_check() { "$TOOLS/lc-dbcheck" "$@" 2>&1; }
fresh_db() { echo "$T/$1"; }
