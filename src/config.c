/* config: the INI file into struct lc_config, with every mistake reported once, as
 * "FILE:LINE: message" naming the key or the section.
 *
 * Parsing is inih's, driven through ini_parse_stream() with our own line reader over
 * the whole file held in memory. The reader is what makes good messages possible:
 * inih's handler is given neither a line number nor the start of a section, so the
 * reader counts lines, sees every "[section]" header before inih does (and so opens
 * empty sections too, and closes the previous one first), and refuses over-long lines
 * or NUL bytes instead of letting inih split them silently. inih calls the reader for
 * line N+1 only after it has passed every key of line N to the handler, so the order
 * of events is exactly the order of the file.
 *
 * Debian's libinih exposes its compile-time options as globals; we set the ones we
 * depend on around each parse and restore them afterwards:
 *   - no multi-line values (an indented "key = v" would otherwise be taken as a
 *     continuation of the previous key),
 *   - a heap line buffer that may grow to LINE_MAX (the default is 200 bytes),
 *   - stop at the first error.
 *
 * Checks happen in three places, each reporting the most useful line:
 *   1. per key, when the handler sees it: syntax of the value (line of the key);
 *   2. when a section closes: required keys, s3-only keys on a file replica, cross
 *      checks between keys of that section, defaults (line of the header or key);
 *   3. after the whole file: references and clashes between sections (line of the
 *      later section's header).
 *
 * Arrays: cfg->dbs and cfg->replicas only grow through append(), which keeps the
 * allocation at the next power of two >= the count, so the capacity needs no field of
 * its own. Both hold at most MAX_ENTRIES entries. Secret values never appear in a
 * message: the only checks on them are length and ${} syntax, whose messages do not
 * quote the value. */
#include "config.h"

#include <ini.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_ENTRIES 10000          /* dbs, and separately replicas */
#define FILE_MAX (1024 * 1024)     /* largest config file we read */
#define LINE_MAX_BYTES 8192        /* longest line, newline excluded */
#define VALUE_MAX 8192             /* longest value after ${VAR} expansion */
#define VAR_NAME_MAX 128           /* longest VAR in ${VAR} */
#define SHOW_MAX 64                /* bytes of a value quoted in a message */
#define NKEYS_MAX 16               /* keys in the largest section table */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL
#define WAL_INDEX_MIN 65536LL
#define WAL_INDEX_MAX 3758096384LL /* 3.5 GiB */
#define PAGES_MAX 4294967295LL     /* SQLite page numbers are 32-bit */
#define DURATION_MAX INT64_MAX

enum scheme { SCHEME_NONE = -1, SCHEME_FILE = 0, SCHEME_S3 = 1 };

enum sect { S_NONE, S_GLOBAL, S_DB, S_REPLICA };

enum vtype {
    V_DURATION, /* int64_t nanoseconds */
    V_INT,      /* int64_t */
    V_BOOL,     /* int 0/1 */
    V_TRI,      /* int 0/1, left at -1 when the key is absent */
    V_STRING,   /* char[size] */
    V_LEVEL,    /* enum lc_log_level */
};

#define F_SECRET 1u /* never quote the value */
#define F_S3 2u     /* only meaningful for s3:// replicas */

struct parse;

/* One key of a section: where its value goes and what it may be. */
struct key {
    const char *name;     /* as written in the file */
    enum vtype type;      /* how the text is parsed */
    size_t off;           /* offset of the field in the section's struct */
    size_t size;          /* V_STRING: size of the field, NUL included */
    int64_t min, max;     /* V_DURATION, V_INT: inclusive bounds */
    unsigned flags;       /* F_* */
    int (*check)(struct parse *ps, int line, const char *key, const char *v);
};

/* State of one parse: the reader's cursor, the open section, the first error. */
struct parse {
    struct lc_config *cfg;   /* being filled; freed by the caller on failure */
    const char *name;        /* file name used in messages */
    const char *text;        /* whole input, NUL-terminated */
    const char *p, *end;     /* reader cursor and end of text */
    int lineno;              /* line the reader last started */
    int at_bol;              /* next reader call starts a new line */
    enum sect sect;          /* open section */
    size_t idx;              /* its index in cfg->dbs or cfg->replicas */
    int sect_line;           /* line of its header */
    char label[LC_NAME_MAX + 24]; /* "[db NAME]" for messages */
    int seen[NKEYS_MAX];     /* line of each key of the open section, 0 = absent */
    int global_line;         /* line of [litecast], 0 if none yet */
    int failed;              /* an error was recorded: stop everything */
    int fail_line;           /* its line */
    int rc;                  /* its LC_E* code */
    struct lc_error *err;    /* where the message goes */
};

static int check_nonempty(struct parse *ps, int line, const char *key, const char *v);
static int check_addr(struct parse *ps, int line, const char *key, const char *v);
static int check_socket(struct parse *ps, int line, const char *key, const char *v);
static int check_url(struct parse *ps, int line, const char *key, const char *v);
static int check_endpoint(struct parse *ps, int line, const char *key, const char *v);

#define GKEY(n, t, f, lo, hi, fl, ck)                                                       \
    {                                                                                       \
        n, t, offsetof(struct lc_config, f), sizeof(((struct lc_config *)0)->f), lo, hi,   \
            fl, ck                                                                          \
    }
#define DKEY(n, t, f, lo, hi, fl, ck)                                                       \
    {                                                                                       \
        n, t, offsetof(struct lc_db_config, f), sizeof(((struct lc_db_config *)0)->f), lo, \
            hi, fl, ck                                                                      \
    }
#define RKEY(n, t, f, lo, hi, fl, ck)                                                       \
    {                                                                                       \
        n, t, offsetof(struct lc_replica_config, f),                                        \
            sizeof(((struct lc_replica_config *)0)->f), lo, hi, fl, ck                      \
    }

static const struct key global_keys[] = {
    GKEY("debounce", V_DURATION, debounce_ns, 0, DURATION_MAX, 0, NULL),
    GKEY("max-delay", V_DURATION, max_delay_ns, 0, DURATION_MAX, 0, NULL),
    GKEY("fallback-interval", V_DURATION, fallback_interval_ns, 1, DURATION_MAX, 0, NULL),
    GKEY("shutdown-timeout", V_DURATION, shutdown_timeout_ns, 0, DURATION_MAX, 0, NULL),
    GKEY("log-level", V_LEVEL, log_level, 0, 0, 0, NULL),
    GKEY("metrics-addr", V_STRING, metrics_addr, 0, 0, 0, check_addr),
    GKEY("status-socket", V_STRING, status_socket, 0, 0, 0, check_socket),
};

