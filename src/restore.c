/* restore: rebuild a database from a replica in Litestream v0.3's layout.
 *
 * Planning follows reference §4 but refuses to guess: the snapshot is the newest
 * usable one (by index, or by time with a timestamp); the segments are those of the
 * snapshot's index and later, in (index, offset) order, up to the first that is newer
 * than the timestamp or above the requested index. Every index in the range must be
 * present and start at offset 0.
 *
 * Applying keeps these invariants:
 *  - memory is bounded: the snapshot is streamed through the LZ4 decoder into a few
 *    4 MiB buffers that a writer thread writes to OUT.tmp; at most `parallelism`
 *    segments are held (compressed; a large one spills to an unlinked temporary file);
 *    a WAL index is verified and applied progressively, never held whole;
 *  - segments are downloaded out of order but applied strictly in order; within an
 *    index each segment starts where the previous one ended (decompressed), the header
 *    and the salts and checksum chain are verified over every frame, and the index
 *    must end on a commit frame;
 *  - each index is applied as SQLite's full checkpoint would apply it: every verified
 *    frame's page is written to OUT.tmp at its page number, in frame order, and at the
 *    index's end the file takes the size its last commit gives (the DESIGN's "writing
 *    frames directly, verified"; test 21 checks the result is byte-identical to
 *    Litestream's restore, which replays with SQLite). A frame is applied only once
 *    verified, and an index that does not end on a commit fails the restore, so no
 *    uncommitted page survives into OUT;
 *  - OUT appears only complete (fsync, rename without replacing, fsync dir); on any
 *    failure OUT.tmp (and an OUT.tmp-wal or -shm an older version left) is removed. */
#include "restore.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "segment.h"
#include "wal.h"

#define SPOOL_CHUNK ((size_t)1 << 20)    /* bytes per read of a spooled segment */
#define SPOOL_MEM_MAX ((size_t)16 << 20) /* a segment above this spills to a tmp file */
#define PAR_MAX 64                       /* upper bound on gets in flight */
#define RETRY_DELAY_NS 200000000LL       /* times the attempt number */
#define TMP_PATH_MAX (LC_PATH_MAX + 16)
#define WRITEBACK_CHUNK (8u << 20)
#define WALW_IOV 256                    /* pages per pwritev when applying frames */
#define WB_SLOT ((size_t)4 << 20)      /* bytes per buffer handed to the writer thread */
#define WB_SLOTS 3                      /* buffers: one filling, two being written */
#define RELIST_DELAY_NS 50000000LL       /* between listings of a replica seen changing */
#define PREFETCH_AHEAD 32                /* segments hinted to the store ahead of the gets */

static void sleep_until(int64_t mono_ns);

void lc_restore_opts_init(struct lc_restore_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->index = -1;
    o->parallelism = LC_RESTORE_PARALLELISM;
    o->mode = 0600;
}

/* ------------------------------------------------------------------------------------ */
/* Choosing and planning                                                                 */

static int snap_usable(const struct lc_snap_info *s, const struct lc_restore_opts *o)
{
    if (o->index >= 0 && (int64_t)s->index > o->index)
        return 0;
    if (o->has_timestamp && s->mtime_ns > o->timestamp_ns)
        return 0;
    return 1;
}

/* With an index: the highest index <= it; with a timestamp: the newest created <= it
 * (the higher index on a tie); else the highest index. */
static const struct lc_snap_info *pick_snapshot(const struct lc_gen_info *g,
                                                const struct lc_restore_opts *o)
{
    const struct lc_snap_info *best = NULL;

    for (size_t i = 0; i < g->nsnaps; i++) {
        const struct lc_snap_info *s = &g->snaps[i];
        if (!snap_usable(s, o))
            continue;
        if (o->has_timestamp && o->index < 0) {
            if (!best || s->mtime_ns >= best->mtime_ns)
                best = s;
        } else {
            best = s; /* sorted by index */
        }
    }
    return best;
}

int lc_restore_choose(struct lc_store *const *stores, size_t n, const struct lc_restore_opts *o,
                      size_t *which, struct lc_gen_info *gen, struct lc_error *err)
{
    struct lc_error local = {0};
    int found = 0, nosnap = 0, rc;

    if (!err)
        err = &local; /* messages need somewhere to go */
    memset(gen, 0, sizeof(*gen));
    for (size_t i = 0; i < n; i++) {
        struct lc_gen_info *v;
        size_t nv;

        if ((rc = lc_catalog_generations(stores[i], &v, &nv, err))) {
            lc_gen_info_clear(gen);
            return lc_err_wrap(err, "%s", stores[i]->desc);
        }
        for (size_t k = 0; k < nv; k++) {
            struct lc_gen_info *g = &v[k];
            if (o->generation && o->generation[0] && strcmp(o->generation, g->id) != 0)
                continue;
            if (g->nsnaps == 0 && g->nsegs == 0)
                continue;
            if (o->has_timestamp && (o->timestamp_ns < g->start_ns || o->timestamp_ns > g->end_ns))
                continue;
            if (!pick_snapshot(g, o)) {
                nosnap = 1;
                continue;
            }
            if (found && g->end_ns <= gen->end_ns)
                continue;
            lc_gen_info_clear(gen);
            *gen = *g;
            memset(g, 0, sizeof(*g)); /* moved */
            *which = i;
            found = 1;
        }
        lc_gen_info_free_all(v, nv);
    }
    if (!found) {
        if (nosnap)
            return lc_err_set(err, LC_ENOTFOUND, "no matching backups found: no snapshots "
                                                 "available");
        return lc_err_set(err, LC_ENOTFOUND, "no matching backups found");
    }
    return 0;
}

static void seg_key(const char *gen, const struct lc_seg_info *s, char *buf, size_t len)
{
    if (lc_seg_wal_key(buf, len, gen, s->index, s->offset))
        snprintf(buf, len, "%s/%08x_%08x", gen, s->index, s->offset);
}

int lc_restore_plan(const struct lc_gen_info *g, const struct lc_restore_opts *o,
                    struct lc_restore_plan *plan, struct lc_error *err)
{
    struct lc_error local = {0};
    const struct lc_snap_info *snap;
    char key[LC_KEY_MAX];

