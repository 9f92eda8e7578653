/* util: errors, big-endian codecs, clocks, RFC 3339 and duration text, and the
 * small file-system helpers every module needs. The one crash-safe replacement
 * (tmp, fsync, rename, fsync dir) lives here so nobody writes it twice. */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

int lc_err_set(struct lc_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int lc_err_wrap(struct lc_error *err, const char *fmt, ...)
{
    char prefix[LC_ERR_LEN], old[LC_ERR_LEN];
    va_list ap;

    if (!err)
        return LC_EIO;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    if (snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old) >= (int)sizeof(err->msg))
        memcpy(err->msg + sizeof(err->msg) - 4, "...", 4); /* keep the line bounded */
    return err->code ? err->code : LC_EIO;
}

void lc_err_clear(struct lc_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

uint32_t lc_get32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void lc_put32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t lc_now_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

int64_t lc_now_wall_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

void lc_time_format(int64_t wall_ns, int frac, char *buf, size_t len)
{
    time_t sec = (time_t)(wall_ns / 1000000000);
    long nsec = (long)(wall_ns % 1000000000);
    struct tm tm;
    char base[32];

    if (nsec < 0) {
        nsec += 1000000000;
        sec -= 1;
    }
    gmtime_r(&sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac)
        snprintf(buf, len, "%s.%09ldZ", base, nsec);
    else
        snprintf(buf, len, "%sZ", base);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int lc_time_parse(const char *s, int64_t *wall_ns)
{
    const char *p = s;
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    int64_t frac = 0;
    int sign = 0;

    if (parse_digits(&p, 4, &y) || *p++ != '-' || parse_digits(&p, 2, &mo) || *p++ != '-' ||
        parse_digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return LC_EINVAL;
    p++;
    if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &mi) || *p++ != ':' ||
        parse_digits(&p, 2, &sec))
        return LC_EINVAL;
    if (*p == '.') {
        int n = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 9) {
                frac = frac * 10 + (*p - '0');
                n++;
            }
            p++;
        }
        if (n == 0)
            return LC_EINVAL;
        while (n++ < 9)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        p++;
        if (parse_digits(&p, 2, &oh) || *p++ != ':' || parse_digits(&p, 2, &om))
            return LC_EINVAL;
    } else {
        return LC_EINVAL;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || oh > 23 ||
        om > 59)
        return LC_EINVAL;
    int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *wall_ns = t * 1000000000 + frac;
    return 0;
}

int lc_duration_parse(const char *s, int64_t *ns)
{
    const char *p = s;
    int64_t total = 0;
    int any = 0;

    if (!s || !*s)
        return LC_EINVAL;
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || v < 0 || *p == '+' || *p == '-' || *p == ' ')
            return LC_EINVAL;
        p = end;
        int64_t unit;
        if (strncmp(p, "ms", 2) == 0) {
            unit = 1000000;
            p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            unit = 1000;
            p += 2;
        } else if (strncmp(p, "ns", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000000000;
            p++;
        } else if (*p == 'm') {
            unit = 60LL * 1000000000;
            p++;
        } else if (*p == 'h') {
            unit = 3600LL * 1000000000;
            p++;
        } else {
            return LC_EINVAL;
        }
        double add = v * (double)unit;
        if (add > 9.2e18 || (double)total + add > 9.2e18)
            return LC_EINVAL;
        total += (int64_t)add;
        any = 1;
    }
    if (!any)
        return LC_EINVAL;
    *ns = total;
    return 0;
}

