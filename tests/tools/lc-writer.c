/* lc-writer: a SQLite writer process for integration tests, benchmarks and the demo.
 *
 * It writes one table, t(id INTEGER PRIMARY KEY, n INTEGER NOT NULL, ts INTEGER NOT NULL,
 * data BLOB), indexed on n. Commit k inserts --rows rows with n = k, ts = wall-clock ns and
 * random data. k starts at max(n) + 1, so a restarted writer extends one gap-free
 * sequence and a replica can be checked against it (lc-dbcheck --upto).
 *
 * After COMMIT returns, "k wall_ns\n" is appended to --log with one write(2): the
 * acknowledgement record. Every line in it is a commit SQLite reported durable to the
 * application; a replica that lost one lost an acknowledged write.
 *
 * Any SQLite error, SQLITE_BUSY included, ends the run with "lc-writer: commit K: <errmsg>"
 * and exit status 1, unless --tolerate-busy (then a busy commit is retried as the same k).
 * SIGTERM/SIGINT finish the current transaction and exit 0. The last line on stderr is always
 * "lc-writer: N commits, last K". Exit status 2 means bad usage.
 *
 * --checkpoint MODE runs one PRAGMA wal_checkpoint(MODE), prints "busy|log|checkpointed"
 * on stdout and exits without writing. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_BLOB (512L << 20) /* below SQLITE_MAX_LENGTH (1e9), and a sane test bound */

struct opts {
    const char *path;       /* the database, created if missing */
    long long count;        /* commits to make; -1: no limit */
    double duration;        /* seconds to run; < 0: no limit */
    double rate;            /* commits per second; 0: as fast as possible */
    long rows;              /* rows inserted per commit */
    long min_bytes;         /* random blob size lower bound */
    long max_bytes;         /* random blob size upper bound */
    long big_every;         /* every N-th commit writes big_bytes; 0: never */
    long big_bytes;         /* size of a big commit's blob */
    long delete_every;      /* every N-th commit deletes n < k - keep; 0: never */
    long keep;              /* commits kept by a delete */
    long vacuum_every;      /* VACUUM after every N-th commit; 0: never */
    long busy_timeout;      /* ms, sqlite3_busy_timeout */
    long page_size;         /* PRAGMA page_size before WAL; 0: SQLite's default */
    long autocheckpoint;    /* PRAGMA wal_autocheckpoint; -1: SQLite's default */
    int no_wal;             /* leave the journal mode alone */
    int log_fsync;          /* fsync the log after every line */
    int tolerate_busy;      /* retry busy commits instead of failing */
    const char *log_path;   /* acknowledgement log, or NULL */
    const char *checkpoint; /* checkpoint mode for --checkpoint, or NULL */
    uint64_t seed;          /* PRNG seed; 0: from time and pid */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0) {
        perror("lc-writer: clock_gettime");
        exit(1);
    }
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* xorshift64*: fast, and good enough that LZ4 cannot compress the blobs */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static void rng_fill(unsigned char *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint64_t x = rng_next();
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(buf + i, &x, n);
        i += n;
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: lc-writer DB [--count N] [--duration SEC] [--rate R] [--rows R]\n"
            "         [--bytes B | --min-bytes B --max-bytes B] [--big-every N] [--big-bytes B]\n"
            "         [--delete-every N] [--keep K] [--vacuum-every N] [--log FILE]\n"
            "         [--log-fsync] [--busy-timeout MS] [--page-size P] [--autocheckpoint N]\n"
            "         [--no-wal] [--tolerate-busy] [--seed S]\n"
            "       lc-writer DB --checkpoint passive|full|restart|truncate\n");
    exit(2);
}

