/* Unit tests for src/metrics.c and src/status.c: the Prometheus exposition and the
 * status report of a hand-built daemon (fake lc_db / lc_replica structs over real files
 * in a temp dir), checked by a strict line parser and a small JSON validator; then both
 * servers driven through real sockets on a real libev loop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "metrics.h"
#include "status.h"
#include "util.h"

#define SEC 1000000000LL
#define GEN "0123456789abcdef"
#define SECRET "wJalrXUtnFEMI-K7MDENG-SECRETKEY"
#define ACCESS "AKIAEXAMPLEACCESSKEY"
#define WEIRD "we\"ird\\db\nx" /* a db name with a quote, a backslash and a newline */

/* ---- a fake daemon ------------------------------------------------------------------ */

struct fixture {
    char dir[256];
    struct lc_daemon d;
    struct lc_db *db[2];
    struct lc_replica *rep[3];
    struct lc_replica *reps0[2], *reps1[1];
    struct lc_daemon_db dbs[2];
};

static void write_file(const char *path, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(close(fd), 0);
}

static void path_of(char *buf, size_t len, const char *dir, const char *rel)
{
    assert_true((size_t)snprintf(buf, len, "%s/%s", dir, rel) < len);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char p[LC_PATH_MAX];
    struct lc_error err = {0};
    int64_t now_mono = lc_now_mono_ns(), now_wall = lc_now_wall_ns();

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/lc-test-metrics-XXXXXX");
    assert_non_null(mkdtemp(f->dir));

    /* db 0: "app", with a database, a -wal and two shadow files on disk */
    struct lc_db *db = calloc(1, sizeof(*db));
    assert_non_null(db);
    snprintf(db->cfg.name, sizeof(db->cfg.name), "app");
    path_of(db->cfg.path, sizeof(db->cfg.path), f->dir, "app.db");
    path_of(db->wal_path, sizeof(db->wal_path), f->dir, "app.db-wal");
    path_of(db->sh.meta_dir, sizeof(db->sh.meta_dir), f->dir, ".app.db-litecast");
    write_file(db->cfg.path, 8192);
    write_file(db->wal_path, 4152);
    path_of(p, sizeof(p), db->sh.meta_dir, "generations/" GEN "/wal");
    assert_int_equal(lc_mkdir_p(p, 0755, &err), 0);
    memcpy(db->sh.gen, GEN, 17);
    db->sh.index = 1;
    db->sh.size = 50;
    db->sh.fd = -1;
    assert_int_equal(lc_shadow_path(&db->sh, 0, p, sizeof(p)), 0);
    write_file(p, 100);
    assert_int_equal(lc_shadow_path(&db->sh, 1, p, sizeof(p)), 0);
    write_file(p, 50);
    db->stats.syncs = 10;
    db->stats.syncs_by_event = 6;
    db->stats.syncs_by_fallback = 3;
    db->stats.sync_errors = 1;
    db->stats.wal_bytes = 150;
    db->stats.checkpoints = 2;
    db->stats.checkpoint_errors = 1;
    f->db[0] = db;

    /* db 1: a name that needs escaping, nothing on disk, its last sync failed */
    db = calloc(1, sizeof(*db));
    assert_non_null(db);
    snprintf(db->cfg.name, sizeof(db->cfg.name), "%s", WEIRD);
    path_of(db->cfg.path, sizeof(db->cfg.path), f->dir, "missing\xff.db"); /* not UTF-8 */
    db->sh.fd = -1;
    snprintf(db->last_err, sizeof(db->last_err), "open database: no such file");
    f->db[1] = db;

    /* replica 0: file, caught up */
    struct lc_replica *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    snprintf(r->cfg.name, sizeof(r->cfg.name), "local");
    snprintf(r->cfg.url, sizeof(r->cfg.url), "file:///var/backups/app");
    r->db = f->db[0];
    memcpy(r->gen, GEN, 17);
    r->index = 1;
    r->offset = 50;
    r->known = 1;
    r->caught_up_mono_ns = now_mono - 1 * SEC;
    r->last_ok_wall_ns = 1700000000 * SEC + 500000000;
    r->stats.segments = 7;
    r->stats.wal_bytes = 150;
    r->stats.snapshots = 1;
    f->rep[0] = r;

    /* replica 1: s3 with credentials, failing, 5s behind */
    r = calloc(1, sizeof(*r));
    assert_non_null(r);
    snprintf(r->cfg.name, sizeof(r->cfg.name), "s3");
    snprintf(r->cfg.url, sizeof(r->cfg.url), "s3://bucket/app");
    snprintf(r->cfg.access_key_id, sizeof(r->cfg.access_key_id), ACCESS);
    snprintf(r->cfg.secret_access_key, sizeof(r->cfg.secret_access_key), SECRET);
    r->db = f->db[0];
    memcpy(r->gen, GEN, 17);
    r->index = 1;
    r->offset = 0;
    r->known = 1;
    r->caught_up_mono_ns = now_mono - 5 * SEC;
    r->stats.errors = 3;
    snprintf(r->last_err, sizeof(r->last_err), "put \"x\": connection refused\nretrying");
    f->rep[1] = r;

    /* replica 2: on the weird db, never caught up (behind since the daemon started) */
    r = calloc(1, sizeof(*r));
    assert_non_null(r);
    snprintf(r->cfg.name, sizeof(r->cfg.name), "bak");
    snprintf(r->cfg.url, sizeof(r->cfg.url), "file:///bak");
    r->db = f->db[1];
    f->rep[2] = r;

    f->reps0[0] = f->rep[0];
    f->reps0[1] = f->rep[1];
    f->reps1[0] = f->rep[2];
    f->dbs[0].db = f->db[0];
    f->dbs[0].reps = f->reps0;
    f->dbs[0].nreps = 2;
    f->dbs[1].db = f->db[1];
    f->dbs[1].reps = f->reps1;
    f->dbs[1].nreps = 1;
    f->d.dbs = f->dbs;
    f->d.ndbs = 2;
    f->d.started_wall_ns = now_wall - 2 * SEC;
    f->d.ready = 1;
    f->d.loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->d.loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct lc_error err = {0};

    lc_metrics_server_stop();
    lc_status_server_stop();
    ev_loop_destroy(f->d.loop);
    for (int i = 0; i < 3; i++)
        free(f->rep[i]);
    for (int i = 0; i < 2; i++)
        free(f->db[i]);
    lc_rm_rf(f->dir, &err);
    free(f);
    return 0;
}

