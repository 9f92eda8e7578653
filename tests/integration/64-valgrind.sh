#!/usr/bin/env bash
# Memory errors and leaks under valgrind (memcheck), in the real programs on their real
# paths: the daemon through a replicate cycle (a writer commits, checkpoints and WAL
# restarts happen, a SIGHUP reload adds a replica, a second one is invalid, SIGTERM), then
# `litecast restore` of the good replica and of damaged ones, the listings, and a bad
# config. Every run must report no errors and no definitely lost blocks: valgrind's own
# exit status 99 (--error-exitcode) would replace the program's, so each run's status is
# compared with what the program itself must return (0, 1 or 2), and its log is checked.
# `make check-valgrind` runs this test alone.
. "$(dirname "$0")/lib.sh"

if ! command -v valgrind > /dev/null; then
    echo "Bail out! valgrind not installed (scripts/deps --test installs it)"
    exit 1
fi
VG_TIMEOUT=${VG_TIMEOUT:-180}
export LC_STOP_TIMEOUT=${LC_STOP_TIMEOUT:-90} # SIGTERM to exit, slowed down by valgrind

VG=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --num-callers=30)

# vg NAME CMD...: CMD under valgrind, log in $T/vg-NAME.log; CMD's (or valgrind's) status
vg() {
    local name=$1
    shift
    timeout "$VG_TIMEOUT" "${VG[@]}" --log-file="$T/vg-$name.log" "$@"
}

# vg_clean NAME: the valgrind log shows no error and nothing definitely lost
vg_clean() {
    local log=$T/vg-$1.log
    t_ok "$1: valgrind reports 0 errors" grep -q 'ERROR SUMMARY: 0 errors' "$log"
    t_ok "$1: no definitely lost blocks" \
        bash -c "! grep -Eq 'definitely lost: [1-9]' '$log'"
    if ! grep -q 'ERROR SUMMARY: 0 errors' "$log" || grep -Eq 'definitely lost: [1-9]' "$log"; then
        diag "$(grep -v '^==[0-9]*== *$' "$log" | head -n 60)"
    fi
}

DB=$T/app.db
REP=$T/replica
write_cfg() {
    cat > "$T/lc.ini" <<CFG
[litecast]
fallback-interval = 250ms
shutdown-timeout = 30s

[db app]
path = $DB
min-checkpoint-pages = 16
max-checkpoint-pages = 64
checkpoint-interval = 1s

[replica local]
db = app
url = file://$REP
CFG
}
write_cfg
"$TOOLS/lc-writer" "$DB" --count 1 2>/dev/null

# --- the daemon -------------------------------------------------------------------------------
# valgrind runs litecast in its own process: signals sent to it reach the daemon
start_bg daemon "${VG[@]}" --log-file="$T/vg-daemon.log" "$LITECAST" replicate -c "$T/lc.ini"
t_ok "the daemon starts under valgrind" wait_log daemon 'ready' 60
"$TOOLS/lc-writer" "$DB" --count 200 --rate 100 --min-bytes 100 --max-bytes 3000 \
    --autocheckpoint 0 2> "$T/writer.log"
t_is "$?" 0 "a writer commits 200 transactions meanwhile"
# a reload that adds a replica, then one that is invalid
cat >> "$T/lc.ini" <<CFG

[replica second]
db = app
url = file://$T/replica2
CFG
kill -HUP "$(bg_pid daemon)"
t_ok "SIGHUP: the reload adds a replica" wait_log daemon 'configuration reloaded' 30
t_ok "the added replica is written" \
    wait_for 30 bash -c "ls '$T'/replica2/generations/*/snapshots/*.lz4"
echo "[db broken" >> "$T/lc.ini"
kill -HUP "$(bg_pid daemon)"
t_ok "SIGHUP: an invalid file is reported" wait_log daemon 'reload failed' 30
"$TOOLS/lc-writer" "$DB" --count 20 --autocheckpoint 0 2>/dev/null
sleep 2
stop_bg daemon TERM
t_is "$?" 0 "SIGTERM: the daemon exits 0 (not valgrind's 99)"
vg_clean daemon
write_cfg

