/* replica: one destination of one database. Keeps its own position (generation, index,
 * offset), ships the shadow WAL as LZ4 segments through its store, takes snapshots,
 * applies retention, and retries with backoff. Never blocks capture: a slow or dead
 * replica only delays its own position. */
#ifndef LC_REPLICA_H
#define LC_REPLICA_H

#include <ev.h>
#include <stdint.h>
#include "config.h"
#include "db.h"
#include "store.h"
#include "util.h"

struct lc_replica_stats {
    uint64_t segments;        /* WAL segments written */
    uint64_t wal_bytes;       /* uncompressed WAL bytes shipped */
    uint64_t snapshots;       /* snapshots written */
    uint64_t errors;          /* failed operations (each retried) */
    uint64_t deletes;         /* objects removed by retention */
};

struct lc_replica_op; /* an operation in flight (upload, resume, retention) */

struct lc_replica {
    struct lc_replica_config cfg; /* copy */
    struct lc_db *db;             /* borrowed; we are one of its listeners */
    struct lc_store *store;       /* owned */
    struct ev_loop *loop;         /* borrowed */
    char gen[17];                 /* position: generation ("" unknown) */
    uint32_t index;               /* position: WAL index */
    uint64_t offset;              /* position: next byte of that index to ship */
    int known;                    /* position resumed from the store for db's generation */
    struct lc_replica_op *op;     /* the one operation in flight, or NULL */
    int dirty;                    /* the shadow grew while op was in flight */
    ev_timer timer;               /* pacing (sync-interval) and retry backoff */
    int64_t backoff_ns;           /* current retry delay, 0 when healthy */
    int64_t last_ship_mono_ns;    /* when the last segment upload started */
    int64_t last_ok_wall_ns;      /* when the last operation succeeded */
    int64_t next_snapshot_wall_ns;/* snapshot-interval deadline, 0 when off */
    int64_t next_retention_wall_ns;/* retention check deadline, 0 when off */
    int64_t caught_up_mono_ns;    /* when the position last equalled the shadow's end */
    int need_base;                /* nothing usable of the generation is stored (resumed
                                   * without a snapshot, or fell behind the shadow): the
                                   * next object must be a snapshot, before any segment */
    int64_t base_wait_mono_ns;    /* ... taken of a settled file until then, if it can */
    int snap_wanted;              /* a snapshot is due (interval, retention) */
    int snap_pinned;              /* we hold lc_db_snapshot_begin while segments catch up */
    char snap_gen[17];            /* ... for this generation and index, whose shadow */
    uint32_t snap_index;          /* ended at snap_end when pinned: the snapshot is read */
    uint64_t snap_end;            /* once the replica holds the shadow up to there */
    char last_err[LC_ERR_LEN];    /* "" when healthy */
    struct lc_replica_stats stats;
};

int lc_replica_new(struct lc_replica **out, const struct lc_replica_config *cfg,
                   struct lc_db *db, struct ev_loop *loop, struct lc_error *err);
/* Stops timers; an operation in flight is abandoned (its object may be left as a .tmp). */
void lc_replica_free(struct lc_replica *r);
/* Ship whatever the shadow holds past our position (the db calls this on growth). */
void lc_replica_kick(struct lc_replica *r);
/* Shutdown: forget the current backoff and try again now. */
void lc_replica_retry_now(struct lc_replica *r);
/* 1 when nothing is in flight and the position equals the shadow's end. */
int lc_replica_caught_up(const struct lc_replica *r);
void lc_replica_position_str(const struct lc_replica *r, char *buf, size_t len);

#endif