    if (!err)
        err = &local; /* messages need somewhere to go */
    memset(plan, 0, sizeof(*plan));
    memcpy(plan->gen, g->id, sizeof(plan->gen));
    snap = pick_snapshot(g, o);
    if (!snap)
        return lc_err_set(err, LC_ENOTFOUND, "no snapshots available: generation=%s", g->id);
    plan->snap = *snap;
    plan->min_index = plan->max_index = snap->index;
    if (g->nsegs) {
        plan->segs = calloc(g->nsegs, sizeof(*plan->segs));
        if (!plan->segs)
            return lc_err_set(err, LC_ENOMEM, "plan restore: out of memory");
    }
    for (size_t i = 0; i < g->nsegs; i++) {
        const struct lc_seg_info *s = &g->segs[i];
        if (s->index < snap->index)
            continue;
        if (o->index >= 0 && (int64_t)s->index > o->index)
            break;
        if (o->has_timestamp && s->mtime_ns > o->timestamp_ns)
            break;
        plan->segs[plan->nsegs++] = *s;
    }

    uint64_t want = snap->index;
    for (size_t i = 0; i < plan->nsegs; i++) {
        const struct lc_seg_info *s = &plan->segs[i];
        if (i > 0 && s->index == plan->segs[i - 1].index)
            continue;
        if (s->index != want) {
            lc_err_set(err, LC_ENOTFOUND, "missing wal index: %s/%08" PRIx64, g->id, want);
            goto fail;
        }
        if (s->offset != 0) {
            seg_key(g->id, s, key, sizeof(key));
            lc_err_set(err, LC_ENOTFOUND, "missing initial wal segment: %s", key);
            goto fail;
        }
        want = (uint64_t)s->index + 1;
    }
    if (plan->nsegs)
        plan->max_index = plan->segs[plan->nsegs - 1].index;
    return 0;

fail:
    lc_restore_plan_free(plan);
    return err->code;
}

void lc_restore_settle(const struct lc_gen_info *first, struct lc_gen_info *later)
{
    uint32_t top = 0;
    size_t n = 0;

    if (first->nsegs) {
        const struct lc_seg_info *end = &first->segs[first->nsegs - 1];
        top = end->index;
        while (n < later->nsegs &&
               (later->segs[n].index < end->index ||
                (later->segs[n].index == end->index && later->segs[n].offset <= end->offset)))
            n++;
    }
    later->nsegs = n;
    if (first->nsnaps && first->snaps[first->nsnaps - 1].index > top)
        top = first->snaps[first->nsnaps - 1].index;
    n = 0;
    while (n < later->nsnaps && later->snaps[n].index <= top)
        n++;
    later->nsnaps = n;
}

/* List g's generation again, cut the new listing at g's end (see lc_restore_settle), put
 * it in g's place and plan it. */
static int plan_settled(struct lc_store *st, struct lc_gen_info *g,
                        const struct lc_restore_opts *o, struct lc_restore_plan *plan,
                        struct lc_error *err)
{
    struct lc_gen_info later;
    int rc;

    if ((rc = lc_catalog_generation(st, g->id, &later, err)))
        return rc;
    lc_restore_settle(g, &later);
    lc_gen_info_clear(g);
    *g = later;
    return lc_restore_plan(g, o, plan, err);
}

int lc_restore_plan_live(struct lc_store *st, struct lc_gen_info *g,
                         const struct lc_restore_opts *o, struct lc_restore_plan *plan,
                         struct lc_error *err)
{
    char prev[LC_ERR_LEN];
    int rc = plan_settled(st, g, o, plan, err);

    for (int i = 0; i < LC_RESTORE_RELISTS && rc == LC_ENOTFOUND &&
                    strncmp(err->msg, "missing ", 8) == 0;
         i++) {
        struct lc_gen_info g2;
        snprintf(prev, sizeof(prev), "%s", err->msg);
        sleep_until(lc_now_mono_ns() + RELIST_DELAY_NS);
        if ((rc = lc_catalog_generation(st, g->id, &g2, err)))
            return rc;
        lc_gen_info_clear(g);
        *g = g2;
        rc = plan_settled(st, g, o, plan, err);
        if (rc == 0)
            lc_warn("replica changed while it was listed; listed again", "first=\"%s\"", prev);
        else if (strcmp(prev, err->msg) == 0)
            break; /* the same hole twice: damage */
    }
    return rc;
}

void lc_restore_plan_free(struct lc_restore_plan *plan)
{
    if (!plan)
        return;
    free(plan->segs);
    plan->segs = NULL;
    plan->nsegs = 0;
}

/* ------------------------------------------------------------------------------------ */
/* Streaming a WAL index: verify, then write to OUT.tmp-wal                              */

struct walw {
    int fd;                 /* OUT.tmp (borrowed: open for the whole WAL phase), or -1 */
    uint32_t db_page_size;  /* from the snapshot's header */
    uint32_t index;         /* WAL index being written */
    uint8_t hbuf[LC_WAL_HDR_SIZE];
    size_t hlen;            /* header bytes collected */
    int have_hdr;           /* header parsed and written */
    struct lc_wal_hdr hdr;
    struct lc_wal_cursor cur; /* verifies frames; cur.off = bytes verified and applied */
    uint8_t *frame;         /* a frame split across decoder outputs or segments */
    size_t fsz, flen;       /* frame size; bytes held in frame */
    uint64_t pos;           /* decompressed bytes received: the next segment's offset */
    const char *path;       /* OUT.tmp, for messages */
};

/* Write the pages of n bytes of verified frames to OUT.tmp at their page numbers, in
 * frame order (a later image of a page overwrites an earlier one), a run of consecutive
 * page numbers per pwritev. */
static int walw_apply(struct walw *w, const uint8_t *p, size_t n)
{
    struct iovec iov[WALW_IOV];
    size_t psz = w->hdr.page_size, k = 0;
    uint64_t start = 0;
    uint32_t next = 0;

    for (size_t at = 0; at < n; at += w->fsz) {
        uint32_t pgno = lc_wal_frame_pgno(p + at);
        if (k && (pgno != next || k == WALW_IOV)) {
            if (lc_pwritev_full(w->fd, iov, (int)k, (off_t)start) < 0)
                return -1;
            k = 0;
        }
        if (k == 0)
            start = (uint64_t)(pgno - 1) * psz;
        iov[k].iov_base = (void *)(uintptr_t)(p + at + LC_WAL_FRAME_HDR_SIZE);
        iov[k].iov_len = psz;
        k++;
        next = pgno + 1;
    }
    if (k && lc_pwritev_full(w->fd, iov, (int)k, (off_t)start) < 0)
        return -1;
    return 0;
}

