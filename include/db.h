/* db: one watched database. The SQLite side (connections, the held read transaction,
 * the write lock, checkpoints) and the sync routine that copies committed WAL frames
 * into the shadow WAL. Replicas read the shadow through the fields below and are told
 * of growth through listeners. */
#ifndef LC_DB_H
#define LC_DB_H

#include <sqlite3.h>
#include <stdint.h>
#include <sys/types.h>
#include "config.h"
#include "shadow.h"
#include "util.h"
#include "watch.h"

#define LC_DB_MAX_LISTENERS 32

typedef void (*lc_db_listener_fn)(void *arg);

struct lc_db_stats {
    uint64_t syncs;              /* sync routine runs */
    uint64_t sync_errors;        /* runs that failed */
    uint64_t syncs_by_event;     /* runs started by an inotify event */
    uint64_t syncs_by_fallback;  /* runs started by the fallback timer */
    uint64_t wal_bytes;          /* bytes appended to the shadow WAL */
    uint64_t checkpoints;        /* checkpoints attempted */
    uint64_t checkpoint_errors;  /* checkpoints that failed or gave up */
    uint64_t restarts;           /* WAL restarts followed (new shadow index) */
    uint64_t generations;        /* generations started */
};

struct lc_db {
    struct lc_db_config cfg;     /* copy of the configuration */
    struct ev_loop *loop;        /* borrowed */
    struct lc_trigger trig;      /* debounce and fallback timers */
    struct lc_watch *watch;      /* borrowed; NULL when not watching */
    int watch_handle;            /* -1 when not watching */
    char wal_path[LC_PATH_MAX];  /* path of the -wal */
    sqlite3 *rconn;              /* holds the long read transaction; runs checkpoints */
    sqlite3 *wconn;              /* writes: _litecast_seq, BEGIN IMMEDIATE */
    int is_open;                 /* connections, dbfd and shadow are ready */
    int read_tx;                 /* rconn has its read transaction open */
    int fresh;                   /* no sync has completed since open */
    int dbfd;                    /* read-only fd on the database file, -1. Never close any
                                  * other fd on the database file: POSIX drops every lock
                                  * the process holds on a file when any fd on it closes,
                                  * SQLite's included. Snapshots borrow this one. */
    int dbfd_stale;              /* dbfd kept open for a snapshot across a re-open, -1 */
    int walfd;                   /* read-only fd on the -wal, -1 */
    int shmfd;                   /* read-only fd on the -shm (wal-index), -1 */
    dev_t dev, wal_dev;          /* identity of the open files */
    ino_t ino, wal_ino;
    mode_t mode;                 /* database file mode, for meta and replica files */
    uid_t uid;
    gid_t gid;
    uint32_t page_size;          /* database page size */
    struct lc_shadow sh;         /* the meta dir and current shadow WAL */
    const char *force_reason;    /* start a new generation at the next sync (static text) */
    int snapshot_busy;           /* snapshots in progress: no checkpoints meanwhile */
    int mark_ahead;              /* rconn's read mark may be past the shadow's end: set
                                  * when the read tx begins, cleared by the next capture */
    int base_valid;              /* the database file holds exactly the committed state at
                                  * shadow (sh.index, base_off), and keeps it while the read
                                  * tx stays: set by a checkpoint that back-filled all */
    uint64_t base_off;
    int settle_wanted;           /* a replica waits for base_valid: checkpoint soon */
    int64_t db_mtime_ns;         /* database file mtime at the last sync */
    int64_t last_sync_mono_ns;   /* when the last sync finished */
    int waiting_logged;          /* "waiting for database" said once */
    int64_t last_err_log_ns;     /* rate limit for repeated sync errors */
    int64_t ckpt_fail_ns;        /* when a checkpoint last gave up (retry pacing) */
    int skip_lockfree;           /* checkpoints left to run without the lock-free pass */
    int in_sync;                 /* lc_db_sync is running (guards nested loop runs) */
    int sync_changed;            /* the last lc_db_sync moved the shadow */
    int armed_followup;          /* the next event sync runs with the watch armed */
    int64_t busy_deadline_ns;    /* wconn's busy handler gives up at this time */
    int64_t busy_spin_until_ns;  /* ... and yields rather than sleeps until this one */
    int64_t db_stamp[3];         /* database inode, size, mtime at the last full sync */
    int64_t wal_stamp[3];        /* -wal inode, size, mtime at the last full sync */
    char last_err[LC_ERR_LEN];   /* last sync error, "" when healthy */
    struct lc_db_stats stats;
    lc_db_listener_fn listeners[LC_DB_MAX_LISTENERS];
    void *listener_args[LC_DB_MAX_LISTENERS];
    int nlisteners;
};

/* Process-wide SQLite settings for the daemon; call before the first lc_db_new. */
void lc_db_global_init(void);
/* Create and start watching (watch may be NULL for fallback-only). Does not sync. */
int lc_db_new(struct lc_db **out, const struct lc_db_config *cfg, struct ev_loop *loop,
              struct lc_watch *watch, int64_t debounce_ns, int64_t max_delay_ns,
              int64_t fallback_ns, struct lc_error *err);
/* Final sync is the caller's; this rolls back the read transaction and closes. */
void lc_db_free(struct lc_db *db);
/* The sync routine: verify, copy committed frames, checkpoint per policy, notify. */
int lc_db_sync(struct lc_db *db, enum lc_sync_why why, struct lc_error *err);
int lc_db_add_listener(struct lc_db *db, lc_db_listener_fn fn, void *arg);
void lc_db_remove_listener(struct lc_db *db, void *arg);
/* Tell the db the lowest shadow index any replica still needs (prunes older files). */
void lc_db_release_before(struct lc_db *db, uint32_t index);
/* Pin the database file for a snapshot: no checkpoint of ours until the matching end,
 * so the file changes only as far as the application's checkpoints may back-fill, which
 * our read mark bounds. Returns the fd to read (borrowed; valid until end), -1 when the
 * database is not open. Counted. */
int lc_db_snapshot_begin(struct lc_db *db);
void lc_db_snapshot_end(struct lc_db *db);
/* 1 when every frame a checkpoint may have back-filled into the database file (ours, or
 * the application's up to our read mark) is in the shadow: after every sync that
 * succeeded; not inside a checkpoint's gaps nor after a failed one. */
int lc_db_mark_settled(const struct lc_db *db);
/* 1 when the database file is settled: it holds exactly the committed state at the
 * shadow's current index up to *off (0: the index's start, nothing of it applied) and
 * cannot change while pinned. A snapshot read then is never torn. */
int lc_db_base(const struct lc_db *db, uint64_t *off);
/* Ask for a settled file: the next sync checkpoints (back-fills everything it can). */
void lc_db_want_base(struct lc_db *db);
/* "<gen>/<index %08x>:<offset>" of the shadow's end, for logs. */
void lc_db_position_str(const struct lc_db *db, char *buf, size_t len);

#endif
