/* lc-dbcheck: a database's integrity and logical content, as one comparable line.
 *
 *   lc-dbcheck DB [--upto [K]]
 *   integrity=ok commits=C max=M rows=R hash=H [gaps=G]
 *
 * C, M and R describe lc-writer's table t: count(distinct n), max(n) (0 if empty or
 * absent) and count(*). H is FNV-1a-64, as 16 hex digits, over every row of every user
 * table (names starting with sqlite_, _litecast or _litestream are skipped) in table-name
 * and rowid order: the table name, then per value its type tag, length and bytes (integers
 * and reals as 8 big-endian bytes). Pages, free lists and WAL state do not enter it, so a
 * restored copy prints the same line as its source.
 *
 * --upto also checks that the n values are exactly {1..K} (K defaults to M) and prints
 * G, the number missing from it plus the number outside it.
 *
 * The database is opened read-only (file:DB?mode=ro); a read-only connection never
 * checkpoints or removes the WAL of a database another process is writing, and a WAL-mode
 * database without a -wal file is read as immutable, so no -wal or -shm appears.
 * Exit 0 when all checks pass, 1 when one fails or the database cannot be read, 2 on bad
 * usage. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fnv {
    uint64_t h; /* running FNV-1a-64 state */
};

static void fnv_mix(struct fnv *f, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        f->h ^= b[i];
        f->h *= 1099511628211ULL;
    }
}

static void fnv_u64(struct fnv *f, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (56 - 8 * i));
    fnv_mix(f, b, sizeof(b));
}

/* One integer from a one-row query; 0 when t is absent, -1 on any other error. */
static int query_int(sqlite3 *db, const char *sql, long long *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    *out = 0;
    if (rc != SQLITE_OK) {
        /* lc-writer's table may simply not exist: that counts as empty */
        int absent = strstr(sqlite3_errmsg(db), "no such table") != NULL;
        if (!absent) fprintf(stderr, "lc-dbcheck: %s: %s\n", sql, sqlite3_errmsg(db));
        return absent ? 0 : -1;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "lc-dbcheck: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* PRAGMA integrity_check: 1 if "ok", 0 if not (the findings go to stderr), -1 on error. */
static int integrity(sqlite3 *db, const char *path)
{
    sqlite3_stmt *st = NULL;
    int rc, ok = 0, rows = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "lc-dbcheck: %s: %s\n", path, sqlite3_errmsg(db));
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        if (rows++ == 0 && v && strcmp((const char *)v, "ok") == 0)
            ok = 1;
        else
            fprintf(stderr, "lc-dbcheck: %s: integrity_check: %s\n", path,
                    v ? (const char *)v : "");
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "lc-dbcheck: %s: integrity_check: %s\n", path, sqlite3_errmsg(db));
        ok = -1;
    }
    sqlite3_finalize(st);
    return ok;
}

static int skipped(const char *name)
{
    return strncmp(name, "sqlite_", 7) == 0 || strncmp(name, "_litecast", 9) == 0 ||
           strncmp(name, "_litestream", 11) == 0;
}

/* Mix every row of one table. Rowid order, or primary-key order for WITHOUT ROWID. */
static int hash_table(sqlite3 *db, const char *name, struct fnv *f)
{
    sqlite3_stmt *st = NULL;
    char *sql = sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY rowid", name);
    int rc;

    if (!sql) return -1;
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        /* a WITHOUT ROWID table has no rowid; it is stored, and scanned, in key order */
        if ((sql = sqlite3_mprintf("SELECT * FROM \"%w\"", name)) == NULL) return -1;
        rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
        sqlite3_free(sql);
    }
    if (rc != SQLITE_OK) {
        fprintf(stderr, "lc-dbcheck: table %s: %s\n", name, sqlite3_errmsg(db));
        return -1;
    }
    fnv_mix(f, name, strlen(name) + 1);
    int ncol = sqlite3_column_count(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < ncol; c++) {
            int type = sqlite3_column_type(st, c);
            unsigned char tag = (unsigned char)type;
            fnv_mix(f, &tag, 1);
            if (type == SQLITE_INTEGER) {
                fnv_u64(f, (uint64_t)sqlite3_column_int64(st, c));
            } else if (type == SQLITE_FLOAT) {
                double d = sqlite3_column_double(st, c);
                uint64_t bits;
                memcpy(&bits, &d, sizeof(bits));
                fnv_u64(f, bits);
            } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
                const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, c)
                                                    : sqlite3_column_blob(st, c);
                size_t n = (size_t)sqlite3_column_bytes(st, c);
                fnv_u64(f, n);
                if (n > 0 && p) fnv_mix(f, p, n);
            }
        }
    }
    if (rc != SQLITE_DONE) fprintf(stderr, "lc-dbcheck: table %s: %s\n", name, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int hash_db(sqlite3 *db, struct fnv *f)
{
    sqlite3_stmt *st = NULL;
    int rc, failed = 0;

    if (sqlite3_prepare_v2(db,
                           "SELECT name FROM sqlite_schema WHERE type = 'table' "
                           "AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "lc-dbcheck: schema: %s\n", sqlite3_errmsg(db));
        return -1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (name && !skipped(name) && hash_table(db, name, f) < 0) failed = 1;
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "lc-dbcheck: schema: %s\n", sqlite3_errmsg(db));
        failed = 1;
    }
    sqlite3_finalize(st);
    return failed ? -1 : 0;
}

/* A WAL-mode database (header bytes 18 and 19 are 2) with no -wal file: no connection has
 * it open in WAL mode, since SQLite keeps the -wal until the last close. Only then is the
 * file read as immutable, which opens no -wal or -shm of its own (a plain read-only open
 * would create both, and a watcher would see a WAL appear). */
static int wal_mode_without_wal(const char *path)
{
    unsigned char hdr[20];
    char *wal = sqlite3_mprintf("%s-wal", path);
    struct stat stw;
    int fd, wal_absent, is_wal = 0;

    if (!wal) return 0;
    wal_absent = stat(wal, &stw) != 0 && errno == ENOENT;
    sqlite3_free(wal);
    if (!wal_absent) return 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return 0;
    if (pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr))
        is_wal = hdr[18] == 2 && hdr[19] == 2;
    (void)close(fd); /* read-only descriptor: nothing to lose */
    return is_wal;
}

