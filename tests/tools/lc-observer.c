/* lc-observer: when does each commit become visible in a replica?
 *
 *   lc-observer DIR --out FILE [--duration S]
 *   lc-observer s3://BUCKET/PREFIX --endpoint URL --out FILE [--poll-ms MS] [--region R]
 *               [--duration S]
 *
 * A file replica is watched with inotify (one watch per directory, added as
 * generations/<gen>/{wal,snapshots} appear, each new directory scanned once right after
 * its watch is in place so nothing created in between is missed). Every object that
 * appears under its final name, `*.wal.lz4` or `*.snapshot.lz4` (IN_MOVED_TO after the
 * writer's tmp + rename, or IN_CLOSE_WRITE for one written in place; `*.tmp` is ignored),
 * is decompressed with liblz4's frame API in bounded chunks and its bytes scanned for the
 * markers "LCMARK:<k>;" that lc-benchwriter puts at the start of every row. The first
 * CLOCK_REALTIME at which k was seen (the time the inotify event was read) is kept.
 *
 * An S3 replica cannot be watched, so it is polled: every --poll-ms (default 2) one
 * ListObjectsV2 per known generation asks for the WAL objects after the last one seen
 * (start-after, so an idle poll returns no keys whatever the replica holds); snapshots
 * and the list of generations are polled every 10th and 25th time. A new object is
 * fetched with GET and scanned like a file; its sighting time is when the listing that
 * first named it returned, so polling adds up to one interval (plus a listing's round
 * trip) to every lag. Both replicators upload one object at a time per replica, in key
 * order, which is what makes start-after safe; at exit a full listing counts the WAL
 * objects that were never fetched (`missed`, 0 unless that assumption broke). Requests are
 * path-style GETs signed by libcurl (CURLOPT_AWS_SIGV4) with $AWS_ACCESS_KEY_ID and
 * $AWS_SECRET_ACCESS_KEY, one at a time, each on a fresh connection (see s3_init). On a
 * Ceph RGW a listing costs ~3 ms and as much server CPU, so the interval is a trade
 * between the precision of the sighting and the load put on the machine measured.
 *
 * Each newly seen k is appended to --out as "k seen_wall_ns" (S3: "k seen_wall_ns
 * last_modified_ns", the LastModified of the object that carried it, which RGW stamps
 * with ms precision when it stores the object: a lower bound on when the replica held k,
 * unaffected by polling) once the object holding it has been scanned (one write per
 * object), so a script can poll the file for the last k;
 * the file is complete when the observer exits on SIGTERM/SIGINT or after --duration.
 * "ready" goes to stdout once the initial watches and scan (or listing) are done, and
 * "snapshot NAME" for every snapshot object seen. The observer shares the CPU with the
 * replicator it measures, so it sleeps between events or polls and keeps fixed buffers:
 * 64 KiB in, 256 KiB out, a listing of at most 4 MiB, at most MAX_WATCHES directories
 * or MAX_GENS generations. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <curl/curl.h>
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
    size_t carry;                /* object being decoded: bytes kept at the start of out */
    int bad;                     /* ... its frame is corrupt or unreadable */
    int64_t t;                   /* ... its sighting time */
    int64_t mtime;               /* ... its S3 LastModified in ns, 0 for a file */
    uint64_t *cur_bytes;         /* ... which byte counter it adds to */
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
    if (o->pend_cap - o->pend_len < 80) {
        size_t cap = o->pend_cap ? o->pend_cap * 2 : 4096;
        char *p = realloc(o->pend, cap);
        if (!p) {
            o->errors++;
            return;
        }
        o->pend = p;
        o->pend_cap = cap;
    }
    int n = o->mtime ? snprintf(o->pend + o->pend_len, o->pend_cap - o->pend_len,
                                "%lld %lld %lld\n", (long long)k, (long long)t,
                                (long long)o->mtime)
                     : snprintf(o->pend + o->pend_len, o->pend_cap - o->pend_len, "%lld %lld\n",
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

/* Start decoding one object named name (its base name or key), first seen at t. */
static void obj_begin(struct obs *o, const char *name, int64_t t)
{
    LZ4F_resetDecompressionContext(o->dctx);
    o->carry = 0;
    o->bad = 0;
    o->t = t;
    o->mtime = 0;
    o->cur_bytes = ends_with(name, ".wal.lz4") ? &o->wal_bytes : &o->snap_bytes;
    if (ends_with(name, ".snapshot.lz4")) {
        const char *base = strrchr(name, '/');
        printf("snapshot %s\n", base ? base + 1 : name);
        fflush(stdout);
    }
}

/* Decompress n more bytes of the object and scan them; -1 once the frame is corrupt
 * (the rest is then ignored). */
static int obj_feed(struct obs *o, const uint8_t *in, size_t n)
{
    size_t off = 0;
    while (!o->bad && off < n) {
        size_t src = n - off, dst = OUT_CHUNK;
        size_t rc = LZ4F_decompress(o->dctx, o->out + o->carry, &dst, in + off, &src, NULL);
        if (LZ4F_isError(rc)) {
            o->bad = 1;
            break;
        }
        off += src;
        *o->cur_bytes += dst;
        size_t total = o->carry + dst;
        size_t keep = scan(o, o->out, total, o->t);
        if (keep > total)
            keep = total;
        memmove(o->out, o->out + total - keep, keep);
        o->carry = keep;
        if (src == 0 && dst == 0)
            break;
    }
    return o->bad ? -1 : 0;
}

/* Forget the markers first seen in the object being decoded (a failed transfer that will
 * be retried): they are still pending, one "k ..." line each. */
static void obj_discard(struct obs *o)
{
    for (size_t i = 0; i < o->pend_len;) {
        int64_t k = 0;
        while (i < o->pend_len && o->pend[i] >= '0' && o->pend[i] <= '9')
            k = k * 10 + (o->pend[i++] - '0');
        if (k >= 0 && (size_t)k < o->seen_cap && o->seen[k]) {
            o->seen[k] = 0;
            o->marks--;
        }
        while (i < o->pend_len && o->pend[i++] != '\n')
            ;
    }
    o->pend_len = 0;
    o->bad = 0;
}

/* The object is complete (or abandoned): count it and publish its new markers. */
static void obj_end(struct obs *o)
{
    if (o->bad)
        o->errors++;
    o->objects++;
    if (o->pend_len) {
        if (write_all(o->out_fd, o->pend, o->pend_len) != 0)
            o->errors++;
        o->pend_len = 0;
    }
}

/* Decompress one object file and scan it; errors are counted, never fatal (an object may
 * be removed by retention while we read it). */
static void process(struct obs *o, const char *path, int64_t t)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            o->errors++;
        return;
    }
    obj_begin(o, path, t);
    while (!stop && !o->bad) { /* a large object must not hold up shutdown */
        ssize_t r = read(fd, o->in, IN_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            o->bad = 1;
        if (r <= 0)
            break;
        obj_feed(o, o->in, (size_t)r);
    }
    if (close(fd) != 0)
        o->errors++;
    obj_end(o);
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

/* ---- S3 polling ------------------------------------------------------------------- */

#define MAX_GENS 64
#define MAX_KEY 1024
#define MAX_BODY (4 << 20)     /* one ListObjectsV2 page of 1000 keys is ~300 KiB */
#define GEN_EVERY 25           /* polls between listings of generations/ */
#define SNAP_EVERY 10          /* polls between listings of snapshots/ */
#define REQ_TIMEOUT_MS 10000L
#define GET_ATTEMPTS 3
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* One generation of the replica and how far its listings have got. */
struct gen {
    char name[128];          /* generation id */
    char last_wal[MAX_KEY];  /* greatest WAL key fetched, "" for none */
    char last_snap[MAX_KEY]; /* greatest snapshot key fetched, "" for none */
    uint64_t nwal, nsnap;    /* objects fetched */
};

/* The S3 side of the observer. */
struct s3 {
    CURL *h;                    /* one handle, a new connection per request */
    struct curl_slist *hdrs;    /* x-amz-content-sha256 */
    char base[1024];            /* endpoint + "/" + bucket, no trailing '/' */
    char prefix[MAX_KEY / 2];   /* key prefix ending in '/', or "" */
    char sigv4[128];            /* "aws:amz:REGION:s3" */
    char *body;                 /* listing response, MAX_BODY */
    size_t len;                 /* bytes in body */
    int overflow;               /* the response did not fit */
    struct gen g[MAX_GENS];
    int ng;
    uint64_t polls, lists, gets, list_errors, get_errors;
    double list_ms;             /* total time in listings */
};

/* Append s to buf[*n..cap) %-encoded as SigV4 wants (unreserved bytes as they are,
 * '/' kept when keep_slash); -1 when it does not fit. */
static int uri_enc(char *buf, size_t cap, size_t *n, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        if (*n + 4 > cap)
            return -1;
        if (plain) {
            buf[(*n)++] = (char)c;
        } else {
            buf[(*n)++] = '%';
            buf[(*n)++] = hex[c >> 4];
            buf[(*n)++] = hex[c & 15];
        }
    }
    buf[*n] = 0;
    return 0;
}

