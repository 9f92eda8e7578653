/* lc-storetool: drive one store (file:// or s3://) from the command line, for tests.
 *
 *   lc-storetool [options] URL put KEY FILE       upload FILE (streamed) as KEY
 *   lc-storetool [options] URL get KEY OUTFILE    download KEY (streamed) into OUTFILE
 *   lc-storetool [options] URL list PREFIX        "NAME SIZE MTIME" per object, "NAME/" per
 *                                                 sub-prefix ("" or a prefix ending in '/')
 *   lc-storetool [options] URL del KEY...         delete keys (missing ones are fine)
 *   lc-storetool [options] URL fill PREFIX COUNT  put COUNT small objects PREFIX00000...,
 *                                                 up to 32 at a time
 *   lc-storetool [options] URL info               open the store and print its type
 *
 * Options: --endpoint E --access-key K --secret S --region R --attempts N --page-size N
 * --skip-verify --debug. Exit 0 on success, 1 on failure (one line on stderr), 2 on bad
 * usage. The secret is only handed to the store. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define FILL_PARALLEL 32
#define FILL_MAX 1000000

static const char *prog = "lc-storetool";

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [--endpoint E] [--access-key K] [--secret S] [--region R]\n"
            "       [--attempts N] [--page-size N] [--skip-verify] [--debug] URL CMD ARGS\n"
            "  put KEY FILE | get KEY OUTFILE | list PREFIX | del KEY... | fill PREFIX COUNT |"
            " info\n",
            prog);
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

/* Completion of one blocking operation. */
struct wait {
    int done;
    int rc;
    struct lc_error err;
};

static void wait_done(void *arg, int rc, const struct lc_error *err)
{
    struct wait *w = arg;
    w->done = 1;
    w->rc = rc;
    if (rc && err)
        w->err = *err;
    else if (rc)
        lc_err_set(&w->err, rc, "operation failed");
}

static int finish(struct lc_store *st, struct wait *w, struct lc_error *err)
{
    int rc = lc_store_wait(st, &w->done, err);
    if (rc) return rc;
    if (w->rc) *err = w->err;
    return w->rc;
}

/* A streaming source over a file. */
struct file_src {
    struct lc_store_src src;
    int fd;
    const char *path;
};

static ssize_t fsrc_read(void *arg, uint8_t *buf, size_t cap, struct lc_error *err)
{
    struct file_src *f = arg;
    ssize_t n;

    do
        n = read(f->fd, buf, cap);
    while (n < 0 && errno == EINTR);
    if (n < 0) return lc_err_set(err, LC_EIO, "read %s: %s", f->path, strerror(errno));
    return n;
}

static int fsrc_rewind(void *arg, struct lc_error *err)
{
    struct file_src *f = arg;
    if (lseek(f->fd, 0, SEEK_SET) < 0)
        return lc_err_set(err, LC_EIO, "seek %s: %s", f->path, strerror(errno));
    return 0;
}

/* A streaming sink into a file. */
struct file_sink {
    struct lc_store_sink sink;
    int fd;
    const char *path;
};

static int fsink_write(void *arg, const uint8_t *buf, size_t n, struct lc_error *err)
{
    struct file_sink *f = arg;
    if (lc_write_full(f->fd, buf, n))
        return lc_err_set(err, LC_EIO, "write %s: %s", f->path, strerror(errno));
    return 0;
}

static int fsink_reset(void *arg, struct lc_error *err)
{
    struct file_sink *f = arg;
    if (ftruncate(f->fd, 0) < 0 || lseek(f->fd, 0, SEEK_SET) < 0)
        return lc_err_set(err, LC_EIO, "truncate %s: %s", f->path, strerror(errno));
    return 0;
}

static int cmd_put(struct lc_store *st, const char *key, const char *path, struct lc_error *err)
{
    struct file_src f = {.fd = -1, .path = path};
    struct wait w = {0};
    struct stat sb;
    int rc;

    f.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) return lc_err_set(err, LC_EIO, "open %s: %s", path, strerror(errno));
    if (fstat(f.fd, &sb) < 0) {
        rc = lc_err_set(err, LC_EIO, "stat %s: %s", path, strerror(errno));
        close(f.fd);
        return rc;
    }
    f.src.read = fsrc_read;
    f.src.rewind = fsrc_rewind;
    f.src.arg = &f;
    f.src.size = S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : -1;
    st->ops->put(st, key, &f.src, wait_done, &w);
    rc = finish(st, &w, err);
    close(f.fd);
    return rc;
}

