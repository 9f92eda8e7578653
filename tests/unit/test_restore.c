/* test_restore: src/restore.c, src/catalog.c, src/store_file.c, src/store.c and the
 * restore/listing commands, on real replicas built in a temp dir from a real SQLite
 * WAL database: a snapshot taken after a TRUNCATE checkpoint, WAL index 0 cut into
 * three segments at commit boundaries and index 1 cut into two. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "catalog.h"
#include "cmd.h"
#include "log.h"
#include "restore.h"
#include "segment.h"
#include "store.h"
#include "util.h"
#include "wal.h"

#define GEN "0123456789abcdef"
#define GEN2 "fedcba9876543210"
#define T0 1700000000LL /* object times: seconds */
#define PAGE 1024

/* ---- fixture: a source database and its WAL history ------------------------------- */

struct fixture {
    char root[256];
    uint8_t *snap; /* db file after a TRUNCATE checkpoint */
    size_t snaplen;
    uint8_t *wal0; /* index 0: header + txn1..txn3 */
    size_t wal0len;
    size_t cut0[4]; /* segment boundaries of index 0 */
    uint8_t *wal1;  /* index 1: header + txn4..txn5 */
    size_t wal1len;
    size_t cut1[3];
    char state[6][64]; /* base, after txn1 .. txn5 */
};

static struct fixture fx;
static int counter;

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("sql %s: %s", sql, msg ? msg : "?");
}

/* count:fnv1a over (id, v) in id order, plus integrity_check. */
static void db_state(const char *path, char *out, size_t len)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    uint64_t h = 1469598103934665603ULL;
    long n = 0;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, v FROM t ORDER BY id", -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char row[2048];
        snprintf(row, sizeof(row), "%lld|%s", (long long)sqlite3_column_int64(st, 0),
                 (const char *)sqlite3_column_text(st, 1));
        for (const char *p = row; *p; p++)
            h = (h ^ (uint8_t)*p) * 1099511628211ULL;
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    snprintf(out, len, "%ld:%016llx", n, (unsigned long long)h);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *buf;
    struct lc_error err = {0};
    assert_int_equal(lc_read_file(path, (size_t)1 << 30, &buf, len, &err), 0);
    return buf;
}

static size_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (size_t)sb.st_size;
}

static void txn(sqlite3 *db, const char *sql, const char *src, int k, size_t *cut)
{
    char wal[512];
    exec_sql(db, sql);
    snprintf(wal, sizeof(wal), "%s-wal", src);
    *cut = file_size(wal);
    assert_int_equal((*cut - LC_WAL_HDR_SIZE) % (24 + PAGE), 0);
    db_state(src, fx.state[k], sizeof(fx.state[k]));
}

static int setup(void **state)
{
    char src[512], wal[600];
    sqlite3 *db;
    int one = 1;
    (void)state;

    lc_log_set_level(LC_LOG_WARN);
    snprintf(fx.root, sizeof(fx.root), "/tmp/test_restore.XXXXXX");
    assert_non_null(mkdtemp(fx.root));
    snprintf(src, sizeof(src), "%s/src.db", fx.root);
    snprintf(wal, sizeof(wal), "%s-wal", src);

    assert_int_equal(sqlite3_open(src, &db), SQLITE_OK);
    exec_sql(db, "PRAGMA page_size=1024; PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0");
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &one), SQLITE_OK);
    exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<30)"
                 " INSERT INTO t SELECT x, printf('base-%0300d', x) FROM c;"
                 "PRAGMA wal_checkpoint(TRUNCATE)");
    assert_int_equal(file_size(wal), 0);
    fx.snap = slurp(src, &fx.snaplen);
    db_state(src, fx.state[0], sizeof(fx.state[0]));

    /* index 0: three transactions */
    txn(db,
        "BEGIN; WITH RECURSIVE c(x) AS (SELECT 31 UNION ALL SELECT x+1 FROM c WHERE x<45)"
        " INSERT INTO t SELECT x, printf('one-%0400d', x) FROM c; COMMIT",
        src, 1, &fx.cut0[1]);
    txn(db, "BEGIN; UPDATE t SET v = printf('two-%0200d', id) WHERE id % 3 = 0; COMMIT", src, 2,
        &fx.cut0[2]);
    txn(db, "BEGIN; DELETE FROM t WHERE id % 5 = 0; INSERT INTO t VALUES (100, 'three'); COMMIT",
        src, 3, &fx.cut0[3]);
    fx.wal0 = slurp(wal, &fx.wal0len);
    assert_int_equal(fx.wal0len, fx.cut0[3]);

    /* index 1: the WAL restarts with new salts */
    exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    txn(db,
        "BEGIN; WITH RECURSIVE c(x) AS (SELECT 200 UNION ALL SELECT x+1 FROM c WHERE x<220)"
        " INSERT INTO t SELECT x, printf('four-%0350d', x) FROM c; COMMIT",
        src, 4, &fx.cut1[1]);
    txn(db, "BEGIN; UPDATE t SET v = 'five' WHERE id > 210; COMMIT", src, 5, &fx.cut1[2]);
    fx.wal1 = slurp(wal, &fx.wal1len);
    assert_int_equal(fx.wal1len, fx.cut1[2]);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    for (int i = 1; i < 6; i++)
        assert_string_not_equal(fx.state[i], fx.state[i - 1]);
    return 0;
}

static int teardown(void **state)
{
    struct lc_error err = {0};
    (void)state;
    free(fx.snap);
    free(fx.wal0);
    free(fx.wal1);
    if (!getenv("KEEP_TMP"))
        lc_rm_rf(fx.root, &err);
    return 0;
}

/* ---- building replicas ------------------------------------------------------------ */

enum {
    OMIT_SEG00 = 1 << 0,   /* index 0's first segment */
    OMIT_SEG01 = 1 << 1,   /* index 0's middle segment */
    OMIT_IDX0 = 1 << 2,    /* all of index 0 */
    FLIP_SEG01 = 1 << 3,   /* one page byte in index 0's middle segment */
    SALT_SEG02 = 1 << 4,   /* a frame salt in index 0's last segment */
    TRUNC_SEG01 = 1 << 5,  /* index 0's middle segment cut in half (compressed) */
    RAW_SEG01 = 1 << 6,    /* index 0's middle segment stored without LZ4 */
    SNAP_IDX5 = 1 << 7,    /* the snapshot is named index 5 */
    BAD_HDR = 1 << 8,      /* index 1's header checksum broken */
};

struct rep {
    char dir[512];
    char url[600];
    struct lc_store *st;
};