enum { GK_DEBOUNCE, GK_MAX_DELAY }; /* indexes into global_keys */
enum { DK_PATH, DK_META_DIR, DK_MIN_PAGES, DK_MAX_PAGES }; /* indexes into db_keys */
static const struct key db_keys[] = {
    DKEY("path", V_STRING, path, 0, 0, 0, check_nonempty),
    DKEY("meta-dir", V_STRING, meta_dir, 0, 0, 0, NULL),
    DKEY("min-checkpoint-pages", V_INT, min_checkpoint_pages, 1, PAGES_MAX, 0, NULL),
    DKEY("max-checkpoint-pages", V_INT, max_checkpoint_pages, 0, PAGES_MAX, 0, NULL),
    DKEY("truncate-pages", V_INT, truncate_pages, 0, PAGES_MAX, 0, NULL),
    DKEY("checkpoint-interval", V_DURATION, checkpoint_interval_ns, 0, DURATION_MAX, 0, NULL),
    DKEY("max-wal-index-bytes", V_INT, max_wal_index_bytes, WAL_INDEX_MIN, WAL_INDEX_MAX, 0,
         NULL),
    DKEY("max-spool", V_INT, max_spool_bytes, 0, INT64_MAX, 0, NULL),
    DKEY("watch", V_BOOL, watch, 0, 0, 0, NULL),
};

enum { RK_DB, RK_URL, RK_SYNC = 5, RK_SECRET = 10 }; /* indexes into replica_keys */
static const struct key replica_keys[] = {
    RKEY("db", V_STRING, db, 0, 0, 0, check_nonempty),
    RKEY("url", V_STRING, url, 0, 0, 0, check_url),
    RKEY("retention", V_DURATION, retention_ns, 0, DURATION_MAX, 0, NULL),
    RKEY("retention-check-interval", V_DURATION, retention_check_ns, 1, DURATION_MAX, 0, NULL),
    RKEY("snapshot-interval", V_DURATION, snapshot_interval_ns, 0, DURATION_MAX, 0, NULL),
    RKEY("sync-interval", V_DURATION, sync_interval_ns, 0, DURATION_MAX, 0, NULL),
    RKEY("endpoint", V_STRING, endpoint, 0, 0, F_S3, check_endpoint),
    RKEY("region", V_STRING, region, 0, 0, F_S3, NULL),
    RKEY("bucket", V_STRING, bucket, 0, 0, F_S3, NULL),
    RKEY("access-key-id", V_STRING, access_key_id, 0, 0, F_S3 | F_SECRET, NULL),
    RKEY("secret-access-key", V_STRING, secret_access_key, 0, 0, F_S3 | F_SECRET, NULL),
    RKEY("force-path-style", V_TRI, force_path_style, 0, 0, F_S3, NULL),
    RKEY("skip-verify", V_BOOL, skip_verify, 0, 0, F_S3, NULL),
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))
_Static_assert(RK_SECRET < NKEYS(replica_keys), "RK_SECRET out of range");
_Static_assert(NKEYS(global_keys) <= NKEYS_MAX, "seen[] too small");
_Static_assert(NKEYS(db_keys) <= NKEYS_MAX, "seen[] too small");
_Static_assert(NKEYS(replica_keys) <= NKEYS_MAX, "seen[] too small");

/* ---- messages ---------------------------------------------------------------------- */

/* Record the first error as "NAME:LINE: msg" (LINE omitted when 0). Returns 0 so an inih
 * handler can `return fail(...)`. */
static int fail(struct parse *ps, int code, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct parse *ps, int code, int line, const char *fmt, ...)
{
    char msg[LC_ERR_LEN];
    va_list ap;

    if (ps->failed)
        return 0;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        lc_err_set(ps->err, code, "%s:%d: %s", ps->name, line, msg);
    else
        lc_err_set(ps->err, code, "%s: %s", ps->name, msg);
    ps->failed = 1;
    ps->fail_line = line;
    ps->rc = code;
    return 0;
}

/* Quote-safe excerpt of user text for a message: at most SHOW_MAX bytes, control and
 * quote characters replaced by '?', "..." when cut. */
static const char *show(const char *s, size_t n, char *buf, size_t len)
{
    size_t o = 0, i;

    for (i = 0; i < n && s[i] && i < SHOW_MAX && o + 4 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (i < n && s[i] && o + 4 <= len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

static const char *shows(const char *s, char *buf, size_t len)
{
    return show(s, strlen(s), buf, len);
}

/* ---- small parsers ----------------------------------------------------------------- */

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return LC_EINVAL;
}

/* A decimal integer, the whole string, no sign other than a leading '-'. */
static int parse_int(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
        return LC_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end != '\0')
        return LC_EINVAL;
    *out = v;
    return 0;
}

static int valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    }
    return 1;
}

/* Which replica type a URL names; SCHEME_NONE with a message otherwise. */
static enum scheme url_scheme(const char *url, char *msg, size_t len)
{
    const char *sep = strstr(url, "://");
    char b[SHOW_MAX + 8];

    if (!sep) {
        snprintf(msg, len, "expected file:///PATH or s3://BUCKET/PATH, got \"%s\"",
                 shows(url, b, sizeof(b)));
        return SCHEME_NONE;
    }
    if ((size_t)(sep - url) == 4 && strncmp(url, "file", 4) == 0) {
        if (sep[3] != '/') {
            snprintf(msg, len, "file url needs an absolute path (file:///PATH), got \"%s\"",
                     shows(url, b, sizeof(b)));
            return SCHEME_NONE;
        }
        return SCHEME_FILE;
    }
    if ((size_t)(sep - url) == 2 && strncmp(url, "s3", 2) == 0)
        return SCHEME_S3;
    snprintf(msg, len, "unsupported scheme \"%s\" (use file or s3)",
             show(url, (size_t)(sep - url), b, sizeof(b)));
    return SCHEME_NONE;
}

/* The bucket an s3 URL names in its host part (may be empty). */
static void url_host(const char *url, char *buf, size_t len)
{
    const char *h = strstr(url, "://");
    size_t n;

    h = h ? h + 3 : url;
    n = strcspn(h, "/?#");
    snprintf(buf, len, "%.*s", (int)n, h);
}

