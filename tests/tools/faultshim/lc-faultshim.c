/* lc-faultshim: an LD_PRELOAD library that makes chosen file-system calls of a process
 * fail, for the fault-injection tests (tests/integration/61-faults.sh). It lives in a
 * subdirectory so the Makefile's wildcard over tests/tools does not link it as a program;
 * build it with
 *
 *   cc -shared -fPIC -o faultshim.so tests/tools/faultshim/lc-faultshim.c -ldl
 *
 * Environment:
 *   LC_FAULT       comma-separated rules CALL:KIND:WHEN
 *                    CALL  write pwrite fsync rename open ftruncate mkdir unlink close
 *                          (write also covers writev; pwrite pwrite64/pwritev; fsync
 *                          fdatasync; rename renameat/renameat2; open open64/openat/creat;
 *                          close reports an error after really closing)
 *                    KIND  eio enospc edquot eintr einval short (short: write/pwrite only, writes
 *                          about half the bytes and returns that count), kill (the
 *                          process SIGKILLs itself instead of making the call: a crash
 *                          at an exact point, e.g. a writer's WAL fsync)
 *                    WHEN  a probability in [0,1] ("0.05"), or "#N": the N-th eligible call
 *                          only, or "#N+": the N-th and every later one
 *                  e.g. LC_FAULT="pwrite:eio:0.02,fsync:eio:0.05,rename:enospc:#3"
 *   LC_FAULT_SEED  seed of the PRNG (default 1), so a run can be replayed
 *   LC_FAULT_PATH  colon-separated path prefixes: only calls on those paths, or on fds
 *                  opened under them, are eligible. An entry with * or ? is an fnmatch(3)
 *                  pattern for the whole path instead (* also matches /). Unset: every
 *                  call is (which also sabotages SQLite's own I/O: usually not what a
 *                  test wants).
 *   LC_FAULT_CTL   a file: faults are injected only while it exists (checked every 20 ms),
 *                  so a test can switch them on and off without restarting the process
 *   LC_FAULT_LOG   a file that gets one line per injected fault: "CALL KIND PATH"
 *
 * The process under test is single-threaded in what matters here (litecast's loop);
 * the counters are still updated atomically. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum call { C_WRITE, C_PWRITE, C_FSYNC, C_RENAME, C_OPEN, C_FTRUNCATE, C_MKDIR, C_UNLINK,
            C_CLOSE, C_N };
static const char *const call_names[C_N] = {"write", "pwrite", "fsync", "rename", "open",
                                            "ftruncate", "mkdir", "unlink", "close"};
enum kind { K_EIO, K_ENOSPC, K_EDQUOT, K_EINTR, K_SHORT, K_KILL, K_EINVAL };
static const char *const kind_names[] = {"eio",  "enospc", "edquot", "eintr",
                                         "short", "kill",  "einval"};

#define MAX_RULES 32
#define MAX_PREFIX 8
#define MAX_FD 65536

struct rule {
    enum call call;
    enum kind kind;
    double prob;    /* < 0: counted */
    long nth;       /* counted: the N-th eligible call */
    int and_later;  /* counted: and every later one */
};

static struct rule rules[MAX_RULES];
static int nrules;
static long counts[C_N];
static char prefixes[MAX_PREFIX][PATH_MAX];
static size_t prefix_len[MAX_PREFIX];
static int nprefix, any_path;
static unsigned char tracked[MAX_FD];
static char *fdpath[MAX_FD];
static const char *ctl_path;
static int log_fd = -1;
static uint64_t rng = 1;
static int ready;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real_creat)(const char *, mode_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

static void *sym(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

static uint64_t rng_next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static void parse_rules(const char *spec)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && nrules < MAX_RULES;
         tok = strtok_r(NULL, ",", &save)) {
        char *c = tok, *k = strchr(c, ':'), *w;
        if (!k || !(w = strchr(k + 1, ':')))
            goto bad;
        *k++ = '\0';
        *w++ = '\0';
        struct rule r = {0};
        int found = 0;
        for (int i = 0; i < C_N; i++)
            if (strcmp(c, call_names[i]) == 0)
                r.call = (enum call)i, found = 1;
        if (!found)
            goto bad;
        found = 0;
        for (int i = 0; i < (int)(sizeof(kind_names) / sizeof(kind_names[0])); i++)
            if (strcmp(k, kind_names[i]) == 0)
                r.kind = (enum kind)i, found = 1;
        if (!found || (r.kind == K_SHORT && r.call != C_WRITE && r.call != C_PWRITE))
            goto bad;
        if (w[0] == '#') {
            char *end;
            r.prob = -1;
            r.nth = strtol(w + 1, &end, 10);
            r.and_later = *end == '+';
            if (r.nth < 1)
                goto bad;
        } else {
            r.prob = strtod(w, NULL);
        }
        rules[nrules++] = r;
        continue;
    bad:
        fprintf(stderr, "lc-faultshim: ignoring bad rule '%s'\n", tok);
    }
}