static void set_mtime(const char *dir, const char *key, int64_t sec)
{
    char path[1024];
    struct timespec ts[2] = {{(time_t)sec, 0}, {(time_t)sec, 0}};
    snprintf(path, sizeof(path), "%s/%s", dir, key);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void put_obj(struct rep *r, const char *key, const uint8_t *data, size_t len, int lz4,
                    int truncate, int64_t sec)
{
    struct lc_buf b = {0};
    struct lc_error err = {0};

    if (lz4) {
        assert_int_equal(lc_lz4_compress(data, len, &b, &err), 0);
    } else {
        assert_int_equal(lc_buf_append(&b, data, len), 0);
    }
    size_t n = truncate ? b.len / 2 : b.len;
    assert_int_equal(lc_store_put_buf_sync(r->st, key, b.data, n, &err), 0);
    lc_buf_free(&b);
    set_mtime(r->dir, key, sec);
}

static void put_seg(struct rep *r, const char *gen, uint32_t index, const uint8_t *wal, size_t a,
                    size_t b, unsigned flags, int64_t sec)
{
    char key[LC_KEY_MAX];
    uint8_t *copy = malloc(b - a);
    assert_non_null(copy);
    memcpy(copy, wal + a, b - a);
    if (flags & FLIP_SEG01)
        copy[24 + 100] ^= 0x01;
    if (flags & SALT_SEG02)
        copy[8] ^= 0x10;
    if (flags & BAD_HDR)
        copy[12] ^= 0x01;
    assert_int_equal(lc_seg_wal_key(key, sizeof(key), gen, index, a), 0);
    put_obj(r, key, copy, b - a, !(flags & RAW_SEG01), !!(flags & TRUNC_SEG01), sec);
    free(copy);
}

static void rep_open(struct rep *r, const char *name)
{
    struct lc_error err = {0};
    snprintf(r->dir, sizeof(r->dir), "%s/%s-%d", fx.root, name, counter++);
    snprintf(r->url, sizeof(r->url), "file://%s", r->dir);
    assert_int_equal(lc_store_file_open(r->dir, NULL, NULL, &r->st, &err), 0);
}

static void rep_build(struct rep *r, const char *name, const char *gen, unsigned flags,
                      int64_t t0)
{
    char key[LC_KEY_MAX];

    if (!r->st)
        rep_open(r, name);
    assert_int_equal(lc_seg_snapshot_key(key, sizeof(key), gen, flags & SNAP_IDX5 ? 5 : 0), 0);
    put_obj(r, key, fx.snap, fx.snaplen, 1, 0, t0);
    if (!(flags & OMIT_IDX0)) {
        if (!(flags & OMIT_SEG00))
            put_seg(r, gen, 0, fx.wal0, 0, fx.cut0[1], 0, t0 + 10);
        if (!(flags & OMIT_SEG01))
            put_seg(r, gen, 0, fx.wal0, fx.cut0[1], fx.cut0[2],
                    flags & (FLIP_SEG01 | TRUNC_SEG01 | RAW_SEG01), t0 + 20);
        put_seg(r, gen, 0, fx.wal0, fx.cut0[2], fx.cut0[3], flags & SALT_SEG02, t0 + 30);
    }
    put_seg(r, gen, 1, fx.wal1, 0, fx.cut1[1], flags & BAD_HDR, t0 + 40);
    put_seg(r, gen, 1, fx.wal1, fx.cut1[1], fx.cut1[2], 0, t0 + 50);
}

static void rep_close(struct rep *r)
{
    lc_store_free(r->st);
    r->st = NULL;
}

static void out_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/out-%s-%d/restored.db", fx.root, name, counter++);
}

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static void assert_no_output(const char *out)
{
    static const char *const sfx[] = {"", ".tmp", ".tmp-wal", ".tmp-shm"};
    char p[1100];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", out, sfx[i]);
        if (exists(p))
            fail_msg("left behind: %s", p);
    }
}

static int run_restore(struct rep *r, const char *out, int64_t index, int has_ts, int64_t ts,
                       int par, struct lc_error *err)
{
    struct lc_restore_opts o;
    struct lc_store *stores[1] = {r->st};

    lc_restore_opts_init(&o);
    o.output = out;
    o.index = index;
    o.has_timestamp = has_ts;
    o.timestamp_ns = ts * 1000000000LL;
    o.parallelism = par;
    return lc_restore(stores, 1, &o, NULL, err);
}

static void expect_state(const char *out, int k)
{
    char st[64];
    db_state(out, st, sizeof(st));
    assert_string_equal(st, fx.state[k]);
}

static void expect_fail(unsigned flags, const char *want)
{
    struct rep r = {0};
    struct lc_error err = {0};
    char out[1024];

    rep_build(&r, "bad", GEN, flags, T0);
    out_path(out, sizeof(out), "bad");
    int rc = run_restore(&r, out, -1, 0, 0, 4, &err);
    if (rc == 0)
        fail_msg("restore succeeded, expected: %s", want);
    if (!strstr(err.msg, want))
        fail_msg("error \"%s\" does not contain \"%s\"", err.msg, want);
    if (getenv("VERBOSE"))
        print_message("expected error: %s\n", err.msg);
    assert_no_output(out);
    rep_close(&r);
}

static void seg_key_str(char *buf, size_t len, uint32_t index, size_t off)
{
    assert_int_equal(lc_seg_wal_key(buf, len, GEN, index, off), 0);
}

/* ---- restore ---------------------------------------------------------------------- */

