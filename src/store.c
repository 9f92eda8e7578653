/* store: the backend-independent half of the storage interface. It picks a backend
 * from a replica URL, keeps the object-list helpers every backend fills, and offers
 * blocking wrappers for the commands (restore, listings), which simply run the
 * store's libev loop until the operation's completion callback has fired.
 *
 * Invariant: every asynchronous operation calls its done callback exactly once. The
 * blocking wrappers rely on it; a backend that completes synchronously (file) needs
 * no loop at all. */
#include "store.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

#define OBJ_LIST_MAX ((size_t)1 << 24) /* entries; a bound far above any real listing */

int lc_store_open(const struct lc_replica_config *rc, struct ev_loop *loop,
                  const struct lc_store_perm *perm, struct lc_store **out, struct lc_error *err)
{
    const char *url = rc->url;

    *out = NULL;
    if (strncmp(url, "file://", 7) == 0) {
        const char *path = url + 7;
        /* file://localhost/abs is the same as file:///abs */
        if (strncmp(path, "localhost/", 10) == 0)
            path += 9;
        if (path[0] != '/')
            return lc_err_set(err, LC_EINVAL, "replica url %s: file path must be absolute",
                              url);
        return lc_store_file_open(path, loop, perm, out, err);
    }
    if (strncmp(url, "s3://", 5) == 0)
        return lc_store_s3_open(rc, loop, out, err);
    return lc_err_set(err, LC_EINVAL, "replica url %s: unsupported scheme", url);
}

void lc_store_free(struct lc_store *st)
{
    if (st)
        st->ops->free(st);
}

int lc_obj_list_add(struct lc_obj_list *l, const char *name, uint64_t size, int64_t mtime_ns,
                    int is_prefix)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        if (cap > OBJ_LIST_MAX)
            return LC_ENOMEM;
        struct lc_obj *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return LC_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return LC_ENOMEM;
    l->v[l->n].name = copy;
    l->v[l->n].size = size;
    l->v[l->n].mtime_ns = mtime_ns;
    l->v[l->n].is_prefix = is_prefix ? 1 : 0;
    l->n++;
    return 0;
}

static int obj_cmp(const void *a, const void *b)
{
    const struct lc_obj *x = a, *y = b;
    return strcmp(x->name, y->name);
}

void lc_obj_list_sort(struct lc_obj_list *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(l->v[0]), obj_cmp);
}

void lc_obj_list_free(struct lc_obj_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* Completion state of one blocking call. */
struct waiter {
    int done;
    int rc;
    struct lc_error err;
};

static void waiter_done(void *arg, int rc, const struct lc_error *err)
{
    struct waiter *w = arg;
    w->done = 1;
    w->rc = rc;
    if (rc && err)
        w->err = *err;
    else if (rc)
        lc_err_set(&w->err, rc, "store operation failed");
}

int lc_store_wait(struct lc_store *st, const int *done, struct lc_error *err)
{
    while (!*done) {
        if (!st->loop)
            return lc_err_set(err, LC_EIO, "%s: operation pending without an event loop",
                              st->desc);
        ev_run(st->loop, EVRUN_ONCE);
    }
    return 0;
}

static int waiter_finish(struct lc_store *st, struct waiter *w, struct lc_error *err)
{
    int rc = lc_store_wait(st, &w->done, err);
    if (rc)
        return rc;
    if (w->rc && err)
        *err = w->err;
    return w->rc;
}

static ssize_t bufsrc_read(void *arg, uint8_t *buf, size_t cap, struct lc_error *err)
{
    struct lc_store_bufsrc *b = arg;
    size_t n = b->len - b->pos;
    (void)err;
    if (n > cap)
        n = cap;
    if (n)
        memcpy(buf, b->data + b->pos, n);
    b->pos += n;
    return (ssize_t)n;
}

static int bufsrc_rewind(void *arg, struct lc_error *err)
{
    struct lc_store_bufsrc *b = arg;
    (void)err;
    b->pos = 0;
    return 0;
}

void lc_store_bufsrc_init(struct lc_store_bufsrc *b, const void *data, size_t len)
{
    b->src.read = bufsrc_read;
    b->src.rewind = bufsrc_rewind;
    b->src.arg = b;
    b->src.size = (int64_t)len;
    b->data = data;
    b->len = len;
    b->pos = 0;
}

int lc_store_put_buf_sync(struct lc_store *st, const char *key, const void *buf, size_t len,
                          struct lc_error *err)
{
    struct lc_store_bufsrc src;
    struct waiter w = {0};

    lc_store_bufsrc_init(&src, buf, len);
    st->ops->put(st, key, &src.src, waiter_done, &w);
    return waiter_finish(st, &w, err);
}

static int bufsink_write(void *arg, const uint8_t *buf, size_t n, struct lc_error *err)
{
    struct lc_buf *b = arg;
    if (lc_buf_append(b, buf, n))
        return lc_err_set(err, LC_ENOMEM, "download larger than %zu bytes",
                          b->max ? b->max : LC_BUF_DEFAULT_MAX);
    return 0;
}

static int bufsink_reset(void *arg, struct lc_error *err)
{
    struct lc_buf *b = arg;
    (void)err;
    b->len = 0;
    return 0;
}

int lc_store_get_sync(struct lc_store *st, const char *key, struct lc_store_sink *sink,
                      struct lc_error *err)
{
    struct waiter w = {0};

    st->ops->get(st, key, sink, waiter_done, &w);
    return waiter_finish(st, &w, err);
}

int lc_store_get_buf_sync(struct lc_store *st, const char *key, struct lc_buf *out,
                          struct lc_error *err)
{
    struct lc_store_sink sink = {bufsink_write, bufsink_reset, out};
    return lc_store_get_sync(st, key, &sink, err);
}

int lc_store_list_sync(struct lc_store *st, const char *prefix, struct lc_obj_list *out,
                       struct lc_error *err)
{
    struct waiter w = {0};

    st->ops->list(st, prefix, out, waiter_done, &w);
    return waiter_finish(st, &w, err);
}

int lc_store_del_sync(struct lc_store *st, const char *const *keys, size_t n,
                      struct lc_error *err)
{
    struct waiter w = {0};

    st->ops->del(st, keys, n, waiter_done, &w);
    return waiter_finish(st, &w, err);
}
