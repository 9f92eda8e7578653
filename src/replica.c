/* replica: ship the shadow WAL of one database to one store.
 *
 * Position (gen, index, offset) is the next byte of shadow file `index` to ship. A
 * segment is everything the shadow file holds from offset to its committed end, so it
 * always ends on a commit frame; it is compressed on the fly from the file (memory stays
 * bounded whatever its size) and stored as <index>_<offset>.wal.lz4. Offsets within an
 * index are contiguous: the next offset is the previous one plus its length.
 *
 * One operation is in flight at a time: a segment, a snapshot, a resume (§2.6: the
 * position is read back from the store when the generation changes or after start) or a
 * retention pass. Anything the shadow gains meanwhile goes into the next segment. Every
 * failure keeps the position and retries with exponential backoff and jitter.
 *
 * Snapshots. A restore replays the snapshot's index over it from offset 0, so a snapshot
 * must never hold frames of its index that the replica lacks: the database file is
 * back-filled by checkpoints (ours, or the application's up to our read mark) from frames
 * in the shadow, perhaps not shipped yet, and replaying the shorter WAL over such a file
 * puts older page images over newer ones: a malformed database. Two ways keep the rule:
 *  - a due snapshot (snapshot-interval, retention) pins the file (no checkpoint of ours;
 *    the application's cannot pass our mark), ships the shadow up to where it was at that
 *    moment, then reads the file; a failure lets go of the pin, so an outage never holds
 *    back checkpoints. Right after a checkpoint restarted the WAL the file is the index's
 *    starting state, and the snapshot needs no segment first.
 *  - a replica with nothing usable stored (no snapshot in the generation, or it fell
 *    behind the shadow) must store a snapshot before any segment, or the segments would
 *    sit after a hole. It asks for a settled file (lc_db_base: a checkpoint back-filled
 *    everything, so no checkpoint can write the file while pinned and the read is never
 *    torn) and starts shipping the index from offset 0 after it; its first segment covers
 *    whatever of the index the file holds. If readers keep the checkpoint from settling
 *    for BASE_WAIT_NS, the file is read pinned as it is. */
#include "replica.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "log.h"
#include "segment.h"

#define READ_CHUNK (256u * 1024)
#define BACKOFF_MIN_NS (100 * 1000000LL)
#define BACKOFF_MAX_NS (30 * 1000000000LL)
#define MAX_DELETE_BATCH 1000
#define SNAPSHOT_RECHECK_NS (100 * 1000000LL)
#define BASE_WAIT_NS (5 * 1000000000LL)

enum op_type { OP_SEGMENT, OP_SNAPSHOT, OP_RESUME, OP_RETENTION };

/* An upload source: LZ4-compress the byte range [start, end) of fd as it is pulled. */
struct lz_src {
    struct lc_store_src src;  /* handed to the store */
    int fd;                   /* owned unless borrowed */
    int borrowed;             /* fd belongs to someone else: never close it */
    uint64_t start, off, end; /* end = UINT64_MAX: until EOF */
    struct lc_lz4_enc *enc;   /* owned */
    struct lc_buf out;        /* compressed bytes not yet handed out */
    size_t out_pos;
    int finished;             /* the frame's end mark is in out */
    uint8_t *in;              /* read buffer, READ_CHUNK bytes */
    uint64_t in_bytes;        /* uncompressed bytes read */
};

/* A download sink that decompresses and only counts (learning a segment's length). */
struct count_sink {
    struct lc_store_sink sink;
    struct lc_lz4_dec *dec;
    struct lc_buf out;
    uint64_t total;
    int done;
};

struct lc_replica_op {
    enum op_type type;
    struct lc_replica *r;
    char key[LC_KEY_MAX];
    char gen[17];             /* segment/snapshot generation */
    struct lz_src lz;         /* segment and snapshot uploads */
    uint32_t index;           /* segment/snapshot index */
    int set_position;         /* snapshot: position becomes (gen, index, 0) */
    int phase;                /* resume / retention step */
    struct lc_obj_list list;  /* resume / retention listing */
    struct count_sink cs;     /* resume: last segment length */
    uint32_t snap_index;      /* resume: highest snapshot index */
    uint32_t seg_index, seg_offset;
    struct lc_gen_info *gens; /* retention */
    size_t ngens, gi;
    char **keys;              /* retention: keys to delete */
    size_t nkeys;
};

