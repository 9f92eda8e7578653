/* watch: inotify on database directories feeding per-database triggers.
 *
 * One inotify fd serves the process. Each directory holding a watched database has one
 * watch descriptor, shared by every database in it; events are matched by name against
 * "NAME" and "NAME-wal". The -shm file is never a signal (its mmap writes raise no
 * events). The read loop is bounded: one ev_io callback drains at most MAX_READS
 * buffers, then yields to the loop.
 *
 * Quiet watches. Every write(2) to a file in a watched directory costs the writer an
 * event (allocated, or merged into the queue's last one under a spinlock): under heavy
 * writes a sixth of the app's CPU (perf). While our sync runs, events tell us nothing we
 * will not learn anyway, so the sync of a database alone in its directory switches the
 * watch to QUIET_MASK (no IN_MODIFY, no IN_CLOSE_WRITE) first, re-arms it when done, and
 * then syncs once more for a commit that landed after the copy. The debounce still sees
 * every event. A directory holding several watched databases stays armed: a quiet
 * watch would hide the others' writes.
 *
 * The trigger is a capped throttle: the first event of a burst arms a timer of
 * `debounce`; each later event pushes it back by `debounce`, but never past
 * first + max-delay, so steady writes still sync on time. The fallback timer always
 * runs and is pushed back after every sync, so an idle database costs one stat-sized
 * sync per fallback interval and nothing else. Its deadline is rounded up to a grid of
 * FALLBACK_GRID steps an interval, shared by every database, so idle databases' timers
 * expire together and libev reaps them in one wake-up: 200 idle databases wake the
 * process ~FALLBACK_GRID times a second instead of 200 (a fallback sync comes 1 to
 * 1 + 1/FALLBACK_GRID intervals after the last sync). */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"

#define MAX_READS 16
#define FALLBACK_GRID 8
#define MAX_ENTRIES 100000
#define DIR_MASK                                                                              \
    (IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |        \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_EXCL_UNLINK)
#define QUIET_MASK (DIR_MASK & ~(uint32_t)(IN_MODIFY | IN_CLOSE_WRITE))

static double ns_to_s(int64_t ns)
{
    return (double)ns / 1e9;
}

int64_t lc_debounce_deadline(int64_t first_ns, int64_t now_ns, int64_t debounce_ns,
                             int64_t max_delay_ns)
{
    int64_t d = now_ns + debounce_ns;
    int64_t cap = first_ns + max_delay_ns;
    if (max_delay_ns > 0 && d > cap)
        d = cap;
    return d < now_ns ? now_ns : d;
}

static void debounce_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lc_trigger *t = w->data;
    (void)loop;
    (void)revents;
    t->first_event_ns = 0;
    t->fire(t->arg, LC_SYNC_EVENT);
}

/* (Re)arm the fallback timer at the first grid point an interval or more from now. The
 * grid is in ev_now()'s time base, so timers re-armed in one loop iteration get the same
 * expiry exactly; the 1 ms granularity of libev's epoll wait covers the rest. */
static void fallback_arm(struct lc_trigger *t)
{
    double iv = ns_to_s(t->fallback_ns), grid = iv / FALLBACK_GRID;
    double now = ev_now(t->loop);
    double at = ceil((now + iv) / grid) * grid;

    ev_timer_stop(t->loop, &t->fallback);
    ev_timer_set(&t->fallback, at > now ? at - now : iv, iv);
    ev_timer_start(t->loop, &t->fallback);
}

static void fallback_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lc_trigger *t = w->data;
    (void)loop;
    (void)revents;
    fallback_arm(t); /* the sync re-arms it too, unless it returns early */
    t->fire(t->arg, LC_SYNC_FALLBACK);
}

void lc_trigger_init(struct lc_trigger *t, struct ev_loop *loop, int64_t debounce_ns,
                     int64_t max_delay_ns, int64_t fallback_ns,
                     void (*fire)(void *arg, enum lc_sync_why why), void *arg)
{
    memset(t, 0, sizeof(*t));
    t->loop = loop;
    t->debounce_ns = debounce_ns;
    t->max_delay_ns = max_delay_ns;
    t->fallback_ns = fallback_ns;
    t->fire = fire;
    t->arg = arg;
    ev_timer_init(&t->debounce, debounce_cb, 0., 0.);
    t->debounce.data = t;
    ev_timer_init(&t->fallback, fallback_cb, 0., fallback_ns > 0 ? ns_to_s(fallback_ns) : 0.);
    t->fallback.data = t;
}