static int walw_frames(struct walw *w, const uint8_t *p, size_t n, const char *key,
                       struct lc_error *err)
{
    uint64_t off = w->cur.off;
    size_t acc = lc_wal_cursor_feed(&w->cur, p, n);

    if (acc && walw_apply(w, p, acc) < 0)
        return lc_err_set(err, LC_EIO, "write wal index %08x to %s: %s", w->index, w->path,
                          strerror(errno));
    if (acc < n) {
        if (w->cur.stop == LC_WAL_SALT)
            return lc_err_set(err, LC_ECORRUPT, "salt mismatch in %s at offset %" PRIu64, key,
                              off + acc);
        return lc_err_set(err, LC_ECORRUPT, "wal checksum break in %s at offset %" PRIu64, key,
                          off + acc);
    }
    return 0;
}

static int walw_feed(struct walw *w, const uint8_t *p, size_t n, const char *key,
                     struct lc_error *err)
{
    int rc;

    w->pos += n;
    if (!w->have_hdr) {
        size_t take = LC_WAL_HDR_SIZE - w->hlen;
        if (take > n)
            take = n;
        memcpy(w->hbuf + w->hlen, p, take);
        w->hlen += take;
        p += take;
        n -= take;
        if (w->hlen < LC_WAL_HDR_SIZE)
            return 0;
        if ((rc = lc_wal_hdr_parse(w->hbuf, LC_WAL_HDR_SIZE, &w->hdr, err))) {
            lc_err_wrap(err, "invalid wal header in %s", key);
            err->code = LC_ECORRUPT;
            return LC_ECORRUPT;
        }
        if (w->hdr.page_size != w->db_page_size)
            return lc_err_set(err, LC_ECORRUPT,
                              "wal page size %u in %s does not match database page size %u",
                              w->hdr.page_size, key, w->db_page_size);
        lc_wal_cursor_init(&w->cur, &w->hdr, LC_WAL_HDR_SIZE, w->hdr.cksum);
        w->fsz = (size_t)lc_wal_frame_size(w->hdr.page_size);
        w->frame = malloc(w->fsz);
        if (!w->frame)
            return lc_err_set(err, LC_ENOMEM, "wal index %08x: out of memory", w->index);
        w->have_hdr = 1;
    }
    if (w->flen && n) {
        size_t take = w->fsz - w->flen;
        if (take > n)
            take = n;
        memcpy(w->frame + w->flen, p, take);
        w->flen += take;
        p += take;
        n -= take;
        if (w->flen < w->fsz)
            return 0;
        w->flen = 0;
        if ((rc = walw_frames(w, w->frame, w->fsz, key, err)))
            return rc;
    }
    size_t whole = n - n % w->fsz;
    if (whole && (rc = walw_frames(w, p, whole, key, err)))
        return rc;
    if (n > whole) {
        memcpy(w->frame, p + whole, n - whole);
        w->flen = n - whole;
    }
    return 0;
}

/* The index is complete: it must be a header plus whole frames ending on a commit. */
static int walw_finish(struct walw *w, const char *key, struct lc_error *err)
{
    if (!w->have_hdr)
        return lc_err_set(err, LC_ECORRUPT, "short wal header in %s", key);
    if (w->flen)
        return lc_err_set(err, LC_ECORRUPT, "partial wal frame at end of %s at offset %" PRIu64,
                          key, w->cur.off);
    if (w->cur.commit_off != w->cur.off)
        return lc_err_set(err, LC_ECORRUPT,
                          "wal does not end at a commit frame in %s at offset %" PRIu64, key,
                          w->cur.commit_off);
    return 0;
}

/* Forget the index (the fd stays: it is OUT.tmp's, closed by restore_wal). */
static void walw_close(struct walw *w)
{
    int fd = w->fd;
    const char *path = w->path;

    free(w->frame);
    memset(w, 0, sizeof(*w));
    w->fd = fd;
    w->path = path;
}

/* ------------------------------------------------------------------------------------ */
/* Downloads                                                                             */

enum job_state { JOB_IDLE = 0, JOB_FLIGHT, JOB_RETRY, JOB_DONE, JOB_FAILED };

struct apply;

/* One segment download; the slots form a ring indexed by segment number. */
struct job {
    struct apply *ap;              /* owner */
    const struct lc_seg_info *seg; /* borrowed from the plan */
    char key[LC_KEY_MAX];
    enum job_state state;
    int attempts;                  /* gets issued */
    int64_t retry_at;              /* monotonic ns, for JOB_RETRY */
    int rc;                        /* final result */
    struct lc_error err;
    int sink_failed;               /* the failure was ours (not the store's): no retry */
    struct lc_buf mem;             /* compressed bytes, while small */
    int spool_fd;                  /* compressed bytes once large (unlinked file), or -1 */
    uint64_t len;                  /* compressed bytes held */
    struct lc_store_sink sink;
};

struct apply {
    struct lc_store *st;
    const struct lc_restore_plan *plan;
    const struct lc_restore_opts *o;
    char out[LC_PATH_MAX];
    char tmp[TMP_PATH_MAX];      /* OUT.tmp */
    char tmp_wal[TMP_PATH_MAX];  /* OUT.tmp-wal */
    char tmp_shm[TMP_PATH_MAX];  /* OUT.tmp-shm */
    char dir[LC_PATH_MAX];       /* directory of OUT */
    mode_t mode;
    uint32_t db_page_size;
    struct job *jobs;
    size_t par;                  /* gets in flight at most */
    size_t slots;                /* read-ahead window: jobs held (4 x par) */
    uint8_t *scratch;            /* SPOOL_CHUNK bytes for reading spool files */
};

