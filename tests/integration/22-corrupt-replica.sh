#!/usr/bin/env bash
# A damaged replica never restores silently to a wrong database: every kind of damage
# stops the restore with one line naming the object, exit 1, and nothing at -o.
. "$(dirname "$0")/lib.sh"

DB=$T/app.db
REP=$T/replica
cat > "$T/lc.ini" <<CFG
[db app]
path = $DB
min-checkpoint-pages = 16

[replica local]
db = app
url = file://$REP
CFG
"$TOOLS/lc-writer" "$DB" --count 1 2>/dev/null
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
wait_log daemon 'snapshot written' 5
"$TOOLS/lc-writer" "$DB" --count 300 --rate 300 --min-bytes 100 --max-bytes 4000 \
    --autocheckpoint 0 2>/dev/null
sleep 1
stop_bg daemon TERM
gen=$(ls "$REP/generations")
W=generations/$gen/wal
"$LITECAST" restore -o "$T/good.db" "file://$REP" 2>/dev/null
t_is "$(db_check "$T/good.db")" "$(db_check "$DB")" "the undamaged replica restores"
# an index (after the snapshot's) with at least three segments
idx=$(ls "$REP/$W" | sed 's/_.*//' | sort | uniq -c | awk '$1 >= 3 {print $2}' | sed -n 2p)
t_ok "a WAL index with three or more segments exists" test -n "$idx"
segs=($(ls "$REP/$W" | grep "^${idx}_" | sort))

# damage NAME PATTERN CMD...: copy the replica, damage it, restore, check
damage() {
    local name=$1 want=$2; shift 2
    rm -rf "$T/bad" "$T/bad.db"; cp -a "$REP" "$T/bad"
    (cd "$T/bad" && "$@")
    "$LITECAST" restore -o "$T/bad.db" "file://$T/bad" 2>"$T/bad.err"
    local rc=$?
    t_is "$rc" 1 "$name: exit 1"
    t_like "$(cat "$T/bad.err")" "$want" "$name: error names the object"
    t_is "$(grep -c "level=error" "$T/bad.err")" 1 "$name: one error line"
    t_ok "$name: nothing left at -o" bash -c "! ls '$T'/bad.db* 2>/dev/null | grep -q ."
}
recompress() { # FILE SED-EXPR-on-hex: decompress, patch bytes at an offset, recompress
    lz4 -d -q -c "$1" > "$1.raw" && printf "$3" | dd of="$1.raw" bs=1 seek="$2" conv=notrunc 2>/dev/null &&
        lz4 -q -c "$1.raw" > "$1" && rm -f "$1.raw"
}
damage "missing initial segment" "${idx}_00000000.wal.lz4|initial" rm "$W/${segs[0]}"
damage "gap in offsets" "${segs[2]}|gap" rm "$W/${segs[1]}"
nxt=$(printf '%08x' $((16#$idx + 1)))
damage "missing WAL index" "missing wal index.*$nxt|$nxt" bash -c "rm $W/${nxt}_*"
damage "flipped byte in a page (checksum break)" "${segs[1]}|checksum" \
    recompress "$W/${segs[1]}" 200 '\xff\xee'
damage "salt change" "${segs[1]}|salt" recompress "$W/${segs[1]}" 8 '\x01\x02\x03\x04'
damage "truncated lz4" "${segs[1]}" truncate -s 20 "$W/${segs[1]}"
damage "not lz4 at all" "${segs[1]}" bash -c "head -c 500 /dev/urandom > $W/${segs[1]}"
damage "corrupt snapshot" "snapshot" bash -c "truncate -s 30 generations/$gen/snapshots/*.lz4"

done_testing