/* Make path absolute against the cwd and lexically clean (no "//", ".", ".." parts,
 * no trailing slash), like Go's filepath.Abs. Does not touch the file system beyond
 * getcwd(), so the file need not exist. */
static int path_abs(const char *in, char *out, size_t len, struct lc_error *err)
{
    char tmp[2 * LC_PATH_MAX];
    const char *p;
    size_t o = 1;

    if (!*in)
        return lc_err_set(err, LC_EINVAL, "empty");
    if (in[0] == '/') {
        if (strlen(in) >= sizeof(tmp))
            return lc_err_set(err, LC_EINVAL, "too long (max %d bytes)", LC_PATH_MAX - 1);
        memcpy(tmp, in, strlen(in) + 1);
    } else {
        char cwd[LC_PATH_MAX];
        int n;
        if (!getcwd(cwd, sizeof(cwd)))
            return lc_err_set(err, LC_EIO, "getcwd: %s", strerror(errno));
        n = snprintf(tmp, sizeof(tmp), "%s/%s", cwd, in);
        if (n < 0 || (size_t)n >= sizeof(tmp))
            return lc_err_set(err, LC_EINVAL, "too long (max %d bytes)", LC_PATH_MAX - 1);
    }
    if (len < 2)
        return lc_err_set(err, LC_EINVAL, "path buffer too small");
    out[0] = '/';
    for (p = tmp; *p;) {
        const char *s;
        size_t n;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        s = p;
        while (*p && *p != '/')
            p++;
        n = (size_t)(p - s);
        if (n == 1 && s[0] == '.')
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 1 && out[o - 1] != '/')
                o--;
            if (o > 1)
                o--;
            continue;
        }
        if (o + (o > 1) + n + 1 > len)
            return lc_err_set(err, LC_EINVAL, "too long (max %zu bytes)", len - 1);
        if (o > 1)
            out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    out[o] = '\0';
    return 0;
}

/* The path with symlinks resolved when it (or else its directory) exists, for comparing
 * two paths that may name the same file. Falls back to the path itself. */
static void path_canon(const char *abs, char *out, size_t len)
{
    char dir[LC_PATH_MAX], real[PATH_MAX];
    const char *slash;

    if (realpath(abs, real)) {
        snprintf(out, len, "%s", real);
        return;
    }
    slash = strrchr(abs, '/');
    if (slash && slash != abs) {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - abs), abs);
        if (realpath(dir, real)) {
            int n = snprintf(out, len, "%s%s", real, slash);
            if (n >= 0 && (size_t)n < len)
                return;
        }
    }
    snprintf(out, len, "%s", abs);
}

/* Expand ${VAR} from the environment into out (at most len-1 bytes). A '$' not followed
 * by '{' is literal; the expansion is not rescanned. On error msg says why, without
 * quoting the value (it may be a secret). */
static int expand(const char *in, char *out, size_t len, char *msg, size_t msglen)
{
    size_t o = 0;

    for (const char *p = in; *p;) {
        const char *add = p;
        size_t n = 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            char var[VAR_NAME_MAX];
            size_t vn;
            if (!close) {
                snprintf(msg, msglen, "unterminated ${ (expected ${NAME})");
                return LC_EINVAL;
            }
            vn = (size_t)(close - (p + 2));
            if (vn == 0 || vn >= sizeof(var) || isdigit((unsigned char)p[2])) {
                snprintf(msg, msglen, "bad variable name in ${...}");
                return LC_EINVAL;
            }
            for (size_t i = 0; i < vn; i++) {
                if (!isalnum((unsigned char)p[2 + i]) && p[2 + i] != '_') {
                    snprintf(msg, msglen, "bad variable name in ${...}");
                    return LC_EINVAL;
                }
            }
            memcpy(var, p + 2, vn);
            var[vn] = '\0';
            add = getenv(var);
            if (!add)
                add = "";
            n = strlen(add);
            p = close + 1;
        } else {
            p++;
        }
        if (n >= len - o) {
            snprintf(msg, msglen, "value too long after expansion (max %zu bytes)", len - 1);
            return LC_EINVAL;
        }
        memcpy(out + o, add, n);
        o += n;
    }
    out[o] = '\0';
    return 0;
}

/* ---- defaults shared by files and ad hoc use ---------------------------------------- */

static void db_init(struct lc_db_config *db)
{
    db->min_checkpoint_pages = 1000;
    db->max_checkpoint_pages = 10000;
    db->truncate_pages = 500000;
    db->checkpoint_interval_ns = 60 * NS_PER_S;
    db->max_wal_index_bytes = 1073741824LL;
    db->max_spool_bytes = 4294967296LL;
    db->watch = 1;
}

/* Absolute db path and meta dir (default DIR/.BASE-litecast). Messages name the key. */
static int db_fill(struct lc_db_config *db, struct lc_error *err)
{
    char abs[LC_PATH_MAX];
    const char *slash;
    int n, rc;

    if (!db->path[0])
        return lc_err_set(err, LC_EINVAL, "path: missing");
    rc = path_abs(db->path, abs, sizeof(abs), err);
    if (rc) {
        lc_err_wrap(err, "path");
        return rc;
    }
    slash = strrchr(abs, '/');
    if (!slash[1])
        return lc_err_set(err, LC_EINVAL, "path: %s is not a file path", abs);
    memcpy(db->path, abs, strlen(abs) + 1);
    if (!db->meta_dir[0]) {
        n = snprintf(db->meta_dir, sizeof(db->meta_dir), "%.*s.%s-litecast",
                     (int)(slash + 1 - abs), abs, slash + 1);
        if (n < 0 || (size_t)n >= sizeof(db->meta_dir)) {
            db->meta_dir[0] = '\0';
            return lc_err_set(err, LC_EINVAL, "meta-dir: default for %s is too long", abs);
        }
    } else {
        rc = path_abs(db->meta_dir, abs, sizeof(abs), err);
        if (rc) {
            lc_err_wrap(err, "meta-dir");
            return rc;
        }
        memcpy(db->meta_dir, abs, strlen(abs) + 1);
    }
    return 0;
}