void lc_trigger_start(struct lc_trigger *t)
{
    if (t->fallback_ns > 0)
        fallback_arm(t);
}

void lc_trigger_event(struct lc_trigger *t)
{
    int64_t now = lc_now_mono_ns();
    if (t->first_event_ns == 0)
        t->first_event_ns = now;
    int64_t at = lc_debounce_deadline(t->first_event_ns, now, t->debounce_ns, t->max_delay_ns);
    /* ev_now() lags real time inside a long callback; schedule relative to real time */
    ev_timer_stop(t->loop, &t->debounce);
    ev_timer_set(&t->debounce, ns_to_s(at - now), 0.);
    ev_timer_start(t->loop, &t->debounce);
}

void lc_trigger_synced(struct lc_trigger *t)
{
    if (t->fallback_ns > 0)
        fallback_arm(t);
}

void lc_trigger_stop(struct lc_trigger *t)
{
    if (!t->loop)
        return;
    ev_timer_stop(t->loop, &t->debounce);
    ev_timer_stop(t->loop, &t->fallback);
}

struct entry {
    int wd;               /* directory watch descriptor, -1 when free */
    int quiet;            /* the watch is on QUIET_MASK until lc_watch_rearm() */
    char *dir;            /* the directory, to re-arm it; owned */
    char *name;           /* database base name; owned */
    size_t name_len;
    lc_watch_fn fn;       /* callback */
    void *arg;
};

struct lc_watch {
    int fd;               /* inotify fd */
    ev_io io;             /* read readiness of fd */
    struct ev_loop *loop; /* borrowed */
    struct entry *v;      /* entries; handle = index */
    size_t n, cap;
    uint64_t overflows;   /* IN_Q_OVERFLOW seen */
};

static void dispatch(struct lc_watch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        w->overflows++;
        lc_warn("inotify queue overflow: syncing every database", "overflows=%llu",
                (unsigned long long)w->overflows);
        for (size_t i = 0; i < w->n; i++)
            if (w->v[i].fn)
                w->v[i].fn(w->v[i].arg, IN_Q_OVERFLOW);
        return;
    }
    for (size_t i = 0; i < w->n; i++) {
        struct entry *e = &w->v[i];
        if (!e->fn || e->wd != ev->wd)
            continue;
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
            e->fn(e->arg, ev->mask);
            continue;
        }
        if (ev->len == 0)
            continue;
        const char *nm = ev->name;
        if (strncmp(nm, e->name, e->name_len) != 0)
            continue;
        if (nm[e->name_len] == '\0' || strcmp(nm + e->name_len, "-wal") == 0)
            e->fn(e->arg, ev->mask);
    }
}

static void io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct lc_watch *w = io->data;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    (void)loop;
    (void)revents;

    for (int r = 0; r < MAX_READS; r++) {
        ssize_t n = read(w->fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                lc_warn("inotify read failed", "error=\"%s\"", strerror(errno));
            return;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            dispatch(w, ev);
            p += sizeof(*ev) + ev->len;
        }
        if ((size_t)n < sizeof(buf) / 2)
            return;
    }
}

int lc_watch_new(struct lc_watch **out, struct ev_loop *loop, struct lc_error *err)
{
    struct lc_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        free(w);
        return lc_err_set(err, LC_EIO, "inotify_init1: %s", strerror(e));
    }
    w->loop = loop;
    ev_io_init(&w->io, io_cb, w->fd, EV_READ);
    w->io.data = w;
    ev_io_start(loop, &w->io);
    *out = w;
    return 0;
}

void lc_watch_free(struct lc_watch *w)
{
    if (!w)
        return;
    ev_io_stop(w->loop, &w->io);
    close(w->fd);
    for (size_t i = 0; i < w->n; i++) {
        free(w->v[i].name);
        free(w->v[i].dir);
    }
    free(w->v);
    free(w);
}