/* ---- a strict reader of the Prometheus text format ---------------------------------- */

#define MAX_SAMPLES 256
#define MAX_FAMILIES 64

struct sample {
    char name[128];
    char labels[512]; /* "k=v,k=v", values unescaped */
    double value;
};

struct family {
    char name[128];
    int help, type;
    int closed; /* a later family started: its samples must not reappear */
};

struct expo {
    struct sample s[MAX_SAMPLES];
    size_t ns;
    struct family f[MAX_FAMILIES];
    size_t nf;
};

static int is_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Read a metric or label name at *p into buf; 0 when there is none. */
static size_t read_name(const char **p, char *buf, size_t len)
{
    size_t n = 0;
    while (is_name_char((*p)[n], n == 0) && n + 1 < len)
        n++;
    memcpy(buf, *p, n);
    buf[n] = '\0';
    *p += n;
    return n;
}

static struct family *family_get(struct expo *e, const char *name, int create)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0)
            return &e->f[i];
    if (!create)
        return NULL;
    assert_true(e->nf < MAX_FAMILIES);
    for (size_t i = 0; i < e->nf; i++)
        e->f[i].closed = 1;
    struct family *f = &e->f[e->nf++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

static void parse_line(struct expo *e, const char *line)
{
    char name[128];
    const char *p = line;

    if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
        int is_type = line[2] == 'T';
        p += 7;
        assert_true(read_name(&p, name, sizeof(name)) > 0);
        assert_true(*p == ' ');
        struct family *f = family_get(e, name, 1);
        assert_false(f->closed);
        if (is_type) {
            assert_false(f->type);
            assert_true(strcmp(p + 1, "counter") == 0 || strcmp(p + 1, "gauge") == 0);
            f->type = 1;
        } else {
            assert_false(f->help);
            assert_true(strlen(p + 1) > 0);
            f->help = 1;
        }
        return;
    }
    assert_true(line[0] != '#');
    assert_true(e->ns < MAX_SAMPLES);
    struct sample *s = &e->s[e->ns++];
    memset(s, 0, sizeof(*s));
    assert_true(read_name(&p, s->name, sizeof(s->name)) > 0);
    struct family *f = family_get(e, s->name, 0);
    assert_non_null(f);   /* HELP and TYPE come first... */
    assert_true(f->help && f->type);
    assert_false(f->closed); /* ...and a family's samples are contiguous */
    size_t o = 0;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            char lname[64];
            assert_true(read_name(&p, lname, sizeof(lname)) > 0);
            assert_true(p[0] == '=' && p[1] == '"');
            p += 2;
            o += (size_t)snprintf(s->labels + o, sizeof(s->labels) - o, "%s%s=",
                                  o ? "," : "", lname);
            while (*p != '"') {
                char c = *p++;
                assert_true(c != '\0' && c != '\n');
                if (c == '\\') {
                    c = *p++;
                    assert_true(c == '\\' || c == '"' || c == 'n');
                    if (c == 'n')
                        c = '\n';
                }
                assert_true(o + 1 < sizeof(s->labels));
                s->labels[o++] = c;
            }
            s->labels[o] = '\0';
            p++;
            if (*p == ',')
                p++;
            else
                assert_true(*p == '}');
        }
        p++;
    }
    assert_true(*p == ' ');
    p++;
    char *end;
    errno = 0;
    s->value = strtod(p, &end);
    assert_true(end > p && *end == '\0' && errno == 0);
}