static int append(char *buf, size_t cap, size_t *n, const char *s)
{
    size_t l = strlen(s);
    if (*n + l + 1 > cap)
        return -1;
    memcpy(buf + *n, s, l + 1);
    *n += l;
    return 0;
}

static size_t body_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct s3 *s = arg;
    size_t n = size * nmemb;
    if (s->len + n + 1 > MAX_BODY) {
        s->overflow = 1;
        return 0; /* aborts the transfer */
    }
    memcpy(s->body + s->len, p, n);
    s->len += n;
    s->body[s->len] = 0;
    return n;
}

struct get_ctx {
    struct obs *o;
    long code; /* HTTP status once the headers are in, 0 before */
    CURL *h;
};

static size_t get_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct get_ctx *g = arg;
    size_t n = size * nmemb;
    if (!g->code)
        curl_easy_getinfo(g->h, CURLINFO_RESPONSE_CODE, &g->code);
    if (g->code != 200 || stop)
        return g->code == 200 ? 0 : n; /* an error body is dropped */
    obj_feed(g->o, (const uint8_t *)p, n);
    return n;
}

/* One signed GET of url; the response goes to fn. Returns the HTTP status or -1. */
static long s3_request(struct s3 *s, const char *url, curl_write_callback fn, void *arg)
{
    long code = 0;
    curl_easy_setopt(s->h, CURLOPT_URL, url);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, fn);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, arg);
    CURLcode rc = curl_easy_perform(s->h);
    if (rc != CURLE_OK && rc != CURLE_WRITE_ERROR)
        return -1;
    if (curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
        return -1;
    return code;
}

