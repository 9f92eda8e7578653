#!/usr/bin/env bash
# mkcorpus.sh: (re)generate the seed corpora in tests/fuzz/corpus/NAME/ for the fuzz targets.
# Needs the sqlite3 and lz4 command-line tools. Seeds are a few small valid inputs (plus a
# few near misses) per target; the fuzzer finds the rest. The output is committed; rerun
# this only to change the seeds. Deterministic except for SQLite's random WAL salt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
C=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$C"
mkdir -p "$C"/fuzz_wal "$C"/fuzz_segment "$C"/fuzz_names "$C"/fuzz_plan "$C"/fuzz_config

# --- fuzz_wal: mode byte 0x00 + a real WAL; mode byte 0x01 + a WAL description ----------------
# wal PAGE_SIZE COMMITS OUT: a WAL of COMMITS small transactions, copied while still open
wal() {
    rm -f "$tmp/w.db" "$tmp/w.db-wal" "$tmp/w.db-shm"
    {
        echo "PRAGMA page_size=$1; PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;"
        echo "CREATE TABLE t(x);"
        for i in $(seq "$2"); do echo "INSERT INTO t VALUES(zeroblob(40) || '$i');"; done
        echo ".shell cp $tmp/w.db-wal $tmp/wal.out"
    } | sqlite3 "$tmp/w.db" > /dev/null
    { printf '\000'; cat "$tmp/wal.out"; } > "$3"
}
wal 512 2 "$C/fuzz_wal/raw-512-2commits"
wal 1024 1 "$C/fuzz_wal/raw-1024-1commit"
# a torn tail: half of the last frame
f=$C/fuzz_wal/raw-512-2commits
head -c $(( $(stat -c %s "$f") - 300 )) "$f" > "$C/fuzz_wal/raw-512-torn"
# the header alone, and a header with a flipped checksum byte
head -c 33 "$f" > "$C/fuzz_wal/raw-header-only"
{ head -c 32 "$f"; printf '\377'; } > "$C/fuzz_wal/raw-bad-cksum"
# built: flags (page 512, LE), ckpt, salts, 4 frames: commit, plain, commit, salt defect
printf '\001\200\000\000\000\001\000\000\000\002\000\000\000\003\004\001\005\000\003\001\006\000\005\003\007\000' \
    > "$C/fuzz_wal/built-512-4frames"
printf '\001\014\000\000\000\000\377\377\377\377\000\000\000\001\003\001\001\000\007\002\000' \
    > "$C/fuzz_wal/built-be-64k"

# --- fuzz_segment: control byte (see fuzz_segment.c) + an object ---------------------------
seg() { # NAME LZ4-OPTIONS...: the small WAL compressed with the given lz4 options
    local name=$1
    shift
    tail -c +2 "$C/fuzz_wal/raw-512-2commits" | lz4 -q -c "$@" > "$tmp/obj" 2>/dev/null
    { printf "${CTL:-\200}"; cat "$tmp/obj"; } > "$C/fuzz_segment/$name"
}
seg lz4-default
seg lz4-linked-64k -B4 -BD
seg lz4-block-checksum -B5 -BX
seg lz4-content-size -B4 --content-size
seg lz4-no-frame-crc -B4 --no-frame-crc
CTL='\345' seg lz4-roundtrip-64k -B4 -BD
printf 'SQLite format 3\000' | lz4 -B4 -q -c > "$tmp/obj" 2>/dev/null
{ printf '\007'; cat "$tmp/obj"; } > "$C/fuzz_segment/lz4-small-chunked"
printf '' | lz4 -B4 -q -c > "$tmp/obj" 2>/dev/null
{ printf '\200'; cat "$tmp/obj"; } > "$C/fuzz_segment/lz4-empty"
# a skippable frame (valid LZ4 container, not ours) and plain junk
printf '\200\120\052\115\030\004\000\000\000abcd' > "$C/fuzz_segment/skippable"
printf '\20000000001_00000000.wal.lz4' > "$C/fuzz_segment/name"

# --- fuzz_names: base names -----------------------------------------------------------------
n=0
for s in 0123456789abcdef 00000001.snapshot.lz4 7fffffff.snapshot.lz4 \
    00000001_00001030.wal.lz4 0000001f_ffffffff.wal.lz4 80000000_00000000.wal.lz4 \
    0000000A_00000000.wal.lz4 00000001_0000000.wal.lz4 ../../../etc/passwd \
    00000001.snapshot.lz4.tmp; do
    n=$((n + 1))
    printf '%s' "$s" > "$C/fuzz_names/name-$n"
done

# --- fuzz_plan: see tests/fuzz/fuzz_plan.c for the layout -----------------------------------
# part 1 (plan): mode 0, big index, 2 snapshots, 4 segments, options
printf '\000\000\000\000\011\002\004\000\010\001\002\020\005\000\000\010\003\000\001\010\004\001\002\010\005\001\001\010\006\000' \
    > "$C/fuzz_plan/plan-two-indexes"
printf '\000\000\000\000\011\001\003\000\010\001\000\000\010\002\001\000\010\003\001\003\001\005' \
    > "$C/fuzz_plan/plan-index-opt"
printf '\000\177\377\377\377\001\002\001\010\001\201\000\000\020\070\010\002\000\001\010\003\005\003' \
    > "$C/fuzz_plan/plan-gap-timestamp"
# part 2 (choose): mode 1, objects (gen/kind, index, offset, mtime), flags
printf '\001\005\000\000\000\001\010\000\000\002\010\001\000\003\030\001\000\004\033\003\004a/..\005\000' \
    > "$C/fuzz_plan/choose-one-gen"
printf '\001\004\001\000\000\001\011\000\000\002\002\000\000\003\012\000\000\004\140' \
    > "$C/fuzz_plan/choose-filter"

# --- fuzz_config: INI text -------------------------------------------------------------------
cp "$here/../../conf/litecast.ini" "$C/fuzz_config/example.ini"
cat > "$C/fuzz_config/small.ini" <<'INI'
[litecast]
debounce = 2ms
max-delay = ${B}
log-level = debug

[db app]
path = ${DIR}/app.db
min-checkpoint-pages = 16
watch = off

[replica local]
db = app
url = file:///var/backups/app
retention = 1h30m
INI
cat > "$C/fuzz_config/s3.ini" <<'INI'
[db a]
path = rel/a.db
meta-dir = /tmp/../tmp/meta
[replica s3]
db = a
url = s3://bucket/prefix
endpoint = http://127.0.0.1:7480
force-path-style = true
sync-interval = 1s
INI
printf '[db x]\npath = ${A}\n[replica y]\ndb = x\nurl = file:///r\n[db x]\n' \
    > "$C/fuzz_config/dup.ini"
printf '[litecast]\ndebounce = ${A\n' > "$C/fuzz_config/unterminated.ini"
printf '[db x]\npath = /a\000b\n' > "$C/fuzz_config/nul.ini"
{ printf '[db x]\npath = /'; head -c 9000 /dev/zero | tr '\0' a; printf '\n'; } \
    > "$C/fuzz_config/long-line.ini"

ls "$C"/* | wc -l
