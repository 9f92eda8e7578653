/* lc-observer: when does each commit become visible in a file replica?
 *
 * Watches a replica directory tree with inotify (one watch per directory, added as
 * generations/<gen>/{wal,snapshots} appear, each new directory scanned once right after
 * its watch is in place so nothing created in between is missed). Every object that
 * appears under its final name, `*.wal.lz4` or `*.snapshot.lz4` (IN_MOVED_TO after the
 * writer's tmp + rename, or IN_CLOSE_WRITE for one written in place; `*.tmp` is ignored),
 * is decompressed with liblz4's frame API in bounded chunks and its bytes scanned for the
 * markers "LCMARK:<k>;" that lc-benchwriter puts at the start of every row. The first
 * CLOCK_REALTIME at which k was seen (the time the inotify event was read) is kept.
 *
 * Each newly seen k is appended to --out as "k seen_wall_ns" once the object holding it
 * has been scanned (one write per object), so a script can poll the file for the last k;
 * the file is complete when the observer exits on SIGTERM/SIGINT or after --duration.
 * "ready" goes to stdout once the initial watches and scan are done. The observer shares
 * the CPU with the replicator it measures, so it sleeps in poll() between events and
 * keeps fixed buffers: 64 KiB in, 256 KiB out, at most MAX_WATCHES directories. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lz4frame.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_WATCHES 4096
#define MAX_DEPTH 8
#define MAX_K (16L << 20)    /* largest marker value recorded */
#define IN_CHUNK (64 << 10)  /* compressed bytes read at a time */
#define OUT_CHUNK (256 << 10) /* decompressed bytes scanned at a time */
#define CARRY 32              /* longest marker ("LCMARK:" + 19 digits + ";") fits */
#define EVBUF (64 << 10)

static const char MARK[] = "LCMARK:";

/* A watched directory. */
struct watch {
    int wd;     /* inotify watch descriptor, -1 when the slot is free */
    char *path; /* its path, owned */
};