static void schedule(struct lc_replica *r);
static void run(struct lc_replica *r);
static void snapshot_unpin(struct lc_replica *r);

static ssize_t lz_read(void *arg, uint8_t *buf, size_t cap, struct lc_error *err)
{
    struct lz_src *z = arg;
    int rc;

    while (z->out_pos == z->out.len && !z->finished) {
        z->out.len = z->out_pos = 0;
        if (z->off < z->end) {
            uint64_t left = z->end - z->off;
            size_t want = left < READ_CHUNK ? (size_t)left : READ_CHUNK;
            ssize_t n = lc_pread_full(z->fd, z->in, want, (off_t)z->off);
            if (n < 0)
                return lc_err_set(err, LC_EIO, "read: %s", strerror(errno));
            if (n == 0 && z->end != UINT64_MAX)
                return lc_err_set(err, LC_EIO, "read: file shrank under upload");
            if (n == 0) {
                z->end = z->off;
                continue;
            }
            z->off += (uint64_t)n;
            z->in_bytes += (uint64_t)n;
            if ((rc = lc_lz4_enc_update(z->enc, z->in, (size_t)n, &z->out, err)) < 0)
                return rc;
        } else {
            if ((rc = lc_lz4_enc_end(z->enc, &z->out, err)) < 0)
                return rc;
            z->finished = 1;
        }
    }
    size_t n = z->out.len - z->out_pos;
    if (n > cap)
        n = cap;
    memcpy(buf, z->out.data + z->out_pos, n);
    z->out_pos += n;
    return (ssize_t)n;
}

static int lz_rewind(void *arg, struct lc_error *err)
{
    struct lz_src *z = arg;
    lc_lz4_enc_free(z->enc);
    z->enc = NULL;
    z->off = z->start;
    z->in_bytes = 0;
    z->out.len = z->out_pos = 0;
    z->finished = 0;
    if (z->end != UINT64_MAX && z->end < z->start)
        return lc_err_set(err, LC_EINVAL, "bad range");
    return lc_lz4_enc_new(&z->enc, err);
}

static int lz_open(struct lz_src *z, int fd, uint64_t start, uint64_t end, struct lc_error *err)
{
    memset(z, 0, sizeof(*z));
    z->fd = fd;
    z->start = z->off = start;
    z->end = end;
    z->out.max = 64u << 20;
    z->in = malloc(READ_CHUNK);
    if (!z->in)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    z->src.read = lz_read;
    z->src.rewind = lz_rewind;
    z->src.arg = z;
    z->src.size = -1;
    return lc_lz4_enc_new(&z->enc, err);
}

static void lz_close(struct lz_src *z)
{
    if (z->fd >= 0 && !z->borrowed)
        close(z->fd);
    z->fd = -1;
    lc_lz4_enc_free(z->enc);
    z->enc = NULL;
    lc_buf_free(&z->out);
    free(z->in);
    z->in = NULL;
}

/* Feed the decoder in small pieces: LZ4 expands up to 255x, so 16 KiB of input stays
 * well inside the output bound whatever the store hands us at once. */
static int count_write(void *arg, const uint8_t *buf, size_t n, struct lc_error *err)
{
    struct count_sink *c = arg;
    while (n) {
        size_t k = n < 16384 ? n : 16384;
        int rc = lc_lz4_dec_update(c->dec, buf, k, &c->out, &c->done, err);
        c->total += c->out.len;
        c->out.len = 0;
        if (rc < 0)
            return rc;
        buf += k;
        n -= k;
    }
    return 0;
}

static int count_reset(void *arg, struct lc_error *err)
{
    struct count_sink *c = arg;
    lc_lz4_dec_free(c->dec);
    c->dec = NULL;
    c->total = 0;
    c->done = 0;
    c->out.len = 0;
    return lc_lz4_dec_new(&c->dec, err);
}

static void op_free(struct lc_replica_op *op)
{
    if (!op)
        return;
    if (op->lz.in || op->lz.enc || op->lz.fd >= 0)
        lz_close(&op->lz);
    lc_lz4_dec_free(op->cs.dec);
    lc_buf_free(&op->cs.out);
    lc_obj_list_free(&op->list);
    lc_gen_info_free_all(op->gens, op->ngens);
    for (size_t i = 0; i < op->nkeys; i++)
        free(op->keys[i]);
    free(op->keys);
    free(op);
}

