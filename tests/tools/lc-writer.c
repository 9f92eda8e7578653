/* lc-writer: a SQLite writer process for tests, benchmarks and the demo.
 *
 * Commit k inserts --rows rows with n = k into t(id, n, ts, data); k continues from
 * max(n) + 1 so restarts extend one gap-free sequence. After COMMIT returns, "k wall_ns"
 * is appended to --log: the acknowledgement record that tests check replicas against.
 * Any SQLite error (SQLITE_BUSY included) is fatal unless --tolerate-busy. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long num(const char *s, const char *opt)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0) {
        fprintf(stderr, "lc-writer: bad value for %s: %s\n", opt, s);
        exit(2);
    }
    return v;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static sqlite3 *db;
static int tolerate_busy;

static int exec_sql(const char *sql, long k)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "lc-writer: commit %ld: %s: %s\n", k, sql, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return rc;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: lc-writer DB [--count N] [--duration S] [--rate R] [--rows R]\n"
            "       [--bytes B | --min-bytes B --max-bytes B] [--big-every N --big-bytes B]\n"
            "       [--delete-every N --keep K] [--vacuum-every N] [--log FILE] [--log-fsync]\n"
            "       [--busy-timeout MS] [--page-size P] [--autocheckpoint N] [--no-wal]\n"
            "       [--tolerate-busy] [--seed S]\n"
            "       lc-writer DB --checkpoint passive|full|restart|truncate\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long count = -1, duration = -1, rate = 0, rows = 1, minb = 100, maxb = 100;
    long big_every = 0, big_bytes = 8 << 20, del_every = 0, keep = 100, vac_every = 0;
    long busy = 5000, page_size = 0, autockpt = -1;
    int no_wal = 0, log_fsync = 0, logfd = -1;
    const char *ckpt = NULL, *path;

    if (argc < 2 || argv[1][0] == '-')
        usage();
    path = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(o, name) == 0 && v && ++i)
        if (OPT("--count")) count = num(v, o);
        else if (OPT("--duration")) duration = num(v, o);
        else if (OPT("--rate")) rate = num(v, o);
        else if (OPT("--rows")) rows = num(v, o);
        else if (OPT("--bytes")) minb = maxb = num(v, o);
        else if (OPT("--min-bytes")) minb = num(v, o);
        else if (OPT("--max-bytes")) maxb = num(v, o);
        else if (OPT("--big-every")) big_every = num(v, o);
        else if (OPT("--big-bytes")) big_bytes = num(v, o);
        else if (OPT("--delete-every")) del_every = num(v, o);
        else if (OPT("--keep")) keep = num(v, o);
        else if (OPT("--vacuum-every")) vac_every = num(v, o);
        else if (OPT("--busy-timeout")) busy = num(v, o);
        else if (OPT("--page-size")) page_size = num(v, o);
        else if (OPT("--autocheckpoint")) autockpt = num(v, o);
        else if (OPT("--seed")) rng = (uint64_t)num(v, o) * 2654435761u + 1;
        else if (OPT("--checkpoint")) ckpt = v;
        else if (OPT("--log")) {
            logfd = open(v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (logfd < 0) {
                fprintf(stderr, "lc-writer: open %s: %s\n", v, strerror(errno));
                return 2;
            }
        } else if (strcmp(o, "--log-fsync") == 0) log_fsync = 1;
        else if (strcmp(o, "--no-wal") == 0) no_wal = 1;
        else if (strcmp(o, "--tolerate-busy") == 0) tolerate_busy = 1;
        else usage();
#undef OPT
    }
    if (maxb < minb)
        maxb = minb;
    rng ^= (uint64_t)now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);

    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "lc-writer: open %s: %s\n", path, sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_busy_timeout(db, (int)busy);
    if (ckpt) {
        char sql[64];
        sqlite3_stmt *st;
        snprintf(sql, sizeof(sql), "PRAGMA wal_checkpoint(%s)", ckpt);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW) {
            fprintf(stderr, "lc-writer: %s: %s\n", sql, sqlite3_errmsg(db));
            return 1;
        }
        printf("%d|%d|%d\n", sqlite3_column_int(st, 0), sqlite3_column_int(st, 1),
               sqlite3_column_int(st, 2));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return 0;
    }
    char sql[256];
    if (page_size) {
        snprintf(sql, sizeof(sql), "PRAGMA page_size = %ld", page_size);
        exec_sql(sql, 0);
    }
    if (!no_wal && exec_sql("PRAGMA journal_mode = wal", 0) != SQLITE_OK)
        return 1;
    if (autockpt >= 0) {
        snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %ld", autockpt);
        exec_sql(sql, 0);
    }
    if (exec_sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
                 "ts INTEGER NOT NULL, data BLOB); CREATE INDEX IF NOT EXISTS t_n ON t(n)",
                 0) != SQLITE_OK)
        return 1;

    long k = 1;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(n), 0) FROM t", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        k = (long)sqlite3_column_int64(q, 0) + 1;
    sqlite3_finalize(q);

    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(db, "INSERT INTO t (n, ts, data) VALUES (?, ?, ?)", -1, &ins, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "lc-writer: prepare: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    size_t bufcap = (size_t)(maxb > big_bytes ? maxb : big_bytes) + 16;
    uint8_t *buf = malloc(bufcap);
    if (!buf)
        return 1;
    int64_t start = now_ns(CLOCK_MONOTONIC);
    long done = 0;
    int failed = 0;
    while (!stop && (count < 0 || done < count)) {
        if (duration >= 0 && now_ns(CLOCK_MONOTONIC) - start >= duration * 1000000000LL)
            break;
        if (rate > 0) {
            int64_t due = start + (int64_t)done * 1000000000LL / rate;
            int64_t wait = due - now_ns(CLOCK_MONOTONIC);
            if (wait > 0) {
                struct timespec ts = {wait / 1000000000, wait % 1000000000};
                nanosleep(&ts, NULL);
            }
        }
        int rc = exec_sql("BEGIN IMMEDIATE", k);
        for (long r = 0; rc == SQLITE_OK && r < rows; r++) {
            long sz = minb + (maxb > minb ? (long)(next_rand() % (uint64_t)(maxb - minb + 1)) : 0);
            if (big_every && k % big_every == 0 && r == 0)
                sz = big_bytes;
            for (long b = 0; b < sz; b += 8) {
                uint64_t x = next_rand();
                memcpy(buf + b, &x, (size_t)(sz - b < 8 ? sz - b : 8));
            }
            sqlite3_bind_int64(ins, 1, k);
            sqlite3_bind_int64(ins, 2, now_ns(CLOCK_REALTIME));
            sqlite3_bind_blob(ins, 3, buf, (int)sz, SQLITE_STATIC);
            rc = sqlite3_step(ins);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
            if (rc != SQLITE_OK)
                fprintf(stderr, "lc-writer: commit %ld: insert: %s\n", k, sqlite3_errmsg(db));
            sqlite3_reset(ins);
        }
        if (rc == SQLITE_OK && del_every && k % del_every == 0) {
            snprintf(sql, sizeof(sql), "DELETE FROM t WHERE n < %ld", k - keep);
            rc = exec_sql(sql, k);
        }
        if (rc == SQLITE_OK)
            rc = exec_sql("COMMIT", k);
        if (rc != SQLITE_OK) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            if ((rc & 0xff) == SQLITE_BUSY && tolerate_busy)
                continue;
            failed = 1;
            break;
        }
        if (logfd >= 0) {
            char line[64];
            int n = snprintf(line, sizeof(line), "%ld %lld\n", k,
                             (long long)now_ns(CLOCK_REALTIME));
            if (write(logfd, line, (size_t)n) != n)
                fprintf(stderr, "lc-writer: log write failed\n");
            if (log_fsync)
                fsync(logfd);
        }
        if (vac_every && k % vac_every == 0 && exec_sql("VACUUM", k) != SQLITE_OK) {
            failed = 1;
            break;
        }
        done++;
        k++;
    }
    sqlite3_finalize(ins);
    free(buf);
    fprintf(stderr, "lc-writer: %ld commits, last %ld\n", done, k - 1);
    if (sqlite3_close(db) != SQLITE_OK)
        fprintf(stderr, "lc-writer: close: %s\n", sqlite3_errmsg(db));
    return failed ? 1 : 0;
}
