/* store_file: a replica in a local directory (file:///abs/dir), laid out exactly as
 * the object keys say: DIR/generations/<gen>/snapshots/..., DIR/generations/<gen>/wal/...
 *
 * Invariants:
 *  - an object is either absent or complete: put writes DIR/key.tmp, fsyncs it,
 *    renames it over DIR/key and fsyncs the directory (a crash leaves at most a
 *    stale *.tmp, which listings skip, as Litestream's file replica does);
 *  - object times are file mtimes (st_mtim, ns), which restore and the listings
 *    treat as creation times;
 *  - keys never escape DIR: absolute keys and keys containing ".." are refused, and
 *    listings skip symlinks (and list nothing through a listed directory that is one),
 *    so no name found in the replica leads outside it;
 *  - every operation completes synchronously: done is called before it returns.
 *
 * Objects are written with O_DIRECT where the file system takes it: an object is written
 * once and read back only by a restore, so copying it into the page cache (the costliest
 * part of shipping under heavy writes: new pages for every byte) only to flush it at the
 * fsync right after buys nothing. Whole DIO_ALIGN blocks go straight to the disk from an
 * aligned buffer; the object's last partial block, and everything after any EINVAL (a
 * file system without direct I/O, or an unaligned short write), goes through the page
 * cache. The fsync still follows, so durability is the same either way. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK ((size_t)1 << 20) /* bytes per read/write while streaming */
#define DIO_ALIGN 4096           /* direct I/O buffer, offset and length alignment */

struct lc_store_file {
    struct lc_store base;      /* first: the generic store */
    char dir[LC_PATH_MAX];     /* replica root, absolute, no trailing '/' (unless "/") */
    struct lc_store_perm perm; /* modes and owner for what we create */
    int no_direct;             /* O_DIRECT was refused here once: stop trying */
};

static int check_key(const char *key, int allow_empty, struct lc_error *err)
{
    if (!allow_empty && key[0] == '\0')
        return lc_err_set(err, LC_EINVAL, "invalid object key: empty");
    if (key[0] == '/' || strstr(key, ".."))
        return lc_err_set(err, LC_EINVAL, "invalid object key: %s", key);
    return 0;
}

static int key_path(const struct lc_store_file *fs, const char *key, char *buf, size_t len,
                    struct lc_error *err)
{
    if (lc_path_join(buf, len, fs->dir, key))
        return lc_err_set(err, LC_EINVAL, "object key too long: %s", key);
    return 0;
}

static int apply_owner(const struct lc_store_file *fs, int fd, const char *path, mode_t mode,
                       struct lc_error *err)
{
    if (fchmod(fd, mode) < 0)
        return lc_err_set(err, LC_EIO, "chmod %s: %s", path, strerror(errno));
    if ((fs->perm.uid != (uid_t)-1 || fs->perm.gid != (gid_t)-1) &&
        fchown(fd, fs->perm.uid, fs->perm.gid) < 0)
        return lc_err_set(err, LC_EIO, "chown %s: %s", path, strerror(errno));
    return 0;
}

/* Create every missing directory above path (a file path), with the store's dir mode
 * and owner. Existing directories are left alone. */
static int make_parents(const struct lc_store_file *fs, const char *path, struct lc_error *err)
{
    char buf[LC_PATH_MAX];
    size_t n = strlen(path);

    if (n >= sizeof(buf))
        return lc_err_set(err, LC_EINVAL, "path too long: %s", path);
    memcpy(buf, path, n + 1);
    char *last = strrchr(buf, '/');
    if (!last || last == buf)
        return 0;
    *last = '\0';
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, fs->perm.dir_mode) == 0) {
            int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd < 0)
                return lc_err_set(err, LC_EIO, "open dir %s: %s", buf, strerror(errno));
            int rc = apply_owner(fs, fd, buf, fs->perm.dir_mode, err);
            close(fd);
            if (rc)
                return rc;
        } else if (errno != EEXIST) {
            return lc_err_set(err, LC_EIO, "mkdir %s: %s", buf, strerror(errno));
        }
        if (c == '\0')
            break;
        *p = c;
    }
    return 0;
}

/* Stop direct I/O on fd: the rest of the object goes through the page cache. */
static int drop_direct(int fd, int *direct)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
        return -1;
    *direct = 0;
    return 0;
}