static struct lc_replica_op *op_new(struct lc_replica *r, enum op_type type)
{
    struct lc_replica_op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->type = type;
    op->r = r;
    op->lz.fd = -1;
    r->op = op;
    return op;
}

/* End the operation in flight: a write that succeeded clears the backoff, a failure
 * grows it; a step that only read (a resume's listing) leaves it as it is, so a replica
 * that can list but not write still backs off. */
static void op_end(struct lc_replica *r, int rc, const struct lc_error *err)
{
    struct lc_replica_op *op = r->op;
    int wrote = op && (op->type == OP_SEGMENT || op->type == OP_SNAPSHOT ||
                       op->type == OP_RETENTION);
    r->op = NULL;
    op_free(op);
    if (rc == 0 && !wrote) {
        r->last_err[0] = '\0';
    } else if (rc == 0) {
        r->backoff_ns = 0;
        r->last_err[0] = '\0';
        r->last_ok_wall_ns = lc_now_wall_ns();
    } else {
        uint32_t j = 0;
        snapshot_unpin(r); /* a failing replica must not hold back our checkpoints */
        r->stats.errors++;
        r->backoff_ns = r->backoff_ns ? r->backoff_ns * 2 : BACKOFF_MIN_NS;
        if (r->backoff_ns > BACKOFF_MAX_NS)
            r->backoff_ns = BACKOFF_MAX_NS;
        (void)getrandom(&j, sizeof(j), GRND_NONBLOCK);
        r->backoff_ns += (int64_t)(j % 1000) * (r->backoff_ns / 4000); /* up to +25% */
        snprintf(r->last_err, sizeof(r->last_err), "%s", err ? err->msg : "unknown error");
        char d[32];
        lc_duration_format(r->backoff_ns / 1000000 * 1000000, d, sizeof(d));
        lc_warn("replica sync failed; retrying", "db=%s replica=%s retry_in=%s error=\"%s\"",
                r->db->cfg.name, r->cfg.name, d, r->last_err);
    }
}

static void set_position(struct lc_replica *r, const char *gen, uint32_t index, uint64_t off)
{
    memcpy(r->gen, gen, sizeof(r->gen));
    r->index = index;
    r->offset = off;
    r->known = 1;
}

/* ---- snapshot ---------------------------------------------------------------- */

static void snapshot_unpin(struct lc_replica *r)
{
    if (r->snap_pinned) {
        r->snap_pinned = 0;
        lc_db_snapshot_end(r->db);
    }
}

/* Nothing usable stored: the next object is a snapshot (see the top). */
static void want_base(struct lc_replica *r)
{
    struct lc_db *db = r->db;
    snapshot_unpin(r);
    set_position(r, db->sh.gen, db->sh.index, 0);
    if (!r->need_base)
        r->base_wait_mono_ns = lc_now_mono_ns() + BASE_WAIT_NS;
    r->need_base = 1;
}

/* 1 when the due snapshot may be read now: pinned, and the replica holds the shadow up to
 * where it ended when pinned (nothing, at a settled index start). A new index or
 * generation since then pins afresh. */
static int snapshot_ready(struct lc_replica *r)
{
    struct lc_db *db = r->db;
    uint64_t base;

    if (r->snap_pinned && (strcmp(r->snap_gen, db->sh.gen) != 0 || r->snap_index != db->sh.index))
        snapshot_unpin(r);
    if (!r->snap_pinned) {
        if (!lc_db_mark_settled(db) || lc_db_snapshot_begin(db) < 0)
            return 0; /* inside or after a failed sync: the next one settles it */
        r->snap_pinned = 1;
        memcpy(r->snap_gen, db->sh.gen, sizeof(r->snap_gen));
        r->snap_index = db->sh.index;
        r->snap_end = lc_db_base(db, &base) && base == 0 ? 0 : db->sh.size;
    }
    return r->snap_end == 0 || (strcmp(r->gen, r->snap_gen) == 0 && r->index == r->snap_index &&
                                r->offset >= r->snap_end);
}