/* Observer state. */
struct obs {
    int ifd;                     /* inotify descriptor */
    int out_fd;                  /* --out, append-only */
    struct watch w[MAX_WATCHES]; /* watched directories */
    int nw;                      /* slots in use (some may be free) */
    int64_t *seen;               /* seen[k]: first wall ns, 0 if never */
    size_t seen_cap;
    LZ4F_dctx *dctx;
    uint8_t *in;                 /* IN_CHUNK */
    uint8_t *out;                /* CARRY + OUT_CHUNK */
    char *pend;                  /* new "k ns" lines for the object being scanned */
    size_t pend_len, pend_cap;
    uint64_t objects, marks, errors, overflows;
    uint64_t wal_bytes, snap_bytes; /* decompressed bytes of each kind of object */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static int is_object(const char *name)
{
    return ends_with(name, ".wal.lz4") || ends_with(name, ".snapshot.lz4");
}

/* dir + "/" + name into buf; -1 if it does not fit. */
static int join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Record marker k seen at t; queue its line for --out if it is new. */
static void note(struct obs *o, int64_t k, int64_t t)
{
    if (k < 0 || k >= MAX_K)
        return;
    if ((size_t)k >= o->seen_cap) {
        size_t cap = o->seen_cap ? o->seen_cap : 65536;
        while (cap <= (size_t)k)
            cap *= 2;
        int64_t *s = realloc(o->seen, cap * sizeof(*s));
        if (!s) {
            o->errors++;
            return;
        }
        memset(s + o->seen_cap, 0, (cap - o->seen_cap) * sizeof(*s));
        o->seen = s;
        o->seen_cap = cap;
    }
    if (o->seen[k])
        return;
    o->seen[k] = t;
    o->marks++;
    if (o->pend_cap - o->pend_len < 48) {
        size_t cap = o->pend_cap ? o->pend_cap * 2 : 4096;
        char *p = realloc(o->pend, cap);
        if (!p) {
            o->errors++;
            return;
        }
        o->pend = p;
        o->pend_cap = cap;
    }
    int n = snprintf(o->pend + o->pend_len, o->pend_cap - o->pend_len, "%lld %lld\n",
                     (long long)k, (long long)t);
    if (n > 0 && (size_t)n < o->pend_cap - o->pend_len)
        o->pend_len += (size_t)n;
}

/* Scan buf[0..n) for complete markers; returns how many trailing bytes to carry over
 * (a possibly incomplete marker at the end). */
static size_t scan(struct obs *o, const uint8_t *buf, size_t n, int64_t t)
{
    size_t pos = 0;
    while (pos < n) {
        const uint8_t *m = memmem(buf + pos, n - pos, MARK, sizeof(MARK) - 1);
        if (!m)
            break;
        size_t i = (size_t)(m - buf) + sizeof(MARK) - 1;
        int64_t k = 0;
        size_t digits = 0;
        while (i < n && buf[i] >= '0' && buf[i] <= '9' && digits < 19) {
            k = k * 10 + (buf[i] - '0');
            i++;
            digits++;
        }
        if (i == n)
            return n - (size_t)(m - buf) < CARRY ? n - (size_t)(m - buf) : 0;
        if (digits > 0 && buf[i] == ';')
            note(o, k, t);
        pos = (size_t)(m - buf) + 1;
    }
    /* a marker prefix may straddle the chunk boundary */
    return n < sizeof(MARK) - 1 ? n : sizeof(MARK) - 1;
}

/* Decompress one object and scan it; errors are counted, never fatal (an object may be
 * removed by retention while we read it). */
static void process(struct obs *o, const char *path, int64_t t)
{
    uint64_t *bytes = ends_with(path, ".wal.lz4") ? &o->wal_bytes : &o->snap_bytes;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            o->errors++;
        return;
    }
    LZ4F_resetDecompressionContext(o->dctx);
    size_t carry = 0;
    int bad = 0;
    for (;;) {
        if (stop)
            break; /* a large object must not hold up shutdown */
        ssize_t r = read(fd, o->in, IN_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            bad = 1;
            break;
        }
        if (r == 0)
            break;
        size_t off = 0;
        while (off < (size_t)r) {
            size_t src = (size_t)r - off, dst = OUT_CHUNK;
            size_t rc = LZ4F_decompress(o->dctx, o->out + carry, &dst, o->in + off, &src, NULL);
            if (LZ4F_isError(rc)) {
                bad = 1;
                break;
            }
            off += src;
            *bytes += dst;
            size_t total = carry + dst;
            size_t keep = scan(o, o->out, total, t);
            if (keep > total)
                keep = total;
            memmove(o->out, o->out + total - keep, keep);
            carry = keep;
            if (src == 0 && dst == 0)
                break;
        }
        if (bad)
            break;
    }
    if (bad)
        o->errors++;
    o->objects++;
    if (close(fd) != 0)
        o->errors++;
    if (o->pend_len) {
        if (write_all(o->out_fd, o->pend, o->pend_len) != 0)
            o->errors++;
        o->pend_len = 0;
    }
}

static struct watch *find_watch(struct obs *o, int wd)
{
    for (int i = 0; i < o->nw; i++)
        if (o->w[i].wd == wd)
            return &o->w[i];
    return NULL;
}

/* Watch dir, then scan what it already holds: subdirectories recursively, objects
 * processed. Watching before scanning means nothing slips between the two. */
static void add_tree(struct obs *o, const char *dir, int depth, int64_t t)
{
    if (depth > MAX_DEPTH)
        return;
    int wd = inotify_add_watch(o->ifd, dir, IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE |
                                                 IN_ONLYDIR);
    if (wd < 0) {
        if (errno != ENOENT)
            fprintf(stderr, "lc-observer: watch %s: %s\n", dir, strerror(errno));
        return;
    }
    if (!find_watch(o, wd)) {
        struct watch *slot = find_watch(o, -1);
        if (!slot && o->nw < MAX_WATCHES)
            slot = &o->w[o->nw++];
        char *copy = strdup(dir);
        if (!slot || !copy) {
            fprintf(stderr, "lc-observer: too many directories at %s\n", dir);
            free(copy);
            if (inotify_rm_watch(o->ifd, wd) != 0)
                o->errors++;
            return;
        }
        slot->wd = wd;
        slot->path = copy;
    }
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || join(path, sizeof(path), dir, e->d_name) != 0)
            continue;
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            add_tree(o, path, depth + 1, t);
        else if (S_ISREG(st.st_mode) && is_object(e->d_name))
            process(o, path, t);
    }
    if (closedir(d) != 0)
        o->errors++;
}