/* Write all of buf at fd's offset; an EINVAL under O_DIRECT (nothing written) drops to
 * buffered writes and goes on. Returns 0, or -1 with errno set. */
static int put_write(struct lc_store_file *fs, int fd, int *direct, const uint8_t *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EINVAL && *direct) {
                if (drop_direct(fd, direct) < 0)
                    return -1;
                fs->no_direct = 1;
                continue;
            }
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write n buffered bytes; unless last, n is a multiple of DIO_ALIGN. The last block's
 * partial tail is written buffered (O_DIRECT needs whole blocks). */
static int put_flush(struct lc_store_file *fs, int fd, int *direct, const uint8_t *buf, size_t n,
                     int last)
{
    size_t whole = *direct ? n / DIO_ALIGN * DIO_ALIGN : n;
    if (whole && put_write(fs, fd, direct, buf, whole) < 0)
        return -1;
    if (whole == n)
        return 0;
    if (!last) { /* cannot happen: callers flush whole blocks until the end */
        errno = EINVAL;
        return -1;
    }
    if (drop_direct(fd, direct) < 0)
        return -1;
    return put_write(fs, fd, direct, buf + whole, n - whole);
}

static int file_put(struct lc_store_file *fs, const char *key, struct lc_store_src *src,
                    struct lc_error *err)
{
    char path[LC_PATH_MAX], tmp[LC_PATH_MAX + 8], dir[LC_PATH_MAX];
    uint8_t *buf = NULL;
    uint64_t total = 0;
    int fd = -1, rc;

