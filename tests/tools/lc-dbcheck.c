/* lc-dbcheck: integrity and logical content of a database, as one comparable line.
 *   integrity=ok commits=C max=M rows=R hash=H [gaps=G]
 * H is FNV-1a-64 over every row of every user table (not sqlite_*, _litecast*,
 * _litestream*), in table-name and rowid order, over each value's type and bytes, so
 * a restored copy and its source print the same line. */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint64_t h = 1469598103934665603ULL;

static void mix(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
}

static long long one(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int main(int argc, char **argv)
{
    sqlite3 *db;
    sqlite3_stmt *st, *rows;
    char uri[4200], integrity[64] = "", sql[512];
    int upto = argc > 2 && strcmp(argv[2], "--upto") == 0;

    if (argc < 2) {
        fprintf(stderr, "usage: lc-dbcheck DB [--upto]\n");
        return 2;
    }
    snprintf(uri, sizeof(uri), "file:%s?mode=ro", argv[1]);
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        fprintf(stderr, "lc-dbcheck: open %s: %s\n", argv[1], sqlite3_errmsg(db));
        return 1;
    }
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        fprintf(stderr, "lc-dbcheck: %s: %s\n", argv[1], sqlite3_errmsg(db));
        return 1;
    }
    snprintf(integrity, sizeof(integrity), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);

    sqlite3_prepare_v2(db,
                       "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                       "'sqlite_%' AND name NOT LIKE '\\_litecast%' ESCAPE '\\' AND name NOT "
                       "LIKE '\\_litestream%' ESCAPE '\\' ORDER BY name",
                       -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        mix(t, strlen(t) + 1);
        snprintf(sql, sizeof(sql), "SELECT * FROM \"%s\" ORDER BY rowid", t);
        if (sqlite3_prepare_v2(db, sql, -1, &rows, NULL) != SQLITE_OK)
            continue;
        while (sqlite3_step(rows) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(rows); c++) {
                unsigned char type = (unsigned char)sqlite3_column_type(rows, c);
                mix(&type, 1);
                const void *b = sqlite3_column_blob(rows, c);
                mix(b ? b : "", (size_t)sqlite3_column_bytes(rows, c));
            }
        }
        sqlite3_finalize(rows);
    }
    sqlite3_finalize(st);
    long long commits = one(db, "SELECT COUNT(DISTINCT n) FROM t");
    long long max = one(db, "SELECT COALESCE(MAX(n), 0) FROM t");
    long long nrows = one(db, "SELECT COUNT(*) FROM t");
    printf("integrity=%s commits=%lld max=%lld rows=%lld hash=%016llx", integrity,
           commits < 0 ? 0 : commits, max < 0 ? 0 : max, nrows < 0 ? 0 : nrows,
           (unsigned long long)h);
    if (upto)
        printf(" gaps=%lld", (max < 0 ? 0 : max) - (commits < 0 ? 0 : commits));
    printf("\n");
    sqlite3_close(db);
    return strcmp(integrity, "ok") == 0 ? 0 : 1;
}