static void snapshot_done(void *arg, int rc, const struct lc_error *err)
{
    struct lc_replica_op *op = arg;
    struct lc_replica *r = op->r;

    lc_db_snapshot_end(r->db);
    if (rc == 0) {
        r->stats.snapshots++;
        r->snap_wanted = 0;
        lc_info("snapshot written", "db=%s replica=%s position=%s/%08x:0 size=%llu",
                r->db->cfg.name, r->cfg.name, op->gen, op->index,
                (unsigned long long)op->lz.in_bytes);
        if (op->set_position) {
            set_position(r, op->gen, op->index, 0);
            r->need_base = 0;
        }
        if (r->cfg.snapshot_interval_ns > 0)
            r->next_snapshot_wall_ns = lc_now_wall_ns() + r->cfg.snapshot_interval_ns;
    }
    op_end(r, rc, err);
    schedule(r);
}

/* Read and store a snapshot of the current index; with set_pos the position moves to its
 * start once stored. */
static void start_snapshot(struct lc_replica *r, int set_pos)
{
    struct lc_db *db = r->db;
    struct lc_error err = {0};
    struct lc_replica_op *op = op_new(r, OP_SNAPSHOT);
    int fd;

    if (!op)
        return;
    op->index = db->sh.index;
    op->set_position = set_pos;
    memcpy(op->gen, db->sh.gen, sizeof(op->gen));
    if (lc_seg_snapshot_key(op->key, sizeof(op->key), db->sh.gen, op->index) < 0) {
        lc_err_set(&err, LC_EINVAL, "snapshot key too long");
        op_end(r, LC_EINVAL, &err);
        return;
    }
    /* the database's own long-lived fd: closing another fd on the file would drop
     * SQLite's POSIX locks (see db.h); taken before a waiting pin is handed over */
    fd = lc_db_snapshot_begin(db);
    snapshot_unpin(r);
    if (fd < 0) {
        lc_err_set(&err, LC_EIO, "%s: database not open", db->cfg.name);
        op_end(r, LC_EIO, &err);
        return;
    }
    if (lz_open(&op->lz, fd, 0, UINT64_MAX, &err) < 0) {
        op->lz.borrowed = 1;
        lc_db_snapshot_end(db);
        op_end(r, LC_ENOMEM, &err);
        return;
    }
    op->lz.borrowed = 1;
    r->store->ops->put(r->store, op->key, &op->lz.src, snapshot_done, op);
}

/* The replica holds nothing usable: store a snapshot first, of a settled file if one
 * comes within BASE_WAIT_NS. Returns 1 if an upload started. */
static int start_base_snapshot(struct lc_replica *r)
{
    struct lc_db *db = r->db;
    uint64_t off;

    if (lc_db_base(db, &off)) {
        start_snapshot(r, 1);
        return 1;
    }
    if (lc_now_mono_ns() < r->base_wait_mono_ns || !lc_db_mark_settled(db)) {
        lc_db_want_base(db);
        return 0;
    }
    lc_info("snapshot of a database file not settled (readers held the checkpoint back)",
            "db=%s replica=%s", db->cfg.name, r->cfg.name);
    start_snapshot(r, 1);
    return 1;
}

/* ---- segments ------------------------------------------------------------------ */

static void segment_done(void *arg, int rc, const struct lc_error *err)
{
    struct lc_replica_op *op = arg;
    struct lc_replica *r = op->r;

    if (rc == 0) {
        uint64_t len = op->lz.end - op->lz.start;
        r->stats.segments++;
        r->stats.wal_bytes += len;
        lc_info("wal segment written", "db=%s replica=%s position=%s/%08x:%llu size=%llu",
                r->db->cfg.name, r->cfg.name, r->gen, op->index,
                (unsigned long long)op->lz.start, (unsigned long long)len);
        if (r->known && op->index == r->index && op->lz.start == r->offset)
            r->offset = op->lz.end;
    }
    op_end(r, rc, err);
    schedule(r);
}