/* ListObjectsV2 below prefix (the bucket-relative key prefix), with delimiter '/' or
 * after start_after; the response is left in s->body. 0 on success. The query is built
 * already canonical (keys sorted, values encoded) because curl signs it as written. */
static int s3_list(struct s3 *s, const char *prefix, int delimiter, const char *start_after)
{
    char url[4096];
    size_t n = 0;
    int bad = append(url, sizeof(url), &n, s->base) ||
              append(url, sizeof(url), &n, delimiter ? "?delimiter=%2F&list-type=2&prefix="
                                                     : "?list-type=2&prefix=") ||
              uri_enc(url, sizeof(url), &n, prefix, 0);
    if (!bad && start_after && *start_after)
        bad = append(url, sizeof(url), &n, "&start-after=") ||
              uri_enc(url, sizeof(url), &n, start_after, 0);
    if (bad) {
        s->list_errors++;
        return -1;
    }
    s->len = 0;
    s->overflow = 0;
    s->body[0] = 0;
    int64_t t0 = wall_ns();
    long code = s3_request(s, url, body_write, s);
    s->list_ms += (double)(wall_ns() - t0) / 1e6;
    s->lists++;
    if (code != 200 || s->overflow) {
        if (s->list_errors++ < 5)
            fprintf(stderr, "lc-observer: list %s: %s\n", prefix,
                    code < 0 ? "request failed" : s->overflow ? "response too large" : "bad status");
        return -1;
    }
    return 0;
}

/* Copy the text of the next <tag>...</tag> at or after *pos into out (XML entities
 * decoded), advance *pos past it; 0 when found. */
static int next_elem(const char **pos, const char *tag, char *out, size_t cap)
{
    char open[32], close[32];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(*pos, open);
    if (!a)
        return -1;
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b)
        return -1;
    *pos = b + strlen(close);
    size_t n = 0;
    static const struct { const char *ent; char c; } ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    while (a < b && n + 1 < cap) {
        size_t e;
        for (e = 0; e < sizeof(ents) / sizeof(ents[0]); e++)
            if (strncmp(a, ents[e].ent, strlen(ents[e].ent)) == 0)
                break;
        if (e < sizeof(ents) / sizeof(ents[0])) {
            out[n++] = ents[e].c;
            a += strlen(ents[e].ent);
        } else {
            out[n++] = *a++;
        }
    }
    out[n] = 0;
    return a == b ? 0 : -1; /* longer than cap: not one of ours */
}

