/* lc-benchwriter: the SQLite writer that scripts/bench measures replicators against.
 *
 * Each commit k inserts --rows rows into t(id INTEGER PRIMARY KEY, k INTEGER, data BLOB);
 * every row's blob starts with the ASCII marker "LCMARK:<k>;" and is filled up to --bytes
 * with random (incompressible) bytes. lc-observer finds the markers in replica objects, so
 * the lag of commit k is the observer's first sighting of its marker minus the wall time
 * this program logged right after COMMIT returned. k continues from the last row's k, so
 * several runs on one database extend one sequence.
 *
 * Modes: --rate R --duration S paces R commits a second (on an absolute schedule, so a
 * slow commit does not shift the later ones); --burst N commits N times back to back;
 * without --rate, --duration S writes as fast as it can for S seconds. --log FILE gets
 * "k commit_wall_ns commit_duration_ns" per commit, buffered in memory and written at the
 * end so the log costs nothing while measuring. The duration of a commit runs from the
 * first BEGIN IMMEDIATE attempt to COMMIT returning, busy retries included.
 *
 * At the end one line goes to stdout: commits, commits/s, the longest commit, the WAL bytes
 * written (frames appended by this connection, counted with a WAL hook that also runs
 * SQLite's usual PASSIVE autocheckpoint), the largest -wal file size seen (sampled after
 * commits, at most every 100 ms), and the time those autocheckpoints took inside our
 * commits (in all, and the longest). Uses only libsqlite3 and libc. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROWS 100000
#define MAX_BYTES (64L << 20)
#define MAX_LOG_RECORDS (64L << 20) /* 1.5 GiB of log records: far beyond any bench run */

/* One acknowledged commit, kept in memory until the end. */
struct rec {
    int64_t k;        /* commit sequence number, the marker's value */
    int64_t wall_ns;  /* CLOCK_REALTIME right after COMMIT returned */
    int64_t dur_ns;   /* BEGIN (first attempt) to COMMIT returned, monotonic */
};