static void replica_init(struct lc_replica_config *r)
{
    r->retention_ns = 24 * 3600 * NS_PER_S;
    r->retention_check_ns = 3600 * NS_PER_S;
    r->snapshot_interval_ns = 0;
    if (!r->sync_interval_set)
        r->sync_interval_ns = 0;
    r->force_path_style = -1;
    r->skip_verify = 0;
}

/* Copy the first non-empty variable of names into field. */
static int env_default(char *field, size_t size, const char *key, const char *const names[2],
                       struct lc_error *err)
{
    for (int i = 0; i < 2 && !field[0]; i++) {
        const char *v = getenv(names[i]);
        if (!v || !*v)
            continue;
        if (strlen(v) >= size)
            return lc_err_set(err, LC_EINVAL, "%s: value of $%s too long (max %zu bytes)", key,
                              names[i], size - 1);
        memcpy(field, v, strlen(v) + 1);
    }
    return 0;
}

/* Everything that depends on the URL's scheme, once all keys are known. */
static int replica_fill(struct lc_replica_config *r, struct lc_error *err)
{
    static const char *const akid[2] = {"AWS_ACCESS_KEY_ID", "LITESTREAM_ACCESS_KEY_ID"};
    static const char *const secret[2] = {"AWS_SECRET_ACCESS_KEY",
                                          "LITESTREAM_SECRET_ACCESS_KEY"};
    char msg[LC_ERR_LEN], host[256];
    enum scheme sc;
    int rc;

    if (!r->url[0])
        return lc_err_set(err, LC_EINVAL, "url: missing");
    sc = url_scheme(r->url, msg, sizeof(msg));
    if (sc == SCHEME_NONE)
        return lc_err_set(err, LC_EINVAL, "url: %s", msg);
    if (sc == SCHEME_S3) {
        url_host(r->url, host, sizeof(host));
        if (!host[0] && !r->bucket[0])
            return lc_err_set(err, LC_EINVAL,
                              "url: no bucket (use s3://BUCKET/PATH or the bucket key)");
        if (!r->sync_interval_set)
            r->sync_interval_ns = NS_PER_S;
        rc = env_default(r->access_key_id, sizeof(r->access_key_id), "access-key-id", akid, err);
        if (rc)
            return rc;
        rc = env_default(r->secret_access_key, sizeof(r->secret_access_key),
                         "secret-access-key", secret, err);
        if (rc)
            return rc;
        if (r->endpoint[0] && !r->region[0])
            snprintf(r->region, sizeof(r->region), "us-east-1");
    } else if (!r->sync_interval_set) {
        r->sync_interval_ns = 0;
    }
    if (r->retention_ns > 0 && r->retention_check_ns > r->retention_ns)
        r->retention_check_ns = r->retention_ns;
    return 0;
}

/* ---- public: defaults and arrays --------------------------------------------------- */

void lc_config_defaults(struct lc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->debounce_ns = 1 * NS_PER_MS;
    cfg->max_delay_ns = 5 * NS_PER_MS;
    cfg->fallback_interval_ns = 1 * NS_PER_S;
    cfg->shutdown_timeout_ns = 10 * NS_PER_S;
    cfg->log_level = LC_LOG_INFO;
}

int lc_config_db_defaults(struct lc_db_config *db, struct lc_error *err)
{
    db_init(db);
    return db_fill(db, err);
}

int lc_config_replica_defaults(struct lc_replica_config *r, struct lc_error *err)
{
    replica_init(r);
    return replica_fill(r, err);
}

/* Append one element of size sz to *arr holding *n, growing to the next power of two. */
static int append(void **arr, size_t *n, size_t sz, const void *elem)
{
    size_t cnt = *n;

    if (cnt >= MAX_ENTRIES)
        return LC_ENOMEM;
    if (cnt == 0 || (cnt & (cnt - 1)) == 0) {
        size_t cap = cnt ? cnt * 2 : 1;
        void *p = realloc(*arr, cap * sz);
        if (!p)
            return LC_ENOMEM;
        *arr = p;
    }
    memcpy((char *)*arr + cnt * sz, elem, sz);
    *n = cnt + 1;
    return 0;
}

static int append_db(struct lc_config *cfg, const struct lc_db_config *db)
{
    void *arr = cfg->dbs;
    int rc = append(&arr, &cfg->ndbs, sizeof(*db), db);
    cfg->dbs = arr;
    return rc;
}

static int append_replica(struct lc_config *cfg, const struct lc_replica_config *r)
{
    void *arr = cfg->replicas;
    int rc = append(&arr, &cfg->nreplicas, sizeof(*r), r);
    cfg->replicas = arr;
    return rc;
}

int lc_config_add_db(struct lc_config *cfg, const struct lc_db_config *db, struct lc_error *err)
{
    for (size_t i = 0; i < cfg->ndbs; i++) {
        if (db->name[0] && strcmp(cfg->dbs[i].name, db->name) == 0)
            return lc_err_set(err, LC_EINVAL, "db %s: duplicate name", db->name);
        if (strcmp(cfg->dbs[i].path, db->path) == 0)
            return lc_err_set(err, LC_EINVAL, "db %s: path %s already configured", db->name,
                              db->path);
    }
    if (append_db(cfg, db))
        return lc_err_set(err, LC_ENOMEM, "db %s: %s", db->name,
                          cfg->ndbs >= MAX_ENTRIES ? "too many dbs (max 10000)"
                                                   : "out of memory");
    return 0;
}

int lc_config_add_replica(struct lc_config *cfg, const struct lc_replica_config *r,
                          struct lc_error *err)
{
    for (size_t i = 0; i < cfg->nreplicas; i++) {
        if (r->name[0] && strcmp(cfg->replicas[i].name, r->name) == 0)
            return lc_err_set(err, LC_EINVAL, "replica %s: duplicate name", r->name);
    }
    if (!lc_config_find_db(cfg, r->db))
        return lc_err_set(err, LC_EINVAL, "replica %s: unknown db \"%s\"", r->name, r->db);
    if (append_replica(cfg, r))
        return lc_err_set(err, LC_ENOMEM, "replica %s: %s", r->name,
                          cfg->nreplicas >= MAX_ENTRIES ? "too many replicas (max 10000)"
                                                        : "out of memory");
    return 0;
}

const struct lc_db_config *lc_config_find_db(const struct lc_config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->ndbs; i++) {
        if (strcmp(cfg->dbs[i].name, name) == 0)
            return &cfg->dbs[i];
    }
    return NULL;
}