static void test_full_restore(void **state)
{
    struct rep r = {0};
    (void)state;

    rep_build(&r, "full", GEN, 0, T0);
    for (int par = 1; par <= 8; par *= 2) {
        struct lc_error err = {0};
        char out[1024];
        out_path(out, sizeof(out), "full");
        if (run_restore(&r, out, -1, 0, 0, par, &err))
            fail_msg("restore: %s", err.msg);
        expect_state(out, 5);
        struct stat sb;
        assert_int_equal(stat(out, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
        /* temporary files are gone */
        char p[1100];
        snprintf(p, sizeof(p), "%s.tmp", out);
        assert_false(exists(p));
        snprintf(p, sizeof(p), "%s.tmp-wal", out);
        assert_false(exists(p));
    }
    rep_close(&r);
}

/* Pages of the file at path now in the page cache. */
static size_t resident_pages(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = ((size_t)sb.st_size + pg - 1) / pg, in = 0;
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore(m, (size_t)sb.st_size, vec), 0);
    for (size_t i = 0; i < n; i++)
        in += vec[i] & 1;
    free(vec);
    munmap(m, (size_t)sb.st_size);
    close(fd);
    return in;
}

/* The file store's prefetch hint reads an object into the page cache; a missing or
 * invalid key is ignored. A restore hints the segments ahead of its gets. */
static void test_prefetch_hint(void **state)
{
    struct rep r = {0};
    char key[LC_KEY_MAX], path[sizeof(r.dir) + LC_KEY_MAX + 2];
    (void)state;

    rep_build(&r, "prefetch", GEN, 0, T0);
    assert_non_null(r.st->ops->prefetch);
    assert_int_equal(lc_seg_snapshot_key(key, sizeof(key), GEN, 0), 0);
    snprintf(path, sizeof(path), "%s/%s", r.dir, key);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fdatasync(fd), 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
    struct statfs fsb;
    assert_int_equal(statfs(path, &fsb), 0);
    if (fsb.f_type != TMPFS_MAGIC) /* tmpfs keeps its pages: nothing to evict there */
        assert_int_equal(resident_pages(path), 0);
    r.st->ops->prefetch(r.st, key);
    size_t in = 0;
    for (int i = 0; i < 200 && !(in = resident_pages(path)); i++)
        usleep(10000);
    assert_true(in > 0);
    r.st->ops->prefetch(r.st, "generations/" GEN "/wal/00000009_00000000.wal.lz4");
    r.st->ops->prefetch(r.st, "../../etc/passwd");
    r.st->ops->prefetch(r.st, "");

    struct lc_error err = {0};
    char out[1024];
    out_path(out, sizeof(out), "prefetch");
    if (run_restore(&r, out, -1, 0, 0, 1, &err))
        fail_msg("restore: %s", err.msg);
    expect_state(out, 5);
    rep_close(&r);
}

static void test_restore_index(void **state)
{
    struct rep r = {0};
    struct lc_error err = {0};
    char out[1024];
    (void)state;

    rep_build(&r, "index", GEN, 0, T0);
    out_path(out, sizeof(out), "idx0");
    assert_int_equal(run_restore(&r, out, 0, 0, 0, 8, &err), 0);
    expect_state(out, 3);
    out_path(out, sizeof(out), "idx1");
    assert_int_equal(run_restore(&r, out, 1, 0, 0, 8, &err), 0);
    expect_state(out, 5);
    out_path(out, sizeof(out), "idx9");
    assert_int_equal(run_restore(&r, out, 9, 0, 0, 8, &err), 0);
    expect_state(out, 5);
    rep_close(&r);
}

static void test_restore_timestamp(void **state)
{
    static const struct {
        int64_t t;
        int k;
    } cases[] = {{T0, 0}, {T0 + 5, 0}, {T0 + 10, 1}, {T0 + 29, 2}, {T0 + 30, 3}, {T0 + 45, 4},
                 {T0 + 50, 5}};
    struct rep r = {0};
    (void)state;

    rep_build(&r, "ts", GEN, 0, T0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct lc_error err = {0};
        char out[1024];
        out_path(out, sizeof(out), "ts");
        if (run_restore(&r, out, -1, 1, cases[i].t, 3, &err))
            fail_msg("restore at %lld: %s", (long long)cases[i].t, err.msg);
        expect_state(out, cases[i].k);
    }
    /* outside the generation's [start, end]: nothing matches */
    struct lc_error err = {0};
    char out[1024];
    out_path(out, sizeof(out), "ts-late");
    assert_int_equal(run_restore(&r, out, -1, 1, T0 + 51, 3, &err), LC_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no matching backups found"));
    assert_no_output(out);
    rep_close(&r);
}

static void test_snapshot_only(void **state)
{
    struct rep r = {0};
    struct lc_error err = {0};
    char out[1024];
    (void)state;

    /* snapshot index 5 is above every WAL index: restore the snapshot alone */
    rep_build(&r, "snaponly", GEN, SNAP_IDX5, T0);
    out_path(out, sizeof(out), "snaponly");
    if (run_restore(&r, out, -1, 0, 0, 8, &err))
        fail_msg("restore: %s", err.msg);
    expect_state(out, 0);
    rep_close(&r);
}

static void test_missing_initial_segment(void **state)
{
    char key[LC_KEY_MAX], want[LC_KEY_MAX + 64];
    (void)state;
    seg_key_str(key, sizeof(key), 0, fx.cut0[1]);
    snprintf(want, sizeof(want), "missing initial wal segment: %s", key);
    expect_fail(OMIT_SEG00, want);
}

static void test_offset_gap(void **state)
{
    char key[LC_KEY_MAX], want[LC_KEY_MAX + 64];
    (void)state;
    seg_key_str(key, sizeof(key), 0, fx.cut0[2]);
    snprintf(want, sizeof(want), "wal segment gap: %s expected offset %zu", key, fx.cut0[1]);
    expect_fail(OMIT_SEG01, want);
}

static void test_missing_index(void **state)
{
    (void)state;
    expect_fail(OMIT_IDX0, "missing wal index: " GEN "/00000000");
}

static void test_checksum_break(void **state)
{
    char key[LC_KEY_MAX], want[LC_KEY_MAX + 64];
    (void)state;
    seg_key_str(key, sizeof(key), 0, fx.cut0[1]);
    snprintf(want, sizeof(want), "wal checksum break in %s at offset %zu", key, fx.cut0[1]);
    expect_fail(FLIP_SEG01, want);
}

static void test_salt_change(void **state)
{
    char key[LC_KEY_MAX], want[LC_KEY_MAX + 64];
    (void)state;
    seg_key_str(key, sizeof(key), 0, fx.cut0[2]);
    snprintf(want, sizeof(want), "salt mismatch in %s at offset %zu", key, fx.cut0[2]);
    expect_fail(SALT_SEG02, want);
}

static void test_truncated_lz4(void **state)
{
    char key[LC_KEY_MAX];
    (void)state;
    seg_key_str(key, sizeof(key), 0, fx.cut0[1]);
    expect_fail(TRUNC_SEG01, key);
}

static void test_not_lz4(void **state)
{
    char key[LC_KEY_MAX];
    (void)state;
    seg_key_str(key, sizeof(key), 0, fx.cut0[1]);
    expect_fail(RAW_SEG01, key);
}

static void test_bad_wal_header(void **state)
{
    char key[LC_KEY_MAX];
    (void)state;
    seg_key_str(key, sizeof(key), 1, 0);
    expect_fail(BAD_HDR, key);
}

static void test_output_exists(void **state)
{
    struct rep r = {0};
    struct lc_error err = {0};
    char out[1024], dir[1024], want[1100];
    (void)state;

    rep_build(&r, "exists", GEN, 0, T0);
    out_path(out, sizeof(out), "exists");
    lc_path_dir(out, dir, sizeof(dir));
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(lc_atomic_write(out, "keep", 4, 0600, &err), 0);
    assert_int_not_equal(run_restore(&r, out, -1, 0, 0, 8, &err), 0);
    snprintf(want, sizeof(want), "cannot restore, output path already exists: %s", out);
    assert_string_equal(err.msg, want);
    assert_int_equal(file_size(out), 4);
    rep_close(&r);
}

static void test_choose_generation(void **state)
{
    struct rep r = {0};
    struct lc_error err = {0};
    struct lc_restore_opts o;
    struct lc_gen_info g;
    size_t which = 99;
    char out[1024];
    (void)state;

    /* GEN ends at T0+50; GEN2 (a snapshot-only copy of the base) ends at T0+1000 */
    rep_build(&r, "choose", GEN, 0, T0);
    char key[LC_KEY_MAX];
    assert_int_equal(lc_seg_snapshot_key(key, sizeof(key), GEN2, 0), 0);
    put_obj(&r, key, fx.snap, fx.snaplen, 1, 0, T0 + 1000);

    struct lc_store *stores[2] = {r.st, r.st};
    lc_restore_opts_init(&o);
    assert_int_equal(lc_restore_choose(stores, 2, &o, &which, &g, &err), 0);
    assert_string_equal(g.id, GEN2);
    assert_int_equal(which, 0);
    lc_gen_info_clear(&g);

    o.generation = GEN;
    assert_int_equal(lc_restore_choose(stores, 1, &o, &which, &g, &err), 0);
    assert_string_equal(g.id, GEN);
    lc_gen_info_clear(&g);

    /* T inside GEN only */
    o.generation = NULL;
    o.has_timestamp = 1;
    o.timestamp_ns = (T0 + 25) * 1000000000LL;
    assert_int_equal(lc_restore_choose(stores, 1, &o, &which, &g, &err), 0);
    assert_string_equal(g.id, GEN);
    lc_gen_info_clear(&g);

    /* the default restore picks GEN2 */
    out_path(out, sizeof(out), "choose");
    assert_int_equal(run_restore(&r, out, -1, 0, 0, 8, &err), 0);
    expect_state(out, 0);

    o.has_timestamp = 0;
    o.generation = "00000000000000aa";
    assert_int_equal(lc_restore_choose(stores, 1, &o, &which, &g, &err), LC_ENOTFOUND);
    assert_string_equal(err.msg, "no matching backups found");
    rep_close(&r);
}

static void test_plan(void **state)
{
    struct lc_snap_info snaps[] = {{0, 10, 100}, {2, 10, 300}, {4, 10, 500}};
    struct lc_seg_info segs[] = {{0, 0, 1, 100}, {1, 0, 1, 200}, {2, 0, 1, 300},
                                 {2, 64, 1, 310}, {3, 0, 1, 400}, {4, 0, 1, 500},
                                 {4, 64, 1, 510}};
    struct lc_gen_info g = {GEN, snaps, 3, segs, 7, 100, 510};
    struct lc_restore_opts o;
    struct lc_restore_plan p;
    struct lc_error err = {0};
    (void)state;

    lc_restore_opts_init(&o);
    assert_int_equal(lc_restore_plan(&g, &o, &p, &err), 0);
    assert_int_equal(p.snap.index, 4);
    assert_int_equal(p.nsegs, 2);
    lc_restore_plan_free(&p);

    o.index = 3;
    assert_int_equal(lc_restore_plan(&g, &o, &p, &err), 0);
    assert_int_equal(p.snap.index, 2);
    assert_int_equal(p.nsegs, 3);
    assert_int_equal(p.min_index, 2);
    assert_int_equal(p.max_index, 3);
    lc_restore_plan_free(&p);

    o.index = -1;
    o.has_timestamp = 1;
    o.timestamp_ns = 305;
    assert_int_equal(lc_restore_plan(&g, &o, &p, &err), 0);
    assert_int_equal(p.snap.index, 2);
    assert_int_equal(p.nsegs, 1); /* 2/64 was created after T */
    lc_restore_plan_free(&p);

    o.timestamp_ns = 50;
    assert_int_equal(lc_restore_plan(&g, &o, &p, &err), LC_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no snapshots available"));
}

/* A segment too large to hold in memory spills to a temporary file. */
static void test_large_segment(void **state)
{
    char src[512], wal[600], out[1024], key[LC_KEY_MAX], st1[64], st2[64];
    struct rep r = {0};
    struct lc_error err = {0};
    sqlite3 *db;
    int one = 1;
    (void)state;

    snprintf(src, sizeof(src), "%s/big.db", fx.root);
    snprintf(wal, sizeof(wal), "%s-wal", src);
    assert_int_equal(sqlite3_open(src, &db), SQLITE_OK);
    exec_sql(db, "PRAGMA page_size=4096; PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0");
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &one), SQLITE_OK);
    exec_sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); PRAGMA wal_checkpoint(TRUNCATE)");
    size_t snaplen, wallen;
    uint8_t *snap = slurp(src, &snaplen);
    exec_sql(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<4500)"
                 " INSERT INTO t SELECT x, hex(randomblob(2000)) FROM c");
    uint8_t *w = slurp(wal, &wallen);
    assert_true(wallen > ((size_t)17 << 20));
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    db_state(src, st1, sizeof(st1));

    rep_open(&r, "big");
    assert_int_equal(lc_seg_snapshot_key(key, sizeof(key), GEN, 0), 0);
    put_obj(&r, key, snap, snaplen, 1, 0, T0);
    assert_int_equal(lc_seg_wal_key(key, sizeof(key), GEN, 0, 0), 0);
    put_obj(&r, key, w, wallen, 1, 0, T0 + 1);
    char obj[2048];
    snprintf(obj, sizeof(obj), "%s/%s", r.dir, key);
    assert_true(file_size(obj) > ((size_t)16 << 20)); /* above restore's in-memory bound */
    out_path(out, sizeof(out), "big");
    if (run_restore(&r, out, -1, 0, 0, 2, &err))
        fail_msg("restore: %s", err.msg);
    db_state(out, st2, sizeof(st2));
    assert_string_equal(st1, st2);
    free(snap);
    free(w);
    rep_close(&r);
}