static void parse_expo(struct expo *e, const struct lc_buf *b)
{
    char *text = malloc(b->len + 1);
    assert_non_null(text);
    memcpy(text, b->data, b->len);
    text[b->len] = '\0';
    assert_true(b->len > 0 && text[b->len - 1] == '\n');
    memset(e, 0, sizeof(*e));
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        parse_line(e, line);
    }
    free(text);
    for (size_t i = 0; i < e->nf; i++)
        assert_true(e->f[i].help && e->f[i].type);
}

static double value_of(const struct expo *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->ns; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0)
            return e->s[i].value;
    fail_msg("no sample %s{%s}", name, labels);
    return NAN;
}

static char *buf_str(struct lc_buf *b)
{
    assert_int_equal(lc_buf_append(b, "", 1), 0);
    b->len--;
    return (char *)b->data;
}

/* ---- metrics ------------------------------------------------------------------------ */

static void test_metrics_format(void **state)
{
    struct fixture *f = *state;
    struct lc_buf b = {0};
    static struct expo e;

    assert_int_equal(lc_metrics_format(&f->d, &b), 0);
    parse_expo(&e, &b);

    static const char *const want[] = {
        "litecast_db_size", "litecast_wal_size", "litecast_wal_bytes_total",
        "litecast_shadow_wal_index", "litecast_shadow_wal_size", "litecast_sync_runs_total",
        "litecast_sync_errors_total", "litecast_checkpoints_total",
        "litecast_checkpoint_errors_total", "litecast_replica_wal_bytes_total",
        "litecast_replica_wal_index", "litecast_replica_wal_offset",
        "litecast_replica_lag_seconds", "litecast_replica_last_success_timestamp_seconds",
        "litecast_replica_errors_total", "litecast_replica_segments_total",
        "litecast_replica_snapshots_total", "litecast_spool_bytes", "litecast_syncs_total",
        "litecast_inotify_overflows_total", "litecast_up",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_non_null(family_get(&e, want[i], 0));

    assert_true(value_of(&e, "litecast_db_size", "db=app") == 8192);
    assert_true(value_of(&e, "litecast_wal_size", "db=app") == 4152);
    assert_true(value_of(&e, "litecast_wal_bytes_total", "db=app") == 150);
    assert_true(value_of(&e, "litecast_shadow_wal_index", "db=app") == 1);
    assert_true(value_of(&e, "litecast_shadow_wal_size", "db=app") == 150);
    assert_true(value_of(&e, "litecast_spool_bytes", "db=app") == 150);
    assert_true(value_of(&e, "litecast_sync_runs_total", "db=app") == 10);
    assert_true(value_of(&e, "litecast_sync_errors_total", "db=app") == 1);
    assert_true(value_of(&e, "litecast_checkpoints_total", "db=app") == 2);
    assert_true(value_of(&e, "litecast_checkpoint_errors_total", "db=app") == 1);
    assert_true(value_of(&e, "litecast_syncs_total", "db=app,trigger=event") == 6);
    assert_true(value_of(&e, "litecast_syncs_total", "db=app,trigger=fallback") == 3);
    assert_true(value_of(&e, "litecast_syncs_total", "db=app,trigger=other") == 1);
    assert_true(value_of(&e, "litecast_replica_wal_index", "db=app,name=local") == 1);
    assert_true(value_of(&e, "litecast_replica_wal_offset", "db=app,name=local") == 50);
    assert_true(value_of(&e, "litecast_replica_wal_bytes_total", "db=app,name=local") == 150);
    assert_true(value_of(&e, "litecast_replica_segments_total", "db=app,name=local") == 7);
    assert_true(value_of(&e, "litecast_replica_snapshots_total", "db=app,name=local") == 1);
    assert_true(value_of(&e, "litecast_replica_errors_total", "db=app,name=s3") == 3);
    assert_true(value_of(&e, "litecast_replica_lag_seconds", "db=app,name=local") == 0);
    double lag = value_of(&e, "litecast_replica_lag_seconds", "db=app,name=s3");
    assert_true(lag >= 5.0 && lag < 7.0);
    assert_true(fabs(value_of(&e, "litecast_replica_last_success_timestamp_seconds",
                              "db=app,name=local") -
                     1700000000.5) < 1e-3);
    assert_true(value_of(&e, "litecast_replica_last_success_timestamp_seconds",
                         "db=app,name=s3") == 0);
    assert_true(value_of(&e, "litecast_inotify_overflows_total", "") == 0);
    assert_true(value_of(&e, "litecast_up", "") == 1);

    /* the weird name: escaped on the wire, intact after unescaping */
    assert_non_null(strstr(buf_str(&b), "db=\"we\\\"ird\\\\db\\nx\""));
    assert_true(value_of(&e, "litecast_db_size", "db=" WEIRD) == 0);
    assert_true(value_of(&e, "litecast_spool_bytes", "db=" WEIRD) == 0);
    lag = value_of(&e, "litecast_replica_lag_seconds", "db=" WEIRD ",name=bak");
    assert_true(lag >= 2.0 && lag < 4.0);

    assert_null(strstr(buf_str(&b), SECRET));
    assert_null(strstr(buf_str(&b), ACCESS));
    lc_buf_free(&b);
}

static void test_metrics_bounded(void **state)
{
    struct fixture *f = *state;
    struct lc_buf b = {.max = 256};

    assert_int_equal(lc_metrics_format(&f->d, &b), LC_ENOMEM);
    assert_true(b.len <= 256);
    lc_buf_free(&b);
}

/* ---- a small JSON validator --------------------------------------------------------- */

static const char *json_value(const char *p);

static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p++;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            c = (unsigned char)*p++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", *p++) || !p[-1])
                        return NULL;
            } else if (!strchr("\"\\/bfnrt", c) || !c) {
                return NULL;
            }
        } else if (c >= 0x80) {
            /* multi-byte: must be well-formed */
            int n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
            if (n < 0)
                return NULL;
            for (int i = 0; i < n; i++)
                if (((unsigned char)*p++ & 0xc0) != 0x80)
                    return NULL;
        }
    }
    return p + 1;
}