/* "2026-11-24T03:01:09.537Z" (S3 LastModified) to ns since the epoch; 0 if malformed. */
static int64_t parse_iso(const char *v)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return 0;
    int64_t ns = 0, scale = 100000000;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            ns += (*p - '0') * scale;
    time_t secs = timegm(&tm);
    return secs == (time_t)-1 ? 0 : (int64_t)secs * 1000000000 + ns;
}

/* GET one object and scan it, as first seen at t (listed with LastModified mtime). */
static void s3_fetch(struct s3 *s, struct obs *o, const char *key, int64_t t, int64_t mtime)
{
    char url[4096];
    size_t n = 0;
    if (append(url, sizeof(url), &n, s->base) || append(url, sizeof(url), &n, "/") ||
        uri_enc(url, sizeof(url), &n, key, 1)) {
        s->get_errors++;
        return;
    }
    long code = -1;
    /* a failed transfer is retried from scratch: past it, start-after never lists it again */
    for (int attempt = 0; attempt < GET_ATTEMPTS && code != 200 && code != 404 && !stop;
         attempt++) {
        struct get_ctx g = {.o = o, .h = s->h};
        obj_begin(o, key, t);
        o->mtime = mtime;
        code = s3_request(s, url, get_write, &g);
        s->gets++;
        if (code != 200 && code != 404) { /* 404: removed by retention meanwhile */
            if (s->get_errors++ < 5)
                fprintf(stderr, "lc-observer: get %s: %s %ld\n", key,
                        code < 0 ? "request failed" : "status", code);
            obj_discard(o); /* markers of a partial body are not kept */
        }
    }
    if (code != 200 && code != 404)
        o->bad = 1;
    obj_end(o);
}

/* An object named by a listing page, kept while the page's objects are fetched. */
struct listed {
    char *key;
    int64_t mtime;
};

/* List the objects of one kind ("wal" or "snapshots") of generation g after *last, fetch
 * the new ones in key order, advance *last and add them to *count. */
static void s3_poll_objects(struct s3 *s, struct obs *o, struct gen *g, const char *kind,
                            char *last, uint64_t *count)
{
    char prefix[MAX_KEY], key[MAX_KEY], mod[64];
    snprintf(prefix, sizeof(prefix), "%sgenerations/%s/%s/", s->prefix, g->name, kind);
    for (int page = 0; page < 1000 && !stop; page++) {
        if (s3_list(s, prefix, 0, last) != 0)
            return;
        int64_t t = wall_ns();
        int truncated = strstr(s->body, "<IsTruncated>true</IsTruncated>") != NULL;
        /* the page is parsed before a GET reuses the handle: its objects go to a list */
        size_t nobj = 0, cap = 0;
        struct listed *v = NULL;
        char next[MAX_KEY] = "";
        char *blk = s->body;
        while ((blk = strstr(blk, "<Contents>")) != NULL) {
            char *end = strstr(blk, "</Contents>");
            if (!end)
                break;
            *end = 0; /* parse within this element only, whatever the order inside */
            const char *pk = blk, *pm = blk;
            int ok = next_elem(&pk, "Key", key, sizeof(key)) == 0;
            int64_t mtime = next_elem(&pm, "LastModified", mod, sizeof(mod)) == 0
                                ? parse_iso(mod)
                                : 0;
            *end = '<';
            blk = end + 1;
            if (!ok)
                continue;
            snprintf(next, sizeof(next), "%s", key);
            if (!ends_with(key, ".lz4"))
                continue;
            if (nobj == cap) {
                size_t c = cap ? cap * 2 : 64;
                struct listed *nv = realloc(v, c * sizeof(*nv));
                if (!nv)
                    break;
                v = nv;
                cap = c;
            }
            if (!(v[nobj].key = strdup(key)))
                break;
            v[nobj++].mtime = mtime;
        }
        for (size_t i = 0; i < nobj; i++) {
            if (!stop) {
                s3_fetch(s, o, v[i].key, t, v[i].mtime);
                (*count)++;
            }
            free(v[i].key);
        }
        free(v);
        if (next[0])
            snprintf(last, MAX_KEY, "%s", next);
        if (!truncated || !next[0])
            return;
    }
}