/* The live entry behind a handle, or NULL. */
static struct entry *entry_of(struct lc_watch *w, int handle)
{
    if (!w || handle < 0 || (size_t)handle >= w->n || !w->v[handle].fn)
        return NULL;
    return &w->v[handle];
}

/* inotify_add_watch()'s errno as an LC_E* code. */
static int add_watch_code(void)
{
    return errno == ENOSPC || errno == EMFILE ? LC_ENOMEM : LC_EIO;
}

int lc_watch_add(struct lc_watch *w, const char *dir, const char *name, lc_watch_fn fn,
                 void *arg, struct lc_error *err)
{
    /* inotify returns the same wd for the same directory, so sharing is automatic */
    int wd = inotify_add_watch(w->fd, dir, DIR_MASK);
    if (wd < 0)
        return lc_err_set(err, add_watch_code(), "inotify watch %s: %s", dir, strerror(errno));
    size_t slot = w->n;
    for (size_t i = 0; i < w->n; i++)
        if (!w->v[i].fn) {
            slot = i;
            break;
        }
    if (slot == w->n) {
        if (w->n == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 8;
            if (cap > MAX_ENTRIES)
                return lc_err_set(err, LC_ENOMEM, "too many watched databases");
            struct entry *v = realloc(w->v, cap * sizeof(*v));
            if (!v)
                return lc_err_set(err, LC_ENOMEM, "out of memory");
            w->v = v;
            w->cap = cap;
        }
        w->n++;
    }
    struct entry *e = &w->v[slot];
    e->name = strdup(name);
    e->dir = strdup(dir);
    if (!e->name || !e->dir) {
        free(e->name);
        free(e->dir);
        e->name = e->dir = NULL;
        e->fn = NULL;
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    }
    /* a second database in a quiet directory: the add above restored the full mask, and
     * the first one syncs once more, as after any re-arm */
    for (size_t i = 0; i < w->n; i++)
        if (i != slot && w->v[i].fn && w->v[i].wd == wd && w->v[i].quiet) {
            w->v[i].quiet = 0;
            w->v[i].fn(w->v[i].arg, IN_MODIFY);
        }
    e->name_len = strlen(name);
    e->quiet = 0;
    e->wd = wd;
    e->fn = fn;
    e->arg = arg;
    return (int)slot;
}

void lc_watch_remove(struct lc_watch *w, int handle)
{
    struct entry *e = entry_of(w, handle);
    if (!e)
        return;
    int wd = e->wd, shared = 0;
    free(e->name);
    free(e->dir);
    e->name = e->dir = NULL;
    e->fn = NULL;
    e->quiet = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->v[i].fn && w->v[i].wd == wd)
            shared = 1;
    if (!shared)
        (void)inotify_rm_watch(w->fd, wd);
}

int lc_watch_quiet(struct lc_watch *w, int handle)
{
    struct entry *e = entry_of(w, handle);
    if (!e)
        return LC_EINVAL;
    if (e->quiet)
        return 1;
    for (size_t i = 0; i < w->n; i++)
        if (w->v[i].fn && w->v[i].wd == e->wd && &w->v[i] != e)
            return 0;
    int wd = inotify_add_watch(w->fd, e->dir, QUIET_MASK);
    if (wd < 0)
        return 0; /* stays armed: only the app's events cost more */
    e->wd = wd;   /* a new one if the directory was replaced */
    e->quiet = 1;
    return 1;
}

int lc_watch_rearm(struct lc_watch *w, int handle)
{
    struct entry *e = entry_of(w, handle);
    if (!e)
        return LC_EINVAL;
    if (!e->quiet)
        return 0;
    int wd = inotify_add_watch(w->fd, e->dir, DIR_MASK);
    if (wd < 0)
        return add_watch_code();
    e->wd = wd; /* a new one if the directory was replaced meanwhile */
    e->quiet = 0;
    return 1;
}

uint64_t lc_watch_overflows(const struct lc_watch *w)
{
    return w ? w->overflows : 0;
}
