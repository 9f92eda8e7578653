/* util: errors, small file-system and time helpers shared by every module.
 *
 * Error convention: fallible functions return 0 or a negative LC_E* code and
 * describe the failure in a caller-owned struct lc_error (lowercase, no final
 * period, naming the object). lc_err_set() returns the code so callers write
 * `return lc_err_set(err, LC_EIO, "open %s: %s", path, strerror(errno));`. */
#ifndef LC_UTIL_H
#define LC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define LC_ERR_LEN 512

enum {
    LC_OK = 0,
    LC_EIO = -1,       /* a syscall or library call failed */
    LC_ECORRUPT = -2,  /* data failed a format, checksum or salt check */
    LC_ENOTFOUND = -3, /* the object or file does not exist */
    LC_EINVAL = -4,    /* bad argument, configuration or usage */
    LC_EBUSY = -5,     /* a lock could not be taken in time; try later */
    LC_ENOMEM = -6,    /* allocation failed or a bound was exceeded */
    LC_EAGAIN = -7,    /* transient failure (network, server); retry */
};

struct lc_error {
    int code;             /* last LC_E* code set, 0 when none */
    char msg[LC_ERR_LEN]; /* one line, lowercase, no final period */
};

/* Record an error and return code. fmt is printf-style. */
int lc_err_set(struct lc_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "ctx: old message". Returns err->code. */
int lc_err_wrap(struct lc_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lc_err_clear(struct lc_error *err);

/* Big-endian integer codecs (WAL integers are big-endian on disk). */
uint32_t lc_get32be(const uint8_t *p);
void lc_put32be(uint8_t *p, uint32_t v);

/* Monotonic and wall clocks. */
int64_t lc_now_mono_ns(void);
int64_t lc_now_wall_ns(void);

/* Format ns since the epoch as RFC 3339 UTC "2006-01-02T15:04:05Z" (frac=0) or with
 * nanoseconds (frac=1). buf must hold at least 40 bytes. */
void lc_time_format(int64_t wall_ns, int frac, char *buf, size_t len);
/* Parse RFC 3339 with optional fraction and Z or +hh:mm offset. */
int lc_time_parse(const char *s, int64_t *wall_ns);

/* Parse "250ms", "1s", "5m", "2h", "1h30m" (a bare 0 is allowed) into nanoseconds. */
int lc_duration_parse(const char *s, int64_t *ns);
/* Format nanoseconds like Go's time.Duration.String(), e.g. "1.5s", "-31ms". */
void lc_duration_format(int64_t ns, char *buf, size_t len);

/* I/O helpers: retry EINTR, treat short transfers as errors (EIO). */
/* Read up to len bytes at off; returns bytes read (less than len only at EOF) or -1. */
ssize_t lc_pread_full(int fd, void *buf, size_t len, off_t off);
int lc_pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* pwritev(2) until every byte is written (EINTR retried, short writes resumed); iov is
 * consumed (modified). 0, or -1 with errno. */
int lc_pwritev_full(int fd, struct iovec *iov, int cnt, off_t off);
int lc_write_full(int fd, const void *buf, size_t len);
/* Read a whole small file (at most max bytes) into a malloc'd buffer. */
int lc_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen, struct lc_error *err);
/* Crash-safe replacement: write path.tmp, fsync, rename, fsync dir. mode applied to the file. */
int lc_atomic_write(const char *path, const void *buf, size_t len, mode_t mode,
                    struct lc_error *err);
int lc_fsync_dir(const char *dir_path, struct lc_error *err);
/* mkdir -p with the given mode for created directories. */
int lc_mkdir_p(const char *path, mode_t mode, struct lc_error *err);
/* rm -rf of a directory tree (no symlink following). Missing is success. */
int lc_rm_rf(const char *path, struct lc_error *err);
/* Directory part / base part of a path into buf. */
void lc_path_dir(const char *path, char *buf, size_t len);
const char *lc_path_base(const char *path);
/* snprintf that reports truncation as LC_EINVAL. */
int lc_path_join(char *buf, size_t len, const char *a, const char *b);

/* Bounded growable byte buffer. Never grows past max; lc_buf_free on a zeroed buf is a no-op. */
struct lc_buf {
    uint8_t *data; /* owned, malloc'd */
    size_t len;    /* bytes in use */
    size_t cap;    /* bytes allocated */
    size_t max;    /* hard ceiling on cap; 0 means LC_BUF_DEFAULT_MAX */
};
#define LC_BUF_DEFAULT_MAX ((size_t)1 << 31)
int lc_buf_reserve(struct lc_buf *b, size_t extra);
int lc_buf_append(struct lc_buf *b, const void *p, size_t n);
void lc_buf_free(struct lc_buf *b);

/* 8 random bytes from getrandom() as 16 lowercase hex chars + NUL. */
int lc_random_hex16(char out[17]);
int lc_is_hex(const char *s, size_t n);

#endif