/* file:PATH?mode=ro, never creating or writing the database. '?', '#' and '%' in the
 * name are percent-encoded; an absolute path gets an empty authority ("file:///..."). */
static char *ro_uri(const char *path)
{
    sqlite3_str *s = sqlite3_str_new(NULL);
    sqlite3_str_appendall(s, path[0] == '/' ? "file://" : "file:");
    for (const char *p = path; *p; p++) {
        if (*p == '?' || *p == '#' || *p == '%')
            sqlite3_str_appendf(s, "%%%02X", (unsigned)(unsigned char)*p);
        else
            sqlite3_str_appendchar(s, 1, *p);
    }
    sqlite3_str_appendall(s, wal_mode_without_wal(path) ? "?mode=ro&immutable=1" : "?mode=ro");
    return sqlite3_str_finish(s);
}

static void usage(void)
{
    fprintf(stderr, "usage: lc-dbcheck DB [--upto [K]]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    sqlite3 *db = NULL;
    struct fnv f = {1469598103934665603ULL};
    const char *path;
    long long commits, max, rows, upto = -1, inside = 0, outside = 0;
    int check_upto = 0, rc = 1, ok;
    char *uri = NULL;

    if (argc < 2 || argc > 4 || argv[1][0] == '-') usage();
    path = argv[1];
    if (argc >= 3) {
        if (strcmp(argv[2], "--upto") != 0) usage();
        check_upto = 1;
        if (argc == 4) {
            char *end;
            errno = 0;
            upto = strtoll(argv[3], &end, 10);
            if (errno || end == argv[3] || *end || upto < 0) usage();
        }
    }

    if ((uri = ro_uri(path)) == NULL) return 1;
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        fprintf(stderr, "lc-dbcheck: open %s: %s\n", path, db ? sqlite3_errmsg(db) : "no memory");
        goto out;
    }
    if ((ok = integrity(db, path)) < 0) goto out;
    if (hash_db(db, &f) < 0 || query_int(db, "SELECT COUNT(DISTINCT n) FROM t", &commits) < 0 ||
        query_int(db, "SELECT COALESCE(MAX(n), 0) FROM t", &max) < 0 ||
        query_int(db, "SELECT COUNT(*) FROM t", &rows) < 0)
        goto out;
    printf("integrity=%s commits=%lld max=%lld rows=%lld hash=%016llx", ok ? "ok" : "failed",
           commits, max, rows, (unsigned long long)f.h);
    rc = ok ? 0 : 1;
    if (check_upto) {
        char *sql;
        if (upto < 0) upto = max;
        sql = sqlite3_mprintf("SELECT COUNT(DISTINCT n) FROM t WHERE n BETWEEN 1 AND %lld", upto);
        if (!sql || query_int(db, sql, &inside) < 0) {
            sqlite3_free(sql);
            printf("\n");
            rc = 1;
            goto out;
        }
        sqlite3_free(sql);
        outside = commits - inside;
        long long gaps = (upto - inside) + outside;
        printf(" gaps=%lld", gaps);
        if (gaps != 0) {
            fprintf(stderr,
                    "lc-dbcheck: %s: n is not exactly {1..%lld}: %lld missing, %lld "
                    "outside\n",
                    path, upto, upto - inside, outside);
            rc = 1;
        }
    }
    printf("\n");

out:
    sqlite3_free(uri);
    if (db && sqlite3_close(db) != SQLITE_OK) {
        fprintf(stderr, "lc-dbcheck: close %s: %s\n", path, sqlite3_errmsg(db));
        rc = 1;
    }
    if (fflush(stdout) != 0) rc = 1;
    return rc;
}