__attribute__((constructor)) static void init(void)
{
    real_write = sym("write");
    real_writev = sym("writev");
    real_pwrite = sym("pwrite");
    real_pwrite64 = sym("pwrite64");
    real_pwritev = sym("pwritev");
    real_fsync = sym("fsync");
    real_fdatasync = sym("fdatasync");
    real_rename = sym("rename");
    real_renameat = sym("renameat");
    real_renameat2 = sym("renameat2");
    real_open = sym("open");
    real_open64 = sym("open64");
    real_openat = sym("openat");
    real_openat64 = sym("openat64");
    real___open_2 = sym("__open_2");
    real___open64_2 = sym("__open64_2");
    real___openat_2 = sym("__openat_2");
    real_creat = sym("creat");
    real_ftruncate = sym("ftruncate");
    real_ftruncate64 = sym("ftruncate64");
    real_mkdir = sym("mkdir");
    real_unlink = sym("unlink");
    real_unlinkat = sym("unlinkat");
    real_close = sym("close");
    real_dup = sym("dup");
    real_dup2 = sym("dup2");
    real_dup3 = sym("dup3");

    const char *s = getenv("LC_FAULT");
    if (s)
        parse_rules(s);
    if ((s = getenv("LC_FAULT_SEED")) != NULL)
        rng = strtoull(s, NULL, 10) * 0x9E3779B97F4A7C15ULL;
    if (rng == 0)
        rng = 1;
    if ((s = getenv("LC_FAULT_PATH")) != NULL && *s) {
        char buf[PATH_MAX * 2];
        snprintf(buf, sizeof(buf), "%s", s);
        for (char *save = NULL, *tok = strtok_r(buf, ":", &save); tok && nprefix < MAX_PREFIX;
             tok = strtok_r(NULL, ":", &save)) {
            snprintf(prefixes[nprefix], PATH_MAX, "%s", tok);
            prefix_len[nprefix] = strlen(prefixes[nprefix]);
            while (prefix_len[nprefix] > 1 && prefixes[nprefix][prefix_len[nprefix] - 1] == '/')
                prefixes[nprefix][--prefix_len[nprefix]] = '\0';
            nprefix++;
        }
    } else {
        any_path = 1;
    }
    ctl_path = getenv("LC_FAULT_CTL");
    if (ctl_path && !*ctl_path)
        ctl_path = NULL;
    if ((s = getenv("LC_FAULT_LOG")) != NULL && *s && real_open)
        log_fd = real_open(s, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ready = 1;
}

/* ---- paths and fds ---------------------------------------------------------------- */

static int under_prefix(const char *abs)
{
    if (any_path)
        return 1;
    for (int i = 0; i < nprefix; i++) {
        size_t n = prefix_len[i];
        if (strpbrk(prefixes[i], "*?")) {
            if (fnmatch(prefixes[i], abs, 0) == 0)
                return 1;
        } else if (strncmp(abs, prefixes[i], n) == 0 && (abs[n] == '\0' || abs[n] == '/')) {
            return 1;
        }
    }
    return 0;
}

/* The absolute form of (dirfd, path), lexically; "" if it cannot be had. */
static void absolute(int dirfd, const char *path, char *out, size_t len)
{
    char base[PATH_MAX];
    out[0] = '\0';
    if (!path)
        return;
    if (path[0] == '/') {
        snprintf(out, len, "%s", path);
        return;
    }
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof(base)))
            return;
    } else {
        char link[64];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof(base) - 1);
        if (n <= 0)
            return;
        base[n] = '\0';
    }
    if ((size_t)snprintf(out, len, "%s/%.*s", base, (int)(len > 1 ? len - 1 : 0), path) >= len)
        out[0] = '\0'; /* too long to tell: not eligible */
}