static int spool_open(struct apply *ap, struct lc_error *err)
{
    char path[TMP_PATH_MAX + 16];
    int fd = open(ap->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd >= 0)
        return fd;
    /* no O_TMPFILE on this file system: a named file, unlinked at once */
    snprintf(path, sizeof(path), "%s-spool-XXXXXX", ap->tmp);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "create %s: %s", path, strerror(errno));
    if (unlink(path) < 0) {
        int e = errno;
        close(fd);
        return lc_err_set(err, LC_EIO, "unlink %s: %s", path, strerror(e));
    }
    return fd;
}

static int job_sink_write(void *arg, const uint8_t *buf, size_t n, struct lc_error *err)
{
    struct job *j = arg;

    if (j->spool_fd < 0 && j->len + n <= SPOOL_MEM_MAX) {
        if (lc_buf_append(&j->mem, buf, n)) {
            j->sink_failed = 1;
            return lc_err_set(err, LC_ENOMEM, "get %s: out of memory", j->key);
        }
        j->len += n;
        return 0;
    }
    if (j->spool_fd < 0) {
        int fd = spool_open(j->ap, err);
        if (fd < 0) {
            j->sink_failed = 1;
            return fd;
        }
        j->spool_fd = fd;
        if (j->mem.len && lc_pwrite_full(fd, j->mem.data, j->mem.len, 0) < 0) {
            j->sink_failed = 1;
            return lc_err_set(err, LC_EIO, "spool %s: %s", j->key, strerror(errno));
        }
        lc_buf_free(&j->mem);
    }
    if (lc_pwrite_full(j->spool_fd, buf, n, (off_t)j->len) < 0) {
        j->sink_failed = 1;
        return lc_err_set(err, LC_EIO, "spool %s: %s", j->key, strerror(errno));
    }
    j->len += n;
    return 0;
}

static int job_sink_reset(void *arg, struct lc_error *err)
{
    struct job *j = arg;

    j->mem.len = 0;
    j->len = 0;
    if (j->spool_fd >= 0 && ftruncate(j->spool_fd, 0) < 0) {
        j->sink_failed = 1;
        return lc_err_set(err, LC_EIO, "spool %s: %s", j->key, strerror(errno));
    }
    return 0;
}

/* A failed get is retried unless the object is missing or the failure was ours. */
static int retryable(int rc, int sink_failed, int attempts)
{
    return rc != LC_ENOTFOUND && !sink_failed && attempts <= LC_RESTORE_RETRIES;
}

static void job_done(void *arg, int rc, const struct lc_error *err)
{
    struct job *j = arg;

    j->rc = rc;
    if (rc == 0) {
        j->state = JOB_DONE;
        return;
    }
    if (err)
        j->err = *err;
    else
        lc_err_set(&j->err, rc, "get %s failed", j->key);
    if (retryable(rc, j->sink_failed, j->attempts)) {
        lc_warn("segment download failed, retrying", "key=%s attempt=%d error=\"%s\"", j->key,
                j->attempts, j->err.msg);
        j->state = JOB_RETRY;
        j->retry_at = lc_now_mono_ns() + RETRY_DELAY_NS * j->attempts;
    } else {
        j->state = JOB_FAILED;
    }
}

static void job_issue(struct job *j)
{
    struct lc_error err = {0};

    if (job_sink_reset(j, &err)) {
        job_done(j, err.code, &err);
        return;
    }
    j->sink_failed = 0;
    j->attempts++;
    j->state = JOB_FLIGHT;
    j->ap->st->ops->get(j->ap->st, j->key, &j->sink, job_done, j);
}

static void job_start(struct job *j, const struct lc_seg_info *seg)
{
    j->seg = seg;
    j->attempts = 0;
    j->rc = 0;
    lc_err_clear(&j->err);
    seg_key(j->ap->plan->gen, seg, j->key, sizeof(j->key));
    job_issue(j);
}

static void job_release(struct job *j)
{
    lc_buf_free(&j->mem);
    if (j->spool_fd >= 0)
        close(j->spool_fd);
    j->spool_fd = -1;
    j->len = 0;
    j->seg = NULL;
    j->state = JOB_IDLE;
}

static size_t jobs_in_flight(const struct apply *ap)
{
    size_t n = 0;
    for (size_t i = 0; i < ap->slots; i++)
        n += ap->jobs[i].state == JOB_FLIGHT;
    return n;
}

/* Wait for every get in flight: their callbacks write into our jobs. */
static void jobs_drain(struct apply *ap)
{
    while (jobs_in_flight(ap) && ap->st->loop)
        ev_run(ap->st->loop, EVRUN_ONCE);
}

static void sleep_until(int64_t mono_ns)
{
    int64_t d = mono_ns - lc_now_mono_ns();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)(d / 1000000000), (long)(d % 1000000000)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------------------ */
/* Decompression                                                                         */

/* What dec_feed hands the decoder: the consumer, and whether a failure was its own. */
struct feed {
    int (*emit)(void *arg, const uint8_t *b, size_t n, struct lc_error *err);
    void *arg;
    int emit_failed;
};

static int feed_emit(void *arg, const uint8_t *b, size_t n, struct lc_error *err)
{
    struct feed *f = arg;
    int rc = f->emit(f->arg, b, n, err);
    if (rc)
        f->emit_failed = 1;
    return rc;
}

/* Feed compressed bytes into dec, all at once: liblz4 then decodes whole blocks straight
 * from them, and each block's output goes to emit from the decoder's own buffer. *done is
 * set once the frame has ended; bytes after it are an error. */