/* Start shipping the next range, if any. Returns 1 if an upload started. */
static int start_segment(struct lc_replica *r)
{
    struct lc_db *db = r->db;
    struct lc_error err = {0};
    uint64_t size = 0;
    char path[LC_PATH_MAX];

    for (;;) {
        int rc = lc_shadow_file_size(&db->sh, r->index, &size, &err);
        if (rc == LC_ENOTFOUND || r->index < db->sh.min_index) {
            /* the shadow no longer holds what this replica needs: start over from a
             * snapshot at the current index rather than leave a hole */
            lc_warn("replica fell behind the local shadow wal; taking a new snapshot",
                    "db=%s replica=%s position=%s/%08x:%llu", db->cfg.name, r->cfg.name,
                    r->gen, r->index, (unsigned long long)r->offset);
            want_base(r);
            return start_base_snapshot(r);
        }
        if (rc < 0) {
            struct lc_replica_op *op = op_new(r, OP_SEGMENT);
            if (op)
                op_end(r, rc, &err);
            return 0;
        }
        if (r->offset < size)
            break;
        if (r->index < db->sh.index) {
            r->index++;
            r->offset = 0;
            continue;
        }
        if (r->offset == size)
            r->caught_up_mono_ns = lc_now_mono_ns();
        return 0; /* caught up (or ahead, waiting for the shadow to pass us) */
    }
    if (size > LC_MAX_OFFSET) {
        /* cannot happen while the index rolls below max-wal-index-bytes; refuse rather
         * than write a name Litestream cannot list */
        struct lc_replica_op *op = op_new(r, OP_SEGMENT);
        lc_err_set(&err, LC_EINVAL, "wal index %08x exceeds 4 GiB; waiting for a restart",
                   r->index);
        if (op)
            op_end(r, LC_EINVAL, &err);
        return 0;
    }
    struct lc_replica_op *op = op_new(r, OP_SEGMENT);
    if (!op)
        return 0;
    op->index = r->index;
    if (lc_seg_wal_key(op->key, sizeof(op->key), r->gen, r->index, r->offset) < 0 ||
        lc_shadow_path(&db->sh, r->index, path, sizeof(path)) < 0) {
        lc_err_set(&err, LC_EINVAL, "segment key too long");
        op_end(r, LC_EINVAL, &err);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lc_err_set(&err, LC_EIO, "open %s: %s", path, strerror(errno));
        op_end(r, LC_EIO, &err);
        return 0;
    }
    if (lz_open(&op->lz, fd, r->offset, size, &err) < 0) {
        op_end(r, LC_ENOMEM, &err);
        return 0;
    }
    op->lz.src.size = -1;
    r->last_ship_mono_ns = lc_now_mono_ns();
    r->store->ops->put(r->store, op->key, &op->lz.src, segment_done, op);
    return 1;
}

/* ---- resume (§2.6) ------------------------------------------------------------ */

static void resume_step(void *arg, int rc, const struct lc_error *err);

static void resume_finish(struct lc_replica *r, uint32_t index, uint64_t offset)
{
    struct lc_db *db = r->db;
    set_position(r, db->sh.gen, index, offset);
    lc_info("replica position resumed", "db=%s replica=%s position=%s/%08x:%llu",
            db->cfg.name, r->cfg.name, r->gen, index, (unsigned long long)offset);
    /* a position outside our shadow stays known: start_segment() sees the missing
     * file and takes a fresh snapshot (clearing it here resumed again, forever) */
}