static int path_eligible(int dirfd, const char *path)
{
    char abs[PATH_MAX];
    if (any_path)
        return 1;
    absolute(dirfd, path, abs, sizeof(abs));
    return abs[0] && under_prefix(abs);
}

static int fd_eligible(int fd)
{
    if (any_path)
        return 1;
    return fd >= 0 && fd < MAX_FD && tracked[fd];
}

static void track(int fd, int dirfd, const char *path)
{
    char abs[PATH_MAX];
    if (fd < 0 || fd >= MAX_FD)
        return;
    absolute(dirfd, path, abs, sizeof(abs));
    tracked[fd] = abs[0] && under_prefix(abs);
    free(fdpath[fd]);
    fdpath[fd] = tracked[fd] ? strdup(abs) : NULL;
}

static void untrack(int fd)
{
    if (fd < 0 || fd >= MAX_FD)
        return;
    tracked[fd] = 0;
    free(fdpath[fd]);
    fdpath[fd] = NULL;
}

/* ---- the decision ------------------------------------------------------------------ */

static int active(void)
{
    static int64_t checked_ns;
    static int on = 1;
    struct timespec ts;
    if (!ctl_path)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (checked_ns == 0 || now - checked_ns > 20000000) {
        struct stat st;
        on = stat(ctl_path, &st) == 0;
        checked_ns = now;
    }
    return on;
}

