#!/usr/bin/env bash
# The capture engine: inotify-driven copy of committed frames into the shadow WAL,
# the fallback timer, WAL restarts, generations across daemon restarts, and a shadow
# chain that reproduces the source exactly. Real daemon, real writer process.
. "$(dirname "$0")/lib.sh"

DB=$T/app.db
META=$T/.app.db-litecast
cfg() { # $1 = extra [db] lines
    cat > "$T/lc.ini" <<CFG
[litecast]
debounce = 1ms
max-delay = 20ms
fallback-interval = ${FALLBACK:-60s}
log-level = debug

[db app]
path = $DB
checkpoint-interval = 0
$1
CFG
}
gen() { cat "$META/generation" 2>/dev/null; }
shadow_dir() { echo "$META/generations/$(gen)/wal"; }
last_shadow() { ls "$(shadow_dir)"/*.wal 2>/dev/null | sort | tail -n 1; }
# shadow == the real WAL's prefix, and nothing live follows it: past its end the WAL is
# either over, or holds stale frames of an older incarnation (other salts) that SQLite's
# journal_size_limit left behind
shadow_matches_wal() {
    local s; s=$(last_shadow) || return 1
    [ -n "$s" ] || return 1
    local n w; n=$(stat -c %s "$s"); w=$(stat -c %s "$DB-wal")
    [ "$n" -gt 32 ] && [ "$w" -ge "$n" ] && cmp -s -n "$n" "$s" "$DB-wal" || return 1
    [ "$w" -eq "$n" ] && return 0
    ! cmp -s -i 16:$((n + 8)) -n 8 "$DB-wal" "$DB-wal"
}

# --- 1. every commit reaches the shadow long before the 60 s fallback timer -------
"$TOOLS/lc-writer" "$DB" --count 1 --autocheckpoint 0 2>/dev/null
cfg "min-checkpoint-pages = 100000
max-checkpoint-pages = 0"
start_bg daemon "$LITECAST" replicate -c "$T/lc.ini"
t_ok "daemon starts a generation" wait_log daemon 'new generation' 5
t_like "$(cat "$T/daemon.log")" 'reason="(no generation exists|wal header mismatch)"' \
    "the new generation says why"
# every 100th commit is a 1.5 MB row: a transaction larger than the 512 KiB read buffer
start_bg writer "$TOOLS/lc-writer" "$DB" --count 300 --rate 200 --autocheckpoint 0 \
    --min-bytes 10 --max-bytes 9000 --big-every 100 --big-bytes 1500000 --log "$T/commits.log"
stop_bg writer wait
t_is "$?" 0 "writer finished without SQLITE_BUSY or any error"
start_ms=$(date +%s%3N)
wait_for 2 shadow_matches_wal
t_is "$?" 0 "shadow WAL is byte-identical to the real WAL (same offsets, same length)"
t_ok "caught up within 2 s of the last commit (fallback timer is 60 s)" \
    test $(( $(date +%s%3N) - start_ms )) -lt 2000
t_like "$(grep -c 'trigger\|sync' "$T/daemon.log" || true)" '^[0-9]+$' "daemon logs"
g1=$(gen)

# --- 2. restart with an intact WAL continues the same generation --------------
stop_bg daemon TERM
t_is "$?" 0 "SIGTERM: final sync, exit 0"
"$TOOLS/lc-writer" "$DB" --count 40 --rate 50 --autocheckpoint 0 2>/dev/null &
wpid=$!
sleep 0.2
start_bg daemon2 "$LITECAST" replicate -c "$T/lc.ini"
wait $wpid
wait_for 3 shadow_matches_wal
t_is "$?" 0 "restarted daemon catches up"
t_is "$(gen)" "$g1" "restart with an intact WAL keeps the generation"
t_ok "no new generation logged after restart" bash -c "! grep -q 'new generation' '$T/daemon2.log'"
stop_bg daemon2 TERM

# --- 3. an external TRUNCATE checkpoint while stopped starts a new generation ------
"$TOOLS/lc-writer" "$DB" --checkpoint truncate >/dev/null
start_bg daemon3 "$LITECAST" replicate -c "$T/lc.ini"
t_ok "TRUNCATE while stopped: new generation" wait_log daemon3 'new generation' 5
t_like "$(grep 'new generation' "$T/daemon3.log")" 'reason="wal header mismatch"' \
    "the reason names the WAL header"
t_ok "generation id changed" test "$(gen)" != "$g1"
stop_bg daemon3 TERM
g2=$(gen)

# --- 4. a WAL deleted while stopped (the app's last connection closed) -------------
"$TOOLS/lc-writer" "$DB" --count 3 2>/dev/null   # last connection: SQLite deletes the WAL
t_ok "the app's last close removed the WAL" test ! -e "$DB-wal"
start_bg daemon4 "$LITECAST" replicate -c "$T/lc.ini"
t_ok "deleted WAL: new generation" wait_log daemon4 'new generation' 5
t_ok "generation id changed again" test "$(gen)" != "$g2"
stop_bg daemon4 TERM

# --- 5. fallback timer alone captures when inotify is off for the db ---------------
FALLBACK=300ms cfg "watch = false
min-checkpoint-pages = 100000
max-checkpoint-pages = 0"
start_bg daemon5 "$LITECAST" replicate -c "$T/lc.ini"
wait_log daemon5 'new generation|litecast started' 5
"$TOOLS/lc-writer" "$DB" --count 30 --autocheckpoint 0 --tolerate-busy 2>/dev/null &
wpid=$!
wait $wpid
wait_for 3 shadow_matches_wal
t_is "$?" 0 "fallback timer alone brings the shadow up to date"
stop_bg daemon5 TERM

# --- 6. checkpoints every few pages: index+1 per restart; the chain reproduces the db ---
rm -rf "$META" "$DB" "$DB-wal" "$DB-shm"
"$TOOLS/lc-writer" "$DB" --count 5 --autocheckpoint 0 2>/dev/null
"$TOOLS/lc-writer" "$DB" --checkpoint truncate >/dev/null
cp "$DB" "$T/base.db"
# a replica that cannot write keeps every shadow file on disk (none is shipped yet)
: > "$T/blocked"
cfg "min-checkpoint-pages = 8
max-checkpoint-pages = 64

[replica stuck]
db = app
url = file://$T/blocked"
start_bg daemon6 "$LITECAST" replicate -c "$T/lc.ini"
wait_log daemon6 'new generation' 5
# paced, so that every checkpoint finds a gap between commits for the write lock on a
# loaded machine too (winning it from a flat-out writer is 24-wal-index-roll's job)
start_bg writer6 "$TOOLS/lc-writer" "$DB" --count 400 --rate 200 --min-bytes 100 \
    --max-bytes 12000 --delete-every 50 --keep 30 --busy-timeout 5000 --autocheckpoint 0
stop_bg writer6 wait
t_is "$?" 0 "writer never saw SQLITE_BUSY while checkpoints fired every few pages"
wait_for 3 shadow_matches_wal
t_is "$?" 0 "shadow caught up after the writer stopped"
n=$(ls "$(shadow_dir)" | wc -l)
t_ok "WAL restarts after our checkpoints opened new shadow indexes ($n files)" test "$n" -ge 5
t_ok "restarts were followed as index+1" grep -q 'wal restarted' "$T/daemon6.log"
stop_bg daemon6 TERM
"$TOOLS/lc-walapply" "$T/base.db" "$(shadow_dir)" "$T/replay.db" >/dev/null
t_is "$(db_check "$T/replay.db")" "$(db_check "$DB")" \
    "shadow chain applied index by index to the base copy reproduces the source"

done_testing