    if ((rc = check_key(key, 0, err)) || (rc = key_path(fs, key, path, sizeof(path), err)))
        return rc;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return lc_err_set(err, LC_EINVAL, "object key too long: %s", key);
    int direct = !fs->no_direct;
    for (int attempt = 0; fd < 0; attempt++) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0),
                  fs->perm.file_mode);
        if (fd >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EINVAL && direct) { /* no direct I/O on this file system */
            direct = 0;
            fs->no_direct = 1;
            continue;
        }
        if (errno != ENOENT || attempt > 0)
            return lc_err_set(err, LC_EIO, "create %s: %s", tmp, strerror(errno));
        if ((rc = make_parents(fs, tmp, err)))
            return rc;
    }
    void *mem;
    if (posix_memalign(&mem, DIO_ALIGN, CHUNK) != 0) {
        rc = lc_err_set(err, LC_ENOMEM, "put %s: out of memory", key);
        goto fail;
    }
    buf = mem;
    for (size_t fill = 0;;) { /* whole CHUNKs, then the rest */
        ssize_t n = src->read(src->arg, buf + fill, CHUNK - fill, err);
        if (n < 0) {
            rc = (int)n;
            lc_err_wrap(err, "put %s", key);
            goto fail;
        }
        fill += (size_t)n;
        total += (uint64_t)n;
        if (fill < CHUNK && n > 0)
            continue;
        if (fill && put_flush(fs, fd, &direct, buf, fill, n == 0) < 0) {
            rc = lc_err_set(err, LC_EIO, "write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        fill = 0;
        if (n == 0)
            break;
    }
    if (src->size >= 0 && total != (uint64_t)src->size) {
        rc = lc_err_set(err, LC_EIO, "put %s: source gave %llu bytes, expected %lld", key,
                        (unsigned long long)total, (long long)src->size);
        goto fail;
    }
    if ((rc = apply_owner(fs, fd, tmp, fs->perm.file_mode, err)))
        goto fail;
    if (fsync(fd) < 0) {
        rc = lc_err_set(err, LC_EIO, "fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    free(buf);
    buf = NULL;
    rc = close(fd);
    fd = -1;
    if (rc < 0) {
        rc = lc_err_set(err, LC_EIO, "close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        rc = lc_err_set(err, LC_EIO, "rename %s: %s", tmp, strerror(errno));
        goto fail;
    }
    lc_path_dir(path, dir, sizeof(dir));
    return lc_fsync_dir(dir, err);

fail:
    free(buf);
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

static int file_get(struct lc_store_file *fs, const char *key, struct lc_store_sink *sink,
                    struct lc_error *err)
{
    char path[LC_PATH_MAX];
    uint8_t *buf;
    int fd, rc;

    if ((rc = check_key(key, 0, err)) || (rc = key_path(fs, key, path, sizeof(path), err)))
        return rc;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        if (errno == ENOENT)
            return lc_err_set(err, LC_ENOTFOUND, "get %s: object not found", key);
        return lc_err_set(err, LC_EIO, "open %s: %s", path, strerror(errno));
    }
    buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return lc_err_set(err, LC_ENOMEM, "get %s: out of memory", key);
    }
    rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = lc_err_set(err, LC_EIO, "read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if ((rc = sink->write(sink->arg, buf, (size_t)n, err)))
            break;
    }
    free(buf);
    close(fd);
    return rc;
}

static int skip_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n >= 4 && strcmp(name + n - 4, ".tmp") == 0);
}

/* opendir(path), refusing (ELOOP) a path whose last component is a symlink unless it is
 * the replica root: the root may be a link, nothing below it may lead elsewhere. */
static DIR *open_dir(const char *path, int is_root)
{
    char buf[LC_PATH_MAX];
    size_t n = strlen(path);
    int fd;

    if (n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    memcpy(buf, path, n + 1);
    while (n > 1 && buf[n - 1] == '/') /* a trailing '/' would make open() follow a link */
        buf[--n] = '\0';
    do {
        fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (is_root ? 0 : O_NOFOLLOW));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return d;
}

static int file_list(struct lc_store_file *fs, const char *prefix, struct lc_obj_list *out,
                     struct lc_error *err)
{
    char path[LC_PATH_MAX];
    size_t start = out->n;
    struct dirent *de;
    DIR *d;
    int rc = 0;

    if ((rc = check_key(prefix, 1, err)))
        return rc;
    if (prefix[0] == '\0') {
        if (strlen(fs->dir) >= sizeof(path))
            return lc_err_set(err, LC_EINVAL, "path too long: %s", fs->dir);
        memcpy(path, fs->dir, strlen(fs->dir) + 1);
    } else if ((rc = key_path(fs, prefix, path, sizeof(path), err))) {
        return rc;
    }
    d = open_dir(path, prefix[0] == '\0');
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
            return 0; /* absent, or a symlink: not part of the replica */
        return lc_err_set(err, LC_EIO, "opendir %s: %s", path, strerror(errno));
    }
    for (;;) {
        struct stat st;
        errno = 0;
        de = readdir(d);
        if (!de) {
            if (errno)
                rc = lc_err_set(err, LC_EIO, "readdir %s: %s", path, strerror(errno));
            break;
        }
        if (skip_name(de->d_name))
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue; /* removed while we listed */
            rc = lc_err_set(err, LC_EIO, "stat %s/%s: %s", path, de->d_name, strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = lc_obj_list_add(out, de->d_name, 0, 0, 1);
        } else if (S_ISREG(st.st_mode)) {
            int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
            rc = lc_obj_list_add(out, de->d_name, (uint64_t)st.st_size, mt, 0);
        } else {
            continue;
        }
        if (rc) {
            rc = lc_err_set(err, LC_ENOMEM, "list %s: out of memory", path);
            break;
        }
    }
    closedir(d);
    if (rc) {
        for (size_t i = start; i < out->n; i++)
            free(out->v[i].name);
        out->n = start;
        return rc;
    }
    /* sort only what we added, so a caller's earlier entries keep their order */
    struct lc_obj_list part = {out->v + start, out->n - start, out->n - start};
    lc_obj_list_sort(&part);
    return 0;
}

static size_t dir_len(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? (size_t)(slash - path) : 0;
}

/* Remove the now-empty directories above the file at path, up to but excluding the
 * root. Best effort: the first directory that is not empty (or fails) ends it. */
static void prune_dirs(const struct lc_store_file *fs, const char *path)
{
    char buf[LC_PATH_MAX];
    size_t root = strlen(fs->dir);
    size_t n = strlen(path);

    if (n >= sizeof(buf))
        return;
    memcpy(buf, path, n + 1);
    for (;;) {
        n = dir_len(buf);
        if (n <= root)
            return;
        buf[n] = '\0';
        if (rmdir(buf) < 0)
            return;
    }
}

static int file_del(struct lc_store_file *fs, const char *const *keys, size_t nkeys,
                    struct lc_error *err)
{
    char path[LC_PATH_MAX];
    int rc;

    for (size_t i = 0; i < nkeys; i++) {
        if ((rc = check_key(keys[i], 0, err)) ||
            (rc = key_path(fs, keys[i], path, sizeof(path), err)))
            return rc;
        if (unlink(path) < 0 && errno != ENOENT)
            return lc_err_set(err, LC_EIO, "delete %s: %s", path, strerror(errno));
        /* prune once per run of keys sharing a directory */
        size_t dl = dir_len(keys[i]);
        if (i + 1 == nkeys || dir_len(keys[i + 1]) != dl || strncmp(keys[i], keys[i + 1], dl))
            prune_dirs(fs, path);
    }
    return 0;
}

static void op_put(struct lc_store *st, const char *key, struct lc_store_src *src,
                   lc_store_done_fn done, void *arg)
{
    struct lc_error err = {0};
    int rc = file_put((struct lc_store_file *)st, key, src, &err);
    done(arg, rc, rc ? &err : NULL);
}

static void op_get(struct lc_store *st, const char *key, struct lc_store_sink *sink,
                   lc_store_done_fn done, void *arg)
{
    struct lc_error err = {0};
    int rc = file_get((struct lc_store_file *)st, key, sink, &err);
    done(arg, rc, rc ? &err : NULL);
}

static void op_list(struct lc_store *st, const char *prefix, struct lc_obj_list *out,
                    lc_store_done_fn done, void *arg)
{
    struct lc_error err = {0};
    int rc = file_list((struct lc_store_file *)st, prefix, out, &err);
    done(arg, rc, rc ? &err : NULL);
}

static void op_del(struct lc_store *st, const char *const *keys, size_t n, lc_store_done_fn done,
                   void *arg)
{
    struct lc_error err = {0};
    int rc = file_del((struct lc_store_file *)st, keys, n, &err);
    done(arg, rc, rc ? &err : NULL);
}

static void op_free(struct lc_store *st)
{
    free(st);
}

/* A restore reads hundreds of small segment objects one after another; asking for the
 * next ones early lets the disk read them in parallel instead of one latency each. */
static void op_prefetch(struct lc_store *st, const char *key)
{
    struct lc_store_file *fs = (struct lc_store_file *)st;
    struct lc_error err = {0};
    char path[LC_PATH_MAX];

    if (check_key(key, 0, &err) || key_path(fs, key, path, sizeof(path), &err))
        return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    close(fd);
}

static const struct lc_store_ops file_ops = {
    .type = "file",
    .free = op_free,
    .put = op_put,
    .get = op_get,
    .list = op_list,
    .del = op_del,
    .prefetch = op_prefetch,
};

int lc_store_file_open(const char *dir, struct ev_loop *loop, const struct lc_store_perm *perm,
                       struct lc_store **out, struct lc_error *err)
{
    struct lc_store_file *fs;
    size_t n = strlen(dir);

    *out = NULL;
    if (dir[0] != '/')
        return lc_err_set(err, LC_EINVAL, "file replica %s: path must be absolute", dir);
    if (strstr(dir, "/../") || (n >= 3 && strcmp(dir + n - 3, "/..") == 0))
        return lc_err_set(err, LC_EINVAL, "file replica %s: path must not contain ..", dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n >= LC_PATH_MAX - 256)
        return lc_err_set(err, LC_EINVAL, "file replica %s: path too long", dir);
    fs = calloc(1, sizeof(*fs));
    if (!fs)
        return lc_err_set(err, LC_ENOMEM, "file replica %s: out of memory", dir);
    fs->base.ops = &file_ops;
    fs->base.loop = loop;
    memcpy(fs->dir, dir, n);
    fs->dir[n] = '\0';
    if (snprintf(fs->base.desc, sizeof(fs->base.desc), "file://%s", fs->dir) >=
        (int)sizeof(fs->base.desc))
        memcpy(fs->base.desc + sizeof(fs->base.desc) - 4, "...", 4); /* messages only */
    if (perm) {
        fs->perm = *perm;
    } else {
        fs->perm.file_mode = 0600;
        fs->perm.dir_mode = 0700;
        fs->perm.uid = (uid_t)-1;
        fs->perm.gid = (gid_t)-1;
    }
    *out = &fs->base;
    return 0;
}