const struct lc_db_config *lc_config_find_db_path(const struct lc_config *cfg, const char *path)
{
    char abs[LC_PATH_MAX], want[LC_PATH_MAX], have[LC_PATH_MAX];

    if (!cfg || !path || path_abs(path, abs, sizeof(abs), NULL))
        return NULL;
    for (size_t i = 0; i < cfg->ndbs; i++) {
        if (strcmp(cfg->dbs[i].path, abs) == 0)
            return &cfg->dbs[i];
    }
    path_canon(abs, want, sizeof(want));
    for (size_t i = 0; i < cfg->ndbs; i++) {
        path_canon(cfg->dbs[i].path, have, sizeof(have));
        if (strcmp(have, want) == 0)
            return &cfg->dbs[i];
    }
    return NULL;
}

void lc_config_free(struct lc_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->dbs);
    free(cfg->replicas);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- key checks (line = line of the key) -------------------------------------------- */

static int check_nonempty(struct parse *ps, int line, const char *key, const char *v)
{
    if (!*v)
        return fail(ps, LC_EINVAL, line, "%s: %s: must not be empty", ps->label, key);
    return 1;
}

/* HOST:PORT with a numeric port; HOST may be empty (all addresses) or [IPv6]. */
static int check_addr(struct parse *ps, int line, const char *key, const char *v)
{
    const char *colon = strrchr(v, ':');
    char b[SHOW_MAX + 8];
    int64_t port;

    if (!*v)
        return 1;
    if (!colon || parse_int(colon + 1, &port) || port < 1 || port > 65535 ||
        (memchr(v, ':', (size_t)(colon - v)) && v[0] != '['))
        return fail(ps, LC_EINVAL, line, "%s: %s: expected HOST:PORT, got \"%s\"", ps->label,
                    key, shows(v, b, sizeof(b)));
    return 1;
}

static int check_socket(struct parse *ps, int line, const char *key, const char *v)
{
    if (strlen(v) > SOCKET_PATH_MAX)
        return fail(ps, LC_EINVAL, line, "%s: %s: path too long for a unix socket (max %zu bytes)",
                    ps->label, key, SOCKET_PATH_MAX);
    return 1;
}

static int check_url(struct parse *ps, int line, const char *key, const char *v)
{
    char msg[LC_ERR_LEN];

    if (url_scheme(v, msg, sizeof(msg)) == SCHEME_NONE)
        return fail(ps, LC_EINVAL, line, "%s: %s: %s", ps->label, key, msg);
    return 1;
}

static int check_endpoint(struct parse *ps, int line, const char *key, const char *v)
{
    char b[SHOW_MAX + 8];

    if (!*v)
        return 1;
    if ((strncmp(v, "http://", 7) != 0 || !v[7]) && (strncmp(v, "https://", 8) != 0 || !v[8]))
        return fail(ps, LC_EINVAL, line,
                    "%s: %s: expected http://HOST[:PORT] or https://HOST[:PORT], got \"%s\"",
                    ps->label, key, shows(v, b, sizeof(b)));
    return 1;
}

/* ---- sections ---------------------------------------------------------------------- */

static const struct key *sect_keys(enum sect s, size_t *n)
{
    switch (s) {
    case S_GLOBAL:
        *n = NKEYS(global_keys);
        return global_keys;
    case S_DB:
        *n = NKEYS(db_keys);
        return db_keys;
    case S_REPLICA:
        *n = NKEYS(replica_keys);
        return replica_keys;
    default:
        *n = 0;
        return NULL;
    }
}

static void *sect_base(struct parse *ps)
{
    switch (ps->sect) {
    case S_GLOBAL:
        return ps->cfg;
    case S_DB:
        return &ps->cfg->dbs[ps->idx];
    case S_REPLICA:
        return &ps->cfg->replicas[ps->idx];
    default:
        return NULL;
    }
}

/* Checks that need the whole section; reported at the line of a key or the header. */
static int close_section(struct parse *ps)
{
    struct lc_error e = {0};

    if (ps->sect == S_GLOBAL) {
        struct lc_config *c = ps->cfg;
        if (c->max_delay_ns < c->debounce_ns) {
            char a[40], b[40];
            lc_duration_format(c->max_delay_ns, a, sizeof(a));
            lc_duration_format(c->debounce_ns, b, sizeof(b));
            if (!ps->seen[GK_MAX_DELAY])
                return fail(ps, LC_EINVAL, ps->seen[GK_DEBOUNCE],
                            "%s: debounce: %s is more than max-delay (default %s)", ps->label, b,
                            a);
            return fail(ps, LC_EINVAL, ps->seen[GK_MAX_DELAY],
                        "%s: max-delay: %s is less than debounce %s", ps->label, a, b);
        }
    } else if (ps->sect == S_DB) {
        struct lc_db_config *db = &ps->cfg->dbs[ps->idx];
        if (!ps->seen[DK_PATH])
            return fail(ps, LC_EINVAL, ps->sect_line, "%s: missing required key path",
                        ps->label);
        if (db->max_checkpoint_pages > 0 && db->max_checkpoint_pages < db->min_checkpoint_pages) {
            if (!ps->seen[DK_MAX_PAGES])
                return fail(ps, LC_EINVAL, ps->seen[DK_MIN_PAGES],
                            "%s: min-checkpoint-pages: %lld is more than max-checkpoint-pages "
                            "(default %lld)",
                            ps->label, (long long)db->min_checkpoint_pages,
                            (long long)db->max_checkpoint_pages);
            return fail(ps, LC_EINVAL, ps->seen[DK_MAX_PAGES],
                        "%s: max-checkpoint-pages: %lld is less than min-checkpoint-pages %lld "
                        "(use 0 to disable)",
                        ps->label, (long long)db->max_checkpoint_pages,
                        (long long)db->min_checkpoint_pages);
        }
        if (db_fill(db, &e))
            return fail(ps, e.code, ps->sect_line, "%s: %s", ps->label, e.msg);
    } else if (ps->sect == S_REPLICA) {
        struct lc_replica_config *r = &ps->cfg->replicas[ps->idx];
        if (!ps->seen[RK_DB])
            return fail(ps, LC_EINVAL, ps->sect_line, "%s: missing required key db", ps->label);
        if (!ps->seen[RK_URL])
            return fail(ps, LC_EINVAL, ps->sect_line, "%s: missing required key url",
                        ps->label);
        if (url_scheme(r->url, e.msg, sizeof(e.msg)) == SCHEME_FILE) {
            for (size_t i = 0; i < NKEYS(replica_keys); i++) {
                if (ps->seen[i] && (replica_keys[i].flags & F_S3))
                    return fail(ps, LC_EINVAL, ps->seen[i],
                                "%s: %s: only valid for s3:// replicas", ps->label,
                                replica_keys[i].name);
            }
        }
        if (replica_fill(r, &e))
            return fail(ps, e.code, ps->sect_line, "%s: %s", ps->label, e.msg);
    }
    ps->sect = S_NONE;
    return 1;
}

