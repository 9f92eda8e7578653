/* daemon: the running replicate command's state, shared read-only with the modules
 * that report on it (metrics, status). Owned by cmd_replicate.c. */
#ifndef LC_DAEMON_H
#define LC_DAEMON_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "db.h"
#include "replica.h"
#include "watch.h"

struct lc_daemon_db {
    struct lc_db *db;             /* owned */
    struct lc_replica **reps;     /* owned array of owned replicas */
    size_t nreps;
};

struct lc_daemon {
    struct lc_config cfg;         /* the configuration in force */
    struct ev_loop *loop;         /* the default loop */
    struct lc_watch *watch;       /* NULL when inotify is unavailable */
    struct lc_daemon_db *dbs;     /* owned, ndbs entries */
    size_t ndbs;
    int64_t started_wall_ns;      /* when the daemon started */
    int ready;                    /* every db synced once, every replica resumed */
};

#endif