static long long parse_int(const char *s, const char *opt, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
        fprintf(stderr, "lc-writer: bad value for --%s: '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

static double parse_num(const char *s, const char *opt)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > 1e9) {
        fprintf(stderr, "lc-writer: bad value for --%s: '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"rate", required_argument, NULL, 'r'},
        {"rows", required_argument, NULL, 'R'},
        {"bytes", required_argument, NULL, 'b'},
        {"min-bytes", required_argument, NULL, 'm'},
        {"max-bytes", required_argument, NULL, 'M'},
        {"big-every", required_argument, NULL, 'g'},
        {"big-bytes", required_argument, NULL, 'G'},
        {"delete-every", required_argument, NULL, 'x'},
        {"keep", required_argument, NULL, 'k'},
        {"vacuum-every", required_argument, NULL, 'v'},
        {"busy-timeout", required_argument, NULL, 't'},
        {"page-size", required_argument, NULL, 'p'},
        {"autocheckpoint", required_argument, NULL, 'a'},
        {"log", required_argument, NULL, 'l'},
        {"log-fsync", no_argument, NULL, 'F'},
        {"no-wal", no_argument, NULL, 'W'},
        {"tolerate-busy", no_argument, NULL, 'B'},
        {"seed", required_argument, NULL, 's'},
        {"checkpoint", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, idx;

    *o = (struct opts){.count = -1,
                       .duration = -1,
                       .rows = 1,
                       .min_bytes = 100,
                       .max_bytes = 100,
                       .big_bytes = 8L << 20,
                       .keep = 100,
                       .busy_timeout = 5000,
                       .autocheckpoint = -1};
    opterr = 1;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        const char *name = c == '?' ? "" : longopts[idx].name;
        switch (c) {
        case 'c':
            o->count = parse_int(optarg, name, INT64_MAX / 2);
            break;
        case 'd':
            o->duration = parse_num(optarg, name);
            break;
        case 'r':
            o->rate = parse_num(optarg, name);
            break;
        case 'R':
            o->rows = (long)parse_int(optarg, name, 1000000);
            break;
        case 'b':
            o->min_bytes = o->max_bytes = (long)parse_int(optarg, name, MAX_BLOB);
            break;
        case 'm':
            o->min_bytes = (long)parse_int(optarg, name, MAX_BLOB);
            break;
        case 'M':
            o->max_bytes = (long)parse_int(optarg, name, MAX_BLOB);
            break;
        case 'g':
            o->big_every = (long)parse_int(optarg, name, INT32_MAX);
            break;
        case 'G':
            o->big_bytes = (long)parse_int(optarg, name, MAX_BLOB);
            break;
        case 'x':
            o->delete_every = (long)parse_int(optarg, name, INT32_MAX);
            break;
        case 'k':
            o->keep = (long)parse_int(optarg, name, INT32_MAX);
            break;
        case 'v':
            o->vacuum_every = (long)parse_int(optarg, name, INT32_MAX);
            break;
        case 't':
            o->busy_timeout = (long)parse_int(optarg, name, INT32_MAX);
            break;
        case 'p':
            o->page_size = (long)parse_int(optarg, name, 65536);
            break;
        case 'a':
            o->autocheckpoint = (long)parse_int(optarg, name, INT32_MAX);
            break;
        case 'l':
            o->log_path = optarg;
            break;
        case 'F':
            o->log_fsync = 1;
            break;
        case 'W':
            o->no_wal = 1;
            break;
        case 'B':
            o->tolerate_busy = 1;
            break;
        case 's':
            o->seed = (uint64_t)parse_int(optarg, name, INT64_MAX);
            break;
        case 'C':
            o->checkpoint = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1) usage();
    o->path = argv[optind];
    if (o->max_bytes < o->min_bytes) {
        fprintf(stderr, "lc-writer: --max-bytes %ld is below --min-bytes %ld\n", o->max_bytes,
                o->min_bytes);
        exit(2);
    }
}

/* Run SQL that returns no rows; on failure print "<what>: <errmsg>". */
static int exec_sql(sqlite3 *db, const char *sql, const char *what)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) fprintf(stderr, "lc-writer: %s: %s\n", what, sqlite3_errmsg(db));
    return rc;
}

/* Run a one-row PRAGMA and copy the first column of its row into out. */
static int pragma_row(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *v = sqlite3_column_text(st, 0);
            snprintf(out, outlen, "%s", v ? (const char *)v : "");
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            out[0] = '\0';
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK) fprintf(stderr, "lc-writer: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

static int run_checkpoint(sqlite3 *db, const char *mode)
{
    static const char *const modes[] = {"passive", "full", "restart", "truncate"};
    char sql[64];
    sqlite3_stmt *st = NULL;
    size_t i;

    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcasecmp(mode, modes[i]) == 0) break;
    if (i == sizeof(modes) / sizeof(modes[0])) {
        fprintf(stderr, "lc-writer: bad checkpoint mode '%s'\n", mode);
        return 2;
    }
    snprintf(sql, sizeof(sql), "PRAGMA wal_checkpoint(%s)", modes[i]);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        fprintf(stderr, "lc-writer: %s: %s\n", sql, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return 1;
    }
    printf("%d|%d|%d\n", sqlite3_column_int(st, 0), sqlite3_column_int(st, 1),
           sqlite3_column_int(st, 2));
    sqlite3_finalize(st);
    if (fflush(stdout) != 0) {
        perror("lc-writer: stdout");
        return 1;
    }
    return 0;
}

/* Journal mode, page size, autocheckpoint and schema; returns the next k, or -1. */
static long long setup(sqlite3 *db, const struct opts *o)
{
    char sql[128], val[64];
    sqlite3_stmt *st = NULL;
    long long k = -1;

    if (o->page_size > 0) {
        snprintf(sql, sizeof(sql), "PRAGMA page_size = %ld", o->page_size);
        if (exec_sql(db, sql, o->path) != SQLITE_OK) return -1;
    }
    if (!o->no_wal) {
        if (pragma_row(db, "PRAGMA journal_mode = wal", val, sizeof(val)) != SQLITE_OK) return -1;
        if (strcmp(val, "wal") != 0) {
            fprintf(stderr, "lc-writer: %s: journal_mode is '%s', not wal\n", o->path, val);
            return -1;
        }
    }
    if (o->autocheckpoint >= 0) {
        snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %ld", o->autocheckpoint);
        if (pragma_row(db, sql, val, sizeof(val)) != SQLITE_OK) return -1;
    }
    if (exec_sql(db,
                 "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
                 "ts INTEGER NOT NULL, data BLOB);"
                 "CREATE INDEX IF NOT EXISTS t_n ON t(n)",
                 o->path) != SQLITE_OK)
        return -1;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(n), 0) FROM t", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        k = sqlite3_column_int64(st, 0) + 1;
    else
        fprintf(stderr, "lc-writer: %s: max(n): %s\n", o->path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return k;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

struct writer {
    const struct opts *o; /* borrowed */
    sqlite3 *db;          /* the connection */
    sqlite3_stmt *ins;    /* INSERT INTO t */
    sqlite3_stmt *del;    /* DELETE FROM t WHERE n < ? */
    unsigned char *buf;   /* blob scratch, big enough for any row */
};

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int rc2 = sqlite3_reset(st);
    if (rc == SQLITE_DONE) return rc2;
    return rc;
}

/* One numbered transaction. On failure the transaction is rolled back, SQLite's message is
 * copied into msg and its result code returned. */
static int commit_one(struct writer *w, long long k, char *msg, size_t msglen)
{
    const struct opts *o = w->o;
    int big = o->big_every > 0 && k % o->big_every == 0;
    int rc = sqlite3_exec(w->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

    for (long r = 0; rc == SQLITE_OK && r < o->rows; r++) {
        long size = o->min_bytes;
        if (o->max_bytes > o->min_bytes)
            size += (long)(rng_next() % (uint64_t)(o->max_bytes - o->min_bytes + 1));
        if (big && r == 0) size = o->big_bytes;
        rng_fill(w->buf, (size_t)size);
        if ((rc = sqlite3_bind_int64(w->ins, 1, k)) == SQLITE_OK &&
            (rc = sqlite3_bind_int64(w->ins, 2, now_ns(CLOCK_REALTIME))) == SQLITE_OK &&
            (rc = sqlite3_bind_blob(w->ins, 3, w->buf, (int)size, SQLITE_STATIC)) == SQLITE_OK)
            rc = step_done(w->ins);
    }
    if (rc == SQLITE_OK && o->delete_every > 0 && k % o->delete_every == 0 &&
        (rc = sqlite3_bind_int64(w->del, 1, k - o->keep)) == SQLITE_OK)
        rc = step_done(w->del);
    if (rc == SQLITE_OK) rc = sqlite3_exec(w->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(msg, msglen, "%s", sqlite3_errmsg(w->db));
        if (!sqlite3_get_autocommit(w->db))
            (void)sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL); /* best effort */
    }
    return rc;
}

/* Sleep until the monotonic instant due, or until a signal asks us to stop. */
static void sleep_until(int64_t due)
{
    struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
    while (!stop) {
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc == 0) return;
        if (rc != EINTR) {
            fprintf(stderr, "lc-writer: clock_nanosleep: %s\n", strerror(rc));
            exit(1);
        }
    }
}

