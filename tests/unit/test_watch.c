/* Unit tests for src/watch.c: the debounce arithmetic, and the trigger and the inotify
 * watcher driven by a real libev loop on real files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "util.h"
#include "watch.h"

#define MS 1000000LL

static void test_deadline_first_event(void **state)
{
    (void)state;
    /* a lone event syncs one debounce later */
    assert_int_equal(lc_debounce_deadline(1000 * MS, 1000 * MS, 1 * MS, 20 * MS), 1001 * MS);
}

static void test_deadline_pushed_back(void **state)
{
    (void)state;
    /* later events push the deadline back... */
    assert_int_equal(lc_debounce_deadline(1000 * MS, 1005 * MS, 1 * MS, 20 * MS), 1006 * MS);
    /* ...but never past first + max-delay */
    assert_int_equal(lc_debounce_deadline(1000 * MS, 1019 * MS + MS / 2, 1 * MS, 20 * MS),
                     1020 * MS);
    assert_int_equal(lc_debounce_deadline(1000 * MS, 1019 * MS, 5 * MS, 20 * MS), 1020 * MS);
}

static void test_deadline_no_cap(void **state)
{
    (void)state;
    /* max-delay 0 means no cap; a deadline is never in the past */
    assert_int_equal(lc_debounce_deadline(0, 500 * MS, 10 * MS, 0), 510 * MS);
    assert_int_equal(lc_debounce_deadline(0, 500 * MS, 0, 20 * MS), 500 * MS);
    assert_int_equal(lc_debounce_deadline(0, 500 * MS, 10 * MS, 20 * MS), 500 * MS);
}

struct fires {
    int event, fallback;
    int64_t first_fire_ns;
};

static void on_fire(void *arg, enum lc_sync_why why)
{
    struct fires *f = arg;
    if (why == LC_SYNC_EVENT) {
        if (!f->event)
            f->first_fire_ns = lc_now_mono_ns();
        f->event++;
    } else if (why == LC_SYNC_FALLBACK) {
        f->fallback++;
    }
}

static void stop_loop(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void poke(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    lc_trigger_event(w->data);
}

/* Steady events every 2 ms for 100 ms with debounce 5 ms and max-delay 20 ms: the
 * capped throttle must fire about every 20 ms, not wait for the events to stop. */
static void test_trigger_caps_delay(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lc_trigger t;
    struct fires f = {0};
    ev_timer pk, end;
    (void)state;

    lc_trigger_init(&t, loop, 5 * MS, 20 * MS, 0, on_fire, &f);
    lc_trigger_start(&t);
    ev_timer_init(&pk, poke, 0.002, 0.002);
    pk.data = &t;
    ev_timer_start(loop, &pk);
    ev_timer_init(&end, stop_loop, 0.1, 0.);
    ev_timer_start(loop, &end);
    int64_t start = lc_now_mono_ns();
    ev_run(loop, 0);
    ev_timer_stop(loop, &pk);
    lc_trigger_stop(&t);
    ev_loop_destroy(loop);
    assert_true(f.event >= 3);
    assert_true(f.event <= 6);
    assert_true(f.first_fire_ns - start < 40 * MS);
}

/* With no events, only the fallback timer fires. */
static void test_trigger_fallback(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lc_trigger t;
    struct fires f = {0};
    ev_timer end;
    (void)state;

    lc_trigger_init(&t, loop, 1 * MS, 20 * MS, 30 * MS, on_fire, &f);
    lc_trigger_start(&t);
    ev_timer_init(&end, stop_loop, 0.1, 0.);
    ev_timer_start(loop, &end);
    ev_run(loop, 0);
    lc_trigger_stop(&t);
    ev_loop_destroy(loop);
    assert_int_equal(f.event, 0);
    assert_true(f.fallback >= 2 && f.fallback <= 4);
}

struct seen {
    int hits;
    uint32_t mask;
};

static void on_watch(void *arg, uint32_t mask)
{
    struct seen *s = arg;
    s->hits++;
    s->mask |= mask;
}

static void write_file(struct ev_loop *loop, ev_timer *w, int revents)
{
    const char *path = w->data;
    (void)loop;
    (void)revents;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        (void)lc_write_full(fd, "x", 1);
        close(fd);
    }
}

