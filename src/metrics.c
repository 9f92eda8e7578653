/* metrics: Prometheus text exposition of the daemon's state and the small HTTP server
 * that serves it.
 *
 * Formatting reads the daemon's structs as they are (we run on the loop, so nothing
 * moves underneath) plus a few stat() calls: the database, its -wal, and the shadow
 * WAL files of the current generation (at most LC_METRICS_SPOOL_SCAN_MAX of them).
 *
 * The server is an lc_listener (src/listener.c): a request is complete at the blank line
 * ending its headers; GET /metrics is answered with the page, anything else with 404,
 * a malformed or oversized request with 400. */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "status.h"

/* ---- formatting --------------------------------------------------------------------- */

/* printf into the buffer, bounded by b->max. */
static int bprintf(struct lc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bprintf(struct lc_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return LC_EINVAL;
    if ((rc = lc_buf_reserve(b, (size_t)n + 1)))
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* A label value: backslash, double quote and newline escaped as the format requires. */
static int put_label_value(struct lc_buf *b, const char *s)
{
    int rc = 0;
    for (const char *p = s; *p && !rc; p++) {
        if (*p == '\\')
            rc = lc_buf_append(b, "\\\\", 2);
        else if (*p == '"')
            rc = lc_buf_append(b, "\\\"", 2);
        else if (*p == '\n')
            rc = lc_buf_append(b, "\\n", 2);
        else
            rc = lc_buf_append(b, p, 1);
    }
    return rc;
}

static int family(struct lc_buf *b, const char *name, const char *type, const char *help)
{
    return bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One value: an exact integer, or a float with millisecond resolution. */
struct val {
    int is_float;
    uint64_t u;
    double f;
};

static struct val vu(uint64_t u)
{
    struct val v = {0, u, 0.0};
    return v;
}

static struct val vf(double f)
{
    struct val v = {1, 0, f};
    return v;
}

/* name{k1="v1",k2="v2"} value — k2 may be NULL. */
static int sample(struct lc_buf *b, const char *name, const char *k1, const char *v1,
                  const char *k2, const char *v2, struct val v)
{
    int rc = bprintf(b, "%s{%s=\"", name, k1);
    if (!rc)
        rc = put_label_value(b, v1);
    if (!rc && k2) {
        rc = bprintf(b, "\",%s=\"", k2);
        if (!rc)
            rc = put_label_value(b, v2);
    }
    if (!rc)
        rc = lc_buf_append(b, "\"} ", 3);
    if (!rc)
        rc = v.is_float ? bprintf(b, "%.3f\n", v.f) : bprintf(b, "%llu\n", (unsigned long long)v.u);
    return rc;
}

/* What formatting learns from the file system, once per db per scrape. */
struct db_info {
    uint64_t db_size;  /* database file */
    uint64_t wal_size; /* real -wal file */
    uint64_t spool;    /* shadow WAL files of the current generation */
};

static uint64_t file_size(const char *path)
{
    struct stat st;
    if (!path[0] || stat(path, &st) != 0 || st.st_size < 0)
        return 0;
    return (uint64_t)st.st_size;
}

/* Sum the sizes of the *.wal files in the current generation's wal directory. */
static uint64_t spool_bytes(const struct lc_shadow *sh)
{
    char path[LC_PATH_MAX], dir[LC_PATH_MAX];
    uint64_t total = 0;
    size_t seen = 0;
    struct dirent *de;
    DIR *dp;

    if (!sh->gen[0] || !sh->meta_dir[0] || lc_shadow_path(sh, sh->index, path, sizeof(path)))
        return 0;
    lc_path_dir(path, dir, sizeof(dir));
    if (!(dp = opendir(dir)))
        return 0;
    while (seen < LC_METRICS_SPOOL_SCAN_MAX && (de = readdir(dp))) {
        size_t n = strlen(de->d_name);
        struct stat st;
        if (n < 5 || strcmp(de->d_name + n - 4, ".wal") != 0)
            continue;
        seen++;
        if (fstatat(dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(dp);
    return total;
}

static void db_info_load(const struct lc_db *db, struct db_info *in)
{
    char wal[LC_PATH_MAX];

    in->db_size = file_size(db->cfg.path);
    if (db->wal_path[0])
        in->wal_size = file_size(db->wal_path);
    else if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", db->cfg.path) < sizeof(wal))
        in->wal_size = file_size(wal);
    else
        in->wal_size = 0;
    in->spool = spool_bytes(&db->sh);
}

enum {
    M_DB_SIZE,
    M_WAL_SIZE,
    M_TOTAL_WAL_BYTES,
    M_SHADOW_WAL_INDEX,
    M_SHADOW_WAL_SIZE,
    M_SYNC_COUNT,
    M_SYNC_ERROR_COUNT,
    M_CHECKPOINT_COUNT,
    M_CHECKPOINT_ERROR_COUNT,
    M_SPOOL_BYTES,
};

static const struct {
    const char *name, *type, *help;
} db_metrics[] = {
    [M_DB_SIZE] = {"litecast_db_size", "gauge", "Size of the database file in bytes."},
    [M_WAL_SIZE] = {"litecast_wal_size", "gauge", "Size of the database's -wal file in bytes."},
    [M_TOTAL_WAL_BYTES] = {"litecast_wal_bytes_total", "counter",
                           "Bytes of committed WAL frames copied into the shadow WAL."},
    [M_SHADOW_WAL_INDEX] = {"litecast_shadow_wal_index", "gauge",
                            "Index of the current shadow WAL file."},
    [M_SHADOW_WAL_SIZE] = {"litecast_shadow_wal_size", "gauge",
                           "Bytes of the shadow WAL files of the current generation."},
    [M_SYNC_COUNT] = {"litecast_sync_runs_total", "counter", "Runs of the sync routine."},
    [M_SYNC_ERROR_COUNT] = {"litecast_sync_errors_total", "counter",
                            "Runs of the sync routine that failed."},
    [M_CHECKPOINT_COUNT] = {"litecast_checkpoints_total", "counter", "Checkpoints attempted."},
    [M_CHECKPOINT_ERROR_COUNT] = {"litecast_checkpoint_errors_total", "counter",
                                  "Checkpoints that failed or gave up."},
    [M_SPOOL_BYTES] = {"litecast_spool_bytes", "gauge",
                       "Bytes of shadow WAL files kept on disk for the current generation."},
};

static uint64_t db_value(int m, const struct lc_db *db, const struct db_info *in)
{
    switch (m) {
    case M_DB_SIZE:
        return in->db_size;
    case M_WAL_SIZE:
        return in->wal_size;
    case M_TOTAL_WAL_BYTES:
        return db->stats.wal_bytes;
    case M_SHADOW_WAL_INDEX:
        return db->sh.index;
    case M_SHADOW_WAL_SIZE:
    case M_SPOOL_BYTES:
        return in->spool;
    case M_SYNC_COUNT:
        return db->stats.syncs;
    case M_SYNC_ERROR_COUNT:
        return db->stats.sync_errors;
    case M_CHECKPOINT_COUNT:
        return db->stats.checkpoints;
    case M_CHECKPOINT_ERROR_COUNT:
        return db->stats.checkpoint_errors;
    }
    return 0;
}

enum {
    R_WAL_BYTES,
    R_WAL_INDEX,
    R_WAL_OFFSET,
    R_LAG,
    R_LAST_SUCCESS,
    R_ERRORS,
    R_SEGMENTS,
    R_SNAPSHOTS,
};

static const struct {
    const char *name, *type, *help;
} rep_metrics[] = {
    [R_WAL_BYTES] = {"litecast_replica_wal_bytes_total", "counter",
                     "Uncompressed WAL bytes shipped to the replica."},
    [R_WAL_INDEX] = {"litecast_replica_wal_index", "gauge", "The replica's WAL index."},
    [R_WAL_OFFSET] = {"litecast_replica_wal_offset", "gauge",
                      "The replica's offset within its WAL index."},
    [R_LAG] = {"litecast_replica_lag_seconds", "gauge",
               "Seconds since the replica last held everything in the shadow WAL; 0 when "
               "caught up."},
    [R_LAST_SUCCESS] = {"litecast_replica_last_success_timestamp_seconds", "gauge",
                        "Unix time of the replica's last successful operation; 0 when none."},
    [R_ERRORS] = {"litecast_replica_errors_total", "counter",
                  "Failed replica operations (each is retried)."},
    [R_SEGMENTS] = {"litecast_replica_segments_total", "counter", "WAL segments written."},
    [R_SNAPSHOTS] = {"litecast_replica_snapshots_total", "counter", "Snapshots written."},
};

static struct val rep_value(int m, const struct lc_daemon *d, const struct lc_replica *r,
                            int64_t now_mono, int64_t now_wall)
{
    switch (m) {
    case R_WAL_BYTES:
        return vu(r->stats.wal_bytes);
    case R_WAL_INDEX:
        return vu(r->index);
    case R_WAL_OFFSET:
        return vu(r->offset);
    case R_LAG:
        return vf((double)lc_status_lag_ns(d, r, now_mono, now_wall) / 1e9);
    case R_LAST_SUCCESS:
        return vf(r->last_ok_wall_ns > 0 ? (double)r->last_ok_wall_ns / 1e9 : 0.0);
    case R_ERRORS:
        return vu(r->stats.errors);
    case R_SEGMENTS:
        return vu(r->stats.segments);
    case R_SNAPSHOTS:
        return vu(r->stats.snapshots);
    }
    return vu(0);
}

int lc_metrics_format(const struct lc_daemon *d, struct lc_buf *out)
{
    static const char *const triggers[] = {"event", "fallback", "other"};
    int64_t now_mono = lc_now_mono_ns(), now_wall = lc_now_wall_ns();
    struct db_info *info = NULL;
    int rc = 0;

    if (d->ndbs) {
        info = calloc(d->ndbs, sizeof(*info));
        if (!info)
            return LC_ENOMEM;
    }
    for (size_t i = 0; i < d->ndbs; i++)
        if (d->dbs[i].db)
            db_info_load(d->dbs[i].db, &info[i]);

    for (size_t m = 0; m < sizeof(db_metrics) / sizeof(db_metrics[0]) && !rc; m++) {
        rc = family(out, db_metrics[m].name, db_metrics[m].type, db_metrics[m].help);
        for (size_t i = 0; i < d->ndbs && !rc; i++) {
            const struct lc_db *db = d->dbs[i].db;
            if (db)
                rc = sample(out, db_metrics[m].name, "db", db->cfg.name, NULL, NULL,
                            vu(db_value((int)m, db, &info[i])));
        }
    }
    if (!rc)
        rc = family(out, "litecast_syncs_total", "counter",
                    "Runs of the sync routine by what started them.");
    for (size_t i = 0; i < d->ndbs && !rc; i++) {
        const struct lc_db *db = d->dbs[i].db;
        if (!db)
            continue;
        const struct lc_db_stats *s = &db->stats;
        uint64_t other = s->syncs - s->syncs_by_event - s->syncs_by_fallback;
        if (s->syncs < s->syncs_by_event || s->syncs - s->syncs_by_event < s->syncs_by_fallback)
            other = 0;
        const uint64_t by[] = {s->syncs_by_event, s->syncs_by_fallback, other};
        for (size_t t = 0; t < 3 && !rc; t++)
            rc = sample(out, "litecast_syncs_total", "db", db->cfg.name, "trigger", triggers[t],
                        vu(by[t]));
    }
    for (size_t m = 0; m < sizeof(rep_metrics) / sizeof(rep_metrics[0]) && !rc; m++) {
        rc = family(out, rep_metrics[m].name, rep_metrics[m].type, rep_metrics[m].help);
        for (size_t i = 0; i < d->ndbs && !rc; i++) {
            const struct lc_daemon_db *dd = &d->dbs[i];
            if (!dd->db)
                continue;
            for (size_t j = 0; j < dd->nreps && !rc; j++) {
                const struct lc_replica *r = dd->reps[j];
                if (r)
                    rc = sample(out, rep_metrics[m].name, "db", dd->db->cfg.name, "name",
                                r->cfg.name, rep_value((int)m, d, r, now_mono, now_wall));
            }
        }
    }
    if (!rc)
        rc = family(out, "litecast_inotify_overflows_total", "counter",
                    "inotify queue overflows (every database was then marked dirty).");
    if (!rc)
        rc = bprintf(out, "litecast_inotify_overflows_total %llu\n",
                     (unsigned long long)lc_watch_overflows(d->watch));
    if (!rc)
        rc = family(out, "litecast_up", "gauge", "1 while the daemon runs.");
    if (!rc)
        rc = bprintf(out, "litecast_up 1\n");
    free(info);
    return rc;
}

/* ---- the HTTP server ---------------------------------------------------------------- */

static struct {
    struct lc_daemon *d;           /* borrowed */
    struct lc_listener l;
} srv;

static void respond(struct lc_conn *c, int code, const char *reason, const char *ctype,
                    const struct lc_buf *body)
{
    size_t blen = body ? body->len : strlen(reason) + 1;
    int rc;

    c->out.max = LC_METRICS_BODY_MAX + 1024;
    rc = bprintf(&c->out,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 code, reason, ctype, blen);
    if (!rc)
        rc = body ? lc_buf_append(&c->out, body->data, body->len)
                  : bprintf(&c->out, "%s\n", reason);
    if (rc) {
        lc_conn_close(c);
        return;
    }
    lc_conn_reply(c);
}

/* The request is complete (headers ended): answer it. */
static void handle(struct lc_conn *c)
{
    char *sp1, *sp2;
    char *eol = memchr(c->req, '\n', c->req_len);

    if (!eol) {
        respond(c, 400, "Bad Request", "text/plain; charset=utf-8", NULL);
        return;
    }
    *eol = '\0';
    sp1 = strchr(c->req, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2) {
        respond(c, 400, "Bad Request", "text/plain; charset=utf-8", NULL);
        return;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    const char *target = sp1 + 1;
    size_t tl = strcspn(target, "?");
    if (strcmp(c->req, "GET") == 0 && tl == 8 && strncmp(target, "/metrics", 8) == 0) {
        struct lc_buf body = {.max = LC_METRICS_BODY_MAX};
        if (lc_metrics_format(srv.d, &body)) {
            lc_buf_free(&body);
            respond(c, 500, "Internal Server Error", "text/plain; charset=utf-8", NULL);
            return;
        }
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &body);
        lc_buf_free(&body);
        return;
    }
    respond(c, 404, "Not Found", "text/plain; charset=utf-8", NULL);
}

static int headers_done(const struct lc_conn *c)
{
    for (size_t i = 1; i < c->req_len; i++) {
        if (c->req[i] != '\n')
            continue;
        if (c->req[i - 1] == '\n' || (i >= 2 && c->req[i - 1] == '\r' && c->req[i - 2] == '\n'))
            return 1;
    }
    return 0;
}

static int on_request(struct lc_conn *c, enum lc_conn_event ev)
{
    switch (ev) {
    case LC_CONN_DATA:
        if (!headers_done(c))
            return 0;
        handle(c);
        return 1;
    case LC_CONN_FULL:
        respond(c, 400, "Bad Request", "text/plain; charset=utf-8", NULL);
        return 1;
    case LC_CONN_EOF: /* the peer gave up before finishing its request */
        break;
    }
    lc_conn_close(c);
    return 1;
}

/* Split "host:port", "[v6]:port" or ":port" into host (empty: any) and port. */
static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen,
                      struct lc_error *err)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t n;

    if (!colon || !colon[1] || strlen(colon + 1) >= plen)
        return lc_err_set(err, LC_EINVAL, "metrics address %s: expected HOST:PORT", addr);
    n = (size_t)(colon - addr);
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
        h = addr + 1;
        n -= 2;
    }
    if (n >= hlen)
        return lc_err_set(err, LC_EINVAL, "metrics address %s: host too long", addr);
    memcpy(host, h, n);
    host[n] = '\0';
    memcpy(port, colon + 1, strlen(colon + 1) + 1);
    return 0;
}

int lc_metrics_server_start(struct lc_daemon *d, const char *addr, struct lc_error *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    char host[256], port[16];
    int fd = -1, rc, gai, saved = 0;

    if (srv.l.running)
        return lc_err_set(err, LC_EINVAL, "metrics server already running");
    if ((rc = split_addr(addr, host, sizeof(host), port, sizeof(port), err)))
        return rc;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0)
        return lc_err_set(err, LC_EINVAL, "metrics address %s: %s", addr, gai_strerror(gai));
    for (ai = res; ai; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "metrics address %s: %s", addr,
                          strerror(saved ? saved : EADDRNOTAVAIL));

    srv.d = d;
    srv.l.name = "metrics";
    srv.l.on_request = on_request;
    srv.l.req_max = LC_METRICS_REQ_MAX;
    srv.l.timeout_s = LC_METRICS_CLIENT_TIMEOUT_S;
    lc_listener_start(&srv.l, d->loop, fd);
    lc_info("metrics: listening", "addr=%s url=http://%s/metrics", addr, addr);
    return 0;
}

void lc_metrics_server_stop(void)
{
    lc_listener_stop(&srv.l);
    srv.d = NULL;
}
