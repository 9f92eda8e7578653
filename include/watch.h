/* watch: one inotify fd in an ev_io for the whole process, directory watches shared
 * by every database in a directory, and per-database triggers (debounce, max-delay,
 * fallback). An inotify event is only a hint: the sync routine must be right without it. */
#ifndef LC_WATCH_H
#define LC_WATCH_H

#include <ev.h>
#include <stdint.h>
#include "util.h"

enum lc_sync_why {
    LC_SYNC_EVENT = 0,    /* an inotify event (after debounce) */
    LC_SYNC_FALLBACK = 1, /* the fallback timer */
    LC_SYNC_OTHER = 2,    /* start-up, shutdown, a replica's request */
};

/* Per-database trigger: the capped debounce and the always-on fallback timer. Embedded
 * in its owner; fire() runs the sync. */
struct lc_trigger {
    ev_timer debounce;       /* armed by the first event, pushed back by later ones */
    ev_timer fallback;       /* repeats every fallback_ns; reset after every sync */
    struct ev_loop *loop;    /* borrowed */
    int64_t debounce_ns;     /* quiet time after an event */
    int64_t max_delay_ns;    /* cap on event-to-sync delay under steady events */
    int64_t fallback_ns;     /* sync at least this often */
    int64_t first_event_ns;  /* monotonic time of the first event of a burst, 0 if none */
    void (*fire)(void *arg, enum lc_sync_why why); /* called on the loop */
    void *arg;
};

void lc_trigger_init(struct lc_trigger *t, struct ev_loop *loop, int64_t debounce_ns,
                     int64_t max_delay_ns, int64_t fallback_ns,
                     void (*fire)(void *arg, enum lc_sync_why why), void *arg);
void lc_trigger_start(struct lc_trigger *t);
/* An event arrived: arm or push back the debounce timer (never past max-delay). */
void lc_trigger_event(struct lc_trigger *t);
/* A sync just ran: restart the fallback period. */
void lc_trigger_synced(struct lc_trigger *t);
void lc_trigger_stop(struct lc_trigger *t);
/* The debounce arithmetic, exposed for unit tests: when a burst that began at first_ns
 * should sync, given an event at now_ns. */
int64_t lc_debounce_deadline(int64_t first_ns, int64_t now_ns, int64_t debounce_ns,
                             int64_t max_delay_ns);

struct lc_watch;
typedef void (*lc_watch_fn)(void *arg, uint32_t mask);

int lc_watch_new(struct lc_watch **out, struct ev_loop *loop, struct lc_error *err);
void lc_watch_free(struct lc_watch *w);
/* Call fn(arg, mask) for events on DIR/NAME and DIR/NAME-wal, on the directory itself
 * going away, and (with IN_Q_OVERFLOW) on queue overflow. Returns a handle >= 0, or a
 * negative LC_E* (e.g. ENOSPC from the watch limit) for the caller to fall back on. */
int lc_watch_add(struct lc_watch *w, const char *dir, const char *name, lc_watch_fn fn,
                 void *arg, struct lc_error *err);
void lc_watch_remove(struct lc_watch *w, int handle);
/* Around a sync: quiet stops the watch asking for IN_MODIFY and IN_CLOSE_WRITE (so the
 * app's writes no longer pay for an inotify event each) if the database is alone in its
 * directory; returns 1 when the watch is quiet, 0 when it stays armed. Rearm restores the
 * full mask; returns 1 when it did (the caller must then sync once more: a commit that
 * landed after its capture raised no event), 0 when the watch was armed, a negative LC_E*
 * when inotify refused (still quiet: the next sync retries, the fallback timer covers the
 * meantime). */
int lc_watch_quiet(struct lc_watch *w, int handle);
int lc_watch_rearm(struct lc_watch *w, int handle);
/* Counters for metrics. */
uint64_t lc_watch_overflows(const struct lc_watch *w);

#endif
