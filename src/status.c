/* status: the report behind `litecast status`, and the UNIX-socket server that answers
 * it from the running daemon.
 *
 * The report is built from the daemon's structs on the loop (nothing moves underneath)
 * plus one stat() of each -wal. It names databases and replicas by their config names
 * and shows the replica type, never its URL or credentials. Text output replaces
 * control characters in names, paths and error messages with '?', so every record is
 * one line and the summary is always the last line; JSON escapes them and replaces
 * invalid UTF-8 with U+FFFD, so the document is always valid.
 *
 * The server is an lc_listener (src/listener.c) on a 0600 UNIX socket: one request line
 * ("status" or "status json") → the report → close. */
#include "status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"

/* ---- the report --------------------------------------------------------------------- */

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

/* Text: s with control characters (and DEL) shown as '?'; "-" for an empty string. */
static int put_text(struct lc_buf *b, const char *s)
{
    int rc = 0;
    if (!*s)
        return lc_buf_append(b, "-", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
        char ch = (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
        rc = lc_buf_append(b, &ch, 1);
    }
    return rc;
}

/* "  key           value\n": keys padded to one column so values line up. */
static int kv(struct lc_buf *b, int indent, const char *key, const char *value)
{
    int rc = bprintf(b, "%*s%-14s", indent, "", key);
    if (!rc)
        rc = put_text(b, value);
    if (!rc)
        rc = lc_buf_append(b, "\n", 1);
    return rc;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;

    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        min = 0x80;
        c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        min = 0x800;
        c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return n;
}

/* A JSON string literal; NULL for "" when null_if_empty. */
static int put_json(struct lc_buf *b, const char *s, int null_if_empty)
{
    const unsigned char *p = (const unsigned char *)s;
    int rc;

    if (null_if_empty && !*s)
        return lc_buf_append(b, "null", 4);
    rc = lc_buf_append(b, "\"", 1);
    while (*p && !rc) {
        size_t n;
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            rc = lc_buf_append(b, e, 2);
            p++;
        } else if (*p == '\n') {
            rc = lc_buf_append(b, "\\n", 2);
            p++;
        } else if (*p == '\t') {
            rc = lc_buf_append(b, "\\t", 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            rc = bprintf(b, "\\u%04x", *p);
            p++;
        } else if ((n = utf8_len(p)) == 0) {
            rc = lc_buf_append(b, "\\ufffd", 6);
            p++;
        } else {
            rc = lc_buf_append(b, p, n);
            p += n;
        }
    }
    if (!rc)
        rc = lc_buf_append(b, "\"", 1);
    return rc;
}

int64_t lc_status_lag_ns(const struct lc_daemon *d, const struct lc_replica *r,
                         int64_t now_mono_ns, int64_t now_wall_ns)
{
    if (r->db && lc_replica_caught_up(r))
        return 0;
    if (r->caught_up_mono_ns > 0)
        return now_mono_ns > r->caught_up_mono_ns ? now_mono_ns - r->caught_up_mono_ns : 0;
    if (d && d->started_wall_ns > 0) /* never caught up: behind since we started */
        return now_wall_ns > d->started_wall_ns ? now_wall_ns - d->started_wall_ns : 0;
    return 0;
}

const char *lc_status_replica_type(const struct lc_replica_config *cfg)
{
    if (strncmp(cfg->url, "file://", 7) == 0)
        return "file";
    if (strncmp(cfg->url, "s3://", 5) == 0)
        return "s3";
    return "unknown";
}

static uint64_t wal_size(const struct lc_db *db)
{
    char wal[LC_PATH_MAX];
    const char *p = db->wal_path;
    struct stat st;

    if (!p[0]) {
        if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", db->cfg.path) >= sizeof(wal))
            return 0;
        p = wal;
    }
    if (stat(p, &st) != 0 || st.st_size < 0)
        return 0;
    return (uint64_t)st.st_size;
}

struct summary {
    size_t dbs, reps, failing_dbs, failing_reps;
    int64_t max_lag_ns;
};

static int text_replica(struct lc_buf *b, const struct lc_daemon *d, const struct lc_replica *r,
                        int64_t now_mono, int64_t now_wall, struct summary *sum)
{
    char pos[64], lag[32], when[48];
    int64_t lag_ns = lc_status_lag_ns(d, r, now_mono, now_wall);
    int rc;

    lc_replica_position_str(r, pos, sizeof(pos));
    lc_duration_format(lag_ns / 1000000 * 1000000, lag, sizeof(lag));
    if (r->last_ok_wall_ns > 0)
        lc_time_format(r->last_ok_wall_ns, 0, when, sizeof(when));
    else
        when[0] = '\0';
    if (lag_ns > sum->max_lag_ns)
        sum->max_lag_ns = lag_ns;
    sum->reps++;
    if (r->last_err[0])
        sum->failing_reps++;
    rc = kv(b, 2, "replica", r->cfg.name);
    if (!rc)
        rc = kv(b, 4, "type", lc_status_replica_type(&r->cfg));
    if (!rc)
        rc = kv(b, 4, "position", pos);
    if (!rc)
        rc = kv(b, 4, "lag", lag);
    if (!rc)
        rc = kv(b, 4, "last success", when);
    if (!rc)
        rc = kv(b, 4, "last error", r->last_err);
    return rc;
}

static int json_replica(struct lc_buf *b, const struct lc_daemon *d, const struct lc_replica *r,
                        int64_t now_mono, int64_t now_wall, struct summary *sum)
{
    char pos[64], when[48];
    int64_t lag_ns = lc_status_lag_ns(d, r, now_mono, now_wall);
    int rc;

    lc_replica_position_str(r, pos, sizeof(pos));
    if (r->last_ok_wall_ns > 0)
        lc_time_format(r->last_ok_wall_ns, 0, when, sizeof(when));
    else
        when[0] = '\0';
    if (lag_ns > sum->max_lag_ns)
        sum->max_lag_ns = lag_ns;
    sum->reps++;
    if (r->last_err[0])
        sum->failing_reps++;
    rc = lc_buf_append(b, "{\"name\":", 8);
    if (!rc)
        rc = put_json(b, r->cfg.name, 0);
    if (!rc)
        rc = bprintf(b, ",\"type\":\"%s\",\"generation\":", lc_status_replica_type(&r->cfg));
    if (!rc)
        rc = put_json(b, r->gen, 1);
    if (!rc)
        rc = bprintf(b, ",\"index\":%u,\"offset\":%llu,\"position\":", (unsigned)r->index,
                     (unsigned long long)r->offset);
    if (!rc)
        rc = put_json(b, pos, 0);
    if (!rc)
        rc = bprintf(b, ",\"caught_up\":%s,\"lag_seconds\":%.3f,\"last_success\":",
                     lag_ns == 0 ? "true" : "false", (double)lag_ns / 1e9);
    if (!rc)
        rc = put_json(b, when, 1);
    if (!rc)
        rc = lc_buf_append(b, ",\"last_error\":", 14);
    if (!rc)
        rc = put_json(b, r->last_err, 1);
    if (!rc)
        rc = lc_buf_append(b, "}", 1);
    return rc;
}

static int text_db(struct lc_buf *b, const struct lc_daemon *d, const struct lc_daemon_db *dd,
                   int64_t now_mono, int64_t now_wall, struct summary *sum)
{
    const struct lc_db *db = dd->db;
    char pos[64], wal[32];
    int rc;

    lc_db_position_str(db, pos, sizeof(pos));
    snprintf(wal, sizeof(wal), "%llu", (unsigned long long)wal_size(db));
    sum->dbs++;
    if (db->last_err[0])
        sum->failing_dbs++;
    rc = kv(b, 0, "database", db->cfg.name);
    if (!rc)
        rc = kv(b, 2, "path", db->cfg.path);
    if (!rc)
        rc = kv(b, 2, "generation", db->sh.gen);
    if (!rc)
        rc = kv(b, 2, "position", pos);
    if (!rc)
        rc = kv(b, 2, "wal size", wal);
    if (!rc)
        rc = kv(b, 2, "last error", db->last_err);
    for (size_t j = 0; j < dd->nreps && !rc; j++)
        if (dd->reps[j])
            rc = text_replica(b, d, dd->reps[j], now_mono, now_wall, sum);
    return rc;
}

static int json_db(struct lc_buf *b, const struct lc_daemon *d, const struct lc_daemon_db *dd,
                   int64_t now_mono, int64_t now_wall, struct summary *sum)
{
    const struct lc_db *db = dd->db;
    char pos[64];
    int rc, first = 1;

    lc_db_position_str(db, pos, sizeof(pos));
    sum->dbs++;
    if (db->last_err[0])
        sum->failing_dbs++;
    rc = lc_buf_append(b, "{\"name\":", 8);
    if (!rc)
        rc = put_json(b, db->cfg.name, 0);
    if (!rc)
        rc = lc_buf_append(b, ",\"path\":", 8);
    if (!rc)
        rc = put_json(b, db->cfg.path, 0);
    if (!rc)
        rc = lc_buf_append(b, ",\"generation\":", 14);
    if (!rc)
        rc = put_json(b, db->sh.gen, 1);
    if (!rc)
        rc = bprintf(b, ",\"index\":%u,\"offset\":%llu,\"position\":", (unsigned)db->sh.index,
                     (unsigned long long)db->sh.size);
    if (!rc)
        rc = put_json(b, pos, 0);
    if (!rc)
        rc = bprintf(b, ",\"wal_size\":%llu,\"last_error\":", (unsigned long long)wal_size(db));
    if (!rc)
        rc = put_json(b, db->last_err, 1);
    if (!rc)
        rc = lc_buf_append(b, ",\"replicas\":[", 13);
    for (size_t j = 0; j < dd->nreps && !rc; j++) {
        if (!dd->reps[j])
            continue;
        if (!first)
            rc = lc_buf_append(b, ",", 1);
        first = 0;
        if (!rc)
            rc = json_replica(b, d, dd->reps[j], now_mono, now_wall, sum);
    }
    if (!rc)
        rc = lc_buf_append(b, "]}", 2);
    return rc;
}

int lc_status_format(const struct lc_daemon *d, int json, struct lc_buf *out)
{
    int64_t now_mono = lc_now_mono_ns(), now_wall = lc_now_wall_ns();
    int64_t up_ns = d->started_wall_ns > 0 && now_wall > d->started_wall_ns
                        ? now_wall - d->started_wall_ns
                        : 0;
    struct summary sum = {0, 0, 0, 0, 0};
    size_t nreps = 0;
    int rc, first = 1;

    for (size_t i = 0; i < d->ndbs; i++)
        if (d->dbs[i].db)
            nreps += d->dbs[i].nreps;
    if (json) {
        rc = bprintf(out, "{\"ready\":%s,\"uptime_seconds\":%.3f,\"databases\":[",
                     d->ready ? "true" : "false", (double)up_ns / 1e9);
        for (size_t i = 0; i < d->ndbs && !rc; i++) {
            if (!d->dbs[i].db)
                continue;
            if (!first)
                rc = lc_buf_append(out, ",", 1);
            first = 0;
            if (!rc)
                rc = json_db(out, d, &d->dbs[i], now_mono, now_wall, &sum);
        }
        if (!rc)
            rc = bprintf(out,
                         "],\"summary\":{\"databases\":%zu,\"replicas\":%zu,"
                         "\"failing_databases\":%zu,\"failing_replicas\":%zu,"
                         "\"max_lag_seconds\":%.3f}}\n",
                         sum.dbs, sum.reps, sum.failing_dbs, sum.failing_reps,
                         (double)sum.max_lag_ns / 1e9);
        return rc;
    }
    char up[32];
    lc_duration_format(up_ns / 1000000000 * 1000000000, up, sizeof(up));
    rc = bprintf(out, "litecast: %s, up %s, %zu database%s, %zu replica%s\n",
                 d->ready ? "ready" : "starting", up, d->ndbs, d->ndbs == 1 ? "" : "s", nreps,
                 nreps == 1 ? "" : "s");
    for (size_t i = 0; i < d->ndbs && !rc; i++)
        if (d->dbs[i].db)
            rc = text_db(out, d, &d->dbs[i], now_mono, now_wall, &sum);
    if (!rc)
        rc = bprintf(out,
                     "summary databases=%zu replicas=%zu failing_databases=%zu "
                     "failing_replicas=%zu max_lag_seconds=%.3f\n",
                     sum.dbs, sum.reps, sum.failing_dbs, sum.failing_reps,
                     (double)sum.max_lag_ns / 1e9);
    return rc;
}

/* ---- the UNIX-socket server --------------------------------------------------------- */

static struct {
    struct lc_daemon *d;         /* borrowed */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;                   /* identity of our socket file, to remove only ours */
    ino_t ino;
    struct lc_listener l;
} srv;

/* The request line is complete (or the peer ended its input): answer it. */
static void handle(struct lc_conn *c)
{
    size_t n = c->req_len;
    int rc;

    while (n && (c->req[n - 1] == '\n' || c->req[n - 1] == '\r' || c->req[n - 1] == ' '))
        n--;
    c->out.max = LC_STATUS_BODY_MAX;
    if (n == 6 && memcmp(c->req, "status", 6) == 0)
        rc = lc_status_format(srv.d, 0, &c->out);
    else if (n == 11 && memcmp(c->req, "status json", 11) == 0)
        rc = lc_status_format(srv.d, 1, &c->out);
    else
        rc = lc_buf_append(&c->out, "error: unknown request\n", 23);
    if (rc) {
        c->out.len = 0;
        if (lc_buf_append(&c->out, "error: report too large\n", 24)) {
            lc_conn_close(c);
            return;
        }
    }
    lc_conn_reply(c);
}

static int on_request(struct lc_conn *c, enum lc_conn_event ev)
{
    char *nl;

    switch (ev) {
    case LC_CONN_DATA:
        if (!(nl = memchr(c->req, '\n', c->req_len)))
            return 0;
        c->req_len = (size_t)(nl - c->req) + 1;
        break;
    case LC_CONN_FULL: /* no newline within the bound */
        c->req_len = 0;
        break;
    case LC_CONN_EOF: /* end of input ends the request too */
        if (!c->req_len) {
            lc_conn_close(c);
            return 1;
        }
        break;
    }
    handle(c);
    return 1;
}

/* An existing file at the socket path: a socket nobody listens on is stale and goes;
 * a live socket or anything else stays and is an error. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, struct lc_error *err)
{
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        return lc_err_set(err, LC_EIO, "status socket %s: %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return lc_err_set(err, LC_EINVAL, "status socket %s: exists and is not a socket", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "status socket %s: socket: %s", path, strerror(errno));
    do
        rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    while (rc != 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (rc == 0)
        return lc_err_set(err, LC_EINVAL, "status socket %s: another process is listening on it",
                          path);
    if (saved != ECONNREFUSED && saved != ENOENT)
        return lc_err_set(err, LC_EIO, "status socket %s: %s", path, strerror(saved));
    if (unlink(path) != 0 && errno != ENOENT)
        return lc_err_set(err, LC_EIO, "status socket %s: remove stale socket: %s", path,
                          strerror(errno));
    lc_info("status: replaced a stale socket", "path=\"%s\"", path);
    return 0;
}

int lc_status_server_start(struct lc_daemon *d, const char *path, struct lc_error *err)
{
    struct sockaddr_un sa;
    struct stat st;
    size_t n = strlen(path);
    int fd, rc;

    if (srv.l.running)
        return lc_err_set(err, LC_EINVAL, "status server already running");
    if (n == 0 || n >= sizeof(sa.sun_path))
        return lc_err_set(err, LC_EINVAL, "status socket %s: path empty or too long", path);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n + 1);
    if ((rc = clear_stale(path, &sa, err)))
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "status socket %s: socket: %s", path, strerror(errno));
    /* the file is born 0600: no window in which others could connect */
    mode_t old = umask(0177);
    rc = bind(fd, (const struct sockaddr *)&sa, sizeof(sa));
    int saved = errno;
    umask(old);
    if (rc != 0) {
        close(fd);
        return lc_err_set(err, LC_EIO, "status socket %s: bind: %s", path, strerror(saved));
    }
    if (chmod(path, 0600) != 0 || listen(fd, 16) != 0 || stat(path, &st) != 0) {
        saved = errno;
        close(fd);
        (void)unlink(path);
        return lc_err_set(err, LC_EIO, "status socket %s: %s", path, strerror(saved));
    }

    srv.d = d;
    memcpy(srv.path, path, n + 1);
    srv.dev = st.st_dev;
    srv.ino = st.st_ino;
    srv.l.name = "status";
    srv.l.on_request = on_request;
    srv.l.req_max = LC_STATUS_REQ_MAX;
    srv.l.timeout_s = LC_STATUS_CLIENT_TIMEOUT_S;
    lc_listener_start(&srv.l, d->loop, fd);
    lc_info("status: listening", "path=\"%s\"", path);
    return 0;
}

void lc_status_server_stop(void)
{
    struct stat st;

    if (!srv.l.running)
        return;
    lc_listener_stop(&srv.l);
    /* remove the file only if it is still ours (a successor may have replaced it) */
    if (lstat(srv.path, &st) == 0 && st.st_dev == srv.dev && st.st_ino == srv.ino &&
        unlink(srv.path) != 0 && errno != ENOENT)
        lc_warn("status: remove socket failed", "path=\"%s\" error=\"%s\"", srv.path,
                strerror(errno));
    srv.d = NULL;
}