/* After the run: how many WAL objects of g the replica holds that were never fetched
 * (an upload that became visible out of key order would be one). -1 if unknown. */
static int64_t s3_missed(struct s3 *s, struct gen *g)
{
    char prefix[MAX_KEY], key[MAX_KEY], after[MAX_KEY] = "";
    int64_t n = 0;
    snprintf(prefix, sizeof(prefix), "%sgenerations/%s/wal/", s->prefix, g->name);
    for (int page = 0; page < 1000; page++) {
        if (s3_list(s, prefix, 0, after) != 0)
            return -1;
        const char *pos = s->body;
        int truncated = strstr(s->body, "<IsTruncated>true</IsTruncated>") != NULL;
        while (next_elem(&pos, "Key", key, sizeof(key)) == 0) {
            snprintf(after, sizeof(after), "%s", key);
            n += ends_with(key, ".lz4");
        }
        if (!truncated || !after[0])
            break;
    }
    return n > (int64_t)g->nwal ? n - (int64_t)g->nwal : 0;
}

/* Learn new generations from a delimiter listing of generations/. */
static void s3_poll_gens(struct s3 *s)
{
    char prefix[MAX_KEY], p[MAX_KEY];
    snprintf(prefix, sizeof(prefix), "%sgenerations/", s->prefix);
    if (s3_list(s, prefix, 1, NULL) != 0)
        return;
    const char *pos = s->body;
    size_t plen = strlen(prefix);
    while ((pos = strstr(pos, "<CommonPrefixes>")) != NULL) {
        if (next_elem(&pos, "Prefix", p, sizeof(p)) != 0)
            break;
        size_t l = strlen(p);
        if (l <= plen + 1 || strncmp(p, prefix, plen) != 0 || p[l - 1] != '/' ||
            l - plen - 1 >= sizeof(s->g[0].name))
            continue;
        p[l - 1] = 0;
        const char *name = p + plen;
        int known = 0;
        for (int i = 0; i < s->ng && !known; i++)
            known = strcmp(s->g[i].name, name) == 0;
        if (known)
            continue;
        if (s->ng == MAX_GENS) {
            fprintf(stderr, "lc-observer: more than %d generations; ignoring %s\n", MAX_GENS,
                    name);
            continue;
        }
        struct gen *g = &s->g[s->ng++];
        memset(g, 0, sizeof(*g));
        snprintf(g->name, sizeof(g->name), "%s", name);
    }
}

/* One round: generations now and then, snapshots every SNAP_EVERY polls, the WAL of
 * every generation each time. */
static void s3_poll(struct s3 *s, struct obs *o)
{
    uint64_t n = s->polls++;
    if (n % GEN_EVERY == 0 || s->ng == 0)
        s3_poll_gens(s);
    for (int i = 0; i < s->ng && !stop; i++) {
        struct gen *g = &s->g[i];
        if (n % SNAP_EVERY == 0)
            s3_poll_objects(s, o, g, "snapshots", g->last_snap, &g->nsnap);
        s3_poll_objects(s, o, g, "wal", g->last_wal, &g->nwal);
    }
}