static int dec_feed(struct lc_lz4_dec *dec, const uint8_t *p, size_t n, int *done,
                    const char *key,
                    int (*emit)(void *arg, const uint8_t *b, size_t n, struct lc_error *err),
                    void *arg, struct lc_error *err)
{
    struct feed f = {emit, arg, 0};

    if (*done && n)
        return lc_err_set(err, LC_ECORRUPT, "trailing data after lz4 frame in %s", key);
    int rc = lc_lz4_dec_stream(dec, p, n, feed_emit, &f, done, err);
    if (rc && !f.emit_failed) {
        lc_err_wrap(err, "corrupt lz4 in %s", key);
        err->code = rc == LC_ENOMEM ? LC_ENOMEM : LC_ECORRUPT;
        return err->code;
    }
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Snapshot                                                                              */

/* The snapshot's writer thread. Decompressing and verifying (liblz4, XXH32) and copying
 * into the page cache (pwrite) each take about half of a snapshot restore's CPU time, so
 * the decoder fills one buffer while a second thread writes the previous ones to OUT.tmp,
 * in order, at their offsets, starting writeback every WRITEBACK_CHUNK. The thread touches
 * nothing but the fd and these buffers, blocks every signal, and stops at the first write
 * error, which the decoder side sees at its next hand-over. */
struct wb {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd;
    int started, stop;    /* under mu */
    int werr;             /* the first write's errno, 0 if none (under mu) */
    unsigned queued;      /* buffers handed over and not yet written (under mu) */
    unsigned head;        /* next buffer the thread writes (under mu) */
    unsigned fill;        /* the buffer being filled (decoder side only) */
    uint8_t *buf[WB_SLOTS];
    size_t len[WB_SLOTS];
    uint64_t off[WB_SLOTS];
    uint64_t flushed;     /* thread only */
};

static void *wb_main(void *arg)
{
    struct wb *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->queued && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->queued)
            break;
        unsigned i = w->head;
        int e = 0, skip = w->werr != 0; /* after an error the rest is dropped */
        pthread_mutex_unlock(&w->mu);
        if (!skip && lc_pwrite_full(w->fd, w->buf[i], w->len[i], (off_t)w->off[i]) < 0)
            e = errno ? errno : EIO;
        uint64_t end = w->off[i] + w->len[i];
        if (!skip && !e && end - w->flushed >= WRITEBACK_CHUNK) {
            /* a hint: errors surface at the final fsync */
            (void)sync_file_range(w->fd, (off_t)w->flushed, (off_t)(end - w->flushed),
                                  SYNC_FILE_RANGE_WRITE);
            w->flushed = end;
        }
        pthread_mutex_lock(&w->mu);
        if (e && !w->werr)
            w->werr = e;
        w->head = (i + 1) % WB_SLOTS;
        w->queued--;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int wb_start(struct wb *w, int fd, struct lc_error *err)
{
    sigset_t all, old;

    memset(w, 0, sizeof(*w));
    w->fd = fd;
    for (unsigned i = 0; i < WB_SLOTS; i++) {
        if (!(w->buf[i] = malloc(WB_SLOT))) {
            while (i--)
                free(w->buf[i]);
            return lc_err_set(err, LC_ENOMEM, "restore: out of memory");
        }
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&w->th, NULL, wb_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        for (unsigned i = 0; i < WB_SLOTS; i++)
            free(w->buf[i]);
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return lc_err_set(err, LC_ENOMEM, "restore: cannot start the writer thread: %s",
                          strerror(e));
    }
    w->started = 1;
    return 0;
}

/* Hand over the buffer being filled (if it holds anything) and wait for a free one. */
static int wb_push(struct wb *w)
{
    int e;

    pthread_mutex_lock(&w->mu);
    if (w->len[w->fill]) {
        w->queued++;
        pthread_cond_broadcast(&w->cv);
        w->fill = (w->fill + 1) % WB_SLOTS;
        while (w->queued == WB_SLOTS && !w->werr)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->werr)
            w->len[w->fill] = 0; /* not queued: queued < WB_SLOTS */
    }
    e = w->werr;
    pthread_mutex_unlock(&w->mu);
    return e;
}

/* Wait until everything handed over is written; the first write error's errno, or 0. */
static int wb_drain(struct wb *w)
{
    int e = wb_push(w);

    pthread_mutex_lock(&w->mu);
    while (w->queued)
        pthread_cond_wait(&w->cv, &w->mu);
    e = w->werr;
    pthread_mutex_unlock(&w->mu);
    return e;
}

/* Append n bytes at offset off (the decoder's output is contiguous). */
static int wb_write(struct wb *w, const uint8_t *b, size_t n, uint64_t off)
{
    while (n) {
        unsigned f = w->fill;
        if (w->len[f] == 0)
            w->off[f] = off;
        size_t take = WB_SLOT - w->len[f];
        if (take > n)
            take = n;
        memcpy(w->buf[f] + w->len[f], b, take);
        w->len[f] += take;
        b += take;
        off += take;
        n -= take;
        if (w->len[f] == WB_SLOT) {
            int e = wb_push(w);
            if (e)
                return e;
        }
    }
    return 0;
}

/* Forget what is being filled and start writing back from the beginning (a retry). */
static int wb_reset(struct wb *w)
{
    int e;

    pthread_mutex_lock(&w->mu);
    while (w->queued)
        pthread_cond_wait(&w->cv, &w->mu);
    e = w->werr;
    w->werr = 0;
    w->flushed = 0;
    for (unsigned i = 0; i < WB_SLOTS; i++)
        w->len[i] = 0;
    pthread_mutex_unlock(&w->mu);
    return e;
}

static void wb_stop(struct wb *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    for (unsigned i = 0; i < WB_SLOTS; i++)
        free(w->buf[i]);
    w->started = 0;
}

struct snapsink {
    struct apply *ap;
    const char *key;
    int fd;                  /* OUT.tmp */
    struct lc_lz4_dec *dec;
    int done;                /* frame ended */
    uint64_t pos;            /* decompressed bytes handed to the writer thread */
    struct wb wb;
    uint8_t head[100];       /* the SQLite database header */
    size_t headlen;
    int sink_failed;
};

static int snap_emit(void *arg, const uint8_t *b, size_t n, struct lc_error *err)
{
    struct snapsink *s = arg;

    if (s->headlen < sizeof(s->head)) {
        size_t take = sizeof(s->head) - s->headlen;
        if (take > n)
            take = n;
        memcpy(s->head + s->headlen, b, take);
        s->headlen += take;
        /* say so at once, not after writing out what may be gigabytes of something else */
        if (s->headlen >= 16 && memcmp(s->head, "SQLite format 3", 16) != 0)
            return lc_err_set(err, LC_ECORRUPT, "snapshot %s is not a sqlite database",
                              s->key);
    }
    int e = wb_write(&s->wb, b, n, s->pos);
    if (e)
        return lc_err_set(err, LC_EIO, "write %s: %s", s->ap->tmp, strerror(e));
    s->pos += n;
    return 0;
}