/* ---- an asynchronous store: gets complete later, from the loop, out of order -------- */

#define SLOW_SLOTS 64

struct slow_get {
    ev_timer timer;
    struct slow_store *s;
    char key[LC_KEY_MAX];
    struct lc_store_sink *sink;
    lc_store_done_fn done;
    void *arg;
    int used;
};

struct slow_store {
    struct lc_store base;
    struct lc_store *inner; /* a file store */
    struct slow_get g[SLOW_SLOTS];
    int inflight, max_inflight, gets, failures;
    int fail_every;         /* fail the first get of every n-th key (0: never) */
    char failed[16][LC_KEY_MAX];
    int nfailed;
};

static void slow_fire(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct slow_get *g = (struct slow_get *)w;
    struct slow_store *s = g->s;
    (void)revents;

    ev_timer_stop(loop, w);
    g->used = 0;
    s->inflight--;
    int fail = 0;
    if (s->fail_every && s->gets % s->fail_every == 0) {
        fail = 1;
        for (int i = 0; i < s->nfailed; i++)
            if (strcmp(s->failed[i], g->key) == 0)
                fail = 0; /* each key fails once */
    }
    if (fail && s->nfailed < 16) {
        struct lc_error err = {0};
        snprintf(s->failed[s->nfailed++], LC_KEY_MAX, "%s", g->key);
        s->failures++;
        /* a partial, garbled body before the failure: the sink must be reset */
        assert_int_equal(g->sink->write(g->sink->arg, (const uint8_t *)"garbage", 7, &err), 0);
        lc_err_set(&err, LC_EAGAIN, "get %s: connection reset", g->key);
        g->done(g->arg, LC_EAGAIN, &err);
        return;
    }
    s->inner->ops->get(s->inner, g->key, g->sink, g->done, g->arg);
}