static const char *json_value(const char *p)
{
    p = json_ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int obj = *p == '{';
        p = json_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (!(p = json_string(json_ws(p))))
                    return NULL;
                p = json_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            if (!(p = json_value(p)))
                return NULL;
            p = json_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return json_string(p);
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "null", 4) == 0)
        return p + 4;
    if (strncmp(p, "false", 5) == 0)
        return p + 5;
    char *end;
    strtod(p, &end);
    return end > p ? end : NULL;
}

/* ---- status ------------------------------------------------------------------------- */

static void test_status_text(void **state)
{
    struct fixture *f = *state;
    struct lc_buf b = {0};

    assert_int_equal(lc_status_format(&f->d, 0, &b), 0);
    char *t = buf_str(&b);
    char want[LC_PATH_MAX + 64];

    assert_non_null(strstr(t, "litecast: ready, up 2s, 2 databases, 3 replicas\n"));
    assert_non_null(strstr(t, "\ndatabase      app\n"));
    snprintf(want, sizeof(want), "\n  path          %s/app.db\n", f->dir);
    assert_non_null(strstr(t, want));
    assert_non_null(strstr(t, "\n  generation    " GEN "\n"));
    assert_non_null(strstr(t, "\n  position      " GEN "/00000001:50\n"));
    assert_non_null(strstr(t, "\n  wal size      4152\n"));
    assert_non_null(strstr(t, "\n  replica       local\n    type          file\n"
                              "    position      " GEN "/00000001:50\n"
                              "    lag           0s\n"
                              "    last success  2023-11-14T22:13:20Z\n"
                              "    last error    -\n"));
    assert_non_null(strstr(t, "\n  replica       s3\n    type          s3\n"
                              "    position      " GEN "/00000001:0\n    lag           5"));
    /* control characters never break a line */
    assert_non_null(strstr(t, "\n    last error    put \"x\": connection refused?retrying\n"));
    assert_non_null(strstr(t, "\ndatabase      we\"ird\\db?x\n"));
    assert_non_null(strstr(t, "\n  generation    -\n"));
    assert_non_null(strstr(t, "\n  last error    open database: no such file\n"));
    /* the summary is the last line */
    char *sum = strstr(t, "\nsummary databases=2 replicas=3 failing_databases=1 "
                          "failing_replicas=1 max_lag_seconds=5.");
    assert_non_null(sum);
    assert_ptr_equal(strchr(sum + 1, '\n'), t + b.len - 1);
    assert_null(strstr(t, SECRET));
    assert_null(strstr(t, ACCESS));
    assert_null(strstr(t, "s3://bucket"));
    lc_buf_free(&b);
}

