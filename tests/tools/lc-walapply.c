/* lc-walapply: replay a chain of shadow WAL files onto a copy of a base database with
 * SQLite's own checkpoint, to check that the chain reproduces the source.
 *
 *   lc-walapply BASE_DB SHADOW_WAL_DIR OUT_DB [--upto-index I]
 *
 * BASE_DB is copied to OUT_DB. Then, for each NNNNNNNN.wal in SHADOW_WAL_DIR (8 hex digits)
 * in index order, up to I (hex, like the file names) if given: the file is copied to
 * OUT_DB-wal, OUT_DB is opened and PRAGMA wal_checkpoint(FULL) then (TRUNCATE) run. Neither
 * may be busy, and SQLite must accept every frame in the file: a shadow WAL holds only
 * committed frames with an unbroken checksum chain, so a frame SQLite drops means a broken
 * chain, not a torn tail. Indexes must be consecutive. One line per applied index:
 *
 *   applied NNNNNNNN.wal frames=F
 *
 * Exit 0 when every file was applied, 1 otherwise, 2 on bad usage. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 1000000 /* bound on the chain length */
#define WAL_HDR 32        /* WAL header bytes */
#define FRAME_HDR 24      /* frame header bytes */

static int copy_file(const char *from, const char *to)
{
    char buf[1 << 16];
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = -1;

    if (in < 0) {
        fprintf(stderr, "lc-walapply: open %s: %s\n", from, strerror(errno));
        return -1;
    }
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        fprintf(stderr, "lc-walapply: open %s: %s\n", to, strerror(errno));
        goto done;
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "lc-walapply: read %s: %s\n", from, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                fprintf(stderr, "lc-walapply: write %s: %s\n", to, strerror(errno));
                goto done;
            }
            off += w;
        }
    }
    rc = 0;
done:
    if (out >= 0 && close(out) != 0 && rc == 0) {
        fprintf(stderr, "lc-walapply: close %s: %s\n", to, strerror(errno));
        rc = -1;
    }
    (void)close(in); /* read-only descriptor: nothing to lose */
    return rc;
}

/* Frames in a WAL file, from its size and the page size in its header; -1 if malformed. */
static long long wal_frames(const char *path)
{
    unsigned char hdr[WAL_HDR];
    struct stat st;
    long long frames = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "lc-walapply: %s: %s\n", path, strerror(errno));
        if (fd >= 0) (void)close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        frames = 0;
    } else if (pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr)) {
        uint32_t psz =
            (uint32_t)hdr[8] << 24 | (uint32_t)hdr[9] << 16 | (uint32_t)hdr[10] << 8 | hdr[11];
        if (psz == 1) psz = 65536;
        if (psz >= 512 && psz <= 65536 && (psz & (psz - 1)) == 0 &&
            (st.st_size - WAL_HDR) % (psz + FRAME_HDR) == 0)
            frames = (st.st_size - WAL_HDR) / (psz + FRAME_HDR);
    }
    if (frames < 0)
        fprintf(stderr, "lc-walapply: %s: not a whole WAL (size %lld)\n", path,
                (long long)st.st_size);
    (void)close(fd);
    return frames;
}

/* Run one checkpoint pragma; fills busy, log and checkpointed, or returns -1. */
static int run_pragma(sqlite3 *db, const char *sql, const char *name, int res[3])
{
    sqlite3_stmt *st = NULL;
    int rc = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < 3; i++)
            res[i] = sqlite3_column_int(st, i);
        rc = 0;
    } else {
        fprintf(stderr, "lc-walapply: %s: %s: %s\n", name, sql, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    return rc;
}

/* Checkpoint OUT_DB's -wal into it; returns the frames SQLite applied, or -1. FULL first,
 * because it reports the frames it found and copied (TRUNCATE reports the emptied WAL),
 * then TRUNCATE, as the restore does. */
static long long checkpoint(const char *db_path, const char *name)
{
    sqlite3 *db = NULL;
    int full[3], trunc[3];
    long long frames = -1;

    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "lc-walapply: %s: open %s: %s\n", name, db_path,
                db ? sqlite3_errmsg(db) : "out of memory");
    } else if (run_pragma(db, "PRAGMA wal_checkpoint(FULL)", name, full) == 0 &&
               run_pragma(db, "PRAGMA wal_checkpoint(TRUNCATE)", name, trunc) == 0) {
        if (full[0] != 0 || trunc[0] != 0)
            fprintf(stderr, "lc-walapply: %s: checkpoint busy\n", name);
        else if (full[1] != full[2])
            fprintf(stderr, "lc-walapply: %s: checkpointed %d of %d frames\n", name, full[2],
                    full[1]);
        else
            frames = full[1];
    }
    if (db && sqlite3_close(db) != SQLITE_OK) {
        fprintf(stderr, "lc-walapply: %s: close: %s\n", name, sqlite3_errmsg(db));
        frames = -1;
    }
    return frames;
}