static int is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY;
}

static int run(struct writer *w, long long k, int logfd)
{
    const struct opts *o = w->o;
    int64_t start = now_ns(CLOCK_MONOTONIC), due = start;
    int64_t period = o->rate > 0 ? (int64_t)(1e9 / o->rate) : 0;
    int64_t deadline = o->duration >= 0 ? start + (int64_t)(o->duration * 1e9) : INT64_MAX;
    long long done = 0, busy = 0, last = k - 1;
    char msg[512], what[64];
    int rc = 0;

    while (!stop && (o->count < 0 || done < o->count)) {
        if (period > 0) {
            sleep_until(due < deadline ? due : deadline);
            if (stop) break;
        }
        if (now_ns(CLOCK_MONOTONIC) >= deadline) break;
        int src = commit_one(w, k, msg, sizeof(msg));
        if (src != SQLITE_OK && is_busy(src) && o->tolerate_busy) {
            busy++;
            sleep_until(now_ns(CLOCK_MONOTONIC) + 1000000);
            continue;
        }
        if (src != SQLITE_OK) {
            fprintf(stderr, "lc-writer: commit %lld: %s\n", k, msg);
            rc = 1;
            break;
        }
        done++;
        last = k++;
        if (logfd >= 0) {
            char line[64];
            int n = snprintf(line, sizeof(line), "%lld %lld\n", last,
                             (long long)now_ns(CLOCK_REALTIME));
            if (n < 0 || write_all(logfd, line, (size_t)n) < 0 ||
                (o->log_fsync && fsync(logfd) != 0)) {
                fprintf(stderr, "lc-writer: commit %lld: log %s: %s\n", last, o->log_path,
                        strerror(errno));
                rc = 1;
                break;
            }
        }
        if (o->vacuum_every > 0 && last % o->vacuum_every == 0) {
            snprintf(what, sizeof(what), "vacuum after commit %lld", last);
            int vrc = exec_sql(w->db, "VACUUM", what);
            if (vrc != SQLITE_OK && !(is_busy(vrc) && o->tolerate_busy)) {
                rc = 1;
                break;
            }
        }
        if (period > 0) {
            /* steady pace: after a stall, resume the rate rather than catch up in a burst */
            int64_t now = now_ns(CLOCK_MONOTONIC);
            due += period;
            if (due < now) due = now;
        }
    }
    if (busy > 0) fprintf(stderr, "lc-writer: %lld busy commits retried\n", busy);
    fprintf(stderr, "lc-writer: %lld commits, last %lld\n", done, last);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct writer w = {0};
    struct sigaction sa;
    int logfd = -1, rc = 1;
    long long k;

    parse_args(argc, argv, &o);
    w.o = &o;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: a signal cuts the pacing sleep short */
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGINT, &sa, NULL) != 0) {
        perror("lc-writer: sigaction");
        return 1;
    }
    rng_state = o.seed ? o.seed * 0x9E3779B97F4A7C15ULL
                       : (uint64_t)now_ns(CLOCK_REALTIME) ^ ((uint64_t)getpid() << 32);
    if (rng_state == 0) rng_state = 1;

    if (sqlite3_open_v2(o.path, &w.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "lc-writer: open %s: %s\n", o.path,
                w.db ? sqlite3_errmsg(w.db) : "out of memory");
        goto out;
    }
    if (sqlite3_busy_timeout(w.db, (int)o.busy_timeout) != SQLITE_OK) {
        fprintf(stderr, "lc-writer: busy_timeout: %s\n", sqlite3_errmsg(w.db));
        goto out;
    }
    if (o.checkpoint) {
        rc = run_checkpoint(w.db, o.checkpoint);
        goto out;
    }
    if ((k = setup(w.db, &o)) < 0) goto out;
    if (sqlite3_prepare_v2(w.db, "INSERT INTO t (n, ts, data) VALUES (?, ?, ?)", -1, &w.ins,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(w.db, "DELETE FROM t WHERE n < ?", -1, &w.del, NULL) != SQLITE_OK) {
        fprintf(stderr, "lc-writer: prepare: %s\n", sqlite3_errmsg(w.db));
        goto out;
    }
    long maxrow = o.big_every > 0 && o.big_bytes > o.max_bytes ? o.big_bytes : o.max_bytes;
    if ((w.buf = malloc((size_t)maxrow + 1)) == NULL) {
        fprintf(stderr, "lc-writer: out of memory for a %ld-byte row\n", maxrow);
        goto out;
    }
    if (o.log_path) {
        logfd = open(o.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (logfd < 0) {
            fprintf(stderr, "lc-writer: open %s: %s\n", o.log_path, strerror(errno));
            goto out;
        }
    }
    rc = run(&w, k, logfd);

out:
    if (logfd >= 0 && close(logfd) != 0) {
        fprintf(stderr, "lc-writer: close %s: %s\n", o.log_path, strerror(errno));
        rc = 1;
    }
    sqlite3_finalize(w.ins);
    sqlite3_finalize(w.del);
    free(w.buf);
    if (w.db && sqlite3_close(w.db) != SQLITE_OK) {
        fprintf(stderr, "lc-writer: close %s: %s\n", o.path, sqlite3_errmsg(w.db));
        rc = 1;
    }
    return rc;
}