/* A "[...]" header: close the open section and open the new one. s, n: the text between
 * the brackets. */
static int open_section(struct parse *ps, const char *s, size_t n, int line)
{
    char b[SHOW_MAX + 8], kind[16], name[LC_NAME_MAX];
    size_t kn, i;

    if (ps->sect != S_NONE && !close_section(ps))
        return 0;
    memset(ps->seen, 0, sizeof(ps->seen));
    ps->sect_line = line;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    for (kn = 0; kn < n && !isspace((unsigned char)s[kn]); kn++)
        ;
    i = kn;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    if (kn == 8 && strncmp(s, "litecast", 8) == 0 && i == n) {
        if (ps->global_line)
            return fail(ps, LC_EINVAL, line, "duplicate section [litecast] (first at line %d)",
                        ps->global_line);
        ps->global_line = line;
        ps->sect = S_GLOBAL;
        snprintf(ps->label, sizeof(ps->label), "[litecast]");
        return 1;
    }
    if (!((kn == 2 && strncmp(s, "db", 2) == 0) || (kn == 7 && strncmp(s, "replica", 7) == 0)))
        return fail(ps, LC_EINVAL, line,
                    "unknown section [%s] (expected [litecast], [db NAME] or [replica NAME])",
                    show(s, n, b, sizeof(b)));
    snprintf(kind, sizeof(kind), "%.*s", (int)kn, s);
    if (i == n)
        return fail(ps, LC_EINVAL, line, "section [%s] needs a name: [%s NAME]", kind, kind);
    if (n - i >= sizeof(name))
        return fail(ps, LC_EINVAL, line, "section [%s %s]: name too long (max %zu bytes)", kind,
                    show(s + i, n - i, b, sizeof(b)), sizeof(name) - 1);
    snprintf(name, sizeof(name), "%.*s", (int)(n - i), s + i);
    if (!valid_name(name))
        return fail(ps, LC_EINVAL, line,
                    "section [%s %s]: bad name (use letters, digits, '.', '_' and '-')", kind,
                    shows(name, b, sizeof(b)));
    snprintf(ps->label, sizeof(ps->label), "[%s %s]", kind, name);

    if (kind[0] == 'd') {
        struct lc_db_config db;
        for (size_t j = 0; j < ps->cfg->ndbs; j++) {
            if (strcmp(ps->cfg->dbs[j].name, name) == 0)
                return fail(ps, LC_EINVAL, line, "duplicate section %s (first at line %d)",
                            ps->label, ps->cfg->dbs[j].line);
        }
        memset(&db, 0, sizeof(db));
        db_init(&db);
        memcpy(db.name, name, strlen(name) + 1);
        db.line = line;
        if (ps->cfg->ndbs >= MAX_ENTRIES)
            return fail(ps, LC_EINVAL, line, "too many [db] sections (max %d)", MAX_ENTRIES);
        if (append_db(ps->cfg, &db))
            return fail(ps, LC_ENOMEM, line, "out of memory");
        ps->idx = ps->cfg->ndbs - 1;
        ps->sect = S_DB;
    } else {
        struct lc_replica_config r;
        for (size_t j = 0; j < ps->cfg->nreplicas; j++) {
            if (strcmp(ps->cfg->replicas[j].name, name) == 0)
                return fail(ps, LC_EINVAL, line, "duplicate section %s (first at line %d)",
                            ps->label, ps->cfg->replicas[j].line);
        }
        memset(&r, 0, sizeof(r));
        replica_init(&r);
        memcpy(r.name, name, strlen(name) + 1);
        r.line = line;
        if (ps->cfg->nreplicas >= MAX_ENTRIES)
            return fail(ps, LC_EINVAL, line, "too many [replica] sections (max %d)",
                        MAX_ENTRIES);
        if (append_replica(ps->cfg, &r))
            return fail(ps, LC_ENOMEM, line, "out of memory");
        ps->idx = ps->cfg->nreplicas - 1;
        ps->sect = S_REPLICA;
    }
    return 1;
}

/* Parse v for key k into base. Returns 1, or 0 after fail(). */
static int set_value(struct parse *ps, const struct key *k, void *base, const char *v, int line)
{
    char *field = (char *)base + k->off;
    char b[SHOW_MAX + 8];
    int64_t x;
    int bv;

    switch (k->type) {
    case V_DURATION:
        if (v[0] == '-')
            return fail(ps, LC_EINVAL, line, "%s: %s: must not be negative", ps->label,
                        k->name);
        if (lc_duration_parse(v, &x))
            return fail(ps, LC_EINVAL, line,
                        "%s: %s: bad duration \"%s\" (use e.g. 500ms, 10s, 5m, 24h)", ps->label,
                        k->name, shows(v, b, sizeof(b)));
        if (x < k->min)
            return fail(ps, LC_EINVAL, line, "%s: %s: must be greater than 0", ps->label,
                        k->name);
        memcpy(field, &x, sizeof(x));
        break;
    case V_INT:
        if (parse_int(v, &x))
            return fail(ps, LC_EINVAL, line, "%s: %s: bad integer \"%s\"", ps->label, k->name,
                        shows(v, b, sizeof(b)));
        if (x < k->min || x > k->max) {
            if (x < 0 && k->min == 0)
                return fail(ps, LC_EINVAL, line, "%s: %s: must not be negative", ps->label,
                            k->name);
            if (x < k->min && k->min == 1)
                return fail(ps, LC_EINVAL, line, "%s: %s: must be greater than 0", ps->label,
                            k->name);
            return fail(ps, LC_EINVAL, line, "%s: %s: %lld out of range [%lld, %lld]",
                        ps->label, k->name, (long long)x, (long long)k->min,
                        (long long)k->max);
        }
        memcpy(field, &x, sizeof(x));
        break;
    case V_BOOL:
    case V_TRI:
        if (parse_bool(v, &bv))
            return fail(ps, LC_EINVAL, line,
                        "%s: %s: expected true or false (or yes/no, on/off, 1/0), got \"%s\"",
                        ps->label, k->name, shows(v, b, sizeof(b)));
        memcpy(field, &bv, sizeof(bv));
        break;
    case V_STRING:
        if (strlen(v) >= k->size)
            return fail(ps, LC_EINVAL, line, "%s: %s: value too long (max %zu bytes)",
                        ps->label, k->name, k->size - 1);
        if (k->check && !k->check(ps, line, k->name, v))
            return 0;
        memcpy(field, v, strlen(v) + 1);
        break;
    case V_LEVEL: {
        enum lc_log_level lvl;
        if (lc_log_level_parse(v, &lvl))
            return fail(ps, LC_EINVAL, line,
                        "%s: %s: unknown level \"%s\" (use debug, info, warn or error)",
                        ps->label, k->name, shows(v, b, sizeof(b)));
        memcpy(field, &lvl, sizeof(lvl));
        break;
    }
    }
    return 1;
}

