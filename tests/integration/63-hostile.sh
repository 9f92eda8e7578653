#!/usr/bin/env bash
# Hostile input: objects, names and files an attacker or a broken tool could leave where
# litecast reads. Nothing crashes, hangs or balloons; every failure is one clear line.
#
#  - replica objects: 50 MB of zeros named as a segment and as a snapshot, an LZ4 frame
#    declaring a content size of 2^62, a block claiming 2 GiB, an empty object, and a
#    decompression bomb (1 GB of zeros through the lz4 CLI, ~4 MB) as snapshot and as
#    segment: restore exits 1 with one error line naming the object, peak RSS stays under
#    200 MB, and nothing is left at -o;
#  - object names that are not ours (uppercase, nine digits, seven digits, an index above
#    0x7fffffff, "..", a newline, a stray .tmp, a directory named as a segment) and symlinks
#    leading out of the replica: listings ignore them and restore gives the good database;
#  - malformed INI (binary data, a 1 MB line, ${A} whose value is "${B}", an unterminated
#    ${, a NUL byte, a file over 1 MiB): one line naming the file and line, exit 2;
#  - a -wal whose header is forged (right magic, wrong checksum) under a running daemon: it
#    logs the bad checksum and keeps replicating its other database;
#  - restore -o into a directory that cannot exist fails cleanly; a restore killed by
#    SIGTERM or SIGINT mid-way leaves nothing at -o (exit 143 / 130).
. "$(dirname "$0")/lib.sh"

RSS_MAX_KB=204800
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
"$TOOLS/lc-writer" "$DB" --count 150 --rate 500 --min-bytes 100 --max-bytes 3000 \
    --autocheckpoint 0 2>/dev/null
sleep 0.5
stop_bg daemon TERM
gen=$(ls "$REP/generations")
W=generations/$gen/wal
S=generations/$gen/snapshots
"$LITECAST" restore -o "$T/good.db" "file://$REP" 2>/dev/null
good=$(db_check "$T/good.db")
t_is "$good" "$(db_check "$DB")" "the undamaged replica restores"
# the first index after the snapshot's, and its first segment
idx=$(ls "$REP/$W" | sed 's/_.*//' | sort -u | sed -n 2p)
t_ok "the replica has a second WAL index" test -n "$idx"