static void resume_step(void *arg, int rc, const struct lc_error *err)
{
    struct lc_replica_op *op = arg;
    struct lc_replica *r = op->r;
    struct lc_db *db = r->db;
    struct lc_error e2 = {0};
    char prefix[LC_KEY_MAX];

    if (rc < 0) {
        op_end(r, rc, err);
        schedule(r);
        return;
    }
    switch (op->phase++) {
    case 0: { /* snapshots listed */
        int have = 0;
        for (size_t i = 0; i < op->list.n; i++) {
            uint32_t idx;
            if (!op->list.v[i].is_prefix &&
                lc_seg_parse_snapshot_name(op->list.v[i].name, &idx) == 0) {
                if (!have || idx > op->snap_index)
                    op->snap_index = idx;
                have = 1;
            }
        }
        lc_obj_list_free(&op->list);
        if (!have) {
            op_end(r, 0, NULL);
            want_base(r);
            run(r);
            return;
        }
        lc_seg_wal_prefix(prefix, sizeof(prefix), db->sh.gen);
        r->store->ops->list(r->store, prefix, &op->list, resume_step, op);
        return;
    }
    case 1: { /* segments listed */
        int have = 0;
        for (size_t i = 0; i < op->list.n; i++) {
            uint32_t idx, off;
            if (op->list.v[i].is_prefix ||
                lc_seg_parse_wal_name(op->list.v[i].name, &idx, &off) < 0 || idx < op->snap_index)
                continue;
            if (!have || idx > op->seg_index || (idx == op->seg_index && off > op->seg_offset)) {
                op->seg_index = idx;
                op->seg_offset = off;
            }
            have = 1;
        }
        lc_obj_list_free(&op->list);
        if (!have) {
            uint32_t idx = op->snap_index;
            op_end(r, 0, NULL);
            resume_finish(r, idx, 0);
            schedule(r);
            return;
        }
        if (lc_seg_wal_key(op->key, sizeof(op->key), db->sh.gen, op->seg_index,
                           op->seg_offset) < 0 ||
            lc_lz4_dec_new(&op->cs.dec, &e2) < 0) {
            op_end(r, LC_EINVAL, &e2);
            schedule(r);
            return;
        }
        op->cs.out.max = 8u << 20;
        op->cs.sink.write = count_write;
        op->cs.sink.reset = count_reset;
        op->cs.sink.arg = &op->cs;
        r->store->ops->get(r->store, op->key, &op->cs.sink, resume_step, op);
        return;
    }
    default: { /* last segment downloaded */
        if (!op->cs.done) {
            lc_err_set(&e2, LC_ECORRUPT, "%s: truncated lz4 frame", op->key);
            op_end(r, LC_ECORRUPT, &e2);
            schedule(r);
            return;
        }
        uint32_t idx = op->seg_index;
        uint64_t off = op->seg_offset + op->cs.total;
        op_end(r, 0, NULL);
        resume_finish(r, idx, off);
        schedule(r);
        return;
    }
    }
}

static void start_resume(struct lc_replica *r)
{
    char prefix[LC_KEY_MAX];
    struct lc_replica_op *op = op_new(r, OP_RESUME);
    if (!op)
        return;
    r->known = 0;
    r->need_base = 0;
    snapshot_unpin(r);
    lc_seg_snapshots_prefix(prefix, sizeof(prefix), r->db->sh.gen);
    r->store->ops->list(r->store, prefix, &op->list, resume_step, op);
}

/* ---- retention (§5) ----------------------------------------------------------- */

static int add_key(struct lc_replica_op *op, const char *key)
{
    char **v = realloc(op->keys, (op->nkeys + 1) * sizeof(*v));
    if (!v)
        return LC_ENOMEM;
    op->keys = v;
    if (!(v[op->nkeys] = strdup(key)))
        return LC_ENOMEM;
    op->nkeys++;
    return 0;
}

static void retention_step(void *arg, int rc, const struct lc_error *err);

static void retention_delete_next(struct lc_replica_op *op)
{
    struct lc_replica *r = op->r;
    /* delete in batches; keys are consumed from the end */
    size_t n = op->nkeys < MAX_DELETE_BATCH ? op->nkeys : MAX_DELETE_BATCH;
    op->phase = 2;
    r->stats.deletes += n;
    r->store->ops->del(r->store, (const char *const *)(op->keys + op->nkeys - n), n,
                       retention_step, op);
}

/* Plan deletions from the catalog gathered by lc_catalog_generations. */
static int retention_plan(struct lc_replica_op *op, int *need_snapshot)
{
    struct lc_replica *r = op->r;
    int64_t cutoff = lc_now_wall_ns() - r->cfg.retention_ns;
    char key[LC_KEY_MAX];
    int any = 0;

    for (size_t g = 0; g < op->ngens; g++)
        for (size_t i = 0; i < op->gens[g].nsnaps; i++)
            if (op->gens[g].snaps[i].mtime_ns >= cutoff)
                any = 1;
    if (!any) {
        *need_snapshot = 1;
        return 0;
    }
    for (size_t g = 0; g < op->ngens; g++) {
        struct lc_gen_info *gi = &op->gens[g];
        uint32_t m = UINT32_MAX;
        for (size_t i = 0; i < gi->nsnaps; i++)
            if (gi->snaps[i].mtime_ns >= cutoff && gi->snaps[i].index < m)
                m = gi->snaps[i].index;
        if (m == UINT32_MAX && strcmp(gi->id, r->db->sh.gen) == 0)
            continue; /* never drop the live generation out from under the position */
        for (size_t i = 0; i < gi->nsnaps; i++)
            if (gi->snaps[i].index < m &&
                (lc_seg_snapshot_key(key, sizeof(key), gi->id, gi->snaps[i].index) < 0 ||
                 add_key(op, key) < 0))
                return LC_ENOMEM;
        for (size_t i = 0; i < gi->nsegs; i++)
            if (gi->segs[i].index < m &&
                (lc_seg_wal_key(key, sizeof(key), gi->id, gi->segs[i].index,
                                gi->segs[i].offset) < 0 ||
                 add_key(op, key) < 0))
                return LC_ENOMEM;
    }
    return 0;
}