/* Options and running totals. */
struct bw {
    const char *path;    /* database file */
    const char *logpath; /* --log FILE or NULL */
    double rate;         /* commits per second, 0: unpaced */
    double duration;     /* seconds, < 0: unbounded */
    long burst;          /* commit count limit, < 0: unbounded */
    long rows;           /* rows per commit */
    long bytes;          /* blob bytes per row, marker included */
    long autockpt;       /* PASSIVE checkpoint at this many WAL frames, 0: never */
    const char *sync;    /* PRAGMA synchronous value */
    sqlite3 *db;         /* the one connection */
    int page_size;       /* the database's page size, for frame bytes */
    int wal_fd;          /* read-only fd on DB-wal for header salts and size, or -1 */
    int prev_frames;     /* WAL frame count after the previous commit */
    uint8_t salt[8];     /* WAL header salts at the previous commit */
    int64_t wal_frames;  /* frames appended by this connection */
    int64_t max_wal;     /* largest -wal file size seen */
    int64_t last_sample; /* monotonic ns of the last -wal size sample */
    uint64_t rng;        /* xorshift64 state */
    struct rec *recs;    /* log records, when --log */
    size_t nrec, caprec;
    long busy_retries;   /* transactions retried after SQLITE_BUSY */
    int64_t ckpt_ns;     /* time in our own autocheckpoints */
    int64_t max_ckpt_ns; /* the longest of them */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;
    if (clock_gettime(c, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t next_rand(struct bw *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

/* Parse a non-negative integer option value; 0 on success. */
static int parse_long(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e9)
        return -1;
    *out = v;
    return 0;
}

static int exec_sql(struct bw *w, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(w->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
        fprintf(stderr, "lc-benchwriter: %s: %s\n", sql, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

/* Read the -wal header salts; 0 on success, -1 when the file is missing or short. */
static int read_salts(struct bw *w, uint8_t salt[8])
{
    uint8_t hdr[32];
    if (w->wal_fd < 0)
        return -1;
    ssize_t n;
    do
        n = pread(w->wal_fd, hdr, sizeof(hdr), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(hdr))
        return -1;
    memcpy(salt, hdr + 16, 8);
    return 0;
}

/* WAL hook: count the frames this connection appended, then do what SQLite's default
 * hook (wal_autocheckpoint) would have done, since installing a hook replaces it. A
 * changed salt means the WAL restarted since our last commit, so every frame counts. */
static int on_wal(void *arg, sqlite3 *db, const char *name, int nframes)
{
    struct bw *w = arg;
    uint8_t salt[8];
    int restarted = nframes < w->prev_frames;
    if (read_salts(w, salt) == 0) {
        if (memcmp(salt, w->salt, 8) != 0)
            restarted = 1;
        memcpy(w->salt, salt, 8);
    }
    w->wal_frames += restarted ? nframes : nframes - w->prev_frames;
    w->prev_frames = nframes;
    if (w->autockpt > 0 && nframes >= w->autockpt) {
        int64_t t0 = now_ns(CLOCK_MONOTONIC);
        int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        int64_t d = now_ns(CLOCK_MONOTONIC) - t0;
        w->ckpt_ns += d;
        if (d > w->max_ckpt_ns)
            w->max_ckpt_ns = d;
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
            fprintf(stderr, "lc-benchwriter: checkpoint: %s\n", sqlite3_errstr(rc));
    }
    return SQLITE_OK;
}

static void sample_wal_size(struct bw *w, int64_t now)
{
    struct stat st;
    if (w->wal_fd < 0 || now - w->last_sample < 100000000)
        return;
    w->last_sample = now;
    if (fstat(w->wal_fd, &st) == 0 && st.st_size > w->max_wal)
        w->max_wal = st.st_size;
}

static int add_rec(struct bw *w, int64_t k, int64_t wall, int64_t dur)
{
    if (!w->logpath)
        return 0;
    if (w->nrec == w->caprec) {
        size_t cap = w->caprec ? w->caprec * 2 : 4096;
        if (cap > (size_t)MAX_LOG_RECORDS)
            return -1;
        struct rec *r = realloc(w->recs, cap * sizeof(*r));
        if (!r)
            return -1;
        w->recs = r;
        w->caprec = cap;
    }
    w->recs[w->nrec++] = (struct rec){k, wall, dur};
    return 0;
}

static int write_log(struct bw *w)
{
    FILE *f = fopen(w->logpath, "w");
    if (!f) {
        fprintf(stderr, "lc-benchwriter: open %s: %s\n", w->logpath, strerror(errno));
        return -1;
    }
    int bad = 0;
    for (size_t i = 0; i < w->nrec && !bad; i++)
        bad = fprintf(f, "%lld %lld %lld\n", (long long)w->recs[i].k,
                      (long long)w->recs[i].wall_ns, (long long)w->recs[i].dur_ns) < 0;
    if (fclose(f) != 0)
        bad = 1;
    if (bad)
        fprintf(stderr, "lc-benchwriter: write %s failed\n", w->logpath);
    return bad ? -1 : 0;
}

/* Open DB-wal read-only (for salts and size) if it exists; a missing -wal is not an error. */
static void open_wal(struct bw *w)
{
    size_t plen = strlen(w->path);
    char *walpath = malloc(plen + 5);
    if (!walpath)
        return;
    memcpy(walpath, w->path, plen);
    memcpy(walpath + plen, "-wal", 5);
    w->wal_fd = open(walpath, O_RDONLY | O_CLOEXEC);
    free(walpath);
}

/* Open the database in WAL mode, create t, and find the next k. */
static int setup(struct bw *w, int64_t *next_k)
{
    char sql[64];
    if (sqlite3_open(w->path, &w->db) != SQLITE_OK) {
        fprintf(stderr, "lc-benchwriter: open %s: %s\n", w->path, sqlite3_errmsg(w->db));
        return -1;
    }
    if (sqlite3_busy_timeout(w->db, 5000) != SQLITE_OK)
        return -1;
    if (exec_sql(w, "PRAGMA journal_mode = wal") != SQLITE_OK)
        return -1;
    snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s", w->sync);
    if (exec_sql(w, sql) != SQLITE_OK)
        return -1;
    if (exec_sql(w, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k INTEGER, "
                    "data BLOB)") != SQLITE_OK)
        return -1;

    sqlite3_stmt *q;
    *next_k = 1;
    if (sqlite3_prepare_v2(w->db, "SELECT k FROM t ORDER BY id DESC LIMIT 1", -1, &q, NULL) !=
        SQLITE_OK)
        return -1;
    if (sqlite3_step(q) == SQLITE_ROW)
        *next_k = sqlite3_column_int64(q, 0) + 1;
    if (sqlite3_finalize(q) != SQLITE_OK)
        return -1;
    if (sqlite3_prepare_v2(w->db, "PRAGMA page_size", -1, &q, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(q) == SQLITE_ROW)
        w->page_size = sqlite3_column_int(q, 0);
    if (sqlite3_finalize(q) != SQLITE_OK)
        return -1;

    open_wal(w);
    if (read_salts(w, w->salt) != 0)
        memset(w->salt, 0, sizeof(w->salt));
    sqlite3_wal_hook(w->db, on_wal, w);
    return 0;
}

/* Fill one row's blob: the marker, then random bytes. Returns the blob length. */
static size_t fill_blob(struct bw *w, uint8_t *buf, int64_t k)
{
    int m = snprintf((char *)buf, 32, "LCMARK:%lld;", (long long)k);
    size_t len = (size_t)w->bytes > (size_t)m ? (size_t)w->bytes : (size_t)m;
    for (size_t b = (size_t)m; b < len; b += 8) {
        uint64_t x = next_rand(w);
        memcpy(buf + b, &x, len - b < 8 ? len - b : 8);
    }
    return len;
}

/* One transaction; retried (from BEGIN) while SQLite reports busy. 0 or an SQLite code. */
static int commit_one(struct bw *w, sqlite3_stmt *ins, uint8_t *buf, int64_t k)
{
    for (;;) {
        int rc = exec_sql(w, "BEGIN IMMEDIATE");
        for (long r = 0; rc == SQLITE_OK && r < w->rows; r++) {
            size_t len = fill_blob(w, buf, k);
            if (sqlite3_bind_int64(ins, 1, k) != SQLITE_OK ||
                sqlite3_bind_blob(ins, 2, buf, (int)len, SQLITE_STATIC) != SQLITE_OK)
                rc = SQLITE_ERROR;
            else
                rc = sqlite3_step(ins);
            if (rc == SQLITE_DONE)
                rc = SQLITE_OK;
            else if ((rc & 0xff) != SQLITE_BUSY)
                fprintf(stderr, "lc-benchwriter: commit %lld: insert: %s\n", (long long)k,
                        sqlite3_errmsg(w->db));
            sqlite3_reset(ins);
        }
        if (rc == SQLITE_OK)
            rc = exec_sql(w, "COMMIT");
        if (rc == SQLITE_OK)
            return 0;
        if (!sqlite3_get_autocommit(w->db))
            sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY || stop)
            return rc;
        w->busy_retries++;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: lc-benchwriter DB [--rate R] [--duration S] [--burst N]\n"
                    "       [--rows R] [--bytes B] [--log FILE] [--autocheckpoint N]\n"
                    "       [--synchronous off|normal|full] [--seed S]\n");
}

int main(int argc, char **argv)
{
    struct bw w = {.rate = 0, .duration = -1, .burst = -1, .rows = 1, .bytes = 100,
                   .autockpt = 1000, .sync = "normal", .page_size = 4096, .wal_fd = -1,
                   .rng = 88172645463325252ULL};
    long seed = -1;

    if (argc < 2 || argv[1][0] == '-') {
        usage();
        return 2;
    }
    w.path = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = v == NULL;
        if (!bad && strcmp(o, "--rate") == 0)
            bad = parse_double(v, &w.rate);
        else if (!bad && strcmp(o, "--duration") == 0)
            bad = parse_double(v, &w.duration);
        else if (!bad && strcmp(o, "--burst") == 0)
            bad = parse_long(v, 1000000000L, &w.burst);
        else if (!bad && strcmp(o, "--rows") == 0)
            bad = parse_long(v, MAX_ROWS, &w.rows);
        else if (!bad && strcmp(o, "--bytes") == 0)
            bad = parse_long(v, MAX_BYTES, &w.bytes);
        else if (!bad && strcmp(o, "--autocheckpoint") == 0)
            bad = parse_long(v, 1000000000L, &w.autockpt);
        else if (!bad && strcmp(o, "--seed") == 0)
            bad = parse_long(v, 1000000000L, &seed);
        else if (!bad && strcmp(o, "--log") == 0)
            w.logpath = v;
        else if (!bad && strcmp(o, "--synchronous") == 0) {
            bad = strcmp(v, "off") && strcmp(v, "normal") && strcmp(v, "full");
            w.sync = v;
        }
        else
            bad = 1;
        if (bad) {
            fprintf(stderr, "lc-benchwriter: bad option %s%s%s\n", o, v ? " " : "", v ? v : "");
            usage();
            return 2;
        }
        i++;
    }
    w.rng ^= seed >= 0 ? (uint64_t)seed * 2654435761u : (uint64_t)now_ns(CLOCK_REALTIME) ^
                                                             ((uint64_t)getpid() << 32);
    if (w.rng == 0)
        w.rng = 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGINT, &sa, NULL) != 0) {
        perror("lc-benchwriter: sigaction");
        return 1;
    }

    int64_t k;
    if (setup(&w, &k) != 0) {
        fprintf(stderr, "lc-benchwriter: setup %s: %s\n", w.path, sqlite3_errmsg(w.db));
        sqlite3_close(w.db);
        return 1;
    }
    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(w.db, "INSERT INTO t (k, data) VALUES (?, ?)", -1, &ins, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "lc-benchwriter: prepare: %s\n", sqlite3_errmsg(w.db));
        sqlite3_close(w.db);
        return 1;
    }
    uint8_t *buf = malloc((size_t)w.bytes + 32);
    if (!buf) {
        fprintf(stderr, "lc-benchwriter: out of memory\n");
        return 1;
    }

    int failed = 0;
    long done = 0;
    int64_t first_k = k, max_dur = 0;
    int64_t start = now_ns(CLOCK_MONOTONIC), period = w.rate > 0 ? (int64_t)(1e9 / w.rate) : 0;
    int64_t due = start, end = w.duration >= 0 ? start + (int64_t)(w.duration * 1e9) : INT64_MAX;
    while (!stop && (w.burst < 0 || done < w.burst)) {
        int64_t t0 = now_ns(CLOCK_MONOTONIC);
        if (t0 >= end)
            break;
        if (period) {
            /* absolute schedule; after a stall longer than a period, restart it */
            if (due < t0 - period)
                due = t0;
            struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
            int rc;
            while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR &&
                   !stop)
                ;
            if (stop || due >= end)
                break;
            due += period;
            t0 = now_ns(CLOCK_MONOTONIC);
        }
        int rc = commit_one(&w, ins, buf, k);
        int64_t t1 = now_ns(CLOCK_MONOTONIC), wall = now_ns(CLOCK_REALTIME);
        if (rc != 0) {
            if (!stop) {
                fprintf(stderr, "lc-benchwriter: commit %lld: %s\n", (long long)k,
                        sqlite3_errmsg(w.db));
                failed = 1;
            }
            break;
        }
        if (w.wal_fd < 0)
            open_wal(&w); /* the -wal appeared with our first commit */
        sample_wal_size(&w, t1);
        if (t1 - t0 > max_dur)
            max_dur = t1 - t0;
        if (add_rec(&w, k, wall, t1 - t0) != 0) {
            fprintf(stderr, "lc-benchwriter: log records exhausted\n");
            failed = 1;
            break;
        }
        done++;
        k++;
    }
    int64_t elapsed = now_ns(CLOCK_MONOTONIC) - start;
    w.last_sample = 0;
    sample_wal_size(&w, INT64_MAX / 2);

    if (sqlite3_finalize(ins) != SQLITE_OK)
        failed = 1;
    if (sqlite3_close(w.db) != SQLITE_OK) {
        fprintf(stderr, "lc-benchwriter: close: %s\n", sqlite3_errmsg(w.db));
        failed = 1;
    }
    if (w.wal_fd >= 0 && close(w.wal_fd) != 0)
        failed = 1;
    if (w.logpath && write_log(&w) != 0)
        failed = 1;
    double secs = elapsed > 0 ? (double)elapsed / 1e9 : 0;
    printf("commits=%ld first_k=%lld last_k=%lld elapsed_s=%.3f commits_per_s=%.1f "
           "max_commit_ms=%.3f wal_bytes=%lld max_wal_bytes=%lld busy_retries=%ld "
           "ckpt_s=%.3f max_ckpt_ms=%.3f\n",
           done, (long long)first_k, (long long)(k - 1), secs, secs > 0 ? done / secs : 0.0,
           (double)max_dur / 1e6, (long long)(w.wal_frames * (w.page_size + 24)),
           (long long)w.max_wal, w.busy_retries, (double)w.ckpt_ns / 1e9,
           (double)w.max_ckpt_ns / 1e6);
    free(buf);
    free(w.recs);
    if (fflush(stdout) != 0)
        failed = 1;
    return failed ? 1 : 0;
}
