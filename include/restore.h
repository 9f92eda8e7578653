/* restore: rebuild a database from a replica (reference §4, but stricter).
 *
 * Three steps, usable separately (tests, validation) or together (lc_restore):
 *   choose  pick the replica and generation to restore from (catalog LISTs only);
 *   plan    pick the snapshot and the WAL segments to replay, checking that every
 *           index starts at offset 0 and that no index is missing (no downloads);
 *   apply   download (up to `parallelism` gets in flight), verify and replay into
 *           OUT.tmp, then fsync and rename it to OUT. Offsets must be contiguous (a
 *           gap whose missing segment a new listing shows was a listing race: the
 *           restore ends before it, at a commit, with a warning),
 *           salts and checksum chains unbroken and each index must end on a commit
 *           frame; any failure names the object and leaves nothing at OUT. */
#ifndef LC_RESTORE_H
#define LC_RESTORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "catalog.h"
#include "store.h"
#include "util.h"

#define LC_RESTORE_PARALLELISM 8 /* default segment gets in flight */
#define LC_RESTORE_RETRIES 3     /* extra attempts for a failed get */

struct lc_restore_opts {
    const char *output;     /* OUT; must not exist. Borrowed */
    const char *generation; /* only this generation; NULL or "" for any. Borrowed */
    int64_t index;          /* replay WAL indexes <= index; -1 for all */
    int has_timestamp;      /* 1: restore to the state at timestamp_ns */
    int64_t timestamp_ns;   /* point in time (object times <= it), ns since the epoch */
    int parallelism;        /* segment gets in flight; <= 0 means LC_RESTORE_PARALLELISM */
    mode_t mode;            /* mode of the restored file; 0 means 0600 */
};

/* Defaults: no generation, index -1, no timestamp, parallelism 8, mode 0600. */
void lc_restore_opts_init(struct lc_restore_opts *o);

struct lc_restore_plan {
    char gen[17];              /* generation id */
    struct lc_snap_info snap;  /* the snapshot to start from */
    struct lc_seg_info *segs;  /* segments to replay, in (index, offset) order; owned */
    size_t nsegs;              /* 0: snapshot-only restore */
    uint32_t min_index;        /* first WAL index replayed (= snap.index) when nsegs > 0 */
    uint32_t max_index;        /* last WAL index replayed when nsegs > 0 */
};

/* Pick, among stores[0..n), the generation with the latest end time that can satisfy o
 * (its [start, end] contains the timestamp; it is o->generation; it has a usable
 * snapshot). On success *which is the store's position and *gen is filled (free with
 * lc_gen_info_clear). LC_ENOTFOUND with "no matching backups found" when none. */
int lc_restore_choose(struct lc_store *const *stores, size_t n, const struct lc_restore_opts *o,
                      size_t *which, struct lc_gen_info *gen, struct lc_error *err);

/* Plan a restore of generation g (no I/O). Errors: "no snapshots available",
 * "missing initial wal segment: <key>", "missing wal index: <gen>/%08x". */
int lc_restore_plan(const struct lc_gen_info *g, const struct lc_restore_opts *o,
                    struct lc_restore_plan *plan, struct lc_error *err);
void lc_restore_plan_free(struct lc_restore_plan *plan);

/* A listing is not a snapshot: a directory read (readdir returns ext4's hash order) or a
 * paginated LIST racing the writer can return a segment and miss an earlier one renamed in
 * meanwhile. A hole inside the listing is visible, but a missing tail of index I followed
 * by index I+1 is not, and replaying I+1 over a partial I gives a malformed database. The
 * writer ships in order, so every object up to the newest one a listing shows existed
 * before that listing ended, and a second listing taken after it holds them all.
 * lc_restore_settle cuts `later` (listed after `first` ended) to first's newest segment
 * and newest index, which makes it complete. */
void lc_restore_settle(const struct lc_gen_info *first, struct lc_gen_info *later);

/* lc_restore_plan, for a replica that may be written while it is read: g's generation is
 * listed once more and the new listing, settled against g, is planned (g is replaced). On
 * a hole (retention deleting what the first listing showed, or damage), both listings are
 * taken again (up to LC_RESTORE_RELISTS times, 50 ms apart); the same hole twice is
 * damage. */
#define LC_RESTORE_RELISTS 3
int lc_restore_plan_live(struct lc_store *st, struct lc_gen_info *g,
                         const struct lc_restore_opts *o, struct lc_restore_plan *plan,
                         struct lc_error *err);

/* Execute plan from st into o->output. On failure nothing is left at OUT or OUT.tmp*. */
int lc_restore_apply(struct lc_store *st, const struct lc_restore_plan *plan,
                     const struct lc_restore_opts *o, struct lc_error *err);

/* choose + plan + apply. *which (may be NULL) receives the store used. Fails at once
 * with "cannot restore, output path already exists: OUT" when OUT exists. */
int lc_restore(struct lc_store *const *stores, size_t n, const struct lc_restore_opts *o,
               size_t *which, struct lc_error *err);

#endif