static int snap_sink_write(void *arg, const uint8_t *buf, size_t n, struct lc_error *err)
{
    struct snapsink *s = arg;
    int rc = dec_feed(s->dec, buf, n, &s->done, s->key, snap_emit, s, err);
    if (rc)
        s->sink_failed = 1;
    return rc;
}

static int snap_sink_reset(void *arg, struct lc_error *err)
{
    struct snapsink *s = arg;

    lc_lz4_dec_free(s->dec);
    s->dec = NULL;
    s->done = 0;
    s->pos = 0;
    s->headlen = 0;
    (void)wb_reset(&s->wb); /* a write error is why we are here, or was reported */
    if (ftruncate(s->fd, 0) < 0) {
        s->sink_failed = 1;
        return lc_err_set(err, LC_EIO, "truncate %s: %s", s->ap->tmp, strerror(errno));
    }
    int rc = lc_lz4_dec_new(&s->dec, err);
    if (rc)
        s->sink_failed = 1;
    return rc;
}

static int restore_snapshot(struct apply *ap, struct lc_error *err)
{
    const struct lc_restore_plan *plan = ap->plan;
    char key[LC_KEY_MAX];
    struct snapsink s = {0};
    struct lc_store_sink sink = {snap_sink_write, snap_sink_reset, &s};
    int rc;

    if (lc_seg_snapshot_key(key, sizeof(key), plan->gen, plan->snap.index))
        return lc_err_set(err, LC_EINVAL, "snapshot key too long: %s", plan->gen);
    s.ap = ap;
    s.key = key;
    do {
        s.fd = open(ap->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, ap->mode);
    } while (s.fd < 0 && errno == EINTR);
    if (s.fd < 0)
        return lc_err_set(err, LC_EIO, "create %s: %s", ap->tmp, strerror(errno));
    if (fchmod(s.fd, ap->mode) < 0) {
        rc = lc_err_set(err, LC_EIO, "chmod %s: %s", ap->tmp, strerror(errno));
        goto out;
    }
    if ((rc = wb_start(&s.wb, s.fd, err)))
        goto out;
    lc_info("restoring snapshot", "generation=%s index=%08x path=\"%s\"", plan->gen,
            plan->snap.index, ap->tmp);
    for (int attempt = 1;; attempt++) {
        struct lc_error e = {0};
        if ((rc = snap_sink_reset(&s, &e)) == 0)
            rc = lc_store_get_sync(ap->st, key, &sink, &e);
        if (rc == 0)
            break;
        if (!retryable(rc, s.sink_failed, attempt)) {
            *err = e;
            goto out;
        }
        lc_warn("snapshot download failed, retrying", "key=%s attempt=%d error=\"%s\"", key,
                attempt, e.msg);
        sleep_until(lc_now_mono_ns() + RETRY_DELAY_NS * attempt);
    }
    if (!s.done) {
        rc = lc_err_set(err, LC_ECORRUPT, "truncated lz4 frame in %s", key);
        goto out;
    }
    int e = wb_drain(&s.wb);
    if (e) {
        rc = lc_err_set(err, LC_EIO, "write %s: %s", ap->tmp, strerror(e));
        goto out;
    }
    if (s.headlen < sizeof(s.head) || memcmp(s.head, "SQLite format 3", 16) != 0) {
        rc = lc_err_set(err, LC_ECORRUPT, "snapshot %s is not a sqlite database", key);
        goto out;
    }
    ap->db_page_size = (uint32_t)s.head[16] << 8 | s.head[17];
    if (ap->db_page_size == 1)
        ap->db_page_size = 65536;
    if (ap->db_page_size < 512 || (ap->db_page_size & (ap->db_page_size - 1))) {
        rc = lc_err_set(err, LC_ECORRUPT, "snapshot %s: invalid page size %u", key,
                        ap->db_page_size);
        goto out;
    }
    rc = 0;
out:
    wb_stop(&s.wb);
    lc_lz4_dec_free(s.dec);
    if (close(s.fd) < 0 && rc == 0)
        rc = lc_err_set(err, LC_EIO, "close %s: %s", ap->tmp, strerror(errno));
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Applying WAL indexes                                                                  */

static int remove_file(const char *path, struct lc_error *err)
{
    if (unlink(path) < 0 && errno != ENOENT)
        return lc_err_set(err, LC_EIO, "remove %s: %s", path, strerror(errno));
    return 0;
}

struct wal_emit_ctx {
    struct walw *w;
    const char *key; /* the segment being decompressed, for messages */
};

static int wal_emit(void *arg, const uint8_t *b, size_t n, struct lc_error *err)
{
    struct wal_emit_ctx *c = arg;
    return walw_feed(c->w, b, n, c->key, err);
}

/* Decompress one downloaded segment into the index being written. */
static int apply_segment(struct apply *ap, struct walw *w, struct job *j, struct lc_error *err)
{
    struct wal_emit_ctx c = {w, j->key};
    struct lc_lz4_dec *dec = NULL;
    int done = 0, rc;

    if ((uint64_t)j->seg->offset != w->pos)
        return lc_err_set(err, LC_ECORRUPT, "wal segment gap: %s expected offset %" PRIu64,
                          j->key, w->pos);
    if ((rc = lc_lz4_dec_new(&dec, err)))
        return rc;
    if (j->spool_fd < 0) {
        rc = dec_feed(dec, j->mem.data, j->mem.len, &done, j->key, wal_emit, &c, err);
    } else {
        for (uint64_t off = 0; rc == 0 && off < j->len;) {
            size_t take = j->len - off < SPOOL_CHUNK ? (size_t)(j->len - off) : SPOOL_CHUNK;
            ssize_t got = lc_pread_full(j->spool_fd, ap->scratch, take, (off_t)off);
            if (got != (ssize_t)take) {
                rc = lc_err_set(err, LC_EIO, "read spooled %s: %s", j->key,
                                got < 0 ? strerror(errno) : "short read");
                break;
            }
            rc = dec_feed(dec, ap->scratch, take, &done, j->key, wal_emit, &c, err);
            off += take;
        }
    }
    if (rc == 0 && !done)
        rc = lc_err_set(err, LC_ECORRUPT, "truncated lz4 frame in %s", j->key);
    lc_lz4_dec_free(dec);
    return rc;
}

/* Open OUT.tmp-wal afresh for a new index. */
/* Start a new index: its header comes first in the next segment. */
static void index_begin(struct apply *ap, struct walw *w, uint32_t index)
{
    walw_close(w);
    w->db_page_size = ap->db_page_size;
    w->index = index;
}

/* The last segment of an index has been applied: it must end on a commit, and the
 * database then has that commit's size (as after SQLite's own full checkpoint: pages
 * beyond it are cut, a file shorter than it is extended). */
static int index_end(struct apply *ap, struct walw *w, const char *key, struct lc_error *err)
{
    uint32_t index = w->index;
    uint64_t frames = w->cur.frames;
    int rc;

    if ((rc = walw_finish(w, key, err)))
        return rc;
    if (frames && ftruncate(w->fd, (off_t)((uint64_t)w->cur.commit_pages * w->hdr.page_size)) < 0)
        return lc_err_set(err, LC_EIO, "truncate %s: %s", ap->tmp, strerror(errno));
    walw_close(w);
    lc_info("applied wal", "generation=%s index=%08x frames=%" PRIu64, ap->plan->gen, index,
            frames);
    return 0;
}

/* Does a listing taken now show segment (index, offset) of the plan's generation? */
static int listed_now(struct apply *ap, uint32_t index, uint64_t offset)
{
    struct lc_gen_info g;
    struct lc_error e = {0};
    int found = 0;

    if (lc_catalog_generation(ap->st, ap->plan->gen, &g, &e))
        return 0;
    for (size_t i = 0; i < g.nsegs && !found; i++)
        found = g.segs[i].index == index && g.segs[i].offset == offset;
    lc_gen_info_clear(&g);
    return found;
}

static int restore_wal(struct apply *ap, struct lc_error *err)
{
    const struct lc_restore_plan *plan = ap->plan;
    struct walw w;
    size_t next_start = 0, next_apply = 0, next_hint = 0;
    char key[LC_KEY_MAX] = ""; /* the last segment applied */
    int rc = 0;

    memset(&w, 0, sizeof(w));
    w.path = ap->tmp;
    do {
        w.fd = open(ap->tmp, O_WRONLY | O_CLOEXEC);
    } while (w.fd < 0 && errno == EINTR);
    if (w.fd < 0)
        return lc_err_set(err, LC_EIO, "open %s: %s", ap->tmp, strerror(errno));
    lc_info("restoring wal files", "generation=%s index_min=%08x index_max=%08x segments=%zu",
            plan->gen, plan->min_index, plan->max_index, plan->nsegs);
    while (next_apply < plan->nsegs) {
        /* par gets in flight, but up to slots segments ahead of the one applied next, so
         * one slow or retried get does not hold up every download behind it */
        while (next_start < plan->nsegs && next_start - next_apply < ap->slots &&
               jobs_in_flight(ap) < ap->par) {
            job_start(&ap->jobs[next_start % ap->slots], &plan->segs[next_start]);
            next_start++;
        }
        if (ap->st->ops->prefetch) {
            if (next_hint < next_start)
                next_hint = next_start;
            for (; next_hint < plan->nsegs && next_hint < next_start + PREFETCH_AHEAD;
                 next_hint++) {
                char hint[LC_KEY_MAX];
                seg_key(plan->gen, &plan->segs[next_hint], hint, sizeof(hint));
                ap->st->ops->prefetch(ap->st, hint);
            }
        }
        int64_t now = lc_now_mono_ns();
        for (size_t i = 0; i < ap->slots; i++)
            if (ap->jobs[i].state == JOB_RETRY && ap->jobs[i].retry_at <= now)
                job_issue(&ap->jobs[i]);

        struct job *j = &ap->jobs[next_apply % ap->slots];
        if (j->state == JOB_FAILED) {
            *err = j->err;
            rc = j->rc ? j->rc : LC_EIO;
            break;
        }
        if (j->state == JOB_RETRY) {
            if (jobs_in_flight(ap) && ap->st->loop)
                ev_run(ap->st->loop, EVRUN_ONCE);
            else
                sleep_until(j->retry_at);
            continue;
        }
        if (j->state == JOB_FLIGHT) {
            if (!ap->st->loop) {
                rc = lc_err_set(err, LC_EIO, "%s: get pending without an event loop",
                                ap->st->desc);
                break;
            }
            ev_run(ap->st->loop, EVRUN_ONCE);
            continue;
        }
        /* JOB_DONE: apply in order */
        const struct lc_seg_info *seg = j->seg;
        int first = next_apply == 0 || plan->segs[next_apply - 1].index != seg->index;
        if (!first && (uint64_t)seg->offset != w.pos && listed_now(ap, seg->index, w.pos)) {
            /* the segment that fills the gap exists now: the listing raced the writer */
            lc_warn("replica changed while it was listed: restoring up to the gap",
                    "key=%s expected_offset=%" PRIu64, j->key, w.pos);
            job_release(j);
            rc = index_end(ap, &w, key, err);
            break;
        }
        memcpy(key, j->key, sizeof(key));
        if (first)
            index_begin(ap, &w, seg->index);
        rc = apply_segment(ap, &w, j, err);
        job_release(j);
        next_apply++;
        if (rc)
            break;
        if ((next_apply == plan->nsegs || plan->segs[next_apply].index != seg->index) &&
            (rc = index_end(ap, &w, key, err)))
            break;
    }
    walw_close(&w);
    if (close(w.fd) < 0 && rc == 0)
        rc = lc_err_set(err, LC_EIO, "close %s: %s", ap->tmp, strerror(errno));
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Putting it together                                                                   */

static int output_exists(const char *path, struct lc_error *err)
{
    struct stat sb;

    if (lstat(path, &sb) == 0)
        return lc_err_set(err, LC_EINVAL, "cannot restore, output path already exists: %s",
                          path);
    if (errno != ENOENT)
        return lc_err_set(err, LC_EIO, "stat %s: %s", path, strerror(errno));
    return 0;
}

/* Rename without ever replacing something that appeared at `to` meanwhile. */
static int rename_noreplace(const char *from, const char *to, struct lc_error *err)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST)
        return output_exists(to, err);
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return lc_err_set(err, LC_EIO, "rename %s: %s", from, strerror(errno));
    /* the file system lacks RENAME_NOREPLACE: link() refuses to replace as well */
    if (link(from, to) == 0) {
        if (unlink(from) < 0)
            return lc_err_set(err, LC_EIO, "remove %s: %s", from, strerror(errno));
        return 0;
    }
    if (errno == EEXIST)
        return output_exists(to, err);
    int rc = output_exists(to, err);
    if (rc)
        return rc;
    if (rename(from, to) < 0)
        return lc_err_set(err, LC_EIO, "rename %s: %s", from, strerror(errno));
    return 0;
}