static void slow_get(struct lc_store *st, const char *key, struct lc_store_sink *sink,
                     lc_store_done_fn done, void *arg)
{
    struct slow_store *s = (struct slow_store *)st;
    for (int i = 0; i < SLOW_SLOTS; i++) {
        struct slow_get *g = &s->g[i];
        if (g->used)
            continue;
        g->used = 1;
        g->s = s;
        snprintf(g->key, sizeof(g->key), "%s", key);
        g->sink = sink;
        g->done = done;
        g->arg = arg;
        s->gets++;
        s->inflight++;
        if (s->inflight > s->max_inflight)
            s->max_inflight = s->inflight;
        /* later requests often finish first */
        ev_timer_init(&g->timer, slow_fire, 0.001 * (double)((s->gets * 7) % 5), 0.);
        ev_timer_start(st->loop, &g->timer);
        return;
    }
    fail_msg("slow store: too many gets in flight");
}

static void slow_list(struct lc_store *st, const char *prefix, struct lc_obj_list *out,
                      lc_store_done_fn done, void *arg)
{
    struct slow_store *s = (struct slow_store *)st;
    s->inner->ops->list(s->inner, prefix, out, done, arg);
}

static void slow_put(struct lc_store *st, const char *key, struct lc_store_src *src,
                     lc_store_done_fn done, void *arg)
{
    struct slow_store *s = (struct slow_store *)st;
    s->inner->ops->put(s->inner, key, src, done, arg);
}

static void slow_del(struct lc_store *st, const char *const *keys, size_t n,
                     lc_store_done_fn done, void *arg)
{
    struct slow_store *s = (struct slow_store *)st;
    s->inner->ops->del(s->inner, keys, n, done, arg);
}

static void slow_free(struct lc_store *st)
{
    (void)st;
}

static const struct lc_store_ops slow_ops = {"slow", slow_free, slow_put, slow_get, slow_list,
                                             slow_del, NULL};

/* A file store whose listings of wal/ leave out one object for the first `hide_lists`
 * of them: what a directory read racing a rename looks like. */
struct hide_store {
    struct lc_store base;
    struct lc_store *inner;
    char hide[64]; /* base name to leave out */
    int hide_lists, wal_lists;
};

static void hide_list(struct lc_store *st, const char *prefix, struct lc_obj_list *out,
                      lc_store_done_fn done, void *arg)
{
    struct hide_store *h = (struct hide_store *)st;
    size_t len = strlen(prefix);
    /* the file store completes at once: out is filled when this returns */
    h->inner->ops->list(h->inner, prefix, out, done, arg);
    if (len < 4 || strcmp(prefix + len - 4, "wal/") != 0 || h->wal_lists++ >= h->hide_lists)
        return;
    for (size_t i = 0; i < out->n; i++) {
        if (strcmp(out->v[i].name, h->hide) != 0)
            continue;
        free(out->v[i].name);
        memmove(&out->v[i], &out->v[i + 1], (out->n - i - 1) * sizeof(out->v[0]));
        out->n--;
        break;
    }
}

static void hide_get(struct lc_store *st, const char *key, struct lc_store_sink *sink,
                     lc_store_done_fn done, void *arg)
{
    struct hide_store *h = (struct hide_store *)st;
    h->inner->ops->get(h->inner, key, sink, done, arg);
}

static const struct lc_store_ops hide_ops = {"hide", slow_free, slow_put, hide_get, hide_list,
                                             slow_del, NULL};

/* A listing that missed a segment renamed in during it: listed again, restored whole (or
 * up to the gap); a segment that stays missing is damage. */
static void test_listing_race(void **state)
{
    static const struct {
        int seg;        /* hide 0/cut0[seg]: 0 index starts late, 1 offset gap, 2 the tail of
                         * index 0, which no single listing can tell is missing */
        int lists;      /* listings that miss it */
        int k;          /* expected state, -1: fails */
        const char *err;
    } cases[] = {
        {0, 1, 5, NULL},  /* the second listing, cut at the first's end, has it */
        {1, 1, 5, NULL},
        {2, 1, 5, NULL},  /* (planned from the first alone, this restored a malformed db) */
        {0, 2, 5, NULL},  /* both miss it: listed twice again at planning, the whole restore */
        {1, 2, 1, NULL},  /* found missing while applying: ends before the gap */
        {0, 100, -1, "missing initial wal segment"},
        {1, 100, -1, "wal segment gap"},
    };
    struct rep r = {0};
    (void)state;

    rep_build(&r, "race", GEN, 0, T0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hide_store h = {0};
        struct lc_error err = {0};
        char out[1024];
        h.base.ops = &hide_ops;
        h.base.loop = NULL;
        snprintf(h.base.desc, sizeof(h.base.desc), "hide://%s", r.dir);
        h.inner = r.st;
        h.hide_lists = cases[i].lists;
        snprintf(h.hide, sizeof(h.hide), "%08x_%08zx.wal.lz4", 0u, fx.cut0[cases[i].seg]);

        struct lc_store *stores[1] = {&h.base};
        struct lc_restore_opts o;
        lc_restore_opts_init(&o);
        out_path(out, sizeof(out), "race");
        o.output = out;
        int rc = lc_restore(stores, 1, &o, NULL, &err);
        if (cases[i].k >= 0) {
            if (rc)
                fail_msg("case %zu: restore: %s", i, err.msg);
            expect_state(out, cases[i].k);
        } else {
            if (rc == 0)
                fail_msg("case %zu: restore succeeded, expected %s", i, cases[i].err);
            if (!strstr(err.msg, cases[i].err))
                fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err.msg, cases[i].err);
            assert_no_output(out);
        }
    }
    rep_close(&r);
}