# --- helpers --------------------------------------------------------------------------------
# peak_rss KB_FILE CMD...: run CMD, its peak RSS in KiB to KB_FILE; CMD's exit status
peak_rss() {
    local out=$1 pid rc=0 hwm=0 v
    shift
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -o "$out.time" -f %M "$@" || rc=$?
        tail -n 1 "$out.time" > "$out"
        return "$rc"
    fi
    "$@" & pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        v=$(sed -n 's/^VmHWM: *\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null)
        [ -n "$v" ] && hwm=$v
        sleep 0.01
    done
    wait "$pid" || rc=$?
    echo "$hwm" > "$out"
    return "$rc"
}

# xxh32 BYTE...: XXH32 (seed 0) of byte values under 16 bytes: an LZ4 frame header checksum
xxh32() {
    local P1=2654435761 P2=2246822519 P3=3266489917 P4=668265263 P5=374761393 M=0xffffffff
    local -a b=("$@")
    local n=${#b[@]} i=0 h w
    h=$(( (P5 + n) & M ))
    while (( i + 4 <= n )); do
        w=$(( b[i] | b[i+1] << 8 | b[i+2] << 16 | b[i+3] << 24 ))
        h=$(( (h + w * P3) & M ))
        h=$(( ((h << 17 | h >> 15) & M) * P4 & M ))
        i=$(( i + 4 ))
    done
    while (( i < n )); do
        h=$(( (h + b[i] * P5) & M ))
        h=$(( ((h << 11 | h >> 21) & M) * P1 & M ))
        i=$(( i + 1 ))
    done
    h=$(( h ^ h >> 15 )); h=$(( h * P2 & M ))
    h=$(( h ^ h >> 13 )); h=$(( h * P3 & M ))
    echo $(( h ^ h >> 16 ))
}
octal() { local b; for b in "$@"; do printf '\\%03o' "$b"; done; } # bytes -> printf escapes

# hostile NAME WANT CMD...: copy the replica, run CMD in the copy, restore; exit 1, one
# error line matching WANT, peak RSS under 200 MB, nothing left at -o
hostile() {
    local name=$1 want=$2 rc=0 rss
    shift 2
    rm -rf "$T/bad" "$T"/bad.db*
    cp -a "$REP" "$T/bad"
    (cd "$T/bad" && "$@")
    peak_rss "$T/rss" timeout 60 "$LITECAST" restore -o "$T/bad.db" "file://$T/bad" \
        2> "$T/bad.err" || rc=$?
    rss=$(cat "$T/rss")
    t_is "$rc" 1 "$name: exit 1"
    t_like "$(grep level=error "$T/bad.err")" "$want" "$name: the error names the object"
    t_is "$(grep -vc 'level=info' "$T/bad.err")" 1 "$name: one error line, nothing else"
    t_ok "$name: peak RSS ${rss} KiB < $RSS_MAX_KB KiB" test "${rss:-999999}" -lt "$RSS_MAX_KB"
    t_ok "$name: nothing left at -o" bash -c "! ls '$T'/bad.db* 2>/dev/null | grep -q ."
}

# --- oversized and corrupt objects ----------------------------------------------------------
seg0=$W/${idx}_00000000.wal.lz4
hostile "50 MB of zeros as a segment" "${idx}_00000000.wal.lz4.*bad magic" \
    bash -c "head -c 50000000 /dev/zero > $seg0"
hostile "50 MB of zeros as the snapshot" "[0-9a-f]{8}\.snapshot\.lz4.*bad magic" \
    bash -c "for f in $S/*.snapshot.lz4; do head -c 50000000 /dev/zero > \$f; done"
hostile "an empty segment" "${idx}_00000000.wal.lz4" bash -c ": > $seg0"

# the segment re-framed with a content size of 2^62 in its header (valid header checksum)
lz4 -d -q -c "$REP/$seg0" > "$T/seg.raw"
lz4 -q -B4 --content-size -c "$T/seg.raw" > "$T/seg.cs"
hdr=(0x6c 0x40 0 0 0 0 0 0 0 0x40) # FLG (content size, checksum), BD 64 KiB, size 2^62 LE
hc=$(( ($(xxh32 "${hdr[@]}") >> 8) & 255 ))
{ printf '\004\042\115\030'; printf "$(octal "${hdr[@]}" "$hc")"; tail -c +16 "$T/seg.cs"; } \
    > "$T/huge-size.lz4"
t_ok "the lz4 CLI accepts the huge content-size header (and only then fails the size)" \
    bash -c "lz4 -t -q '$T/huge-size.lz4' 2>&1 | grep -qi 'size'"
hostile "a frame declaring a 2^62-byte content size" "${idx}_00000000.wal.lz4.*content size" \
    cp "$T/huge-size.lz4" "$seg0"

# a block size word claiming 2 GiB after a valid 64 KiB-block frame header
hdr=(0x60 0x40)
hc=$(( ($(xxh32 "${hdr[@]}") >> 8) & 255 ))
{ printf '\004\042\115\030'; printf "$(octal "${hdr[@]}" "$hc")"; printf '\360\377\377\177'
  head -c 100 /dev/zero; } > "$T/huge-block.lz4"
hostile "a block claiming 2 GiB" "${idx}_00000000.wal.lz4" cp "$T/huge-block.lz4" "$seg0"

# a decompression bomb: 1 GB of zeros, about 4 MB compressed
head -c 1000000000 /dev/zero | lz4 -q -c > "$T/bomb.lz4"
diag "bomb: $(stat -c %s "$T/bomb.lz4") bytes, 1000000000 decompressed"
hostile "a 1 GB decompression bomb as the snapshot" "\.snapshot\.lz4.*not a sqlite" \
    bash -c "for f in $S/*.snapshot.lz4; do cp '$T/bomb.lz4' \$f; done"
hostile "a 1 GB decompression bomb as a segment" "${idx}_00000000.wal.lz4.*wal header" \
    cp "$T/bomb.lz4" "$seg0"

# --- names that are not ours, and links out of the replica ----------------------------------
mkdir -p "$T/outside/$gen/snapshots"
head -c 1000 /dev/urandom > "$T/outside/$gen/snapshots/00000000.snapshot.lz4"
touch -d '+1 hour' "$T/outside/$gen/snapshots/00000000.snapshot.lz4"
junk() { head -c 64 /dev/urandom > "$1"; }
rm -rf "$T/bad" "$T"/bad.db*
cp -a "$REP" "$T/bad"
(
    cd "$T/bad/generations" || exit 1
    nxt=$(printf '%08x' $(( $(ls "$gen/wal" | sed 's/_.*//' | sort -u | tail -n 1 | sed 's/^/0x/') + 1 )))
    for g in 0123456789ABCDEF 0123456789abcde 0123456789abcdef0 .0123456789abcdef \
        "0123456789abcdef.tmp"; do
        mkdir -p "$g/snapshots" && junk "$g/snapshots/00000000.snapshot.lz4"
    done
    junk fedcba9876543210                          # a file named as a generation
    ln -s "$T/outside/$gen" ffffffffffffffff        # a generation linked out of the replica
    for n in ffffffff 80000000 0000000A 000000001 1 .00000001 $'00000001\n'; do
        junk "$gen/snapshots/$n.snapshot.lz4"
    done
    junk "$gen/snapshots/00000001.SNAPSHOT.LZ4"
    junk "$gen/snapshots/00000001.snapshot.lz4.tmp"
    junk "$gen/snapshots/..snapshot.lz4"
    mkdir "$gen/snapshots/00000002.snapshot.lz4"   # a directory named as a snapshot
    ln -s "$T/outside/$gen/snapshots/00000000.snapshot.lz4" "$gen/snapshots/00000003.snapshot.lz4"
    for n in "ffffffff_00000000" "80000000_00000000" "0000000A_00000000" "${nxt}_0000000" \
        "${nxt}-00000000" "0${nxt}_00000000" "..${nxt}_00000000" "${nxt}_00000000.." \
        "${nxt}_00000000"$'\n'; do
        junk "$gen/wal/$n.wal.lz4"
    done
    junk "$gen/wal/${nxt}_00000000.wal.lz4.tmp"
    mkdir -p "$gen/wal/${nxt}_00000000.wal.lz4" "$gen/wal/sub"
    junk "$gen/wal/sub/${nxt}_00000000.wal.lz4"
    ln -s "$T/outside/$gen/snapshots/00000000.snapshot.lz4" "$gen/wal/${nxt}_00001000.wal.lz4"
    ln -s /dev/zero "$gen/wal/$(printf '%08x' $((0x$nxt + 1)))_00000000.wal.lz4"
) || true
t_is "$(ls -A "$T/bad/generations" | wc -l)" 8 "hostile names are in place"
"$LITECAST" restore -o "$T/bad.db" "file://$T/bad" 2> "$T/names.err"
t_is "$?" 0 "restore ignores every name that is not ours and every link out of the replica"
t_is "$(db_check "$T/bad.db")" "$good" "and gives the good database"
t_is "$(grep -vc 'level=info' "$T/names.err")" 0 "without a warning or an error"
listing() { # CMD URL: the listing without generations' lag column (it moves with the clock)
    "$LITECAST" "$1" "$2" 2>&1 | awk -v c="$1" '{ if (c == "generations") $3 = ""; print }'
}
for cmd in generations snapshots wal; do
    t_is "$(listing "$cmd" "file://$T/bad")" "$(listing "$cmd" "file://$REP")" \
        "litecast $cmd lists only what the pristine replica holds"
done

# --- malformed configuration ----------------------------------------------------------------
# badcfg NAME WANT FILE [ENV...]: replicate --check and replicate both exit 2 with exactly
# one line on stderr matching WANT (which names the file and line), within 10 s
badcfg() {
    local name=$1 want=$2 f=$3 rc=0
    shift 3
    for mode in --check run; do
        rc=0
        if [ "$mode" = run ]; then
            env "$@" timeout 10 "$LITECAST" replicate -c "$f" > "$T/cfg.out" 2> "$T/cfg.err" || rc=$?
        else
            env "$@" timeout 10 "$LITECAST" replicate --check -c "$f" > "$T/cfg.out" 2> "$T/cfg.err" || rc=$?
        fi
        t_is "$rc" 2 "$name ($mode): exit 2"
        t_is "$(wc -l < "$T/cfg.err")" 1 "$name ($mode): one line"
        t_like "$(cat "$T/cfg.err")" "$want" "$name ($mode): names the file and the line"
        t_is "$(cat "$T/cfg.out")" "" "$name ($mode): nothing on stdout"
    done
}
head -c 4096 "$LITECAST" > "$T/elf.ini"
badcfg "binary data (an ELF file)" "elf\.ini:1: " "$T/elf.ini"
head -c 4096 /dev/urandom > "$T/random.ini"
badcfg "binary data (random)" "random\.ini:[0-9]+: " "$T/random.ini"
{ echo "[litecast]"; head -c 1000000 /dev/zero | tr '\0' x; echo; } > "$T/long.ini"
badcfg "a 1 MB line" "long\.ini:2: line too long" "$T/long.ini"
printf '[litecast]\nlog-level = info\ndebounce = ${A}\n' > "$T/nested.ini"
badcfg "\${A} whose value is \${B}: not expanded again" \
    'nested\.ini:3: .*debounce: bad duration "\$\{B\}"' "$T/nested.ini" 'A=${B}' B=5ms
printf '[db x]\npath = /tmp/${HOME\n' > "$T/unterminated.ini"
badcfg "an unterminated \${" "unterminated\.ini:2: .*unterminated" "$T/unterminated.ini"
printf '[db x]\npath = /tmp/a\000b\n[replica y]\ndb = x\nurl = file:///r\n' > "$T/nul.ini"
badcfg "a NUL byte" "nul\.ini:2: nul byte" "$T/nul.ini"
head -c 2000000 /dev/zero | tr '\0' '\n' > "$T/huge.ini"
badcfg "a 2 MB file" "huge\.ini: file too large" "$T/huge.ini"
rc=0
timeout 10 "$LITECAST" restore -c "$T/nul.ini" "$DB" 2> "$T/cfg.err" || rc=$?
t_is "$rc" 2 "restore -c with a malformed file: exit 2"
t_like "$(cat "$T/cfg.err")" "nul\.ini:2: nul byte" "restore -c: the same message"

# --- a forged WAL header under a running daemon ---------------------------------------------
for n in a b; do "$TOOLS/lc-writer" "$T/$n.db" --count 3 --autocheckpoint 0 2>/dev/null; done
cat > "$T/wal.ini" <<CFG
[litecast]
fallback-interval = 200ms
shutdown-timeout = 2s

[db a]
path = $T/a.db
[replica a]
db = a
url = file://$T/rep-a

[db b]
path = $T/b.db
[replica b]
db = b
url = file://$T/rep-b
CFG
start_bg walforge "$LITECAST" replicate -c "$T/wal.ini"
wait_log walforge 'ready' 5
"$TOOLS/lc-writer" "$T/a.db" --count 5 --autocheckpoint 0 2>/dev/null
wait_log walforge 'wal segment written.*db=a' 5
# valid magic, version and page size; salts and checksum that do not match
printf '\067\177\006\202\000\055\342\030\000\000\020\000\000\000\000\011\021\042\063\104\125\146\167\210\336\255\276\357\336\255\276\357' |
    dd of="$T/a.db-wal" bs=1 conv=notrunc 2>/dev/null
t_ok "the forged header is logged as a bad wal header checksum" \
    wait_log walforge 'level=(warn|error).*db=a .*a\.db-wal: wal header: bad checksum' 5
nb=$(grep -c 'wal segment written.*db=b' "$T/walforge.log")
"$TOOLS/lc-writer" "$T/b.db" --count 5 --autocheckpoint 0 2>/dev/null
t_ok "the daemon keeps replicating its other database" \
    wait_for 5 bash -c "[ \$(grep -c 'wal segment written.*db=b' '$T/walforge.log') -gt $nb ]"
sleep 1
t_ok "and keeps running" kill -0 "$(bg_pid walforge)"
t_ok "the error is not repeated in a tight loop (< 20 lines in 2 s)" \
    test "$(grep -c 'bad checksum' "$T/walforge.log")" -lt 20
stop_bg walforge TERM
rc=$?
t_ok "SIGTERM: it exits by itself, status $rc (< 128)" test "$rc" -lt 128
"$LITECAST" restore -o "$T/b-restored.db" "file://$T/rep-b" 2>/dev/null
t_is "$(db_check "$T/b-restored.db")" "$(db_check "$T/b.db")" "the other database's replica is whole"

# --- restore -o where no directory can be made ----------------------------------------------
: > "$T/plainfile"
rc=0
"$LITECAST" restore -o "$T/plainfile/sub/out.db" "file://$REP" 2> "$T/o.err" || rc=$?
t_is "$rc" 1 "restore -o under a regular file: exit 1"
t_is "$(grep -vc 'level=info' "$T/o.err")" 1 "one error line"
t_like "$(grep level=error "$T/o.err")" "plainfile/sub" "naming the path"
t_ok "nothing created" test ! -e "$T/plainfile/sub" -a ! -s "$T/plainfile"
rc=0
"$LITECAST" restore -o "$T/newdir/out.db" "file://$T/no-such-replica" 2> "$T/o.err" || rc=$?
t_is "$rc" 1 "restore from an empty replica into a new directory: exit 1"
t_like "$(grep level=error "$T/o.err")" "no matching backups" "one clear error"
t_ok "the directory is not created" test ! -e "$T/newdir"
# as Litestream does, a directory that can be made is made (mkdir -p of -o's parent)
"$LITECAST" restore -o "$T/newdir/a/out.db" "file://$REP" 2>/dev/null
t_is "$(db_check "$T/newdir/a/out.db")" "$good" "restore -o into a new directory creates it"

# --- a restore interrupted by a signal leaves nothing at -o ------------------------------------
BIG=$T/big.db
sqlite3 "$BIG" 'PRAGMA journal_mode=wal; CREATE TABLE b(x);
    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<40000)
    INSERT INTO b SELECT randomblob(4000) FROM c;' > /dev/null
printf '[db big]\npath = %s\n[replica r]\ndb = big\nurl = file://%s\n' "$BIG" "$T/bigrep" \
    > "$T/big.ini"
start_bg bigd "$LITECAST" replicate -c "$T/big.ini"
wait_log bigd 'ready:' 30
stop_bg bigd TERM
sig_clean=0
for sig in TERM INT; do
    rm -rf "$T/sig"
    mkdir "$T/sig"
    "$LITECAST" restore -o "$T/sig/out.db" "file://$T/bigrep" 2> "$T/sig.err" & rpid=$!
    for _ in $(seq 1 2000); do [ -e "$T/sig/out.db.tmp" ] && break; sleep 0.005; done
    kill -"$sig" "$rpid"
    rc=0
    wait "$rpid" || rc=$?
    if [ -e "$T/sig/out.db" ]; then
        diag "restore finished before SIG$sig arrived: inconclusive"
        continue
    fi
    want=143
    [ "$sig" = INT ] && want=130
    t_is "$rc" "$want" "restore killed by SIG$sig exits $want"
    t_is "$(ls -A "$T/sig")" "" "restore killed by SIG$sig leaves nothing at -o"
    sig_clean=$((sig_clean + 1))
done
t_ok "at least one interrupted restore was caught mid-way" test "$sig_clean" -ge 1

diag "hostile: $_n checks on corrupt, truncated, oversized and forged input, $_failed failed"
done_testing