/* Read and handle one batch of inotify events; -1 on a fatal read error. */
static int handle_events(struct obs *o, const char *root, char *buf)
{
    ssize_t n = read(o->ifd, buf, EVBUF);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    int64_t t = wall_ns();
    char path[PATH_MAX];
    for (ssize_t i = 0; i < n && !stop;) {
        const struct inotify_event *ev = (const struct inotify_event *)(const void *)(buf + i);
        i += (ssize_t)(sizeof(*ev) + ev->len);
        if (ev->mask & IN_Q_OVERFLOW) {
            o->overflows++;
            add_tree(o, root, 0, t);
            continue;
        }
        struct watch *w = find_watch(o, ev->wd);
        if (!w)
            continue;
        if (ev->mask & IN_IGNORED) {
            free(w->path);
            w->path = NULL;
            w->wd = -1;
            continue;
        }
        if (!ev->len || join(path, sizeof(path), w->path, ev->name) != 0)
            continue;
        if (ev->mask & IN_ISDIR) {
            if (ev->mask & (IN_CREATE | IN_MOVED_TO))
                add_tree(o, path, 1, t);
        } else if ((ev->mask & (IN_MOVED_TO | IN_CLOSE_WRITE)) && is_object(ev->name)) {
            process(o, path, t);
        }
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: lc-observer DIR --out FILE [--duration S]\n");
}

int main(int argc, char **argv)
{
    static struct obs o;
    const char *root, *outpath = NULL;
    double duration = -1;

    if (argc < 2 || argv[1][0] == '-') {
        usage();
        return 2;
    }
    root = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            outpath = argv[++i];
        } else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            duration = strtod(argv[++i], &end);
            if (errno || *end || !(duration >= 0)) {
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (!outpath) {
        usage();
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGINT, &sa, NULL) != 0) {
        perror("lc-observer: sigaction");
        return 1;
    }
    o.out_fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (o.out_fd < 0) {
        fprintf(stderr, "lc-observer: open %s: %s\n", outpath, strerror(errno));
        return 1;
    }
    o.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    o.in = malloc(IN_CHUNK);
    o.out = malloc(CARRY + OUT_CHUNK);
    char *evbuf = malloc(EVBUF);
    if (o.ifd < 0 || !o.in || !o.out || !evbuf ||
        LZ4F_isError(LZ4F_createDecompressionContext(&o.dctx, LZ4F_VERSION))) {
        fprintf(stderr, "lc-observer: init: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < MAX_WATCHES; i++)
        o.w[i].wd = -1;

    add_tree(&o, root, 0, wall_ns());
    if (o.nw == 0) {
        fprintf(stderr, "lc-observer: cannot watch %s\n", root);
        return 1;
    }
    if (printf("ready\n") < 0 || fflush(stdout) != 0)
        return 1;

    struct timespec t0;
    if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0)
        return 1;
    int rc = 0;
    while (!stop) {
        int timeout = -1;
        if (duration >= 0) {
            struct timespec now;
            if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
                break;
            double left = duration - ((double)(now.tv_sec - t0.tv_sec) +
                                      (double)(now.tv_nsec - t0.tv_nsec) / 1e9);
            if (left <= 0)
                break;
            timeout = (int)(left * 1000) + 1;
        }
        struct pollfd p = {.fd = o.ifd, .events = POLLIN};
        int n = poll(&p, 1, timeout);
        if (n < 0 && errno != EINTR) {
            perror("lc-observer: poll");
            rc = 1;
            break;
        }
        if (n > 0 && handle_events(&o, root, evbuf) != 0) {
            perror("lc-observer: read inotify");
            rc = 1;
            break;
        }
    }
    fprintf(stderr,
            "lc-observer: objects=%llu wal_bytes=%llu snapshot_bytes=%llu markers=%llu "
            "errors=%llu overflows=%llu\n",
            (unsigned long long)o.objects, (unsigned long long)o.wal_bytes,
            (unsigned long long)o.snap_bytes,
            (unsigned long long)o.marks, (unsigned long long)o.errors,
            (unsigned long long)o.overflows);
    if (close(o.out_fd) != 0)
        rc = 1;
    for (int i = 0; i < o.nw; i++)
        free(o.w[i].path);
    LZ4F_freeDecompressionContext(o.dctx);
    free(o.seen);
    free(o.pend);
    free(o.in);
    free(o.out);
    free(evbuf);
    if (close(o.ifd) != 0)
        rc = 1;
    return rc;
}