/* Does a raw value hold text of its own, beyond ${VAR} references and blanks? */
static int has_literal(const char *raw)
{
    for (const char *p = raw; *p; p++) {
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            if (!close)
                return 1;
            p = close;
        } else if (!isspace((unsigned char)*p)) {
            return 1;
        }
    }
    return 0;
}

/* inih's callback for each "key = value". Returns 0 on error (message in ps). */
static int handler(void *user, const char *section, const char *key, const char *value)
{
    struct parse *ps = user;
    char v[VALUE_MAX], msg[LC_ERR_LEN], b[SHOW_MAX + 8];
    const struct key *keys;
    size_t n, i;
    int line = ps->lineno;

    (void)section; /* ours is tracked by the reader; inih's is cut at 49 bytes */
    if (ps->failed)
        return 0;
    if (ps->sect == S_NONE)
        return fail(ps, LC_EINVAL, line, "key \"%s\" outside any section",
                    shows(key, b, sizeof(b)));
    keys = sect_keys(ps->sect, &n);
    for (i = 0; i < n && strcmp(keys[i].name, key) != 0; i++)
        ;
    if (i == n)
        return fail(ps, LC_EINVAL, line, "%s: unknown key \"%s\"", ps->label,
                    shows(key, b, sizeof(b)));
    if (ps->seen[i])
        return fail(ps, LC_EINVAL, line, "%s: duplicate key %s (first at line %d)", ps->label,
                    keys[i].name, ps->seen[i]);
    ps->seen[i] = line;
    if (expand(value, v, sizeof(v), msg, sizeof(msg)))
        return fail(ps, LC_EINVAL, line, "%s: %s: %s", ps->label, keys[i].name, msg);
    if (!set_value(ps, &keys[i], sect_base(ps), v, line))
        return 0;
    if (ps->sect == S_REPLICA && i == RK_SYNC)
        ps->cfg->replicas[ps->idx].sync_interval_set = 1;
    if (ps->sect == S_REPLICA && i == RK_SECRET && !ps->cfg->secret_line && has_literal(value))
        ps->cfg->secret_line = line;
    return 1;
}

/* After "[": where the closing "]" is, the way inih finds it (an inline " ;" comment ends
 * the search), or NULL. */
static const char *header_end(const char *s, const char *end)
{
    for (const char *p = s; p < end; p++) {
        if (*p == ']')
            return p;
        if (*p == ';' && p > s && isspace((unsigned char)p[-1]))
            return NULL;
    }
    return NULL;
}

/* First line: skip a UTF-8 byte order mark as inih does. */
static const char *skip_bom(const struct parse *ps, const char *line, const char *end)
{
    if (line == ps->text && end - line >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        return line + 3;
    return line;
}

/* Look at a new line before inih does: bounds, and section headers. */
static int start_line(struct parse *ps, const char *line, const char *end)
{
    const char *s = skip_bom(ps, line, end), *close, *t;

    if (end - line > LINE_MAX_BYTES)
        return fail(ps, LC_EINVAL, ps->lineno, "line too long (max %d bytes)", LINE_MAX_BYTES);
    if (memchr(line, '\0', (size_t)(end - line)))
        return fail(ps, LC_EINVAL, ps->lineno, "nul byte in line");
    while (s < end && isspace((unsigned char)*s))
        s++;
    if (s == end || *s != '[')
        return 1;
    close = header_end(s + 1, end);
    if (!close)
        return 1; /* inih reports it; see syntax_error() */
    for (t = close + 1; t < end && isspace((unsigned char)*t); t++)
        ;
    if (t < end && *t != ';' && *t != '#') {
        char b[SHOW_MAX + 8];
        return fail(ps, LC_EINVAL, ps->lineno, "[%s]: unexpected text after the section header",
                    show(s + 1, (size_t)(close - (s + 1)), b, sizeof(b)));
    }
    return open_section(ps, s + 1, (size_t)(close - (s + 1)), ps->lineno);
}

/* fgets() over ps->text for inih, counting lines. inih may call it more than once for one
 * long line, so a line starts only after a '\n' has been handed out. */
static char *reader(char *str, int num, void *stream)
{
    struct parse *ps = stream;
    const char *nl;
    size_t n;

    if (ps->failed || ps->p >= ps->end || num < 2)
        return NULL;
    nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
    if (ps->at_bol) {
        ps->lineno++;
        if (!start_line(ps, ps->p, nl ? nl : ps->end))
            return NULL;
    }
    n = nl ? (size_t)(nl + 1 - ps->p) : (size_t)(ps->end - ps->p);
    if (n > (size_t)num - 1)
        n = (size_t)num - 1;
    memcpy(str, ps->p, n);
    str[n] = '\0';
    ps->p += n;
    ps->at_bol = str[n - 1] == '\n';
    return str;
}

/* inih rejected line `line` without calling us: say what is wrong with it, without quoting
 * it (it may hold a secret). */
static void syntax_error(struct parse *ps, int line)
{
    const char *p = ps->text, *end, *s;

    for (int i = 1; i < line && p < ps->end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(ps->end - p));
        p = nl ? nl + 1 : ps->end;
    }
    end = memchr(p, '\n', (size_t)(ps->end - p));
    if (!end)
        end = ps->end;
    s = skip_bom(ps, p, end);
    while (s < end && isspace((unsigned char)*s))
        s++;
    if (s < end && *s == '[')
        fail(ps, LC_EINVAL, line, "section header without closing ']'");
    else
        fail(ps, LC_EINVAL, line, "syntax error: expected \"key = value\" or [section]");
}