static void test_status_json(void **state)
{
    struct fixture *f = *state;
    struct lc_buf b = {0};

    assert_int_equal(lc_status_format(&f->d, 1, &b), 0);
    char *t = buf_str(&b);
    const char *end = json_value(t);
    assert_non_null(end);
    assert_string_equal(end, "\n");

    assert_true(strncmp(t, "{\"ready\":true,\"uptime_seconds\":2.", 32) == 0);
    assert_non_null(strstr(t, "\"databases\":[{\"name\":\"app\",\"path\":"));
    assert_non_null(strstr(t, "\"generation\":\"" GEN "\",\"index\":1,\"offset\":50,"
                              "\"position\":\"" GEN "/00000001:50\",\"wal_size\":4152,"
                              "\"last_error\":null,\"replicas\":[{\"name\":\"local\","
                              "\"type\":\"file\""));
    assert_non_null(strstr(t, "\"caught_up\":true,\"lag_seconds\":0.000,"
                              "\"last_success\":\"2023-11-14T22:13:20Z\",\"last_error\":null}"));
    assert_non_null(strstr(t, "{\"name\":\"s3\",\"type\":\"s3\""));
    assert_non_null(strstr(t, "\"last_error\":\"put \\\"x\\\": connection refused\\nretrying\""));
    assert_non_null(strstr(t, "{\"name\":\"we\\\"ird\\\\db\\nx\",\"path\":"));
    assert_non_null(strstr(t, "/missing\\ufffd.db\""));
    assert_non_null(strstr(t, "\"generation\":null,"));
    assert_non_null(strstr(t, "\"summary\":{\"databases\":2,\"replicas\":3,"
                              "\"failing_databases\":1,\"failing_replicas\":1,"
                              "\"max_lag_seconds\":5."));
    assert_null(strstr(t, SECRET));
    assert_null(strstr(t, ACCESS));
    assert_null(strstr(t, "s3://bucket"));
    lc_buf_free(&b);
}

