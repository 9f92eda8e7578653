/* lc-walapply: replay a chain of shadow WAL files onto a copy of a base database,
 * index by index, with SQLite's own checkpoint, to check that the chain reproduces the
 * source. lc-walapply BASE_DB SHADOW_WAL_DIR OUT_DB [--upto-index I] */
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int rc = 0;
    if (!a || !b)
        rc = -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), a)) > 0)
        if (fwrite(buf, 1, n, b) != n)
            rc = -1;
    if (a)
        fclose(a);
    if (b && fclose(b) != 0)
        rc = -1;
    return rc;
}

static int cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

int main(int argc, char **argv)
{
    char *names[100000], wal[4200], path[4200];
    size_t n = 0;
    long upto = -1;

    if (argc < 4) {
        fprintf(stderr, "usage: lc-walapply BASE_DB SHADOW_WAL_DIR OUT_DB [--upto-index I]\n");
        return 2;
    }
    if (argc > 5 && strcmp(argv[4], "--upto-index") == 0)
        upto = strtol(argv[5], NULL, 16);
    DIR *d = opendir(argv[2]);
    struct dirent *de;
    if (!d) {
        perror(argv[2]);
        return 1;
    }
    while ((de = readdir(d)) != NULL && n < 100000)
        if (strlen(de->d_name) == 12 && strcmp(de->d_name + 8, ".wal") == 0)
            names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp);
    if (copy(argv[1], argv[3]) < 0) {
        fprintf(stderr, "lc-walapply: copy %s: failed\n", argv[1]);
        return 1;
    }
    snprintf(wal, sizeof(wal), "%s-wal", argv[3]);
    for (size_t i = 0; i < n; i++) {
        long idx = strtol(names[i], NULL, 16);
        if (upto >= 0 && idx > upto)
            break;
        snprintf(path, sizeof(path), "%s/%s", argv[2], names[i]);
        if (copy(path, wal) < 0) {
            fprintf(stderr, "lc-walapply: copy %s: failed\n", path);
            return 1;
        }
        sqlite3 *db;
        sqlite3_stmt *st;
        if (sqlite3_open(argv[3], &db) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL) !=
                SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 0) {
            fprintf(stderr, "lc-walapply: %s: checkpoint failed: %s\n", names[i],
                    sqlite3_errmsg(db));
            return 1;
        }
        printf("applied %s frames=%d\n", names[i], sqlite3_column_int(st, 1));
        sqlite3_finalize(st);
        sqlite3_close(db);
        free(names[i]);
    }
    return 0;
}