static int cmd_get(struct lc_store *st, const char *key, const char *path, struct lc_error *err)
{
    struct file_sink f = {.fd = -1, .path = path};
    struct wait w = {0};
    int rc;

    f.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) return lc_err_set(err, LC_EIO, "open %s: %s", path, strerror(errno));
    f.sink.write = fsink_write;
    f.sink.reset = fsink_reset;
    f.sink.arg = &f;
    st->ops->get(st, key, &f.sink, wait_done, &w);
    rc = finish(st, &w, err);
    if (close(f.fd) < 0 && !rc) rc = lc_err_set(err, LC_EIO, "close %s: %s", path, strerror(errno));
    if (rc) unlink(path);
    return rc;
}

static int cmd_list(struct lc_store *st, const char *prefix, struct lc_error *err)
{
    struct lc_obj_list l = {0};
    int rc = lc_store_list_sync(st, prefix, &l, err);

    for (size_t i = 0; !rc && i < l.n; i++) {
        char ts[64];
        if (l.v[i].is_prefix) {
            printf("%s/\n", l.v[i].name);
            continue;
        }
        lc_time_format(l.v[i].mtime_ns, 0, ts, sizeof(ts));
        printf("%s %llu %s\n", l.v[i].name, (unsigned long long)l.v[i].size, ts);
    }
    lc_obj_list_free(&l);
    if (!rc && fflush(stdout) != 0)
        rc = lc_err_set(err, LC_EIO, "write stdout: %s", strerror(errno));
    return rc;
}

/* fill: many small puts in flight at once, which also exercises concurrent requests. */
struct fill {
    struct lc_store *st;
    const char *prefix;
    long count, next, inflight, finished;
    int rc;
    struct lc_error err;
    struct fill_slot {
        struct fill *f;
        struct lc_store_bufsrc src;
        char key[LC_PATH_MAX];
    } slots[FILL_PARALLEL];
    int all_done;
};

static void fill_start(struct fill *f, struct fill_slot *s);

static void fill_done(void *arg, int rc, const struct lc_error *err)
{
    struct fill_slot *s = arg;
    struct fill *f = s->f;

    f->inflight--;
    f->finished++;
    if (rc && !f->rc) {
        f->rc = rc;
        f->err = *err;
    }
    if (!f->rc && f->next < f->count)
        fill_start(f, s);
    else if (f->inflight == 0)
        f->all_done = 1;
}

static void fill_start(struct fill *f, struct fill_slot *s)
{
    long i = f->next++;

    snprintf(s->key, sizeof(s->key), "%s%05ld", f->prefix, i);
    lc_store_bufsrc_init(&s->src, s->key, strlen(s->key));
    f->inflight++;
    f->st->ops->put(f->st, s->key, &s->src.src, fill_done, s); /* may complete at once */
}

static int cmd_fill(struct lc_store *st, const char *prefix, const char *count,
                    struct lc_error *err)
{
    struct fill *f = calloc(1, sizeof(*f));
    long n;
    int rc;