static int finalize(struct apply *ap, struct lc_error *err)
{
    int fd, rc;

    do {
        fd = open(ap->tmp, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "open %s: %s", ap->tmp, strerror(errno));
    if (fsync(fd) < 0) {
        int e = errno;
        close(fd);
        return lc_err_set(err, LC_EIO, "fsync %s: %s", ap->tmp, strerror(e));
    }
    if (close(fd) < 0)
        return lc_err_set(err, LC_EIO, "close %s: %s", ap->tmp, strerror(errno));
    if ((rc = remove_file(ap->tmp_wal, err)) || (rc = remove_file(ap->tmp_shm, err)))
        return rc;
    lc_info("renaming database from temporary location", "path=\"%s\"", ap->out);
    if ((rc = rename_noreplace(ap->tmp, ap->out, err)))
        return rc;
    return lc_fsync_dir(ap->dir, err);
}

static int set_paths(struct apply *ap, const char *out, struct lc_error *err)
{
    size_t n = out ? strlen(out) : 0;

    if (n == 0)
        return lc_err_set(err, LC_EINVAL, "restore: no output path");
    if (n >= sizeof(ap->out))
        return lc_err_set(err, LC_EINVAL, "output path too long: %s", out);
    memcpy(ap->out, out, n + 1);
    snprintf(ap->tmp, sizeof(ap->tmp), "%s.tmp", out);
    snprintf(ap->tmp_wal, sizeof(ap->tmp_wal), "%s.tmp-wal", out);
    snprintf(ap->tmp_shm, sizeof(ap->tmp_shm), "%s.tmp-shm", out);
    lc_path_dir(out, ap->dir, sizeof(ap->dir));
    return 0;
}

int lc_restore_apply(struct lc_store *st, const struct lc_restore_plan *plan,
                     const struct lc_restore_opts *o, struct lc_error *err)
{
    struct lc_error local = {0};
    struct apply *ap;
    int rc;

    if (!err)
        err = &local; /* messages need somewhere to go */
    ap = calloc(1, sizeof(*ap));
    if (!ap)
        return lc_err_set(err, LC_ENOMEM, "restore: out of memory");
    ap->st = st;
    ap->plan = plan;
    ap->o = o;
    ap->mode = o->mode ? o->mode : 0600;
    ap->par = o->parallelism > 0 ? (size_t)o->parallelism : LC_RESTORE_PARALLELISM;
    if (ap->par > PAR_MAX)
        ap->par = PAR_MAX;
    ap->slots = 4 * ap->par;
    if ((rc = set_paths(ap, o->output, err))) {
        free(ap);
        return rc;
    }
    if ((rc = output_exists(ap->out, err))) {
        free(ap);
        return rc;
    }
    if ((rc = lc_mkdir_p(ap->dir, 0700, err))) {
        free(ap);
        return rc;
    }
    ap->jobs = calloc(ap->slots, sizeof(*ap->jobs));
    ap->scratch = malloc(SPOOL_CHUNK);
    if (!ap->jobs || !ap->scratch) {
        rc = lc_err_set(err, LC_ENOMEM, "restore: out of memory");
        goto done;
    }
    for (size_t i = 0; i < ap->slots; i++) {
        struct job *j = &ap->jobs[i];
        j->ap = ap;
        j->spool_fd = -1;
        j->mem.max = SPOOL_MEM_MAX;
        j->sink.write = job_sink_write;
        j->sink.reset = job_sink_reset;
        j->sink.arg = j;
    }
    if ((rc = remove_file(ap->tmp_wal, err)) || (rc = remove_file(ap->tmp_shm, err)))
        goto done;
    if ((rc = restore_snapshot(ap, err)))
        goto done;
    if (plan->nsegs == 0)
        lc_info("snapshot only, finalizing database", "generation=%s index=%08x", plan->gen,
                plan->snap.index);
    else if ((rc = restore_wal(ap, err)))
        goto done;
    rc = finalize(ap, err);

done:
    if (ap->jobs) {
        jobs_drain(ap);
        for (size_t i = 0; i < ap->slots; i++)
            job_release(&ap->jobs[i]);
    }
    if (rc) {
        struct lc_error ignore = {0};
        (void)remove_file(ap->tmp, &ignore);
        (void)remove_file(ap->tmp_wal, &ignore);
        (void)remove_file(ap->tmp_shm, &ignore);
    }
    free(ap->jobs);
    free(ap->scratch);
    free(ap);
    return rc;
}

int lc_restore(struct lc_store *const *stores, size_t n, const struct lc_restore_opts *o,
               size_t *which, struct lc_error *err)
{
    struct lc_error local = {0};
    struct lc_gen_info gen;
    struct lc_restore_plan plan;
    size_t w = 0;
    int rc;

    if (!err)
        err = &local; /* messages need somewhere to go */
    if (!o->output || !o->output[0])
        return lc_err_set(err, LC_EINVAL, "restore: no output path");
    if ((rc = output_exists(o->output, err)))
        return rc;
    if ((rc = lc_restore_choose(stores, n, o, &w, &gen, err)))
        return rc;
    if (which)
        *which = w;
    rc = lc_restore_plan_live(stores[w], &gen, o, &plan, err);
    if (rc == 0) {
        lc_info("restoring from replica", "replica=\"%s\" generation=%s", stores[w]->desc,
                plan.gen);
        rc = lc_restore_apply(stores[w], &plan, o, err);
        lc_restore_plan_free(&plan);
    }
    lc_gen_info_clear(&gen);
    return rc;
}