static void note(enum call c, enum kind k, const char *what)
{
    char line[PATH_MAX + 64];
    if (log_fd >= 0 && real_write) {
        int n = snprintf(line, sizeof(line), "%s %s %s\n", call_names[c], kind_names[k],
                         what ? what : "-");
        if (n > 0)
            (void)real_write(log_fd, line,
                             (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    if (k == K_KILL)
        raise(SIGKILL);
}

/* Should this eligible call fail? Returns the rule, or NULL. Counts every eligible call. */
static const struct rule *decide(enum call c)
{
    const struct rule *hit = NULL;
    long n;
    if (!ready || nrules == 0)
        return NULL;
    n = __atomic_add_fetch(&counts[c], 1, __ATOMIC_RELAXED);
    if (!active())
        return NULL;
    for (int i = 0; i < nrules && !hit; i++) {
        const struct rule *r = &rules[i];
        if (r->call != c)
            continue;
        if (r->prob < 0) {
            if (n == r->nth || (r->and_later && n > r->nth))
                hit = r;
        } else if (r->prob > 0 && (double)(rng_next() >> 11) / 9007199254740992.0 < r->prob) {
            hit = r;
        }
    }
    return hit;
}

static int fail_errno(enum kind k)
{
    switch (k) {
    case K_ENOSPC: return ENOSPC;
    case K_EDQUOT: return EDQUOT;
    case K_EINTR: return EINTR;
    case K_EINVAL: return EINVAL;
    default: return EIO;
    }
}

static const char *fd_name(int fd)
{
    return fd >= 0 && fd < MAX_FD && fdpath[fd] ? fdpath[fd] : "-";
}

/* ---- wrappers ---------------------------------------------------------------------- */

ssize_t write(int fd, const void *buf, size_t len)
{
    if (!real_write)
        real_write = sym("write");
    if (fd_eligible(fd) && fd != log_fd) {
        const struct rule *r = decide(C_WRITE);
        if (r) {
            note(C_WRITE, r->kind, fd_name(fd));
            if (r->kind == K_SHORT && len > 1)
                return real_write(fd, buf, len / 2);
            if (r->kind != K_SHORT) {
                errno = fail_errno(r->kind);
                return -1;
            }
        }
    }
    return real_write(fd, buf, len);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (!real_writev)
        real_writev = sym("writev");
    if (fd_eligible(fd)) {
        const struct rule *r = decide(C_WRITE);
        if (r && r->kind != K_SHORT) {
            note(C_WRITE, r->kind, fd_name(fd));
            errno = fail_errno(r->kind);
            return -1;
        }
        if (r && cnt > 0 && iov[0].iov_len > 1) {
            note(C_WRITE, r->kind, fd_name(fd));
            return real_write(fd, iov[0].iov_base, iov[0].iov_len / 2);
        }
    }
    return real_writev(fd, iov, cnt);
}

static ssize_t do_pwrite(ssize_t (*fn)(int, const void *, size_t, off_t), int fd,
                         const void *buf, size_t len, off_t off)
{
    if (fd_eligible(fd)) {
        const struct rule *r = decide(C_PWRITE);
        if (r) {
            note(C_PWRITE, r->kind, fd_name(fd));
            if (r->kind == K_SHORT && len > 1)
                return fn(fd, buf, len / 2, off);
            if (r->kind != K_SHORT) {
                errno = fail_errno(r->kind);
                return -1;
            }
        }
    }
    return fn(fd, buf, len, off);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    if (!real_pwrite)
        real_pwrite = sym("pwrite");
    return do_pwrite(real_pwrite, fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
    if (!real_pwrite64)
        real_pwrite64 = sym("pwrite64");
    return do_pwrite(real_pwrite64, fd, buf, len, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (!real_pwritev)
        real_pwritev = sym("pwritev");
    if (fd_eligible(fd)) {
        const struct rule *r = decide(C_PWRITE);
        if (r && r->kind != K_SHORT) {
            note(C_PWRITE, r->kind, fd_name(fd));
            errno = fail_errno(r->kind);
            return -1;
        }
        if (r && cnt > 0 && cnt <= 1024) {
            /* short: about half the bytes, usually ending inside a buffer */
            struct iovec cut[1024];
            size_t total = 0, want, have = 0;
            int k = 0;
            for (int i = 0; i < cnt; i++)
                total += iov[i].iov_len;
            want = total / 2 + 1;
            while (k < cnt && have < want) {
                cut[k] = iov[k];
                if (have + cut[k].iov_len > want)
                    cut[k].iov_len = want - have;
                have += cut[k].iov_len;
                k++;
            }
            if (total > 1) {
                note(C_PWRITE, K_SHORT, fd_name(fd));
                return real_pwritev(fd, cut, k, off);
            }
        }
    }
    return real_pwritev(fd, iov, cnt, off);
}

static int do_sync(int (*fn)(int), int fd)
{
    if (fd_eligible(fd)) {
        const struct rule *r = decide(C_FSYNC);
        if (r) {
            note(C_FSYNC, r->kind, fd_name(fd));
            errno = fail_errno(r->kind);
            return -1;
        }
    }
    return fn(fd);
}

int fsync(int fd)
{
    if (!real_fsync)
        real_fsync = sym("fsync");
    return do_sync(real_fsync, fd);
}

int fdatasync(int fd)
{
    if (!real_fdatasync)
        real_fdatasync = sym("fdatasync");
    return do_sync(real_fdatasync, fd);
}

static int rename_fails(int olddir, const char *from, int newdir, const char *to)
{
    if (!path_eligible(olddir, from) && !path_eligible(newdir, to))
        return 0;
    const struct rule *r = decide(C_RENAME);
    if (!r)
        return 0;
    note(C_RENAME, r->kind, to);
    errno = fail_errno(r->kind);
    return 1;
}

int rename(const char *from, const char *to)
{
    if (!real_rename)
        real_rename = sym("rename");
    if (rename_fails(AT_FDCWD, from, AT_FDCWD, to))
        return -1;
    return real_rename(from, to);
}

int renameat(int od, const char *from, int nd, const char *to)
{
    if (!real_renameat)
        real_renameat = sym("renameat");
    if (rename_fails(od, from, nd, to))
        return -1;
    return real_renameat(od, from, nd, to);
}

int renameat2(int od, const char *from, int nd, const char *to, unsigned flags)
{
    if (!real_renameat2)
        real_renameat2 = sym("renameat2");
    if (rename_fails(od, from, nd, to))
        return -1;
    return real_renameat2(od, from, nd, to, flags);
}

/* Common part of every open: maybe fail, else open and track. */
static int open_common(int dirfd, const char *path, int flags, mode_t mode, int which)
{
    int fd;
    if (path_eligible(dirfd, path)) {
        const struct rule *r = decide(C_OPEN);
        if (r) {
            note(C_OPEN, r->kind, path);
            errno = fail_errno(r->kind);
            return -1;
        }
    }
    if (!real_open)
        real_open = sym("open");
    if (!real_open64)
        real_open64 = sym("open64");
    if (!real_openat)
        real_openat = sym("openat");
    if (!real_openat64)
        real_openat64 = sym("openat64");
    switch (which) {
    case 0: fd = real_open(path, flags, mode); break;
    case 1: fd = real_open64(path, flags, mode); break;
    case 2: fd = real_openat(dirfd, path, flags, mode); break;
    default: fd = real_openat64(dirfd, path, flags, mode); break;
    }
    if (fd >= 0)
        track(fd, dirfd, path);
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        return (mode_t)va_arg(ap, int);
    return 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return open_common(AT_FDCWD, path, flags, m, 0);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return open_common(AT_FDCWD, path, flags, m, 1);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return open_common(dirfd, path, flags, m, 2);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    return open_common(dirfd, path, flags, m, 3);
}

int __open_2(const char *path, int flags)
{
    (void)real___open_2;
    return open_common(AT_FDCWD, path, flags, 0, 0);
}

int __open64_2(const char *path, int flags)
{
    (void)real___open64_2;
    return open_common(AT_FDCWD, path, flags, 0, 1);
}

int __openat_2(int dirfd, const char *path, int flags)
{
    (void)real___openat_2;
    return open_common(dirfd, path, flags, 0, 2);
}

int creat(const char *path, mode_t mode)
{
    (void)real_creat;
    return open_common(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode, 0);
}

static int do_ftruncate(int (*fn)(int, off_t), int fd, off_t len)
{
    if (fd_eligible(fd)) {
        const struct rule *r = decide(C_FTRUNCATE);
        if (r) {
            note(C_FTRUNCATE, r->kind, fd_name(fd));
            errno = fail_errno(r->kind);
            return -1;
        }
    }
    return fn(fd, len);
}

int ftruncate(int fd, off_t len)
{
    if (!real_ftruncate)
        real_ftruncate = sym("ftruncate");
    return do_ftruncate(real_ftruncate, fd, len);
}

int ftruncate64(int fd, off_t len)
{
    if (!real_ftruncate64)
        real_ftruncate64 = sym("ftruncate64");
    return do_ftruncate(real_ftruncate64, fd, len);
}

int mkdir(const char *path, mode_t mode)
{
    if (!real_mkdir)
        real_mkdir = sym("mkdir");
    if (path_eligible(AT_FDCWD, path)) {
        const struct rule *r = decide(C_MKDIR);
        if (r) {
            note(C_MKDIR, r->kind, path);
            errno = fail_errno(r->kind);
            return -1;
        }
    }
    return real_mkdir(path, mode);
}

int unlink(const char *path)
{
    if (!real_unlink)
        real_unlink = sym("unlink");
    if (path_eligible(AT_FDCWD, path)) {
        const struct rule *r = decide(C_UNLINK);
        if (r) {
            note(C_UNLINK, r->kind, path);
            errno = fail_errno(r->kind);
            return -1;
        }
    }
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    if (!real_unlinkat)
        real_unlinkat = sym("unlinkat");
    if (path_eligible(dirfd, path)) {
        const struct rule *r = decide(C_UNLINK);
        if (r) {
            note(C_UNLINK, r->kind, path);
            errno = fail_errno(r->kind);
            return -1;
        }
    }
    return real_unlinkat(dirfd, path, flags);
}

/* a duplicate of a tracked fd is tracked (a shell's "> file" is open + dup2) */
static void track_dup(int from, int to)
{
    if (to < 0 || to >= MAX_FD || from < 0 || from >= MAX_FD)
        return;
    untrack(to);
    if (tracked[from]) {
        tracked[to] = 1;
        fdpath[to] = fdpath[from] ? strdup(fdpath[from]) : NULL;
    }
}

int dup(int fd)
{
    if (!real_dup)
        real_dup = sym("dup");
    int r = real_dup(fd);
    track_dup(fd, r);
    return r;
}

int dup2(int fd, int to)
{
    if (!real_dup2)
        real_dup2 = sym("dup2");
    int r = real_dup2(fd, to);
    if (r >= 0 && fd != to)
        track_dup(fd, r);
    return r;
}

int dup3(int fd, int to, int flags)
{
    if (!real_dup3)
        real_dup3 = sym("dup3");
    int r = real_dup3(fd, to, flags);
    track_dup(fd, r);
    return r;
}

/* close really closes (as Linux does even when it reports EIO), then maybe reports one */
int close(int fd)
{
    if (!real_close)
        real_close = sym("close");
    int eligible = fd_eligible(fd) && fd != log_fd;
    const char *name = eligible ? fd_name(fd) : "-";
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", name);
    untrack(fd);
    int rc = real_close(fd);
    if (rc == 0 && eligible) {
        const struct rule *r = decide(C_CLOSE);
        if (r) {
            note(C_CLOSE, r->kind, copy);
            errno = fail_errno(r->kind);
            return -1;
        }
    }
    return rc;
}