/* Parse s3://BUCKET[/PREFIX] and set up the handle; 0 on success. */
static int s3_init(struct s3 *s, const char *url, const char *endpoint, const char *region)
{
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    const char *prefix = slash ? slash + 1 : "";
    const char *key = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    size_t elen = strlen(endpoint), plen = strlen(prefix);
    while (elen > 0 && endpoint[elen - 1] == '/')
        elen--;
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    if (!blen || !key || !*key || !secret || !*secret) {
        fprintf(stderr, "lc-observer: need s3://BUCKET/PREFIX, $AWS_ACCESS_KEY_ID and "
                        "$AWS_SECRET_ACCESS_KEY\n");
        return -1;
    }
    if ((size_t)snprintf(s->base, sizeof(s->base), "%.*s/%.*s", (int)elen, endpoint, (int)blen,
                         b) >= sizeof(s->base) ||
        (size_t)snprintf(s->prefix, sizeof(s->prefix), "%.*s%s", (int)plen, prefix,
                         plen ? "/" : "") >= sizeof(s->prefix) ||
        (size_t)snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3", region) >=
            sizeof(s->sigv4)) {
        fprintf(stderr, "lc-observer: s3 url, endpoint or region too long\n");
        return -1;
    }
    s->body = malloc(MAX_BODY);
    s->hdrs = curl_slist_append(NULL, "x-amz-content-sha256: " EMPTY_SHA256);
    s->h = curl_easy_init();
    if (!s->body || !s->hdrs || !s->h) {
        fprintf(stderr, "lc-observer: s3 init: out of memory\n");
        return -1;
    }
    curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(s->h, CURLOPT_TIMEOUT_MS, REQ_TIMEOUT_MS);
    curl_easy_setopt(s->h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    /* A new connection per request: RGW's beast frontend without tcp_nodelay=1 sends a
     * response's body behind its headers under Nagle, which on a kept-alive connection
     * waits out the client's delayed ACK (~40 ms per listing); a fresh connection is
     * still in quick-ACK mode. On loopback the extra handshake costs ~0.1 ms. */
    curl_easy_setopt(s->h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->h, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(s->h, CURLOPT_USERNAME, key);
    curl_easy_setopt(s->h, CURLOPT_PASSWORD, secret);
    return 0;
}

static void s3_free(struct s3 *s)
{
    curl_easy_cleanup(s->h);
    curl_slist_free_all(s->hdrs);
    free(s->body);
}

/* Sleep until the monotonic time *due (ns), then move it on by period; a poll that ran
 * past its slot starts the next one at once rather than catching up in a burst. */
static void sleep_until(int64_t *due, int64_t period)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t t = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    if (*due < t)
        *due = t;
    struct timespec ts = {(time_t)(*due / 1000000000), (long)(*due % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
        ;
    *due += period;
}

static void usage(void)
{
    fprintf(stderr, "usage: lc-observer DIR --out FILE [--duration S]\n"
                    "       lc-observer s3://BUCKET/PREFIX --endpoint URL --out FILE\n"
                    "                   [--poll-ms MS] [--region R] [--duration S]\n"
                    "       (S3 credentials from $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY)\n");
}

static int parse_pos(const char *v, double max, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= 0) || d > max)
        return -1;
    *out = d;
    return 0;
}

/* Seconds left of --duration (a negative duration: unbounded, returns 1e9). */
static double left_s(const struct timespec *t0, double duration)
{
    struct timespec now;
    if (duration < 0)
        return 1e9;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0;
    return duration - ((double)(now.tv_sec - t0->tv_sec) +
                       (double)(now.tv_nsec - t0->tv_nsec) / 1e9);
}

/* Watch a file replica until stopped; 0 or 1 (fatal error). */
static int run_inotify(struct obs *o, const char *root, double duration)
{
    char *evbuf = malloc(EVBUF);
    o->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (o->ifd < 0 || !evbuf) {
        fprintf(stderr, "lc-observer: inotify init: %s\n", strerror(errno));
        free(evbuf);
        return 1;
    }
    for (int i = 0; i < MAX_WATCHES; i++)
        o->w[i].wd = -1;
    add_tree(o, root, 0, wall_ns());
    if (o->nw == 0) {
        fprintf(stderr, "lc-observer: cannot watch %s\n", root);
        free(evbuf);
        return 1;
    }
    if (printf("ready\n") < 0 || fflush(stdout) != 0) {
        free(evbuf);
        return 1;
    }
    struct timespec t0;
    int rc = 0;
    if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0)
        rc = 1;
    while (!stop && !rc) {
        double left = left_s(&t0, duration);
        if (left <= 0)
            break;
        struct pollfd p = {.fd = o->ifd, .events = POLLIN};
        int n = poll(&p, 1, duration < 0 ? -1 : (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR) {
            perror("lc-observer: poll");
            rc = 1;
        } else if (n > 0 && handle_events(o, root, evbuf) != 0) {
            perror("lc-observer: read inotify");
            rc = 1;
        }
    }
    for (int i = 0; i < o->nw; i++)
        free(o->w[i].path);
    free(evbuf);
    if (close(o->ifd) != 0)
        rc = 1;
    return rc;
}

/* Poll an S3 replica until stopped; 0 or 1 (fatal error). */
static int run_s3(struct obs *o, const char *url, const char *endpoint, const char *region,
                  double poll_ms, double duration)
{
    static struct s3 s;
    if (!endpoint) {
        fprintf(stderr, "lc-observer: an s3:// replica needs --endpoint\n");
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || s3_init(&s, url, endpoint, region)) {
        s3_free(&s);
        return 1;
    }
    s3_poll(&s, o); /* the first listing also tells whether the store answers */
    int rc = s.lists > s.list_errors ? 0 : 1;
    if (rc)
        fprintf(stderr, "lc-observer: %s at %s does not answer listings\n", url, endpoint);
    else if (printf("ready\n") < 0 || fflush(stdout) != 0)
        rc = 1;
    struct timespec t0;
    if (clock_gettime(CLOCK_MONOTONIC, &t0) != 0)
        rc = 1;
    int64_t period = (int64_t)(poll_ms * 1e6), due = 0, started = wall_ns();
    while (!stop && !rc && left_s(&t0, duration) > 0) {
        sleep_until(&due, period);
        if (!stop)
            s3_poll(&s, o);
    }
    double round_ms = s.polls ? (double)(wall_ns() - started) / 1e6 / (double)s.polls : 0;
    int64_t missed = 0;
    stop = 0; /* the final check runs even after SIGTERM */
    for (int i = 0; i < s.ng && !rc; i++) {
        int64_t m = s3_missed(&s, &s.g[i]);
        missed = m < 0 || missed < 0 ? -1 : missed + m;
    }
    fprintf(stderr,
            "lc-observer: polls=%llu poll_ms_avg=%.3f lists=%llu list_ms_avg=%.3f gets=%llu "
            "list_errors=%llu get_errors=%llu generations=%d missed=%lld\n",
            (unsigned long long)s.polls, round_ms, (unsigned long long)s.lists,
            s.lists ? s.list_ms / (double)s.lists : 0.0, (unsigned long long)s.gets,
            (unsigned long long)s.list_errors, (unsigned long long)s.get_errors, s.ng,
            (long long)missed);
    s3_free(&s);
    curl_global_cleanup();
    return rc;
}

int main(int argc, char **argv)
{
    static struct obs o;
    const char *root, *outpath = NULL, *endpoint = NULL, *region = "us-east-1";
    double duration = -1, poll_ms = 2;

    if (argc < 2 || argv[1][0] == '-') {
        usage();
        return 2;
    }
    root = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = v == NULL;
        if (!bad && strcmp(opt, "--out") == 0)
            outpath = v;
        else if (!bad && strcmp(opt, "--endpoint") == 0)
            endpoint = v;
        else if (!bad && strcmp(opt, "--region") == 0)
            region = v;
        else if (!bad && strcmp(opt, "--duration") == 0)
            bad = parse_pos(v, 1e9, &duration);
        else if (!bad && strcmp(opt, "--poll-ms") == 0)
            bad = parse_pos(v, 60000, &poll_ms) || poll_ms < 0.1;
        else
            bad = 1;
        if (bad) {
            usage();
            return 2;
        }
        i++;
    }
    if (!outpath) {
        usage();
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() and sleeps return EINTR */
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
    o.in = malloc(IN_CHUNK);
    o.out = malloc(CARRY + OUT_CHUNK);
    if (!o.in || !o.out || LZ4F_isError(LZ4F_createDecompressionContext(&o.dctx, LZ4F_VERSION))) {
        fprintf(stderr, "lc-observer: init: out of memory\n");
        return 1;
    }

    int rc = strncmp(root, "s3://", 5) == 0
                 ? run_s3(&o, root, endpoint, region, poll_ms, duration)
                 : run_inotify(&o, root, duration);
    fprintf(stderr,
            "lc-observer: objects=%llu wal_bytes=%llu snapshot_bytes=%llu markers=%llu "
            "errors=%llu overflows=%llu\n",
            (unsigned long long)o.objects, (unsigned long long)o.wal_bytes,
            (unsigned long long)o.snap_bytes, (unsigned long long)o.marks,
            (unsigned long long)o.errors, (unsigned long long)o.overflows);
    if (close(o.out_fd) != 0)
        rc = 1;
    LZ4F_freeDecompressionContext(o.dctx);
    free(o.seen);
    free(o.pend);
    free(o.in);
    free(o.out);
    return rc;
}