/* Go's Duration.String(): "1h2m3.5s", "1.5s", "31ms", "0s". */
void lc_duration_format(int64_t ns, char *buf, size_t len)
{
    const char *sign = ns < 0 ? "-" : "";
    uint64_t u = ns < 0 ? (uint64_t)(-(ns + 1)) + 1 : (uint64_t)ns;
    char frac[16];

    if (u == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    if (u < 1000000000) {
        const char *unit;
        uint64_t whole, rem, div;
        if (u < 1000) {
            snprintf(buf, len, "%s%lluns", sign, (unsigned long long)u);
            return;
        } else if (u < 1000000) {
            unit = "µs";
            div = 1000;
        } else {
            unit = "ms";
            div = 1000000;
        }
        whole = u / div;
        rem = u % div;
        frac[0] = '\0';
        if (rem) {
            int w = div == 1000 ? 3 : 6;
            snprintf(frac, sizeof(frac), ".%0*llu", w, (unsigned long long)rem);
            size_t n = strlen(frac);
            while (n > 1 && frac[n - 1] == '0')
                frac[--n] = '\0';
        }
        snprintf(buf, len, "%s%llu%s%s", sign, (unsigned long long)whole, frac, unit);
        return;
    }
    uint64_t secs = u / 1000000000, rem = u % 1000000000;
    frac[0] = '\0';
    if (rem) {
        snprintf(frac, sizeof(frac), ".%09llu", (unsigned long long)rem);
        size_t n = strlen(frac);
        while (n > 1 && frac[n - 1] == '0')
            frac[--n] = '\0';
    }
    uint64_t h = secs / 3600, m = (secs / 60) % 60, s = secs % 60;
    if (h)
        snprintf(buf, len, "%s%lluh%llum%llu%ss", sign, (unsigned long long)h,
                 (unsigned long long)m, (unsigned long long)s, frac);
    else if (m)
        snprintf(buf, len, "%s%llum%llu%ss", sign, (unsigned long long)m, (unsigned long long)s,
                 frac);
    else
        snprintf(buf, len, "%s%llu%ss", sign, (unsigned long long)s, frac);
}

ssize_t lc_pread_full(int fd, void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int lc_pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int lc_pwritev_full(int fd, struct iovec *iov, int cnt, off_t off)
{
    while (cnt > 0) {
        ssize_t n = pwritev(fd, iov, cnt, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        off += (off_t)n;
        /* drop what was written: whole buffers, then the front of a partial one */
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

int lc_write_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int lc_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen,
                 struct lc_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf;
    ssize_t n;

    if (fd < 0)
        return lc_err_set(err, errno == ENOENT ? LC_ENOTFOUND : LC_EIO, "open %s: %s", path,
                          strerror(errno));
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return lc_err_set(err, LC_EIO, "stat %s: %s", path, strerror(e));
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return lc_err_set(err, LC_ENOMEM, "read %s: larger than %zu bytes", path, max);
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return lc_err_set(err, LC_ENOMEM, "read %s: out of memory", path);
    }
    n = lc_pread_full(fd, buf, (size_t)st.st_size, 0);
    if (n < 0) {
        int e = errno;
        free(buf);
        close(fd);
        return lc_err_set(err, LC_EIO, "read %s: %s", path, strerror(e));
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *outlen = (size_t)n;
    return 0;
}

int lc_fsync_dir(const char *dir_path, struct lc_error *err)
{
    int fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "open dir %s: %s", dir_path, strerror(errno));
    if (fsync(fd) < 0 && errno != EINVAL) {
        int e = errno;
        close(fd);
        return lc_err_set(err, LC_EIO, "fsync dir %s: %s", dir_path, strerror(e));
    }
    close(fd);
    return 0;
}

int lc_atomic_write(const char *path, const void *buf, size_t len, mode_t mode,
                    struct lc_error *err)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int fd;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return lc_err_set(err, LC_EINVAL, "path too long: %s", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "create %s: %s", tmp, strerror(errno));
    if (lc_write_full(fd, buf, len) < 0 || fsync(fd) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return lc_err_set(err, LC_EIO, "write %s: %s", tmp, strerror(e));
    }
    if (close(fd) < 0) {
        int e = errno;
        unlink(tmp);
        return lc_err_set(err, LC_EIO, "close %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return lc_err_set(err, LC_EIO, "rename %s: %s", tmp, strerror(e));
    }
    lc_path_dir(path, dir, sizeof(dir));
    return lc_fsync_dir(dir, err);
}

int lc_mkdir_p(const char *path, mode_t mode, struct lc_error *err)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return lc_err_set(err, LC_EINVAL, "mkdir: bad path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return lc_err_set(err, LC_EIO, "mkdir %s: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    return 0;
}

static int rm_rf_at(int at, const char *name, struct lc_error *err, int depth)
{
    if (depth > 64)
        return lc_err_set(err, LC_EINVAL, "remove %s: too deep", name);
    if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return lc_err_set(err, LC_EIO, "remove %s: %s", name, strerror(errno));
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "open %s: %s", name, strerror(errno));
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return lc_err_set(err, LC_EIO, "opendir %s: %s", name, strerror(errno));
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        rc = rm_rf_at(dirfd(d), de->d_name, err, depth + 1);
    }
    closedir(d);
    if (rc == 0 && unlinkat(at, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = lc_err_set(err, LC_EIO, "rmdir %s: %s", name, strerror(errno));
    return rc;
}

int lc_rm_rf(const char *path, struct lc_error *err)
{
    return rm_rf_at(AT_FDCWD, path, err, 0);
}

void lc_path_dir(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, len, ".");
    } else if (slash == path) {
        snprintf(buf, len, "/");
    } else {
        snprintf(buf, len, "%.*s", (int)(slash - path), path);
    }
}

const char *lc_path_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int lc_path_join(char *buf, size_t len, const char *a, const char *b)
{
    size_t al = strlen(a);
    int n = (al && a[al - 1] == '/') ? snprintf(buf, len, "%s%s", a, b)
                                     : snprintf(buf, len, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= len)
        return LC_EINVAL;
    return 0;
}

int lc_buf_reserve(struct lc_buf *b, size_t extra)
{
    size_t max = b->max ? b->max : LC_BUF_DEFAULT_MAX;
    if (extra > max || b->len > max - extra)
        return LC_ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : (max < 4096 ? max : 4096); /* never past max */
    while (cap < need)
        cap = cap > max / 2 ? max : cap * 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return LC_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int lc_buf_append(struct lc_buf *b, const void *p, size_t n)
{
    int rc = lc_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void lc_buf_free(struct lc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int lc_random_hex16(char out[17])
{
    uint8_t r[8];
    static const char hex[] = "0123456789abcdef";
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return LC_EIO;
        }
        got += (size_t)n;
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[16] = '\0';
    return 0;
}

int lc_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}
