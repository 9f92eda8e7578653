/* catalog: what a replica holds, read through any store with LISTs only.
 *
 *   generations/                  prefixes that are 16 lowercase hex chars are generations
 *   generations/<gen>/snapshots/  <index %08x>.snapshot.lz4
 *   generations/<gen>/wal/        <index %08x>_<offset %08x>.wal.lz4
 *
 * Names that do not parse are ignored, as Litestream ignores them. Snapshots come
 * out sorted by index, segments by (index, offset), whatever order the store lists
 * in; a generation's time bounds are the min/max object time over both. */
#include "catalog.h"

#include <stdlib.h>
#include <string.h>

#include "segment.h"

static int snap_cmp(const void *a, const void *b)
{
    const struct lc_snap_info *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct lc_seg_info *x = a, *y = b;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static void bound(struct lc_gen_info *g, int64_t t, int *first)
{
    if (*first || t < g->start_ns)
        g->start_ns = t;
    if (*first || t > g->end_ns)
        g->end_ns = t;
    *first = 0;
}

int lc_catalog_generation(struct lc_store *st, const char *gen, struct lc_gen_info *out,
                          struct lc_error *err)
{
    struct lc_obj_list l = {0};
    char prefix[LC_KEY_MAX];
    int rc, first = 1;

    memset(out, 0, sizeof(*out));
    if (!lc_seg_is_generation(gen))
        return lc_err_set(err, LC_EINVAL, "invalid generation name: %s", gen);
    memcpy(out->id, gen, LC_GEN_LEN);
    out->id[LC_GEN_LEN] = '\0';

    if ((rc = lc_seg_snapshots_prefix(prefix, sizeof(prefix), gen)))
        return lc_err_set(err, rc, "generation %s: key too long", gen);
    if ((rc = lc_store_list_sync(st, prefix, &l, err))) {
        lc_err_wrap(err, "list %s", prefix);
        goto fail;
    }
    if (l.n) {
        out->snaps = calloc(l.n, sizeof(*out->snaps));
        if (!out->snaps) {
            rc = lc_err_set(err, LC_ENOMEM, "list %s: out of memory", prefix);
            goto fail;
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        uint32_t index;
        if (l.v[i].is_prefix || lc_seg_parse_snapshot_name(l.v[i].name, &index))
            continue;
        struct lc_snap_info *s = &out->snaps[out->nsnaps++];
        s->index = index;
        s->size = l.v[i].size;
        s->mtime_ns = l.v[i].mtime_ns;
        bound(out, s->mtime_ns, &first);
    }
    lc_obj_list_free(&l);
    if (out->nsnaps > 1)
        qsort(out->snaps, out->nsnaps, sizeof(*out->snaps), snap_cmp);

    if ((rc = lc_seg_wal_prefix(prefix, sizeof(prefix), gen))) {
        lc_err_set(err, rc, "generation %s: key too long", gen);
        goto fail;
    }
    if ((rc = lc_store_list_sync(st, prefix, &l, err))) {
        lc_err_wrap(err, "list %s", prefix);
        goto fail;
    }
    if (l.n) {
        out->segs = calloc(l.n, sizeof(*out->segs));
        if (!out->segs) {
            rc = lc_err_set(err, LC_ENOMEM, "list %s: out of memory", prefix);
            goto fail;
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        uint32_t index, offset;
        if (l.v[i].is_prefix || lc_seg_parse_wal_name(l.v[i].name, &index, &offset))
            continue;
        struct lc_seg_info *s = &out->segs[out->nsegs++];
        s->index = index;
        s->offset = offset;
        s->size = l.v[i].size;
        s->mtime_ns = l.v[i].mtime_ns;
        bound(out, s->mtime_ns, &first);
    }
    lc_obj_list_free(&l);
    if (out->nsegs > 1)
        qsort(out->segs, out->nsegs, sizeof(*out->segs), seg_cmp);
    return 0;

fail:
    lc_obj_list_free(&l);
    lc_gen_info_clear(out);
    return rc;
}

int lc_catalog_generations(struct lc_store *st, struct lc_gen_info **out, size_t *n,
                           struct lc_error *err)
{
    struct lc_obj_list l = {0};
    struct lc_gen_info *v = NULL;
    char prefix[LC_KEY_MAX];
    size_t cnt = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if ((rc = lc_seg_generations_prefix(prefix, sizeof(prefix))))
        return lc_err_set(err, rc, "generations prefix too long");
    if ((rc = lc_store_list_sync(st, prefix, &l, err)))
        return lc_err_wrap(err, "list %s", prefix);
    if (l.n) {
        v = calloc(l.n, sizeof(*v));
        if (!v) {
            lc_obj_list_free(&l);
            return lc_err_set(err, LC_ENOMEM, "list %s: out of memory", prefix);
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        if (!l.v[i].is_prefix || !lc_seg_is_generation(l.v[i].name))
            continue;
        if ((rc = lc_catalog_generation(st, l.v[i].name, &v[cnt], err))) {
            lc_gen_info_free_all(v, cnt);
            lc_obj_list_free(&l);
            return rc;
        }
        cnt++;
    }
    lc_obj_list_free(&l);
    if (cnt == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = cnt;
    return 0;
}

void lc_gen_info_clear(struct lc_gen_info *g)
{
    if (!g)
        return;
    free(g->snaps);
    free(g->segs);
    g->snaps = NULL;
    g->segs = NULL;
    g->nsnaps = g->nsegs = 0;
    g->start_ns = g->end_ns = 0;
}

void lc_gen_info_free_all(struct lc_gen_info *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        lc_gen_info_clear(&v[i]);
    free(v);
}