static void test_lag(void **state)
{
    struct fixture *f = *state;
    int64_t mono = lc_now_mono_ns(), wall = lc_now_wall_ns();

    assert_int_equal(lc_status_lag_ns(&f->d, f->rep[0], mono, wall), 0);
    f->rep[0]->offset = 10; /* fell behind since it last caught up a second ago */
    int64_t lag = lc_status_lag_ns(&f->d, f->rep[0], mono, wall);
    assert_true(lag >= 1 * SEC && lag < 2 * SEC);
    f->rep[0]->offset = 50;
    assert_string_equal(lc_status_replica_type(&f->rep[1]->cfg), "s3");
    assert_string_equal(lc_status_replica_type(&f->rep[0]->cfg), "file");
}

/* ---- the servers, through real sockets ---------------------------------------------- */

/* Send req on fd (already connected) and collect everything until EOF, running loop. */
static void exchange(struct ev_loop *loop, int fd, const char *req, struct lc_buf *out)
{
    int64_t deadline = lc_now_mono_ns() + 5 * SEC;

    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    if (*req)
        assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    for (;;) {
        assert_true(lc_now_mono_ns() < deadline);
        ev_run(loop, EVRUN_NOWAIT);
        assert_int_equal(lc_buf_reserve(out, 4096), 0);
        ssize_t n = recv(fd, out->data + out->len, out->cap - out->len, 0);
        if (n == 0)
            break;
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
            usleep(1000);
            continue;
        }
        out->len += (size_t)n;
    }
    close(fd);
    buf_str(out);
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void test_status_server(void **state)
{
    struct fixture *f = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct lc_error err = {0};
    struct lc_buf b = {0};
    struct stat st;
    char path[200];
    int fd;

    assert_true((size_t)snprintf(path, sizeof(path), "%s/status.sock", f->dir) < sizeof(path));
    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);

    /* a live socket at the path is refused */
    int live = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(live, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(live, 1), 0);
    assert_int_equal(lc_status_server_start(&f->d, path, &err), LC_EINVAL);
    assert_non_null(strstr(err.msg, "another process"));
    /* once it is dead (file left behind), it is stale and replaced */
    close(live);
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(lc_status_server_start(&f->d, path, &err), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(lc_status_server_start(&f->d, path, &err), LC_EINVAL); /* one only */

    exchange(f->d.loop, unix_connect(path), "status json\n", &b);
    assert_non_null(json_value((char *)b.data));
    assert_non_null(strstr((char *)b.data, "\"summary\":{"));
    b.len = 0;
    exchange(f->d.loop, unix_connect(path), "status\r\n", &b);
    assert_true(strncmp((char *)b.data, "litecast: ready", 15) == 0);
    assert_non_null(strstr((char *)b.data, "\nsummary databases=2"));
    b.len = 0;
    fd = unix_connect(path);
    assert_int_equal(send(fd, "status", 6, 0), 6);
    assert_int_equal(shutdown(fd, SHUT_WR), 0); /* end of input ends the request */
    exchange(f->d.loop, fd, "", &b);
    assert_true(strncmp((char *)b.data, "litecast: ready", 15) == 0);
    b.len = 0;
    exchange(f->d.loop, unix_connect(path), "gimme\n", &b);
    assert_string_equal((char *)b.data, "error: unknown request\n");

    /* more clients than slots: the extra ones are closed, the server keeps serving */
    int many[LC_STATUS_MAX_CLIENTS + 4];
    for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++) {
        many[i] = unix_connect(path);
        ev_run(f->d.loop, EVRUN_NOWAIT); /* accept, or the backlog fills and connect blocks */
    }
    for (int k = 0; k < 10; k++)
        ev_run(f->d.loop, EVRUN_NOWAIT);
    for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++)
        close(many[i]);
    for (int k = 0; k < 10; k++)
        ev_run(f->d.loop, EVRUN_NOWAIT);
    b.len = 0;
    exchange(f->d.loop, unix_connect(path), "status\n", &b);
    assert_true(strncmp((char *)b.data, "litecast: ready", 15) == 0);

    lc_status_server_stop();
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(errno, ENOENT);
    lc_status_server_stop(); /* no-op */

    /* a regular file at the path is never removed */
    int rf = open(path, O_WRONLY | O_CREAT, 0644);
    assert_true(rf >= 0);
    close(rf);
    assert_int_equal(lc_status_server_start(&f->d, path, &err), LC_EINVAL);
    assert_non_null(strstr(err.msg, "not a socket"));
    assert_int_equal(lstat(path, &st), 0);
    lc_buf_free(&b);
}

