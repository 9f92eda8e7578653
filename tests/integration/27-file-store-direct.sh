#!/usr/bin/env bash
# The file store writes objects with O_DIRECT where the file system takes it: every byte
# arrives intact whatever the size (empty, under, at and over a 4 KiB block and the store's
# 1 MiB buffer), the object does not sit in the page cache afterwards (only its partial
# last block went through it), and when direct I/O is refused (EINVAL at open or at a
# write, or a short write) the store goes on through the page cache without losing a byte.
. "$(dirname "$0")/lib.sh"

cc -shared -fPIC -o "$T/faultshim.so" "$ROOT/tests/tools/faultshim/lc-faultshim.c" -ldl \
    2>"$T/cc.err"
t_is "$?" 0 "the fault shim builds"

REP=$T/rep
mkdir -p "$T/src"
put() { "$TOOLS/lc-storetool" "file://$REP" put "$@"; }
resident() { fincore --bytes --noheadings --output PAGES "$1" | tr -d ' '; }

bad=""
for s in 0 1 4095 4096 4097 1048575 1048576 1048577 3145851; do
    head -c "$s" /dev/urandom > "$T/src/f$s"
    put "k/f$s" "$T/src/f$s" 2>>"$T/put.err" && cmp -s "$T/src/f$s" "$REP/k/f$s" || bad+=" $s"
done
t_is "$bad" "" "objects of 0 B to 3 MiB (block and buffer edges) stored byte for byte"
t_ok "no object left behind as .tmp" bash -c "! find '$REP' -name '*.tmp' | grep -q ."

head -c $((3 << 20)) /dev/urandom > "$T/src/big"
head -c $(((3 << 20) + 777)) /dev/urandom > "$T/src/odd"
if dd if=/dev/zero of="$T/dio.probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
    put k/big "$T/src/big"
    t_is "$(resident "$REP/k/big")" 0 "a 3 MiB object leaves no page in the page cache"
    put k/odd "$T/src/odd"
    t_is "$(resident "$REP/k/odd")" 1 "3 MiB + 777 B: only the partial last block is cached"
    t_ok "and reads back byte for byte" cmp "$T/src/odd" "$REP/k/odd"
else
    t_skip "a 3 MiB object leaves no page in the page cache" "no O_DIRECT on $(stat -f -c %T "$T")"
    t_skip "3 MiB + 777 B: only the partial last block is cached" "no O_DIRECT here"
    t_skip "and reads back byte for byte" "no O_DIRECT here"
fi

# shim_put NAME RULES: put $T/src/odd as k/NAME with the shim on the replica's files
shim_put() {
    env LD_PRELOAD="$T/faultshim.so" LC_FAULT="$2" LC_FAULT_PATH="$REP" \
        LC_FAULT_LOG="$T/$1.faults" "$TOOLS/lc-storetool" "file://$REP" put "k/$1" \
        "$T/src/odd" 2>"$T/$1.err"
}
for c in "open-einval open:einval:#1" "write-einval write:einval:#2" \
         "write-short write:short:0.5"; do
    set -- $c
    shim_put "$1" "$2"
    t_is "$?" 0 "$1: the put succeeds"
    t_ok "$1: the shim injected a fault" test -s "$T/$1.faults"
    t_ok "$1: the object is byte for byte the source" cmp "$T/src/odd" "$REP/k/$1"
done
# a refused open is remembered: the store then writes buffered, the object is all cached
t_is "$(resident "$REP/k/open-einval")" 769 "open-einval: written through the page cache"
# a write error that is not direct I/O's (or EINVAL again once buffered) fails the put:
# one line naming the .tmp file and the cause, and nothing stored under the key
shim_put eio-all "write:eio:#1+"
t_is "$?" 1 "EIO on every write: the put fails"
t_like "$(cat "$T/eio-all.err")" "write .*k/eio-all\.tmp: Input/output error" \
    "EIO: the error names the .tmp file and the cause"
t_ok "EIO: nothing stored under the key" bash -c "! ls '$REP/k/eio-all'* 2>/dev/null"
shim_put einval-all "write:einval:#1+"
t_is "$?" 1 "EINVAL on every write, buffered too: the put fails (no endless retry)"
t_like "$(cat "$T/einval-all.err")" "write .*k/einval-all\.tmp: Invalid argument" \
    "EINVAL: the error names the .tmp file and the cause"
t_ok "EINVAL: nothing stored under the key" bash -c "! ls '$REP/k/einval-all'* 2>/dev/null"

done_testing