/* Real inotify: events on NAME and NAME-wal reach the callback; other names do not. */
static void test_watch_filters_names(void **state)
{
    char dir[] = "/tmp/lcwatch.XXXXXX";
    char db[256], wal[256], other[256], shm[256];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lc_watch *w = NULL;
    struct lc_error err = {0};
    struct seen s = {0}, s2 = {0};
    ev_timer t1, t2, end;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/app.db", dir);
    snprintf(wal, sizeof(wal), "%s/app.db-wal", dir);
    snprintf(other, sizeof(other), "%s/other.db", dir);
    snprintf(shm, sizeof(shm), "%s/app.db-shm", dir);
    assert_int_equal(lc_watch_new(&w, loop, &err), 0);
    assert_true(lc_watch_add(w, dir, "app.db", on_watch, &s, &err) >= 0);
    int h2 = lc_watch_add(w, dir, "other.db", on_watch, &s2, &err);
    assert_true(h2 >= 0);

    ev_timer_init(&t1, write_file, 0.01, 0.);
    t1.data = wal;
    ev_timer_start(loop, &t1);
    ev_timer_init(&t2, write_file, 0.02, 0.);
    t2.data = shm;
    ev_timer_start(loop, &t2);
    ev_timer_init(&end, stop_loop, 0.1, 0.);
    ev_timer_start(loop, &end);
    ev_run(loop, 0);
    assert_true(s.hits >= 1);
    assert_true(s.mask & (IN_MODIFY | IN_CREATE));
    assert_int_equal(s2.hits, 0); /* other.db untouched; -shm is never a signal */

    int before = s.hits;
    lc_watch_remove(w, h2);
    ev_timer_set(&t1, 0.01, 0.);
    t1.data = db;
    ev_timer_start(loop, &t1);
    ev_timer_set(&end, 0.1, 0.);
    ev_timer_start(loop, &end);
    ev_run(loop, 0);
    assert_true(s.hits > before);
    lc_watch_free(w);
    ev_loop_destroy(loop);
    unlink(db);
    unlink(wal);
    unlink(shm);
    rmdir(dir);
}

/* Drain whatever inotify has for the loop (events arrive within a poll). */
static void spin(struct ev_loop *loop)
{
    for (int i = 0; i < 5; i++)
        ev_run(loop, EVRUN_NOWAIT);
}

static void append(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    assert_int_equal(lc_write_full(fd, "x", 1), 0);
    assert_int_equal(close(fd), 0);
}

/* Real inotify: the watch of a database alone in its directory can be made quiet (no
 * events for writes, so the app stops paying for them) and re-armed; a directory shared
 * by two databases stays armed, and adding the second one re-arms a quiet watch and
 * signals the first once more. */
static void test_watch_quiet_rearm(void **state)
{
    char dir[] = "/tmp/lcwatch.XXXXXX";
    char wal[256], wal2[256];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lc_watch *w = NULL;
    struct lc_error err = {0};
    struct seen s = {0}, s2 = {0};
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(wal, sizeof(wal), "%s/app.db-wal", dir);
    snprintf(wal2, sizeof(wal2), "%s/two.db-wal", dir);
    append(wal);
    assert_int_equal(lc_watch_new(&w, loop, &err), 0);
    int h = lc_watch_add(w, dir, "app.db", on_watch, &s, &err);
    assert_true(h >= 0);
    assert_int_equal(lc_watch_rearm(w, h), 0); /* armed: nothing to do */
    append(wal);
    spin(loop);
    assert_true(s.hits >= 1 && (s.mask & IN_MODIFY));

    assert_int_equal(lc_watch_quiet(w, h), 1);
    assert_int_equal(lc_watch_quiet(w, h), 1);
    int hits = s.hits;
    for (int i = 0; i < 20; i++) /* quiet: these raise no event */
        append(wal);
    spin(loop);
    assert_int_equal(s.hits, hits);
    assert_int_equal(lc_watch_rearm(w, h), 1);
    assert_int_equal(lc_watch_rearm(w, h), 0);
    append(wal);
    spin(loop);
    assert_true(s.hits > hits);

    /* quiet, then a second database joins the directory */
    assert_int_equal(lc_watch_quiet(w, h), 1);
    hits = s.hits;
    int h2 = lc_watch_add(w, dir, "two.db", on_watch, &s2, &err);
    assert_true(h2 >= 0);
    assert_int_equal(s.hits, hits + 1);        /* the quiet one was signalled once more */
    assert_int_equal(lc_watch_rearm(w, h), 0); /* the add re-armed it... */
    assert_int_equal(lc_watch_quiet(w, h), 0); /* ...and a shared directory stays armed */
    assert_int_equal(lc_watch_quiet(w, h2), 0);
    hits = s.hits;
    append(wal);
    spin(loop);
    append(wal2);
    spin(loop);
    assert_true(s.hits > hits);
    assert_true(s2.hits >= 1);

    assert_int_equal(lc_watch_quiet(w, -1), LC_EINVAL);
    assert_int_equal(lc_watch_rearm(w, -1), LC_EINVAL);
    lc_watch_free(w);
    ev_loop_destroy(loop);
    unlink(wal);
    unlink(wal2);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_first_event),
        cmocka_unit_test(test_deadline_pushed_back),
        cmocka_unit_test(test_deadline_no_cap),
        cmocka_unit_test(test_trigger_caps_delay),
        cmocka_unit_test(test_trigger_fallback),
        cmocka_unit_test(test_watch_filters_names),
        cmocka_unit_test(test_watch_quiet_rearm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