static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sa.sin_port = htons((uint16_t)port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void test_metrics_server(void **state)
{
    struct fixture *f = *state;
    struct lc_error err = {0};
    struct lc_buf b = {0};
    char addr[64];
    int port = free_port();

    assert_int_equal(lc_metrics_server_start(&f->d, "nonsense", &err), LC_EINVAL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(lc_metrics_server_start(&f->d, addr, &err), 0);
    assert_int_equal(lc_metrics_server_start(&f->d, addr, &err), LC_EINVAL);

    exchange(f->d.loop, tcp_connect(port),
             "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", &b);
    char *t = (char *)b.data;
    assert_true(strncmp(t, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(t, "\r\nContent-Type: text/plain; version=0.0.4"));
    char *body = strstr(t, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    char cl[64];
    snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(t, cl));
    assert_non_null(strstr(body, "\nlitecast_up 1\n"));

    b.len = 0;
    exchange(f->d.loop, tcp_connect(port), "GET /metrics?x=1 HTTP/1.0\n\n", &b);
    assert_true(strncmp((char *)b.data, "HTTP/1.1 200 OK\r\n", 17) == 0);
    b.len = 0;
    exchange(f->d.loop, tcp_connect(port), "GET / HTTP/1.1\r\n\r\n", &b);
    assert_true(strncmp((char *)b.data, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    b.len = 0;
    exchange(f->d.loop, tcp_connect(port), "POST /metrics HTTP/1.1\r\n\r\n", &b);
    assert_true(strncmp((char *)b.data, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    b.len = 0;
    exchange(f->d.loop, tcp_connect(port), "GET /metricsx HTTP/1.1\r\n\r\n", &b);
    assert_true(strncmp((char *)b.data, "HTTP/1.1 404 Not Found\r\n", 24) == 0);

    /* a request that never ends within the bound is refused, not buffered */
    /* (exactly the bound: more would be unread at close and reset the connection) */
    char *big = malloc(LC_METRICS_REQ_MAX + 1);
    assert_non_null(big);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    memset(big + 26, 'a', LC_METRICS_REQ_MAX - 26);
    big[LC_METRICS_REQ_MAX] = '\0';
    b.len = 0;
    int fd = tcp_connect(port);
    int64_t deadline = lc_now_mono_ns() + 5 * SEC;
    size_t off = 0, len = strlen(big);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    while (off < len && lc_now_mono_ns() < deadline) { /* the server may close early */
        ssize_t n = send(fd, big + off, len - off, MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN)
            break;
        ev_run(f->d.loop, EVRUN_NOWAIT);
    }
    exchange(f->d.loop, fd, "", &b);
    assert_true(strncmp((char *)b.data, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    free(big);

    lc_metrics_server_stop();
    lc_metrics_server_stop();
    /* the port is free again */
    assert_int_equal(lc_metrics_server_start(&f->d, addr, &err), 0);
    lc_metrics_server_stop();
    snprintf(addr, sizeof(addr), "[::1]:%d", port);
    if (lc_metrics_server_start(&f->d, addr, &err) == 0) /* hosts without IPv6 skip this */
        lc_metrics_server_stop();
    lc_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_server, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
