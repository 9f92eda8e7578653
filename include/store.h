/* store: the storage backends behind one interface (file, s3).
 *
 * Every operation is asynchronous in form: it takes a completion callback that is
 * called exactly once, possibly before the call returns (the file store completes
 * synchronously; the s3 store completes from the libev loop). Keys are relative to
 * the replica root ("generations/<gen>/wal/..."), never start with '/', and never
 * contain "..". Object times (mtime_ns) are semantic: file mtime or S3 LastModified. */
#ifndef LC_STORE_H
#define LC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "config.h"
#include "util.h"

struct ev_loop;
struct lc_store;

struct lc_obj {
    char *name;       /* base name below the listed prefix (no '/'); malloc'd */
    uint64_t size;    /* stored size in bytes (0 for prefixes) */
    int64_t mtime_ns; /* creation / last-modified time, ns since the epoch */
    int is_prefix;    /* 1 for a sub-"directory" (S3 CommonPrefix), name without '/' */
};

struct lc_obj_list {
    struct lc_obj *v; /* owned */
    size_t n, cap;
};
int lc_obj_list_add(struct lc_obj_list *l, const char *name, uint64_t size, int64_t mtime_ns,
                    int is_prefix);
void lc_obj_list_sort(struct lc_obj_list *l); /* by name (fixed-width hex => numeric order) */
void lc_obj_list_free(struct lc_obj_list *l);

/* Called once per operation with rc 0 or a negative LC_E*; err is valid only during the call. */
typedef void (*lc_store_done_fn)(void *arg, int rc, const struct lc_error *err);

/* Pull source for uploads: fill up to cap bytes, return the count (0 at end) or a
 * negative LC_E* with err set. rewind (optional) restarts from the beginning, for
 * retries; NULL means the upload cannot be retried from scratch by the store. */
struct lc_store_src {
    ssize_t (*read)(void *arg, uint8_t *buf, size_t cap, struct lc_error *err);
    int (*rewind)(void *arg, struct lc_error *err);
    void *arg;
    int64_t size; /* total bytes when known, else -1 */
};

/* Push sink for downloads: consume n bytes; return 0 or a negative LC_E* with err set. */
struct lc_store_sink {
    int (*write)(void *arg, const uint8_t *buf, size_t n, struct lc_error *err);
    int (*reset)(void *arg, struct lc_error *err); /* discard what was written, for retries */
    void *arg;
};

/* File and directory permissions for what a store creates (the database's). */
struct lc_store_perm {
    mode_t file_mode; /* e.g. 0644 */
    mode_t dir_mode;  /* e.g. 0755 */
    uid_t uid;        /* (uid_t)-1 leaves the owner alone */
    gid_t gid;
};

struct lc_store_ops {
    const char *type; /* "file", "s3" */
    void (*free)(struct lc_store *st);
    void (*put)(struct lc_store *st, const char *key, struct lc_store_src *src,
                lc_store_done_fn done, void *arg);
    void (*get)(struct lc_store *st, const char *key, struct lc_store_sink *sink,
                lc_store_done_fn done, void *arg);
    /* Objects and sub-prefixes directly below prefix (which ends in '/'), sorted by name. */
    void (*list)(struct lc_store *st, const char *prefix, struct lc_obj_list *out,
                 lc_store_done_fn done, void *arg);
    /* Delete keys; missing keys are not an error. */
    void (*del)(struct lc_store *st, const char *const *keys, size_t n, lc_store_done_fn done,
                void *arg);
    /* Optional (NULL: nothing to do): key will be got soon. A hint only, never an error:
     * the file store starts reading the object into the page cache. */
    void (*prefetch)(struct lc_store *st, const char *key);
};

struct lc_store {
    const struct lc_store_ops *ops; /* first member: backends embed struct lc_store first */
    char desc[LC_URL_MAX];          /* for messages: the URL without credentials */
    struct ev_loop *loop;           /* borrowed */
};

/* Open the backend the replica URL names. perm may be NULL (defaults 0600/0700). */
int lc_store_open(const struct lc_replica_config *rc, struct ev_loop *loop,
                  const struct lc_store_perm *perm, struct lc_store **out, struct lc_error *err);
void lc_store_free(struct lc_store *st);

/* Backend constructors (called by lc_store_open). */
int lc_store_file_open(const char *dir, struct ev_loop *loop, const struct lc_store_perm *perm,
                       struct lc_store **out, struct lc_error *err);
int lc_store_s3_open(const struct lc_replica_config *rc, struct ev_loop *loop,
                     struct lc_store **out, struct lc_error *err);
/* Tuning of an s3 store, for tests and tools: attempts per request, first try included
 * (0 keeps the default of 8), and the ListObjectsV2 page size (1..1000; 0 = the server's
 * default of 1000). LC_EINVAL when st is not an s3 store or a value is out of range. */
int lc_store_s3_tune(struct lc_store *st, int max_attempts, int list_page_size);

/* Blocking wrappers for commands (restore, listings): run the loop until done. */
int lc_store_put_buf_sync(struct lc_store *st, const char *key, const void *buf, size_t len,
                          struct lc_error *err);
int lc_store_get_buf_sync(struct lc_store *st, const char *key, struct lc_buf *out,
                          struct lc_error *err);
int lc_store_list_sync(struct lc_store *st, const char *prefix, struct lc_obj_list *out,
                       struct lc_error *err);
int lc_store_del_sync(struct lc_store *st, const char *const *keys, size_t n,
                      struct lc_error *err);
/* Streaming download into sink (borrowed), blocking like the wrappers above. */
int lc_store_get_sync(struct lc_store *st, const char *key, struct lc_store_sink *sink,
                      struct lc_error *err);
/* Run st's loop until *done becomes non-zero (at once if it already is). Fails only when
 * an operation is pending and the store has no loop to run. */
int lc_store_wait(struct lc_store *st, const int *done, struct lc_error *err);

/* A source over a memory buffer (borrowed); for small uploads. */
struct lc_store_bufsrc {
    struct lc_store_src src; /* hand &x.src to put */
    const uint8_t *data;     /* borrowed */
    size_t len, pos;
};
void lc_store_bufsrc_init(struct lc_store_bufsrc *b, const void *data, size_t len);

#endif