static void test_async_store(void **state)
{
    struct rep r = {0};
    struct lc_error err = {0};
    struct ev_loop *loop = ev_loop_new(0);
    char out[1024];
    (void)state;

    assert_non_null(loop);
    rep_build(&r, "async", GEN, 0, T0);
    for (int par = 1; par <= 4; par += 3) {
        struct slow_store *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        s->base.ops = &slow_ops;
        s->base.loop = loop;
        snprintf(s->base.desc, sizeof(s->base.desc), "slow");
        s->inner = r.st;
        s->fail_every = 3;
        struct lc_store *stores[1] = {&s->base};
        struct lc_restore_opts o;
        lc_restore_opts_init(&o);
        out_path(out, sizeof(out), "async");
        o.output = out;
        o.parallelism = par;
        if (lc_restore(stores, 1, &o, NULL, &err))
            fail_msg("restore: %s", err.msg);
        expect_state(out, 5);
        assert_int_equal(s->max_inflight, par);
        assert_true(s->failures > 0);
        assert_int_equal(s->inflight, 0);
        free(s);
    }

    /* a missing object fails at once, after every get in flight has finished */
    char key[LC_KEY_MAX];
    assert_int_equal(lc_seg_wal_key(key, sizeof(key), GEN, 1, fx.cut1[1]), 0);
    char p[2048];
    snprintf(p, sizeof(p), "%s/%s", r.dir, key);
    struct lc_gen_info g;
    size_t which;
    struct lc_restore_plan plan;
    struct lc_restore_opts o;
    lc_restore_opts_init(&o);
    struct lc_store *fst[1] = {r.st};
    assert_int_equal(lc_restore_choose(fst, 1, &o, &which, &g, &err), 0);
    assert_int_equal(lc_restore_plan(&g, &o, &plan, &err), 0);
    assert_int_equal(unlink(p), 0);
    struct slow_store *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->base.ops = &slow_ops;
    s->base.loop = loop;
    s->inner = r.st;
    out_path(out, sizeof(out), "async-missing");
    o.output = out;
    assert_int_equal(lc_restore_apply(&s->base, &plan, &o, &err), LC_ENOTFOUND);
    assert_non_null(strstr(err.msg, key));
    assert_int_equal(s->inflight, 0);
    assert_no_output(out);
    free(s);
    lc_restore_plan_free(&plan);
    lc_gen_info_clear(&g);
    ev_loop_destroy(loop);
    rep_close(&r);
}

/* ---- catalog ---------------------------------------------------------------------- */

