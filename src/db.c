/* db: the SQLite side of one watched database and its sync routine.
 *
 * Connections. rconn holds a long read transaction so that no other connection's
 * checkpoint can back-fill past the frames we have seen, nor restart the WAL under us;
 * it is released only inside our own checkpoint, while we hold the write lock instead.
 * wconn writes: the _litecast_seq upsert that creates or restarts the WAL, and
 * BEGIN IMMEDIATE for the write lock. Both set SQLITE_FCNTL_PERSIST_WAL and
 * NO_CKPT_ON_CLOSE, so closing them never deletes, checkpoints or truncates the WAL.
 *
 * Invariant: whenever rconn's read transaction starts, every committed frame then in
 * the WAL is already in the shadow, or the next sync starts a new generation (`fresh`).
 * With it, a WAL restart seen during normal running can only overwrite frames we have
 * copied, so a header change means "open index+1", never "data lost".
 *
 * Checkpoint (no commit is ever lost around it, unlike Litestream's copy-then-checkpoint):
 *   refresh the read mark; PASSIVE without any lock (back-fills most frames, unless the
 *   app outran it last time);
 *   BEGIN IMMEDIATE; copy the tail; end the read tx; PASSIVE again (the short tail);
 *   begin the read tx; ROLLBACK; if fully back-filled, the upsert restarts the WAL now.
 * App writers wait only for the tail. A forced checkpoint (WAL too large) may wait a
 * bounded time for readers while holding the lock, which is what RESTART would do. */
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "segment.h"
#include "wal.h"

#define SCRATCH_SIZE (512u * 1024)
#define CACHE_PAGE 4096u /* page-cache page: the unit of writeback */
#define WRITE_BUSY_MS 100       /* how long one attempt waits for the app's write lock */
#define LOCK_SPIN_MS 10         /* of which spent retrying after sched_yield() */
#define OPEN_BUSY_MS 2000       /* ... and at open (schema, journal mode) */
#define FORCE_RESTART_MS 20     /* bounded wait for readers at max-checkpoint-pages */
#define FORCE_TRUNCATE_MS 500   /* and at truncate-pages or the index size limit */
#define SKIP_LOCKFREE 4         /* checkpoints without it after it did not pay */
#define RETRY_CHECKPOINT_NS (50 * 1000000LL)
#define ERR_LOG_EVERY_NS (10 * 1000000000LL)

static const char UPSERT_SQL[] =
    "INSERT INTO _litecast_seq (id, seq) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET seq = seq + 1";

/* One scratch buffer for the whole process: the loop is single-threaded. */
static uint8_t *scratch(void)
{
    static uint8_t *buf;
    if (!buf)
        buf = malloc(SCRATCH_SIZE);
    return buf;
}

static uint64_t wal_bytes(uint32_t page_size, int64_t pages)
{
    return LC_WAL_HDR_SIZE + lc_wal_frame_size(page_size) * (uint64_t)pages;
}