static void retention_step(void *arg, int rc, const struct lc_error *err)
{
    struct lc_replica_op *op = arg;
    struct lc_replica *r = op->r;

    if (rc < 0) {
        op_end(r, rc, err);
        schedule(r);
        return;
    }
    if (op->phase == 2) {
        size_t n = op->nkeys < MAX_DELETE_BATCH ? op->nkeys : MAX_DELETE_BATCH;
        for (size_t i = op->nkeys - n; i < op->nkeys; i++)
            free(op->keys[i]);
        op->nkeys -= n;
        if (op->nkeys) {
            retention_delete_next(op);
            return;
        }
        op_end(r, 0, NULL);
        schedule(r);
        return;
    }
}

static void start_retention(struct lc_replica *r)
{
    struct lc_error err = {0};
    int need_snapshot = 0;
    struct lc_replica_op *op = op_new(r, OP_RETENTION);
    if (!op)
        return;
    r->next_retention_wall_ns = lc_now_wall_ns() + r->cfg.retention_check_ns;
    /* listing is paginated and bounded by the store; it runs to completion here */
    int rc = lc_catalog_generations(r->store, &op->gens, &op->ngens, &err);
    if (rc == 0)
        rc = retention_plan(op, &need_snapshot);
    if (rc < 0) {
        op_end(r, rc, &err);
        return;
    }
    if (need_snapshot) {
        op_end(r, 0, NULL);
        r->snap_wanted = 1;
        return;
    }
    if (op->nkeys == 0) {
        op_end(r, 0, NULL);
        return;
    }
    lc_info("retention: deleting expired objects", "db=%s replica=%s objects=%zu",
            r->db->cfg.name, r->cfg.name, op->nkeys);
    retention_delete_next(op);
}

/* ---- scheduling --------------------------------------------------------------- */

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lc_replica *r = w->data;
    (void)loop;
    (void)revents;
    run(r);
}

static void arm(struct lc_replica *r, int64_t delay_ns)
{
    if (delay_ns < 0)
        delay_ns = 0;
    ev_timer_stop(r->loop, &r->timer);
    ev_timer_set(&r->timer, (double)delay_ns / 1e9, 0.);
    ev_timer_start(r->loop, &r->timer);
}

/* Decide what to do next; called after every operation and every kick. */
static void run(struct lc_replica *r)
{
    struct lc_db *db = r->db;
    int64_t now_wall = lc_now_wall_ns();

    if (r->op) {
        r->dirty = 1;
        return;
    }
    r->dirty = 0;
    if (r->backoff_ns && ev_is_active(&r->timer))
        return; /* waiting out a failure */
    if (!db->is_open || !db->sh.gen[0])
        return;
    if (!r->known || strcmp(r->gen, db->sh.gen) != 0) {
        start_resume(r);
        return;
    }
    if (r->need_base) {
        if (!start_base_snapshot(r))
            schedule(r);
        return;
    }
    if (r->next_snapshot_wall_ns && now_wall >= r->next_snapshot_wall_ns)
        r->snap_wanted = 1;
    if (r->snap_wanted && snapshot_ready(r)) {
        start_snapshot(r, 0);
        return;
    }
    if (r->next_retention_wall_ns && now_wall >= r->next_retention_wall_ns) {
        start_retention(r);
        if (r->op)
            return;
    }
    if (r->cfg.sync_interval_ns > 0) {
        int64_t wait = r->last_ship_mono_ns + r->cfg.sync_interval_ns - lc_now_mono_ns();
        if (r->last_ship_mono_ns && wait > 0) {
            arm(r, wait);
            return;
        }
    }
    if (start_segment(r))
        return;
    schedule(r);
}