static void test_catalog(void **state)
{
    struct rep r = {0};
    struct lc_error err = {0};
    struct lc_gen_info *v;
    size_t n;
    char path[1024];
    (void)state;

    rep_build(&r, "catalog", GEN, 0, T0);
    /* names that do not parse are ignored */
    snprintf(path, sizeof(path), "%s/generations/not-a-generation", r.dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(lc_store_put_buf_sync(r.st, "generations/" GEN "/wal/junk.txt", "x", 1, &err),
                     0);
    assert_int_equal(
        lc_store_put_buf_sync(r.st, "generations/" GEN "/snapshots/1.snapshot.lz4", "x", 1, &err),
        0);
    assert_int_equal(lc_store_put_buf_sync(r.st, "generations/" GEN2 "x/snapshots/"
                                                 "00000000.snapshot.lz4",
                                           "x", 1, &err),
                     0);

    assert_int_equal(lc_catalog_generations(r.st, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, GEN);
    assert_int_equal(v[0].nsnaps, 1);
    assert_int_equal(v[0].snaps[0].index, 0);
    assert_int_equal(v[0].snaps[0].mtime_ns, T0 * 1000000000LL);
    assert_true(v[0].snaps[0].size > 0);
    assert_int_equal(v[0].nsegs, 5);
    static const uint32_t idx[] = {0, 0, 0, 1, 1};
    size_t off[] = {0, fx.cut0[1], fx.cut0[2], 0, fx.cut1[1]};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(v[0].segs[i].index, idx[i]);
        assert_int_equal(v[0].segs[i].offset, off[i]);
    }
    assert_int_equal(v[0].start_ns, T0 * 1000000000LL);
    assert_int_equal(v[0].end_ns, (T0 + 50) * 1000000000LL);
    lc_gen_info_free_all(v, n);

    /* an empty replica has no generations */
    struct rep e = {0};
    rep_open(&e, "empty");
    assert_int_equal(lc_catalog_generations(e.st, &v, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(v);
    rep_close(&e);
    rep_close(&r);
}

/* ---- file store ------------------------------------------------------------------- */

static void test_file_store(void **state)
{
    struct rep r = {0};
    struct lc_error err = {0};
    struct lc_obj_list l = {0};
    struct lc_buf b = {0};
    char path[1100];
    struct stat sb;
    (void)state;

    rep_open(&r, "store");
    assert_int_equal(lc_store_put_buf_sync(r.st, "a/b/c.bin", "hello", 5, &err), 0);
    assert_int_equal(lc_store_put_buf_sync(r.st, "a/b/d.bin", "world!", 6, &err), 0);
    assert_int_equal(lc_store_put_buf_sync(r.st, "a/top", "", 0, &err), 0);
    snprintf(path, sizeof(path), "%s/a/b/c.bin", r.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/a/b", r.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* no temporary left behind; a stale one and a dotfile are not listed */
    snprintf(path, sizeof(path), "%s/a/b/c.bin.tmp", r.dir);
    assert_false(exists(path));
    assert_int_equal(lc_atomic_write(path, "junk", 4, 0600, &err), 0);
    snprintf(path, sizeof(path), "%s/a/b/.hidden", r.dir);
    assert_int_equal(lc_atomic_write(path, "junk", 4, 0600, &err), 0);
    set_mtime(r.dir, "a/b/d.bin", T0);

    assert_int_equal(lc_store_get_buf_sync(r.st, "a/b/d.bin", &b, &err), 0);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.data, "world!", 6);
    b.len = 0;
    assert_int_equal(lc_store_get_buf_sync(r.st, "a/b/nope", &b, &err), LC_ENOTFOUND);
    lc_buf_free(&b);

    assert_int_equal(lc_store_list_sync(r.st, "a/b/", &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].name, "c.bin");
    assert_int_equal(l.v[0].size, 5);
    assert_string_equal(l.v[1].name, "d.bin");
    assert_int_equal(l.v[1].mtime_ns, T0 * 1000000000LL);
    assert_int_equal(l.v[1].is_prefix, 0);
    lc_obj_list_free(&l);
    assert_int_equal(lc_store_list_sync(r.st, "a/", &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].name, "b");
    assert_int_equal(l.v[0].is_prefix, 1);
    assert_string_equal(l.v[1].name, "top");
    lc_obj_list_free(&l);
    assert_int_equal(lc_store_list_sync(r.st, "missing/", &l, &err), 0);
    assert_int_equal(l.n, 0);

    /* keys must stay inside the root */
    assert_int_equal(lc_store_put_buf_sync(r.st, "../x", "x", 1, &err), LC_EINVAL);
    assert_int_equal(lc_store_put_buf_sync(r.st, "a/../../x", "x", 1, &err), LC_EINVAL);
    assert_int_equal(lc_store_put_buf_sync(r.st, "/etc/x", "x", 1, &err), LC_EINVAL);
    assert_int_equal(lc_store_get_buf_sync(r.st, "../x", &b, &err), LC_EINVAL);
    assert_int_equal(lc_store_list_sync(r.st, "../", &l, &err), LC_EINVAL);
    const char *bad[] = {"../x"};
    assert_int_equal(lc_store_del_sync(r.st, bad, 1, &err), LC_EINVAL);
    snprintf(path, sizeof(path), "%s/../x", r.dir);
    assert_false(exists(path));

    /* delete: missing keys are fine; emptied dirs go, the root stays */
    snprintf(path, sizeof(path), "%s/a/b/c.bin.tmp", r.dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/a/b/.hidden", r.dir);
    unlink(path);
    const char *keys[] = {"a/b/c.bin", "a/b/d.bin", "a/b/none"};
    assert_int_equal(lc_store_del_sync(r.st, keys, 3, &err), 0);
    snprintf(path, sizeof(path), "%s/a/b", r.dir);
    assert_false(exists(path));
    snprintf(path, sizeof(path), "%s/a/top", r.dir);
    assert_true(exists(path));
    const char *keys2[] = {"a/top"};
    assert_int_equal(lc_store_del_sync(r.st, keys2, 1, &err), 0);
    snprintf(path, sizeof(path), "%s/a", r.dir);
    assert_false(exists(path));
    assert_true(exists(r.dir));

    /* lc_store_open dispatches on the scheme */
    struct lc_replica_config rc;
    struct lc_store *st = NULL;
    memset(&rc, 0, sizeof(rc));
    snprintf(rc.url, sizeof(rc.url), "%s", r.url);
    assert_int_equal(lc_store_open(&rc, NULL, NULL, &st, &err), 0);
    assert_string_equal(st->ops->type, "file");
    lc_store_free(st);
    snprintf(rc.url, sizeof(rc.url), "gcs://bucket/x");
    assert_int_equal(lc_store_open(&rc, NULL, NULL, &st, &err), LC_EINVAL);
    snprintf(rc.url, sizeof(rc.url), "file://relative/x");
    assert_int_equal(lc_store_open(&rc, NULL, NULL, &st, &err), LC_EINVAL);
    rep_close(&r);
}

/* ---- commands ----------------------------------------------------------------------- */

/* Run a command with stdout captured into buf. */
static int run_cmd(int (*fn)(int, char **), char *buf, size_t len, int argc, ...)
{
    char *argv[16];
    char cap[512];
    va_list ap;
    int fd, saved, rc;

    va_start(ap, argc);
    for (int i = 0; i < argc && i < 15; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    snprintf(cap, sizeof(cap), "%s/stdout-%d", fx.root, counter++);
    fflush(stdout);
    fd = open(cap, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    rc = fn(argc, argv);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    ssize_t n = pread(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    return rc;
}

static void test_cmd_listings(void **state)
{
    struct rep r = {0};
    char buf[8192], want[8192], key[LC_KEY_MAX];
    struct stat sb;
    (void)state;

    rep_build(&r, "cmd", GEN, 0, T0);
    uint64_t sz[6];
    assert_int_equal(lc_seg_snapshot_key(key, sizeof(key), GEN, 0), 0);
    char p[2048];
    snprintf(p, sizeof(p), "%s/%s", r.dir, key);
    assert_int_equal(stat(p, &sb), 0);
    sz[0] = (uint64_t)sb.st_size;
    size_t offs[5] = {0, fx.cut0[1], fx.cut0[2], 0, fx.cut1[1]};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(lc_seg_wal_key(key, sizeof(key), GEN, i < 3 ? 0 : 1, offs[i]), 0);
        snprintf(p, sizeof(p), "%s/%s", r.dir, key);
        assert_int_equal(stat(p, &sb), 0);
        sz[i + 1] = (uint64_t)sb.st_size;
    }

    assert_int_equal(run_cmd(lc_cmd_snapshots, buf, sizeof(buf), 2, "snapshots", r.url), 0);
    char sizes[8];
    snprintf(sizes, sizeof(sizes), "%llu", (unsigned long long)sz[0]);
    int w = (int)strlen(sizes) > 4 ? (int)strlen(sizes) : 4;
    snprintf(want, sizeof(want),
             "replica  generation        index  %-*s  created\n"
             "file     " GEN "  0      %-*s  2023-11-14T22:13:20Z\n",
             w, "size", w, sizes);
    assert_string_equal(buf, want);

    assert_int_equal(run_cmd(lc_cmd_wal, buf, sizeof(buf), 2, "wal", r.url), 0);
    /* column widths: offset and size vary, so rebuild the table the same way */
    char rows[6][6][32];
    snprintf(rows[0][0], 32, "replica");
    snprintf(rows[0][1], 32, "generation");
    snprintf(rows[0][2], 32, "index");
    snprintf(rows[0][3], 32, "offset");
    snprintf(rows[0][4], 32, "size");
    snprintf(rows[0][5], 32, "created");
    for (int i = 0; i < 5; i++) {
        char t[32];
        lc_time_format((T0 + 10 * (i + 1)) * 1000000000LL, 0, t, sizeof(t));
        snprintf(rows[i + 1][0], 32, "file");
        snprintf(rows[i + 1][1], 32, "%s", GEN);
        snprintf(rows[i + 1][2], 32, "%d", i < 3 ? 0 : 1);
        snprintf(rows[i + 1][3], 32, "%zu", offs[i]);
        snprintf(rows[i + 1][4], 32, "%llu", (unsigned long long)sz[i + 1]);
        snprintf(rows[i + 1][5], 32, "%s", t);
    }
    size_t wid[6] = {0};
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < 5; c++)
            if (strlen(rows[i][c]) > wid[c])
                wid[c] = strlen(rows[i][c]);
    size_t o = 0;
    for (int i = 0; i < 6; i++) {
        for (int c = 0; c < 5; c++)
            o += (size_t)snprintf(want + o, sizeof(want) - o, "%-*s", (int)wid[c] + 2, rows[i][c]);
        o += (size_t)snprintf(want + o, sizeof(want) - o, "%s\n", rows[i][5]);
    }
    assert_string_equal(buf, want);

    assert_int_equal(run_cmd(lc_cmd_generations, buf, sizeof(buf), 2, "generations", r.url), 0);
    assert_true(strncmp(buf, "name  generation        lag", 27) == 0);
    assert_non_null(strstr(buf, "\nfile  " GEN "  "));
    assert_non_null(strstr(buf, "  2023-11-14T22:13:20Z  2023-11-14T22:14:10Z\n"));

    /* usage errors */
    assert_int_equal(run_cmd(lc_cmd_wal, buf, sizeof(buf), 1, "wal"), LC_EXIT_USAGE);
    assert_int_equal(run_cmd(lc_cmd_snapshots, buf, sizeof(buf), 3, "snapshots", "-bogus", r.url),
                     LC_EXIT_USAGE);
    rep_close(&r);
}

static void test_cmd_restore(void **state)
{
    struct rep r = {0}, e = {0};
    char buf[256], out[1024];
    (void)state;

    rep_build(&r, "cmdrestore", GEN, 0, T0);
    out_path(out, sizeof(out), "cmd");
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 4, "restore", "-o", out, r.url),
                     LC_EXIT_OK);
    expect_state(out, 5);
    /* exists: fail, unless --if-db-not-exists */
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 4, "restore", "-o", out, r.url),
                     LC_EXIT_FAIL);
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 5, "restore", "-if-db-not-exists",
                             "-o", out, r.url),
                     LC_EXIT_OK);

    out_path(out, sizeof(out), "cmd-index");
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 6, "restore", "-index", "0",
                             "-output", out, r.url),
                     LC_EXIT_OK);
    expect_state(out, 3);
    out_path(out, sizeof(out), "cmd-ts");
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 8, "restore", "--timestamp",
                             "2023-11-14T22:13:40Z", "--parallelism", "2", "-o", out, r.url),
                     LC_EXIT_OK);
    expect_state(out, 2);

    out_path(out, sizeof(out), "cmd-usage");
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 6, "restore", "-index", "zz", "-o",
                             out, r.url),
                     LC_EXIT_USAGE);
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 6, "restore", "-timestamp",
                             "yesterday", "-o", out, r.url),
                     LC_EXIT_USAGE);
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 8, "restore", "-index", "1",
                             "-timestamp", "2023-11-14T22:13:40Z", "-o", out, r.url),
                     LC_EXIT_USAGE);
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 2, "restore", r.url),
                     LC_EXIT_USAGE);
    assert_no_output(out);

    /* an empty replica: exit 1, or 0 with --if-replica-exists */
    rep_open(&e, "cmd-empty");
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 4, "restore", "-o", out, e.url),
                     LC_EXIT_FAIL);
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 5, "restore", "-if-replica-exists",
                             "-o", out, e.url),
                     LC_EXIT_OK);
    assert_no_output(out);
    rep_close(&e);
    rep_close(&r);
}