static int sql_err(struct lc_db *db, sqlite3 *c, int rc, const char *what, struct lc_error *err)
{
    int code = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? LC_EBUSY : LC_EIO;
    return lc_err_set(err, code, "%s: %s: %s", db->cfg.name, what,
                      c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
}

static int exec(struct lc_db *db, sqlite3 *c, const char *sql, struct lc_error *err)
{
    int rc = sqlite3_exec(c, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sql_err(db, c, rc, sql, err);
}

/* Run a one-row query and copy its first column as text. */
static int query_text(struct lc_db *db, sqlite3 *c, const char *sql, char *out, size_t len,
                      struct lc_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_err(db, c, rc, sql, err);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, len, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        out[0] = '\0';
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : sql_err(db, c, rc, sql, err);
}

/* Open a read transaction on c that holds a WAL read mark (a read, not just BEGIN). */
static int begin_read(struct lc_db *db, sqlite3 *c, struct lc_error *err)
{
    int rc;
    if ((rc = exec(db, c, "BEGIN", err)) < 0)
        return rc;
    rc = exec(db, c, "SELECT COUNT(1) FROM _litecast_seq", err);
    if (rc < 0)
        (void)sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int read_tx_begin(struct lc_db *db, struct lc_error *err)
{
    int rc;
    if (db->read_tx)
        return 0;
    if ((rc = begin_read(db, db->rconn, err)) < 0)
        return rc;
    db->read_tx = 1;
    db->mark_ahead = 1;
    return 0;
}

static void read_tx_end(struct lc_db *db)
{
    if (db->read_tx)
        (void)sqlite3_exec(db->rconn, "ROLLBACK", NULL, NULL, NULL);
    db->read_tx = 0;
    db->base_valid = 0;
}

/* Move rconn's read mark to the WAL's end with no moment in which we hold none: wconn
 * reads meanwhile. In such a gap an application's TRUNCATE checkpoint could back-fill and
 * reset the WAL, taking frames we had not copied yet with it (caught, but only as a new
 * generation: "wal restarted by another process during checkpoint"). */
static int read_mark_move(struct lc_db *db, struct lc_error *err)
{
    struct lc_error ignored = {0};
    int held = begin_read(db, db->wconn, &ignored) == 0; /* without it: the old gap */
    read_tx_end(db);
    int rc = read_tx_begin(db, err);
    if (held)
        (void)sqlite3_exec(db->wconn, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* wconn's busy handler. SQLite's default handler sleeps 1, 2, 5, 10... ms between tries
 * and never wins the write lock from an app that commits back to back: the lock is a
 * non-blocking fcntl() byte lock with no queue, free only in the microseconds between two
 * of the app's transactions. So for the first LOCK_SPIN_MS we retry after sched_yield()
 * (measured against a flat-out writer: the lock is won within 9 us median, 4 ms worst;
 * 20 us sleeps, which the kernel's timer slack stretches to ~70 us, lost it for 100 ms
 * at a time while the WAL grew 10 MB), then every 20 us until the deadline, which bounds
 * how long the loop can be held. */
static int busy_poll(void *arg, int count)
{
    struct lc_db *db = arg;
    struct timespec ts = {0, 20000};
    int64_t now = lc_now_mono_ns();
    (void)count;
    if (now >= db->busy_deadline_ns)
        return 0;
    if (now < db->busy_spin_until_ns)
        sched_yield();
    else
        nanosleep(&ts, NULL);
    return 1;
}

/* Run a statement on wconn, waiting at most ms for the write lock, the first spin_ms of
 * them yielding (see busy_poll). */
static int exec_ws(struct lc_db *db, const char *sql, int ms, int spin_ms, struct lc_error *err)
{
    int64_t now = lc_now_mono_ns();
    db->busy_deadline_ns = now + (int64_t)ms * 1000000;
    db->busy_spin_until_ns = now + (int64_t)(ms < spin_ms ? ms : spin_ms) * 1000000;
    return exec(db, db->wconn, sql, err);
}

static int exec_w(struct lc_db *db, const char *sql, int ms, struct lc_error *err)
{
    return exec_ws(db, sql, ms, LOCK_SPIN_MS, err);
}

static int open_conn(struct lc_db *db, sqlite3 **out, struct lc_error *err)
{
    sqlite3 *c = NULL;
    int on = 1, rc;

    rc = sqlite3_open_v2(db->cfg.path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sql_err(db, c, rc, "open", err);
        sqlite3_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c, OPEN_BUSY_MS);
    sqlite3_file_control(c, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
    sqlite3_db_config(c, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    /* our statements touch a page or two: no lookaside slab (about 120 KB a connection)
     * and a tiny page cache keep hundreds of watched databases cheap */
    sqlite3_db_config(c, SQLITE_DBCONFIG_LOOKASIDE, NULL, 0, 0);
    (void)sqlite3_exec(c, "PRAGMA cache_size = -64", NULL, NULL, NULL);
    *out = c;
    return 0;
}

static void db_close(struct lc_db *db)
{
    read_tx_end(db);
    if (db->rconn)
        sqlite3_close(db->rconn);
    if (db->wconn)
        sqlite3_close(db->wconn);
    db->rconn = db->wconn = NULL;
    if (db->dbfd >= 0 && db->snapshot_busy > 0)
        db->dbfd_stale = db->dbfd; /* a snapshot still reads it; closed at its end */
    else if (db->dbfd >= 0)
        close(db->dbfd);
    if (db->walfd >= 0)
        close(db->walfd);
    if (db->shmfd >= 0)
        close(db->shmfd); /* after our connections: SQLite's WAL locks live on -shm, and
                           * closing any fd on it drops them (see dbfd in db.h) */
    db->dbfd = db->walfd = db->shmfd = -1;
    lc_shadow_close(&db->sh);
    db->is_open = 0;
}

/* Make sure the -wal exists and holds at least a header; (re)open walfd on it.
 * Returns the WAL's size through *size. */
static int ensure_wal(struct lc_db *db, uint64_t *size, struct lc_error *err)
{
    struct stat st;
    int rc;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (stat(db->wal_path, &st) == 0 && st.st_size >= LC_WAL_HDR_SIZE)
            break;
        if (attempt == 1)
            return lc_err_set(err, LC_EIO, "%s: wal missing after write: %s", db->cfg.name,
                              db->wal_path);
        if ((rc = exec_w(db, UPSERT_SQL, OPEN_BUSY_MS, err)) < 0)
            return rc;
    }
    if (db->walfd < 0 || st.st_ino != db->wal_ino || st.st_dev != db->wal_dev) {
        if (db->walfd >= 0)
            close(db->walfd);
        db->walfd = open(db->wal_path, O_RDONLY | O_CLOEXEC);
        if (db->walfd < 0)
            return lc_err_set(err, LC_EIO, "open %s: %s", db->wal_path, strerror(errno));
        db->wal_ino = st.st_ino;
        db->wal_dev = st.st_dev;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

static int db_open(struct lc_db *db, struct lc_error *err)
{
    struct stat st;
    char mode[32], buf[32];
    const char *why = NULL;
    uint64_t walsz;
    int rc;

    if (stat(db->cfg.path, &st) < 0) {
        if (errno == ENOENT) {
            if (!db->waiting_logged)
                lc_info("waiting for database to be created", "db=%s path=%s", db->cfg.name,
                        db->cfg.path);
            db->waiting_logged = 1;
            return 0;
        }
        return lc_err_set(err, LC_EIO, "stat %s: %s", db->cfg.path, strerror(errno));
    }
    db->waiting_logged = 0;
    db->dbfd = open(db->cfg.path, O_RDONLY | O_CLOEXEC);
    if (db->dbfd < 0 || fstat(db->dbfd, &st) < 0) {
        rc = lc_err_set(err, LC_EIO, "open %s: %s", db->cfg.path, strerror(errno));
        goto fail;
    }
    db->dev = st.st_dev;
    db->ino = st.st_ino;
    db->mode = st.st_mode & 0777;
    db->uid = st.st_uid;
    db->gid = st.st_gid;

    if ((rc = open_conn(db, &db->wconn, err)) < 0 || (rc = open_conn(db, &db->rconn, err)) < 0)
        goto fail;
    sqlite3_busy_handler(db->wconn, busy_poll, db);
    db->busy_deadline_ns = lc_now_mono_ns() + (int64_t)OPEN_BUSY_MS * 1000000;
    db->busy_spin_until_ns = 0;
    if ((rc = query_text(db, db->wconn, "PRAGMA journal_mode", mode, sizeof(mode), err)) < 0)
        goto fail;
    if (strcmp(mode, "wal") != 0) {
        if ((rc = query_text(db, db->wconn, "PRAGMA journal_mode = wal", buf, sizeof(buf),
                             err)) < 0)
            goto fail;
        if (strcmp(buf, "wal") != 0) {
            rc = lc_err_set(err, LC_EBUSY, "%s: cannot switch to wal mode (still %s)",
                            db->cfg.name, buf);
            goto fail;
        }
        lc_info("switched database to WAL mode", "db=%s previous=%s", db->cfg.name, mode);
    }
    if ((rc = query_text(db, db->wconn, "PRAGMA page_size", buf, sizeof(buf), err)) < 0)
        goto fail;
    db->page_size = (uint32_t)strtoul(buf, NULL, 10);
    if (db->page_size < 512 || db->page_size > 65536) {
        rc = lc_err_set(err, LC_ECORRUPT, "%s: bad page size %s", db->cfg.name, buf);
        goto fail;
    }
    /* our restart trims the WAL back to max-checkpoint-pages, not below: under steady
     * heavy writes the WAL refills to that size between checkpoints, and a file trimmed
     * to less is truncated under the write lock at every restart and then grown again
     * page by page by the app's commits (about 10% of its commit rate, measured) */
    char sql[96];
    int64_t keep = db->cfg.max_checkpoint_pages > db->cfg.min_checkpoint_pages
                        ? db->cfg.max_checkpoint_pages
                        : db->cfg.min_checkpoint_pages;
    snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %llu",
             (unsigned long long)wal_bytes(db->page_size, keep));
    if ((rc = exec(db, db->wconn, "PRAGMA wal_autocheckpoint = 0", err)) < 0 ||
        (rc = exec(db, db->rconn, "PRAGMA wal_autocheckpoint = 0", err)) < 0 ||
        (rc = query_text(db, db->wconn, sql, buf, sizeof(buf), err)) < 0 ||
        (rc = exec(db, db->wconn,
                   "CREATE TABLE IF NOT EXISTS _litecast_seq (id INTEGER PRIMARY KEY, seq INTEGER)",
                   err)) < 0)
        goto fail;
    if ((rc = ensure_wal(db, &walsz, err)) < 0 || (rc = read_tx_begin(db, err)) < 0)
        goto fail;
    if ((rc = lc_shadow_open(&db->sh, db->cfg.meta_dir, db->mode, db->uid, db->gid, &why,
                             err)) < 0)
        goto fail;
    if (why && !db->force_reason)
        db->force_reason = why;
    db->fresh = 1;
    db->is_open = 1;
    return 0;
fail:
    db_close(db);
    return rc;
}

/* Copy committed frames of the shadow's incarnation from the real WAL, between the
 * shadow's end and wal_end, into the shadow. One pass: each chunk read is verified, its
 * committed part written, and the frames after its last commit (part of a transaction
 * the next chunk completes) carried to the front of the buffer, so every byte is read
 * once and what is written is exactly what was verified. Only a transaction larger than
 * the buffer is read twice: scanned on to its commit, then copied. */
static int copy_frames(struct lc_db *db, uint64_t wal_end, uint64_t *added, struct lc_error *err)
{
    struct lc_shadow *sh = &db->sh;
    struct lc_wal_cursor cur;
    uint8_t *buf = scratch();
    uint64_t fsz = lc_wal_frame_size(sh->hdr.page_size);
    size_t chunk = (size_t)(SCRATCH_SIZE / fsz * fsz);
    uint64_t start = sh->size, done = start; /* done: written up to here (a commit end) */
    size_t fill = 0;   /* verified frames past done held at buf[0], uncommitted so far */
    int overflow = 0;  /* a transaction outgrew buf: scan only, copy after */
    int rc = 0;

    *added = 0;
    if (!buf)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    if (wal_end <= start)
        return 0;
    lc_wal_cursor_init(&cur, &sh->hdr, start, sh->ck);
    while (cur.off < wal_end && cur.stop == LC_WAL_OK) {
        if (fill == chunk) {
            overflow = 1;
            fill = 0;
        }
        uint64_t left = wal_end - cur.off;
        size_t want = left < chunk - fill ? (size_t)left : chunk - fill;
        ssize_t n = lc_pread_full(db->walfd, buf + fill, want, (off_t)cur.off);
        if (n < 0) {
            rc = lc_err_set(err, LC_EIO, "read %s: %s", db->wal_path, strerror(errno));
            goto fail;
        }
        n = (ssize_t)((uint64_t)n / fsz * fsz);
        if (n == 0)
            break;
        size_t fed = lc_wal_cursor_feed(&cur, buf + fill, (size_t)n);
        fill += fed;
        if (!overflow && cur.commit_off > done) {
            size_t len = (size_t)(cur.commit_off - done);
            if ((rc = lc_shadow_write(sh, done, buf, len, err)) < 0)
                goto fail;
            memmove(buf, buf + len, fill - len);
            fill -= len;
            done = cur.commit_off;
        }
        if (fed < (size_t)n)
            break;
    }
    while (done < cur.commit_off) { /* after an overflow: read the rest again */
        size_t want = cur.commit_off - done < chunk ? (size_t)(cur.commit_off - done) : chunk;
        ssize_t n = lc_pread_full(db->walfd, buf, want, (off_t)done);
        if (n != (ssize_t)want) {
            rc = lc_err_set(err, LC_EIO, "read %s: %s", db->wal_path,
                            n < 0 ? strerror(errno) : "short read");
            goto fail;
        }
        if ((rc = lc_shadow_write(sh, done, buf, want, err)) < 0)
            goto fail;
        done += want;
    }
    if (cur.commit_off <= start)
        return 0;
    lc_shadow_commit(sh, cur.commit_off, cur.commit_ck);
    /* start writing the WAL pages these frames filled to disk now: SQLite's checkpoint
     * fsyncs the WAL before back-filling, under our write lock when it is ours, and then
     * has less to wait for. Only pages these frames completed: a partly filled one is
     * written again by the next commit, and reaches the disk at the checkpoint either
     * way. The page holding start was left out by the previous sync, so it starts here. */
    uint64_t pg_lo = start / CACHE_PAGE * CACHE_PAGE;
    uint64_t pg_hi = cur.commit_off / CACHE_PAGE * CACHE_PAGE;
    if (pg_hi > pg_lo)
        (void)sync_file_range(db->walfd, (off_t)pg_lo, (off_t)(pg_hi - pg_lo),
                              SYNC_FILE_RANGE_WRITE);
    *added = cur.commit_off - start;
    db->stats.wal_bytes += *added;
    return 0;
fail:
    lc_shadow_rollback(sh);
    return rc;
}

/* The end of the WAL that SQLite has published: 32 + mxFrame frames, from the wal-index
 * header at the start of -shm (two 48-byte copies, native-endian, salts as in the WAL
 * header). A writer that dies after writing a commit frame but before publishing it
 * leaves a frame that checks out in the file yet is not committed: readers never see it
 * and the next writer overwrites it. Returns 0 and sets *end, or -1 when the wal-index
 * cannot be read or describes another incarnation (then the file alone decides). */
static int published_end(struct lc_db *db, const uint8_t walhdr[LC_WAL_HDR_SIZE],
                         uint32_t page_size, uint64_t *end)
{
    uint8_t b[96];
    uint32_t mx;

    if (db->shmfd < 0) {
        char p[LC_PATH_MAX + 8];
        snprintf(p, sizeof(p), "%s-shm", db->cfg.path);
        db->shmfd = open(p, O_RDONLY | O_CLOEXEC);
        if (db->shmfd < 0)
            return -1;
    }
    for (int attempt = 0; attempt < 4; attempt++) {
        if (lc_pread_full(db->shmfd, b, sizeof(b), 0) != (ssize_t)sizeof(b))
            return -1;
        if (memcmp(b, b + 48, 48) != 0)
            continue; /* a writer is updating it: read again */
        if (b[12] != 1 || memcmp(b + 32, walhdr + 16, 8) != 0)
            return -1;
        memcpy(&mx, b + 16, sizeof(mx));
        *end = LC_WAL_HDR_SIZE + (uint64_t)mx * lc_wal_frame_size(page_size);
        return 0;
    }
    return -1;
}

static int read_wal_header(struct lc_db *db, uint8_t hdr[LC_WAL_HDR_SIZE], struct lc_error *err)
{
    ssize_t n = lc_pread_full(db->walfd, hdr, LC_WAL_HDR_SIZE, 0);
    if (n != LC_WAL_HDR_SIZE)
        return lc_err_set(err, LC_EIO, "read %s: short header", db->wal_path);
    return 0;
}

/* Does the frame that ends at the shadow's end still sit in the real WAL? Its salts and
 * cumulative checksum identify it (and, through the checksum, everything before it). */
static int last_frame_matches(struct lc_db *db)
{
    struct lc_shadow *sh = &db->sh;
    uint8_t fh[LC_WAL_FRAME_HDR_SIZE];
    uint32_t ck[2];

    if (sh->size <= LC_WAL_HDR_SIZE)
        return 1;
    off_t off = (off_t)(sh->size - lc_wal_frame_size(sh->hdr.page_size));
    if (lc_pread_full(db->walfd, fh, sizeof(fh), off) != (ssize_t)sizeof(fh))
        return 0;
    lc_wal_frame_cksum(fh, ck);
    return lc_get32be(fh + 8) == sh->hdr.salt1 && lc_get32be(fh + 12) == sh->hdr.salt2 &&
           ck[0] == sh->ck[0] && ck[1] == sh->ck[1];
}

static int new_generation(struct lc_db *db, const char *reason, const uint8_t hdr[32],
                          struct lc_error *err)
{
    int rc = lc_shadow_new_generation(&db->sh, hdr, err);
    db->base_valid = 0;
    if (rc < 0)
        return rc;
    db->stats.generations++;
    lc_info("sync: new generation", "db=%s generation=%s reason=\"%s\"", db->cfg.name,
            db->sh.gen, reason);
    return 0;
}

/* Bring the shadow up to date with the real WAL. *changed is set when the shadow moved. */
static int capture(struct lc_db *db, uint64_t *orig_wal, int *changed, struct lc_error *err)
{
    struct lc_shadow *sh = &db->sh;
    uint8_t hdr[LC_WAL_HDR_SIZE];
    uint64_t walsz, added;
    const char *reason = NULL;
    int restart = 0, rc;

    if ((rc = ensure_wal(db, &walsz, err)) < 0 || (rc = read_wal_header(db, hdr, err)) < 0)
        return rc;
    struct lc_wal_hdr h;
    if ((rc = lc_wal_hdr_parse(hdr, sizeof(hdr), &h, err)) < 0)
        return lc_err_wrap(err, "%s: %s", db->cfg.name, db->wal_path);
    if (h.page_size != db->page_size)
        return lc_err_set(err, LC_ECORRUPT, "%s: wal page size %u, database page size %u",
                          db->cfg.name, h.page_size, db->page_size);
    uint64_t wal_end = lc_wal_frame_align(walsz, h.page_size), pub;
    if (published_end(db, hdr, h.page_size, &pub) == 0 && pub < wal_end)
        wal_end = pub;
    *orig_wal = wal_end;

    if (db->force_reason)
        reason = db->force_reason;
    else if (!sh->gen[0])
        reason = "no generation exists";
    else if (sh->index >= LC_MAX_INDEX - 1)
        reason = "max index exceeded";
    else if (lc_shadow_lost(sh))
        reason = "shadow wal removed";
    else if (memcmp(hdr, sh->hdr_raw, LC_WAL_HDR_SIZE) != 0 && db->fresh)
        reason = "wal header mismatch"; /* changed while we were not watching */
    else if (memcmp(hdr, sh->hdr_raw, LC_WAL_HDR_SIZE) != 0)
        restart = 1;
    else if (wal_end < sh->size)
        reason = "wal truncated by another process";
    else if (!last_frame_matches(db))
        reason = "wal overwritten by another process";

    if (reason) {
        if ((rc = new_generation(db, reason, hdr, err)) < 0)
            return rc;
        db->force_reason = NULL;
        *changed = 1;
    } else if (restart) {
        /* Every published frame of the old incarnation is already in the shadow (copied
         * under the write lock, or before the read mark allowed a restart); anything past
         * our end is unpublished (a dead writer's), so nothing more is copied from it.
         * A settled file stays settled: nothing could be back-filled past base_off, so
         * the old index ended there, and the file is the new index's starting state. */
        int base_kept = db->base_valid && db->base_off == sh->size;
        db->base_valid = 0;
        if ((rc = lc_shadow_new_index(sh, hdr, err)) < 0)
            return rc;
        if (base_kept) {
            db->base_valid = 1;
            db->base_off = 0;
        }
        db->stats.restarts++;
        lc_debug("sync: wal restarted", "db=%s generation=%s index=%08x", db->cfg.name, sh->gen,
                 sh->index);
        *changed = 1;
    }
    if ((rc = copy_frames(db, wal_end, &added, err)) < 0)
        return rc;
    if (added)
        *changed = 1;
    /* wal_end was read after our read tx began: the mark is inside the shadow now */
    if (db->read_tx)
        db->mark_ahead = 0;
    return 0;
}

/* *changed is set when frames were copied into the shadow on the way. */
static int checkpoint(struct lc_db *db, int force_ms, int *changed, struct lc_error *err)
{
    int nlog = 0, nckpt = 0, full = 0, rc;
    uint64_t orig;
    uint8_t hdr[LC_WAL_HDR_SIZE];

    db->stats.checkpoints++;
    /* 1. move our read mark to the end we have copied, then back-fill without a lock. It
     * pays while the app writes less during it than it back-fills; against a writer that
     * outruns it (the app appends to warm WAL pages faster than we back-fill into fresh
     * database pages) it only grows the tail we must copy and back-fill under the lock,
     * and the WAL with it: then the next SKIP_LOCKFREE checkpoints go without it. */
    int lockfree = db->skip_lockfree == 0, early = 0;
    if (lockfree) {
        if ((rc = read_mark_move(db, err)) < 0)
            return rc;
        (void)sqlite3_wal_checkpoint_v2(db->wconn, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog,
                                        &early);
    } else {
        db->skip_lockfree--;
    }

    /* 2. the write lock: no app commit can land until we release it */
    if ((rc = exec_w(db, "BEGIN IMMEDIATE", WRITE_BUSY_MS, err)) < 0)
        return rc;
    ssize_t got = lc_pread_full(db->walfd, hdr, LC_WAL_HDR_SIZE, 0);
    if (got < 0) {
        rc = lc_err_set(err, LC_EIO, "read %s: %s", db->wal_path, strerror(errno));
        goto out;
    }
    if (got != LC_WAL_HDR_SIZE || memcmp(hdr, db->sh.hdr_raw, LC_WAL_HDR_SIZE) != 0) {
        /* restarted (or truncated) while we held no lock: frames may be gone, so do not
         * guess */
        db->force_reason = got != LC_WAL_HDR_SIZE
                               ? "wal truncated by another process during checkpoint"
                               : "wal restarted by another process during checkpoint";
        goto out;
    }
    uint64_t before = db->sh.size;
    if ((rc = capture(db, &orig, changed, err)) < 0)
        goto out;
    if (lockfree && early > 0 && db->sh.size > before &&
        db->sh.size - before >= wal_bytes(db->page_size, early) / 2)
        db->skip_lockfree = SKIP_LOCKFREE;

    /* 3. back-fill the tail; a forced checkpoint waits a bounded time for readers */
    read_tx_end(db);
    int64_t deadline = lc_now_mono_ns() + (int64_t)force_ms * 1000000;
    for (;;) {
        rc = sqlite3_wal_checkpoint_v2(db->rconn, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
        if (rc == SQLITE_OK && nlog == nckpt) {
            full = 1;
            break;
        }
        if (lc_now_mono_ns() >= deadline)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    rc = read_tx_begin(db, err);
    if (rc == 0 && full) {
        /* all back-filled, and our new mark is the WAL's end (we hold the write lock): no
         * checkpoint can write the file again before our mark moves */
        db->mark_ahead = 0;
        db->base_valid = 1;
        db->base_off = db->sh.size;
        db->settle_wanted = 0;
    }
out:
    (void)sqlite3_exec(db->wconn, "ROLLBACK", NULL, NULL, NULL);
    if (rc < 0)
        return rc;
    /* 4. restart the WAL now, under our control; an app commit racing us may do it first,
     * which is just as safe: every frame of the old incarnation is in the shadow */
    if (full && nlog > 0) {
        struct lc_error e2 = {0};
        if (exec_w(db, UPSERT_SQL, WRITE_BUSY_MS, &e2) < 0)
            lc_debug("checkpoint: restart write deferred", "db=%s error=\"%s\"", db->cfg.name,
                     e2.msg);
    }
    if (!full) {
        db->stats.checkpoint_errors++;
        lc_debug("checkpoint: not fully back-filled (readers)", "db=%s log=%d checkpointed=%d",
                 db->cfg.name, nlog, nckpt);
        return LC_EBUSY;
    }
    return 0;
}

/* Which checkpoint, if any: 0 none, else the bounded wait in ms (+1 so PASSIVE is 1). */
static int checkpoint_policy(struct lc_db *db, uint64_t orig_wal)
{
    const struct lc_db_config *c = &db->cfg;
    uint32_t p = db->page_size;
    uint64_t size = db->sh.size;

    if (db->settle_wanted && !db->base_valid)
        return 1;
    if (c->truncate_pages > 0 && orig_wal >= wal_bytes(p, c->truncate_pages))
        return FORCE_TRUNCATE_MS + 1;
    if (c->max_wal_index_bytes > 0 && size >= (uint64_t)c->max_wal_index_bytes)
        return FORCE_TRUNCATE_MS + 1;
    if (c->max_checkpoint_pages > 0 && size >= wal_bytes(p, c->max_checkpoint_pages))
        return FORCE_RESTART_MS + 1;
    if (size >= wal_bytes(p, c->min_checkpoint_pages))
        return 1;
    if (c->checkpoint_interval_ns > 0 && size > wal_bytes(p, 1) &&
        lc_now_wall_ns() - db->db_mtime_ns > c->checkpoint_interval_ns)
        return 1;
    return 0;
}

static void notify(struct lc_db *db)
{
    for (int i = 0; i < db->nlisteners; i++)
        if (db->listeners[i])
            db->listeners[i](db->listener_args[i]);
}

/* Identity and change stamp of a file: inode, size and mtime. */
static void stamp(const struct stat *st, int64_t out[3])
{
    out[0] = (int64_t)st->st_ino;
    out[1] = (int64_t)st->st_size;
    out[2] = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* 1 when neither the database file nor its WAL changed since the last full sync. SQLite
 * writes the WAL with write(2), never through a mapping, so every change moves the
 * WAL's mtime or size; a replaced file moves its inode. */
static int unchanged(struct lc_db *db)
{
    struct stat st;
    int64_t a[3], b[3];

    if (stat(db->cfg.path, &st) < 0)
        return 0;
    stamp(&st, a);
    if (stat(db->wal_path, &st) < 0)
        return 0;
    stamp(&st, b);
    return memcmp(a, db->db_stamp, sizeof(a)) == 0 && memcmp(b, db->wal_stamp, sizeof(b)) == 0;
}

static void remember_stamps(struct lc_db *db)
{
    struct stat st;
    if (stat(db->cfg.path, &st) == 0)
        stamp(&st, db->db_stamp);
    else
        memset(db->db_stamp, 0, sizeof(db->db_stamp));
    if (stat(db->wal_path, &st) == 0)
        stamp(&st, db->wal_stamp);
    else
        memset(db->wal_stamp, 0, sizeof(db->wal_stamp));
}

/* The checkpoint-interval rule may fire on an idle database: never skip that sync. */
static int idle_checkpoint_due(const struct lc_db *db)
{
    return db->cfg.checkpoint_interval_ns > 0 && db->page_size &&
           db->sh.size > wal_bytes(db->page_size, 1) &&
           lc_now_wall_ns() - db->db_mtime_ns > db->cfg.checkpoint_interval_ns;
}

void lc_db_global_init(void)
{
    /* before any connection opens: no per-connection page-cache bulk allocation and no
     * lookaside slabs, which would cost ~200 KB for each of our two connections a db */
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)NULL, 0, 0);
    sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0);
}

int lc_db_sync(struct lc_db *db, enum lc_sync_why why, struct lc_error *err)
{
    struct stat st;
    uint64_t orig_wal = 0;
    int changed = 0, rc;

    db->stats.syncs++;
    db->sync_changed = 0;
    if (why == LC_SYNC_EVENT)
        db->stats.syncs_by_event++;
    else if (why == LC_SYNC_FALLBACK)
        db->stats.syncs_by_fallback++;
    lc_trigger_synced(&db->trig);

    if (db->is_open && db->watch && why == LC_SYNC_FALLBACK && !db->force_reason &&
        !db->settle_wanted && !idle_checkpoint_due(db) && unchanged(db))
        return 0; /* the idle path: two stats, nothing else */
    if (db->is_open) {
        if (stat(db->cfg.path, &st) < 0) {
            lc_warn("database removed; waiting for it", "db=%s path=%s", db->cfg.name,
                    db->cfg.path);
            db_close(db);
            db->force_reason = "database replaced";
            return 0;
        }
        if (st.st_ino != db->ino || st.st_dev != db->dev) {
            lc_warn("database file replaced; reopening", "db=%s path=%s", db->cfg.name,
                    db->cfg.path);
            db_close(db);
            db->force_reason = "database replaced";
        } else {
            db->db_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        }
    }
    if (!db->is_open) {
        if ((rc = db_open(db, err)) < 0)
            goto fail;
        if (!db->is_open)
            return 0;
        if (fstat(db->dbfd, &st) == 0)
            db->db_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    }
    if ((rc = capture(db, &orig_wal, &changed, err)) < 0)
        goto fail;
    db->fresh = 0;

    int ck = db->snapshot_busy ? 0 : checkpoint_policy(db, orig_wal);
    if (ck && lc_now_mono_ns() - db->ckpt_fail_ns > RETRY_CHECKPOINT_NS) {
        struct lc_error e2 = {0};
        rc = checkpoint(db, ck - 1, &changed, &e2);
        if (rc < 0) {
            db->ckpt_fail_ns = lc_now_mono_ns();
            if (rc != LC_EBUSY)
                lc_warn("checkpoint failed", "db=%s error=\"%s\"", db->cfg.name, e2.msg);
        }
        /* follow the restart (or whatever the checkpoint left) at once */
        if ((rc = capture(db, &orig_wal, &changed, err)) < 0)
            goto fail;
    }
    db->last_sync_mono_ns = lc_now_mono_ns();
    db->last_err[0] = '\0';
    /* taken after our own writes, so the next fallback sync sees only others' changes;
     * a change that raced this sync is caught by its inotify event or a later stamp */
    remember_stamps(db);
    db->sync_changed = changed;
    if (changed)
        notify(db);
    return 0;
fail:
    db->stats.sync_errors++;
    snprintf(db->last_err, sizeof(db->last_err), "%s", err->msg);
    return rc;
}

static void fire(void *arg, enum lc_sync_why why)
{
    struct lc_db *db = arg;
    struct lc_error err = {0};

    if (db->in_sync) /* a nested loop run inside our own sync: come back later */
    {
        lc_trigger_event(&db->trig);
        return;
    }
    db->in_sync = 1;
    /* An event sync runs with the watch quiet (no inotify event for each of the app's
     * writes, see watch.c); a commit that lands after the copy raises none, so each quiet
     * sync is followed by another: quiet again while they find new frames (a writer going
     * flat out keeps the watch quiet), then one with the watch armed, which ends it. */
    int armed = db->armed_followup;
    db->armed_followup = 0;
    if (db->watch && why == LC_SYNC_EVENT && !armed)
        (void)lc_watch_quiet(db->watch, db->watch_handle);
    int rc = lc_db_sync(db, why, &err);
    db->in_sync = 0;
    if (db->watch) {
        int r = lc_watch_rearm(db->watch, db->watch_handle);
        if (r > 0) {
            db->armed_followup = !db->sync_changed;
            lc_trigger_event(&db->trig);
        } else if (r < 0 && rc == 0) {
            lc_debug("inotify re-arm failed; the fallback timer covers it", "db=%s",
                     db->cfg.name);
        }
    }
    if (rc < 0) {
        int64_t now = lc_now_mono_ns();
        if (now - db->last_err_log_ns > ERR_LOG_EVERY_NS) {
            lc_warn("sync failed; will retry", "db=%s error=\"%s\"", db->cfg.name, err.msg);
            db->last_err_log_ns = now;
        }
    }
}

static void on_fs_event(void *arg, uint32_t mask)
{
    struct lc_db *db = arg;
    (void)mask;
    lc_trigger_event(&db->trig);
}

int lc_db_new(struct lc_db **out, const struct lc_db_config *cfg, struct ev_loop *loop,
              struct lc_watch *watch, int64_t debounce_ns, int64_t max_delay_ns,
              int64_t fallback_ns, struct lc_error *err)
{
    struct lc_db *db = calloc(1, sizeof(*db));
    char dir[LC_PATH_MAX];

    if (!db)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    db->cfg = *cfg;
    db->loop = loop;
    db->dbfd = db->walfd = db->dbfd_stale = db->shmfd = -1;
    db->sh.fd = -1;
    db->watch_handle = -1;
    if (snprintf(db->wal_path, sizeof(db->wal_path), "%s-wal", cfg->path) >=
        (int)sizeof(db->wal_path)) {
        free(db);
        return lc_err_set(err, LC_EINVAL, "%s: path too long", cfg->name);
    }
    lc_trigger_init(&db->trig, loop, debounce_ns, max_delay_ns, fallback_ns, fire, db);
    if (watch && cfg->watch) {
        struct lc_error e2 = {0};
        lc_path_dir(cfg->path, dir, sizeof(dir));
        int h = lc_watch_add(watch, dir, lc_path_base(cfg->path), on_fs_event, db, &e2);
        if (h < 0) {
            lc_warn("cannot watch database directory; using the fallback timer only",
                    "db=%s error=\"%s\"", cfg->name, e2.msg);
        } else {
            db->watch = watch;
            db->watch_handle = h;
        }
    }
    lc_trigger_start(&db->trig);
    *out = db;
    return 0;
}

void lc_db_free(struct lc_db *db)
{
    if (!db)
        return;
    lc_trigger_stop(&db->trig);
    if (db->watch)
        lc_watch_remove(db->watch, db->watch_handle);
    db_close(db);
    free(db);
}

int lc_db_add_listener(struct lc_db *db, lc_db_listener_fn fn, void *arg)
{
    for (int i = 0; i < db->nlisteners; i++)
        if (!db->listeners[i]) {
            db->listeners[i] = fn;
            db->listener_args[i] = arg;
            return 0;
        }
    if (db->nlisteners >= LC_DB_MAX_LISTENERS)
        return LC_ENOMEM;
    db->listeners[db->nlisteners] = fn;
    db->listener_args[db->nlisteners] = arg;
    db->nlisteners++;
    return 0;
}

void lc_db_remove_listener(struct lc_db *db, void *arg)
{
    for (int i = 0; i < db->nlisteners; i++)
        if (db->listener_args[i] == arg)
            db->listeners[i] = NULL;
}

void lc_db_release_before(struct lc_db *db, uint32_t index)
{
    if (db->is_open && db->sh.gen[0] && index > db->sh.min_index)
        lc_shadow_prune(&db->sh, index);
}

int lc_db_snapshot_begin(struct lc_db *db)
{
    if (!db->is_open || db->dbfd < 0)
        return -1;
    db->snapshot_busy++;
    return db->dbfd;
}

void lc_db_snapshot_end(struct lc_db *db)
{
    if (db->snapshot_busy > 0 && --db->snapshot_busy == 0 && db->dbfd_stale >= 0) {
        close(db->dbfd_stale);
        db->dbfd_stale = -1;
    }
}

int lc_db_mark_settled(const struct lc_db *db)
{
    return db->is_open && db->read_tx && !db->mark_ahead;
}

int lc_db_base(const struct lc_db *db, uint64_t *off)
{
    if (!lc_db_mark_settled(db) || !db->base_valid)
        return 0;
    *off = db->base_off;
    return 1;
}

void lc_db_want_base(struct lc_db *db)
{
    if (!db->is_open || lc_db_base(db, &(uint64_t){0}))
        return;
    if (!db->settle_wanted)
        lc_debug("checkpoint wanted: a replica needs a settled database file", "db=%s",
                 db->cfg.name);
    db->settle_wanted = 1;
    lc_trigger_event(&db->trig);
}

void lc_db_position_str(const struct lc_db *db, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%08x:%llu", db->sh.gen[0] ? db->sh.gen : "-", db->sh.index,
             (unsigned long long)db->sh.size);
}