/* Arm the timer for the next duty: retry, snapshot or retention deadline. */
static void schedule(struct lc_replica *r)
{
    int64_t now = lc_now_wall_ns(), next = INT64_MAX;

    if (r->op)
        return;
    if (r->backoff_ns) {
        arm(r, r->backoff_ns);
        return;
    }
    if (r->known && r->need_base) { /* waiting for a settled file (run asks for it) */
        arm(r, r->dirty ? 0 : SNAPSHOT_RECHECK_NS);
        return;
    }
    if (r->dirty || (r->known && r->db->is_open && !lc_replica_caught_up(r))) {
        arm(r, 0);
        return;
    }
    if (r->snap_wanted) /* waiting for a sync to settle the read mark */
        next = now + SNAPSHOT_RECHECK_NS;
    if (r->next_snapshot_wall_ns && r->next_snapshot_wall_ns < next)
        next = r->next_snapshot_wall_ns;
    if (r->next_retention_wall_ns && r->next_retention_wall_ns < next)
        next = r->next_retention_wall_ns;
    if (next != INT64_MAX)
        arm(r, next - now);
    else
        ev_timer_stop(r->loop, &r->timer);
}

void lc_replica_retry_now(struct lc_replica *r)
{
    if (r->op)
        return;
    r->backoff_ns = 0; /* a failure during the flush backs off again from the minimum */
    r->base_wait_mono_ns = 0; /* shutting down: no more syncs will settle the file */
    ev_timer_stop(r->loop, &r->timer);
    run(r);
}

void lc_replica_kick(struct lc_replica *r)
{
    if (r->backoff_ns && ev_is_active(&r->timer))
        return;
    run(r);
}

static void on_db_change(void *arg)
{
    lc_replica_kick(arg);
}

int lc_replica_caught_up(const struct lc_replica *r)
{
    const struct lc_db *db = r->db;
    return !r->op && r->known && !r->need_base && strcmp(r->gen, db->sh.gen) == 0 &&
           r->index == db->sh.index &&
           r->offset == db->sh.size;
}

void lc_replica_position_str(const struct lc_replica *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%08x:%llu", r->gen[0] ? r->gen : "-", r->index,
             (unsigned long long)r->offset);
}

int lc_replica_new(struct lc_replica **out, const struct lc_replica_config *cfg,
                   struct lc_db *db, struct ev_loop *loop, struct lc_error *err)
{
    struct lc_replica *r = calloc(1, sizeof(*r));
    struct lc_store_perm perm;
    struct stat st;
    int rc;

    if (!r)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    r->cfg = *cfg;
    r->db = db;
    r->loop = loop;
    perm.file_mode = 0644;
    perm.dir_mode = 0755;
    perm.uid = (uid_t)-1;
    perm.gid = (gid_t)-1;
    if (stat(db->cfg.path, &st) == 0) {
        perm.file_mode = st.st_mode & 0666;
        perm.dir_mode = perm.file_mode | ((perm.file_mode & 0444) >> 2);
        perm.uid = st.st_uid;
        perm.gid = st.st_gid;
    }
    if ((rc = lc_store_open(cfg, loop, &perm, &r->store, err)) < 0) {
        free(r);
        return lc_err_wrap(err, "replica %s", cfg->name);
    }
    ev_timer_init(&r->timer, timer_cb, 0., 0.);
    r->timer.data = r;
    if (cfg->snapshot_interval_ns > 0)
        r->next_snapshot_wall_ns = lc_now_wall_ns() + cfg->snapshot_interval_ns;
    if (cfg->retention_ns > 0 && cfg->retention_check_ns > 0)
        r->next_retention_wall_ns = lc_now_wall_ns() + cfg->retention_check_ns;
    if ((rc = lc_db_add_listener(db, on_db_change, r)) < 0) {
        lc_store_free(r->store);
        free(r);
        return lc_err_set(err, rc, "replica %s: too many replicas for %s", cfg->name,
                          db->cfg.name);
    }
    *out = r;
    return 0;
}

void lc_replica_free(struct lc_replica *r)
{
    if (!r)
        return;
    ev_timer_stop(r->loop, &r->timer);
    lc_db_remove_listener(r->db, r);
    lc_store_free(r->store); /* aborts transfers in flight without calling back */
    if (r->op) {
        if (r->op->type == OP_SNAPSHOT)
            lc_db_snapshot_end(r->db);
        op_free(r->op);
    }
    snapshot_unpin(r);
    free(r);
}