    if (!f) return lc_err_set(err, LC_ENOMEM, "out of memory");
    if (parse_int(count, 0, FILL_MAX, &n)) {
        free(f);
        return lc_err_set(err, LC_EINVAL, "fill: bad count %s", count);
    }
    f->st = st;
    f->prefix = prefix;
    f->count = n;
    if (n == 0) f->all_done = 1;
    for (int i = 0; i < FILL_PARALLEL && f->next < f->count && !f->rc; i++) {
        f->slots[i].f = f;
        fill_start(f, &f->slots[i]);
    }
    if (f->inflight == 0) f->all_done = 1;
    rc = lc_store_wait(st, &f->all_done, err);
    if (!rc && f->rc) {
        *err = f->err;
        rc = f->rc;
    }
    free(f);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"access-key", required_argument, NULL, 'k'},
        {"secret", required_argument, NULL, 's'},   {"region", required_argument, NULL, 'r'},
        {"attempts", required_argument, NULL, 'a'}, {"page-size", required_argument, NULL, 'p'},
        {"skip-verify", no_argument, NULL, 'K'},    {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct lc_replica_config *rc = calloc(1, sizeof(*rc));
    const char *endpoint = "", *akid = "", *secret = "", *region = "";
    long attempts = 0, page = 0;
    int skip_verify = 0, c, ret = 1, r = 0;
    struct lc_store *st = NULL;
    struct ev_loop *loop;
    struct lc_error err;

    lc_err_clear(&err);
    if (!rc) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            endpoint = optarg;
            break;
        case 'k':
            akid = optarg;
            break;
        case 's':
            secret = optarg;
            break;
        case 'r':
            region = optarg;
            break;
        case 'a':
            if (parse_int(optarg, 1, 100, &attempts)) {
                fprintf(stderr, "%s: --attempts: expected 1..100\n", prog);
                return 2;
            }
            break;
        case 'p':
            if (parse_int(optarg, 1, 1000, &page)) {
                fprintf(stderr, "%s: --page-size: expected 1..1000\n", prog);
                return 2;
            }
            break;
        case 'K':
            skip_verify = 1;
            break;
        case 'd':
            lc_log_set_level(LC_LOG_DEBUG);
            break;
        case 'h':
            usage();
            return 0;
        default:
            usage();
            return 2;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *url = argv[0], *cmd = argv[1];
    int nargs = argc - 2;
    char **args = argv + 2;
    if (!((strcmp(cmd, "put") == 0 && nargs == 2) || (strcmp(cmd, "get") == 0 && nargs == 2) ||
          (strcmp(cmd, "list") == 0 && nargs == 1) || (strcmp(cmd, "del") == 0 && nargs >= 1) ||
          (strcmp(cmd, "fill") == 0 && nargs == 2) || (strcmp(cmd, "info") == 0 && nargs == 0))) {
        usage();
        return 2;
    }

    if (snprintf(rc->name, sizeof(rc->name), "storetool") < 0 ||
        (size_t)snprintf(rc->url, sizeof(rc->url), "%s", url) >= sizeof(rc->url) ||
        (size_t)snprintf(rc->endpoint, sizeof(rc->endpoint), "%s", endpoint) >=
            sizeof(rc->endpoint) ||
        (size_t)snprintf(rc->region, sizeof(rc->region), "%s", region) >= sizeof(rc->region) ||
        (size_t)snprintf(rc->access_key_id, sizeof(rc->access_key_id), "%s", akid) >=
            sizeof(rc->access_key_id) ||
        (size_t)snprintf(rc->secret_access_key, sizeof(rc->secret_access_key), "%s", secret) >=
            sizeof(rc->secret_access_key)) {
        fprintf(stderr, "%s: an option value is too long\n", prog);
        return 2;
    }
    rc->force_path_style = -1;
    if (lc_config_replica_defaults(rc, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 2;
    }
    rc->skip_verify = skip_verify;

    loop = ev_default_loop(0);
    if (!loop) {
        fprintf(stderr, "%s: cannot create an event loop\n", prog);
        return 1;
    }
    if (lc_store_open(rc, loop, NULL, &st, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        goto out;
    }
    explicit_bzero(rc->secret_access_key, sizeof(rc->secret_access_key));
    if ((attempts || page) && strcmp(st->ops->type, "s3") == 0 &&
        lc_store_s3_tune(st, (int)attempts, (int)page)) {
        fprintf(stderr, "%s: cannot tune the s3 store\n", prog);
        goto out;
    }

    if (strcmp(cmd, "put") == 0) {
        r = cmd_put(st, args[0], args[1], &err);
    } else if (strcmp(cmd, "get") == 0) {
        r = cmd_get(st, args[0], args[1], &err);
    } else if (strcmp(cmd, "list") == 0) {
        r = cmd_list(st, args[0], &err);
    } else if (strcmp(cmd, "del") == 0) {
        r = lc_store_del_sync(st, (const char *const *)args, (size_t)nargs, &err);
    } else if (strcmp(cmd, "fill") == 0) {
        r = cmd_fill(st, args[0], args[1], &err);
    } else {
        printf("type=%s url=%s\n", st->ops->type, st->desc);
    }
    if (r) {
        fprintf(stderr, "%s: %s\n", prog, err.msg[0] ? err.msg : "failed");
        goto out;
    }
    ret = 0;
out:
    lc_store_free(st);
    explicit_bzero(rc, sizeof(*rc));
    free(rc);
    return ret;
}