/* Cross-section checks, reported at the later section's header. */
static int validate(struct parse *ps)
{
    struct lc_config *c = ps->cfg;
    char(*canon)[LC_PATH_MAX] = NULL;

    for (size_t i = 0; i < c->nreplicas; i++) {
        const struct lc_replica_config *r = &c->replicas[i];
        char b[SHOW_MAX + 8];
        if (!lc_config_find_db(c, r->db))
            return fail(ps, LC_EINVAL, r->line, "[replica %s]: db: no [db %s] section", r->name,
                        shows(r->db, b, sizeof(b)));
        for (size_t j = 0; j < i; j++) {
            const struct lc_replica_config *o = &c->replicas[j];
            if (strcmp(o->url, r->url) == 0 && strcmp(o->bucket, r->bucket) == 0 &&
                strcmp(o->endpoint, r->endpoint) == 0)
                return fail(ps, LC_EINVAL, r->line,
                            "[replica %s]: url: same destination as [replica %s] (line %d)",
                            r->name, o->name, o->line);
        }
    }
    if (c->ndbs == 0)
        return 1;
    canon = calloc(c->ndbs, sizeof(*canon));
    if (!canon)
        return fail(ps, LC_ENOMEM, 0, "out of memory");
    for (size_t i = 0; i < c->ndbs; i++) {
        path_canon(c->dbs[i].path, canon[i], sizeof(canon[i]));
        for (size_t j = 0; j < i; j++) {
            const struct lc_db_config *o = &c->dbs[j], *d = &c->dbs[i];
            if (strcmp(canon[i], canon[j]) == 0) {
                fail(ps, LC_EINVAL, d->line,
                     "[db %s]: path: %s is also the path of [db %s] (line %d)", d->name, d->path,
                     o->name, o->line);
                break;
            }
            if (strcmp(o->meta_dir, d->meta_dir) == 0) {
                fail(ps, LC_EINVAL, d->line,
                     "[db %s]: meta-dir: %s is also the meta-dir of [db %s] (line %d)", d->name,
                     d->meta_dir, o->name, o->line);
                break;
            }
        }
        if (ps->failed)
            break;
    }
    free(canon);
    return !ps->failed;
}

/* Parse text (len bytes, NUL-terminated) into cfg, overwriting it without freeing it.
 * On failure cfg is left zeroed. */
static int parse_text(struct lc_config *cfg, const char *name, const char *text, size_t len,
                      struct lc_error *err)
{
    struct parse ps;
    bool ml = ini_allow_multiline, stack = ini_use_stack, grow = ini_allow_realloc;
    bool stop = ini_stop_on_first_error, novalue = ini_allow_no_value;
    bool inl = ini_allow_inline_comments;
    int maxline = ini_max_line, rc;

    memset(&ps, 0, sizeof(ps));
    ps.cfg = cfg;
    ps.name = name;
    ps.text = text;
    ps.p = text;
    ps.end = text + len;
    ps.at_bol = 1;
    ps.err = err;

    lc_config_defaults(cfg);
    ini_allow_multiline = false;
    ini_allow_inline_comments = true;
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_max_line = LINE_MAX_BYTES + 3; /* '\r', '\n', NUL */
    ini_stop_on_first_error = true;
    ini_allow_no_value = false;
    rc = ini_parse_stream(reader, &ps, handler, &ps);
    ini_allow_multiline = ml;
    ini_allow_inline_comments = inl;
    ini_use_stack = stack;
    ini_allow_realloc = grow;
    ini_max_line = maxline;
    ini_stop_on_first_error = stop;
    ini_allow_no_value = novalue;

    if (rc == -2)
        fail(&ps, LC_ENOMEM, 0, "out of memory");
    else if (rc > 0 && (!ps.failed || rc < ps.fail_line)) {
        ps.failed = 0; /* inih's error came first: it is the one to report */
        syntax_error(&ps, rc);
    }
    else if (rc < 0)
        fail(&ps, LC_EIO, 0, "parse failed");
    if (!ps.failed && ps.sect != S_NONE)
        close_section(&ps);
    if (!ps.failed)
        validate(&ps);
    if (ps.failed) {
        int code = ps.rc ? ps.rc : LC_EINVAL;
        lc_config_free(cfg);
        return code;
    }
    return 0;
}

int lc_config_load_string(struct lc_config *cfg, const char *name, const char *text,
                          struct lc_error *err)
{
    return parse_text(cfg, name, text, strlen(text), err);
}

int lc_config_load(struct lc_config *cfg, const char *path, struct lc_error *err)
{
    char *buf = NULL, abs[LC_PATH_MAX];
    size_t len = 0;
    int fd, rc;

    memset(cfg, 0, sizeof(*cfg));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, LC_EINVAL, "%s: open: %s", path, strerror(errno));
    buf = malloc(FILE_MAX + 1);
    if (!buf) {
        close(fd);
        return lc_err_set(err, LC_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return lc_err_set(err, LC_EINVAL, "%s: read: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > FILE_MAX) {
            close(fd);
            free(buf);
            return lc_err_set(err, LC_EINVAL, "%s: file too large (max %d bytes)", path,
                              FILE_MAX);
        }
    }
    struct stat sb;
    mode_t mode = fstat(fd, &sb) == 0 ? sb.st_mode & 07777 : 0;
    close(fd);
    buf[len] = '\0';
    rc = parse_text(cfg, path, buf, len, err);
    cfg->file_mode = mode;
    free(buf);
    if (rc)
        return rc;
    if (path_abs(path, abs, sizeof(abs), NULL) == 0)
        memcpy(cfg->path, abs, strlen(abs) + 1);
    else
        snprintf(cfg->path, sizeof(cfg->path), "%s", path);
    return 0;
}

int lc_config_secret_exposed(const struct lc_config *cfg)
{
    return cfg->secret_line > 0 && (cfg->file_mode & S_IROTH);
}