static void test_cmd_config(void **state)
{
    struct rep r = {0};
    char buf[4096], cfg[1024], ini[2048], want[2048], out[1024], db[1024];
    struct lc_error err = {0};
    (void)state;

    rep_build(&r, "cmdcfg", GEN, 0, T0);
    snprintf(db, sizeof(db), "%s/app.db", fx.root);
    snprintf(cfg, sizeof(cfg), "%s/litecast-%d.ini", fx.root, counter++);
    snprintf(ini, sizeof(ini),
             "[db app]\npath = %s\n\n[replica local]\ndb = app\nurl = %s\n\n"
             "[replica other]\ndb = app\nurl = file://%s/nothing-here\n",
             db, r.url, fx.root);
    assert_int_equal(lc_atomic_write(cfg, ini, strlen(ini), 0600, &err), 0);

    assert_int_equal(run_cmd(lc_cmd_databases, buf, sizeof(buf), 3, "databases", "-config", cfg),
                     LC_EXIT_OK);
    snprintf(want, sizeof(want), "path%*s  replicas\n%s  local,other\n", (int)strlen(db) - 4, "",
             db);
    assert_string_equal(buf, want);

    assert_int_equal(run_cmd(lc_cmd_snapshots, buf, sizeof(buf), 6, "snapshots", "-config", cfg,
                             "-replica", "local", db),
                     LC_EXIT_OK);
    assert_non_null(strstr(buf, "\nlocal    " GEN "  0 "));

    /* DB_PATH restores to the db path by default */
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 4, "restore", "-c", cfg, db),
                     LC_EXIT_OK);
    expect_state(db, 5);
    out_path(out, sizeof(out), "cfg-other");
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 8, "restore", "-c", cfg,
                             "-replica", "other", "-o", out, db),
                     LC_EXIT_FAIL);
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 6, "restore", "-c", cfg, "-o", out,
                             "/not/in/config.db"),
                     LC_EXIT_FAIL);
    assert_int_equal(run_cmd(lc_cmd_restore, buf, sizeof(buf), 6, "restore", "-c", cfg, "-o", out,
                             r.url),
                     LC_EXIT_USAGE);
    assert_no_output(out);
    rep_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_store),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_full_restore),
        cmocka_unit_test(test_prefetch_hint),
        cmocka_unit_test(test_restore_index),
        cmocka_unit_test(test_restore_timestamp),
        cmocka_unit_test(test_snapshot_only),
        cmocka_unit_test(test_missing_initial_segment),
        cmocka_unit_test(test_offset_gap),
        cmocka_unit_test(test_missing_index),
        cmocka_unit_test(test_checksum_break),
        cmocka_unit_test(test_salt_change),
        cmocka_unit_test(test_truncated_lz4),
        cmocka_unit_test(test_not_lz4),
        cmocka_unit_test(test_bad_wal_header),
        cmocka_unit_test(test_output_exists),
        cmocka_unit_test(test_choose_generation),
        cmocka_unit_test(test_large_segment),
        cmocka_unit_test(test_async_store),
        cmocka_unit_test(test_listing_race),
        cmocka_unit_test(test_cmd_listings),
        cmocka_unit_test(test_cmd_restore),
        cmocka_unit_test(test_cmd_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
