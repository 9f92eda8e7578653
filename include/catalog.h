/* catalog: what a replica holds, read through a store: generations, their snapshots
 * and WAL segments with sizes and times. Used by restore, the listings, and by a
 * replica resuming its position or applying retention. */
#ifndef LC_CATALOG_H
#define LC_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include "store.h"
#include "util.h"

struct lc_snap_info {
    uint32_t index;   /* WAL index the snapshot precedes */
    uint64_t size;    /* stored (compressed) bytes */
    int64_t mtime_ns; /* CreatedAt */
};

struct lc_seg_info {
    uint32_t index;   /* WAL index */
    uint32_t offset;  /* byte offset in that WAL index */
    uint64_t size;    /* stored (compressed) bytes */
    int64_t mtime_ns; /* CreatedAt */
};

struct lc_gen_info {
    char id[17];               /* 16 hex chars */
    struct lc_snap_info *snaps;/* sorted by index; owned */
    size_t nsnaps;
    struct lc_seg_info *segs;  /* sorted by (index, offset); owned */
    size_t nsegs;
    int64_t start_ns, end_ns;  /* min/max CreatedAt over snapshots and segments; 0 if empty */
};

/* List one generation's snapshots and segments (names that do not parse are ignored). */
int lc_catalog_generation(struct lc_store *st, const char *gen, struct lc_gen_info *out,
                          struct lc_error *err);
/* All generations on the replica, in listing order. */
int lc_catalog_generations(struct lc_store *st, struct lc_gen_info **out, size_t *n,
                           struct lc_error *err);
void lc_gen_info_clear(struct lc_gen_info *g);
void lc_gen_info_free_all(struct lc_gen_info *v, size_t n);

#endif