# --- restores ----------------------------------------------------------------------------------
vg restore-good "$LITECAST" restore -o "$T/good.db" "file://$REP" 2> "$T/restore-good.err"
t_is "$?" 0 "restore of the good replica: exit 0"
t_is "$(db_check "$T/good.db")" "$(db_check "$DB")" "it holds every commit of the source"
vg_clean restore-good
vg restore-cfg "$LITECAST" restore -c "$T/lc.ini" -o "$T/good2.db" --index 1 "$DB" \
    2> "$T/restore-cfg.err"
t_is "$?" 0 "restore through the config, up to --index 1: exit 0"
vg_clean restore-cfg

gen=$(ls "$REP/generations")
W=generations/$gen/wal
S=generations/$gen/snapshots
idx=$(ls "$REP/$W" | sed 's/_.*//' | sort | uniq -c | awk '$1 >= 3 {print $2}' | sed -n 2p)
segs=($(ls "$REP/$W" | grep "^${idx}_" | sort))
t_ok "an index (after the snapshot's) with three or more segments exists" \
    test "${#segs[@]}" -ge 3

# damaged NAME CMD...: copy the replica, damage it with CMD, restore under valgrind: exit 1
damaged() {
    local name=$1 rc=0
    shift
    rm -rf "$T/bad" "$T"/bad.db*
    cp -a "$REP" "$T/bad"
    (cd "$T/bad" && "$@")
    vg "$name" "$LITECAST" restore -o "$T/bad.db" "file://$T/bad" 2> "$T/$name.err" || rc=$?
    t_is "$rc" 1 "$name: exit 1 (not valgrind's 99)"
    t_is "$(grep -c level=error "$T/$name.err")" 1 "$name: one error line"
    vg_clean "$name"
}
recompress() { # FILE OFFSET BYTES: decompress, patch bytes at OFFSET, recompress
    lz4 -d -q -c "$1" > "$1.raw" && printf "$3" | dd of="$1.raw" bs=1 seek="$2" conv=notrunc 2>/dev/null &&
        lz4 -q -c "$1.raw" > "$1" && rm -f "$1.raw"
}
damaged missing-segment rm "$W/${segs[0]}"
damaged gap rm "$W/${segs[1]}"
damaged checksum recompress "$W/${segs[1]}" 200 '\xff\xee'
damaged truncated-lz4 truncate -s 20 "$W/${segs[1]}"
damaged not-lz4 bash -c "head -c 500 /dev/urandom > $W/${segs[1]}"
damaged corrupt-snapshot bash -c "truncate -s 30 $S/*.snapshot.lz4"
head -c 200000000 /dev/zero | lz4 -q -c > "$T/bomb.lz4"
damaged bomb-snapshot bash -c "for f in $S/*.snapshot.lz4; do cp '$T/bomb.lz4' \$f; done"
damaged bomb-segment cp "$T/bomb.lz4" "$W/${segs[0]}"

# --- listings and a bad config ------------------------------------------------------------------
for cmd in generations snapshots wal; do
    vg "$cmd" "$LITECAST" "$cmd" "file://$REP" > "$T/$cmd.out" 2>&1
    t_is "$?" 0 "litecast $cmd: exit 0"
    vg_clean "$cmd"
done
printf '[db x]\npath = /tmp/a\n[replica y]\ndb = x\nurl = file:///r\nbogus = 1\n' > "$T/bad.ini"
vg badcfg "$LITECAST" replicate --check -c "$T/bad.ini" 2> "$T/badcfg.err"
t_is "$?" 2 "replicate --check of a bad config: exit 2"
vg_clean badcfg

diag "valgrind: $(ls "$T"/vg-*.log | wc -l) runs under memcheck, $(grep -l "ERROR SUMMARY: [1-9]" "$T"/vg-*.log 2>/dev/null | wc -l) with errors, $_failed of $_n checks failed"
done_testing