static int parse_index(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 16);
    if (errno || end == s || *end || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

/* NNNNNNNN.wal: 8 hex digits and the suffix, nothing else */
static int wal_name(const char *name, uint32_t *index)
{
    char hex[9];
    if (strlen(name) != 12 || strcmp(name + 8, ".wal") != 0) return 0;
    for (int i = 0; i < 8; i++)
        if (!strchr("0123456789abcdefABCDEF", name[i])) return 0;
    memcpy(hex, name, 8);
    hex[8] = '\0';
    return parse_index(hex, index) == 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: lc-walapply BASE_DB SHADOW_WAL_DIR OUT_DB [--upto-index I]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *base, *dir, *out;
    uint32_t upto = UINT32_MAX, *idx = NULL, index;
    size_t n = 0, cap = 0;
    char *wal = NULL, *src = NULL;
    struct dirent *de;
    DIR *d;
    int rc = 1;

    if (argc != 4 && argc != 6) usage();
    if (argc == 6 && (strcmp(argv[4], "--upto-index") != 0 || parse_index(argv[5], &upto) < 0))
        usage();
    base = argv[1], dir = argv[2], out = argv[3];

    if ((d = opendir(dir)) == NULL) {
        fprintf(stderr, "lc-walapply: open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    while ((errno = 0, de = readdir(d)) != NULL) {
        if (!wal_name(de->d_name, &index) || index > upto) continue;
        if (n == cap) {
            uint32_t *p;
            cap = cap ? cap * 2 : 64;
            if (cap > MAX_FILES || (p = realloc(idx, cap * sizeof(*idx))) == NULL) {
                fprintf(stderr, "lc-walapply: %s: too many WAL files\n", dir);
                (void)closedir(d);
                goto out;
            }
            idx = p;
        }
        idx[n++] = index;
    }
    if (errno != 0) {
        fprintf(stderr, "lc-walapply: read %s: %s\n", dir, strerror(errno));
        (void)closedir(d);
        goto out;
    }
    (void)closedir(d);
    if (n > 0) qsort(idx, n, sizeof(*idx), cmp_u32);

    if ((wal = sqlite3_mprintf("%s-wal", out)) == NULL) goto out;
    char *shm = sqlite3_mprintf("%s-shm", out);
    if (!shm) goto out;
    /* a stale -wal or -shm from an earlier run must not be mistaken for ours */
    int stale = (unlink(wal) != 0 && errno != ENOENT) || (unlink(shm) != 0 && errno != ENOENT);
    sqlite3_free(shm);
    if (stale) {
        fprintf(stderr, "lc-walapply: remove %s-wal/-shm: %s\n", out, strerror(errno));
        goto out;
    }
    if (copy_file(base, out) < 0) goto out;
    for (size_t i = 0; i < n; i++) {
        char name[16];
        long long want, got;
        snprintf(name, sizeof(name), "%08x.wal", idx[i]);
        if (i > 0 && idx[i] != idx[i - 1] + 1) {
            fprintf(stderr, "lc-walapply: %s: index %08x is missing\n", dir, idx[i - 1] + 1);
            goto out;
        }
        sqlite3_free(src);
        if ((src = sqlite3_mprintf("%s/%s", dir, name)) == NULL) goto out;
        if ((want = wal_frames(src)) < 0 || copy_file(src, wal) < 0 ||
            (got = checkpoint(out, name)) < 0)
            goto out;
        if (got != want) {
            fprintf(stderr, "lc-walapply: %s: sqlite applied %lld of its %lld frames\n", name, got,
                    want);
            goto out;
        }
        printf("applied %s frames=%lld\n", name, got);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    sqlite3_free(src);
    sqlite3_free(wal);
    free(idx);
    return rc;
}
