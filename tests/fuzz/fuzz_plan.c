/* fuzz_plan: restore planning (src/restore.c) and generation choice through the catalog
 * (src/catalog.c) on replica listings made up from the input.
 *
 * Part 1 builds an lc_gen_info from the input (snapshots and segments with small indexes,
 * offsets and times, sorted as the catalog sorts them, duplicates allowed) and options
 * (index, timestamp), calls lc_restore_plan and checks the plan against a reference:
 * the snapshot is the one the documented rule picks, the segments are exactly the run
 * from that snapshot's index up to the first beyond the index or the timestamp, and every
 * index in it is present and starts at offset 0; otherwise the error is one of the three
 * documented ones and the plan holds nothing.
 *
 * Part 2 serves an in-memory listing (generation names, snapshot and segment names, some
 * well formed, some junk, some with '/') through a mock store and calls lc_restore_choose
 * with a generation filter and a timestamp: it must never crash or leak, and what it
 * chooses must satisfy the filter. Sizes in the input never decide an allocation: counts
 * are bounded by the input's length. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "restore.h"
#include "segment.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                            \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            fprintf(stderr, "fuzz_plan: check failed at line %d: %s\n", __LINE__, #c);      \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t take8(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint32_t take32(struct in *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | take8(in);
    return v;
}

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

/* Small index values make contiguous runs likely; now and then a huge one. */
static uint32_t pick_index(uint8_t b, uint32_t big)
{
    if (b >= 0xf8)
        return big;
    return b % 12;
}

static int usable(const struct lc_snap_info *s, const struct lc_restore_opts *o)
{
    if (o->index >= 0 && (int64_t)s->index > o->index)
        return 0;
    if (o->has_timestamp && s->mtime_ns > o->timestamp_ns)
        return 0;
    return 1;
}

/* The documented rule: with an index, the highest index <= it; with a timestamp only, the
 * newest created <= it (the higher index on a tie); else the highest index. */
static const struct lc_snap_info *ref_snapshot(const struct lc_gen_info *g,
                                               const struct lc_restore_opts *o)
{
    const struct lc_snap_info *best = NULL;
    for (size_t i = 0; i < g->nsnaps; i++) {
        const struct lc_snap_info *s = &g->snaps[i];
        if (!usable(s, o))
            continue;
        if (o->has_timestamp && o->index < 0) {
            if (!best || s->mtime_ns > best->mtime_ns ||
                (s->mtime_ns == best->mtime_ns && s->index >= best->index))
                best = s;
        } else if (!best || s->index >= best->index) {
            best = s;
        }
    }
    return best;
}

static void part_plan(struct in *in)
{
    struct lc_gen_info g;
    struct lc_restore_opts o;
    struct lc_restore_plan plan;
    struct lc_error err = {0};
    uint32_t big = take32(in);

    memset(&g, 0, sizeof(g));
    memcpy(g.id, "00000000000000aa", 17);
    g.nsnaps = take8(in) % 8;
    g.nsegs = take8(in) % 64;
    if (g.nsnaps)
        CHECK(g.snaps = calloc(g.nsnaps, sizeof(*g.snaps)));
    if (g.nsegs)
        CHECK(g.segs = calloc(g.nsegs, sizeof(*g.segs)));
    for (size_t i = 0; i < g.nsnaps; i++) {
        g.snaps[i].index = pick_index(take8(in), big);
        g.snaps[i].size = take8(in);
        g.snaps[i].mtime_ns = take8(in);
    }
    for (size_t i = 0; i < g.nsegs; i++) {
        uint8_t b = take8(in);
        g.segs[i].index = pick_index(take8(in), big);
        g.segs[i].offset = (b & 0x80) ? take32(in) : (uint32_t)(b & 3) * 4152;
        g.segs[i].size = take8(in);
        g.segs[i].mtime_ns = take8(in);
    }
    if (g.nsnaps > 1)
        qsort(g.snaps, g.nsnaps, sizeof(*g.snaps), snap_cmp);
    if (g.nsegs > 1)
        qsort(g.segs, g.nsegs, sizeof(*g.segs), seg_cmp);

    lc_restore_opts_init(&o);
    uint8_t f = take8(in);
    if (f & 1)
        o.index = (f & 2) ? (int64_t)(take8(in) % 14) : (int64_t)LC_MAX_INDEX;
    if (f & 4) {
        o.has_timestamp = 1;
        o.timestamp_ns = (f & 8) ? (int64_t)take8(in) : (int64_t)take32(in) - 0x7fffffff;
    }

    const struct lc_snap_info *want = ref_snapshot(&g, &o);
    int rc = lc_restore_plan(&g, &o, &plan, &err);
    if (!want) {
        CHECK(rc == LC_ENOTFOUND && strstr(err.msg, "no snapshots available") != NULL);
        CHECK(plan.segs == NULL && plan.nsegs == 0);
        goto out;
    }
    if (rc != 0) {
        CHECK(rc == LC_ENOTFOUND && err.code == rc);
        CHECK(strncmp(err.msg, "missing wal index: ", 19) == 0 ||
              strncmp(err.msg, "missing initial wal segment: ", 29) == 0);
        CHECK(plan.segs == NULL && plan.nsegs == 0);
    }
    CHECK(strcmp(plan.gen, g.id) == 0);
    CHECK(plan.snap.index == want->index && plan.snap.mtime_ns == want->mtime_ns);

    /* reference selection: from the snapshot's index up to the first segment beyond the
     * index or the timestamp */
    size_t n = 0, first = g.nsegs;
    for (size_t i = 0; i < g.nsegs; i++) {
        const struct lc_seg_info *s = &g.segs[i];
        if (s->index < want->index)
            continue;
        if (o.index >= 0 && (int64_t)s->index > o.index)
            break;
        if (o.has_timestamp && s->mtime_ns > o.timestamp_ns)
            break;
        if (first == g.nsegs)
            first = i;
        n++;
    }
    /* reference check: contiguous indexes from the snapshot's, each starting at 0 */
    int ok = 1;
    uint64_t next = want->index;
    for (size_t i = first; i < first + n; i++) {
        const struct lc_seg_info *s = &g.segs[i];
        if (i > first && s->index == g.segs[i - 1].index)
            continue;
        if (s->index != next || s->offset != 0) {
            ok = 0;
            break;
        }
        next = (uint64_t)s->index + 1;
    }
    if (!ok) {
        CHECK(rc != 0);
        goto out;
    }
    CHECK(rc == 0);
    CHECK(plan.nsegs == n);
    CHECK(n == 0 || memcmp(plan.segs, &g.segs[first], n * sizeof(*plan.segs)) == 0);
    CHECK(plan.min_index == want->index);
    CHECK(plan.max_index == (n ? g.segs[first + n - 1].index : want->index));
    for (size_t i = 0; i < plan.nsegs; i++) {
        char key[LC_KEY_MAX];
        /* every planned segment the catalog could have listed (index <= LC_MAX_INDEX: see
         * fuzz_names) has a key the store can be asked for */
        if (plan.segs[i].index <= LC_MAX_INDEX)
            CHECK(lc_seg_wal_key(key, sizeof(key), plan.gen, plan.segs[i].index,
                                 plan.segs[i].offset) == 0);
    }
    lc_restore_plan_free(&plan);
    CHECK(plan.segs == NULL && plan.nsegs == 0);
out:
    lc_restore_plan_free(&plan);
    lc_gen_info_clear(&g);
}

/* ---- a store that serves a listing from memory ------------------------------------------ */

#define MAX_OBJS 64

struct mock {
    struct lc_store base;          /* first, as every backend */
    char *keys[MAX_OBJS];          /* full keys, owned */
    int64_t mtimes[MAX_OBJS];
    size_t n;
    char fail_prefix[LC_KEY_MAX];  /* list of this prefix fails ("" never) */
};

static void mock_list(struct lc_store *st, const char *prefix, struct lc_obj_list *out,
                      lc_store_done_fn done, void *arg)
{
    struct mock *m = (struct mock *)st;
    size_t pl = strlen(prefix), start = out->n;
    struct lc_error err = {0};

    if (m->fail_prefix[0] && strcmp(prefix, m->fail_prefix) == 0) {
        lc_err_set(&err, LC_EAGAIN, "list %s: injected failure", prefix);
        done(arg, err.code, &err);
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        const char *k = m->keys[i];
        if (strncmp(k, prefix, pl) != 0 || !k[pl])
            continue;
        const char *rest = k + pl, *slash = strchr(rest, '/');
        size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
        char name[LC_KEY_MAX];
        int dup = 0;
        if (len == 0 || len >= sizeof(name))
            continue;
        memcpy(name, rest, len);
        name[len] = '\0';
        for (size_t j = start; j < out->n && !dup; j++)
            dup = strcmp(out->v[j].name, name) == 0 && out->v[j].is_prefix == (slash != NULL);
        if (dup)
            continue;
        CHECK(lc_obj_list_add(out, name, slash ? 0 : 100, slash ? 0 : m->mtimes[i],
                              slash != NULL) == 0);
    }
    lc_obj_list_sort(out);
    done(arg, 0, NULL);
}

static void mock_get(struct lc_store *st, const char *key, struct lc_store_sink *sink,
                     lc_store_done_fn done, void *arg)
{
    struct lc_error err = {0};
    (void)st;
    (void)sink;
    lc_err_set(&err, LC_ENOTFOUND, "get %s: object not found", key);
    done(arg, err.code, &err);
}

static void mock_put(struct lc_store *st, const char *key, struct lc_store_src *src,
                     lc_store_done_fn done, void *arg)
{
    struct lc_error err = {0};
    (void)st;
    (void)src;
    lc_err_set(&err, LC_EIO, "put %s: read-only", key);
    done(arg, err.code, &err);
}

static void mock_del(struct lc_store *st, const char *const *keys, size_t n,
                     lc_store_done_fn done, void *arg)
{
    struct lc_error err = {0};
    (void)st;
    (void)keys;
    (void)n;
    lc_err_set(&err, LC_EIO, "delete: read-only");
    done(arg, err.code, &err);
}

static void mock_free(struct lc_store *st)
{
    (void)st;
}

static const struct lc_store_ops mock_ops = {
    .type = "mock",
    .free = mock_free,
    .put = mock_put,
    .get = mock_get,
    .list = mock_list,
    .del = mock_del,
};

static const char *const gens[] = {
    "0123456789abcdef", "00000000000000aa", "ffffffffffffffff", "0123456789ABCDEF",
    "0123456789abcde",  "0123456789abcdef0", "..",             "0123456789abcdeg",
};

/* A short junk string from the input (may hold '/', '.', anything but NUL). */
static void junk(struct in *in, char *buf, size_t len)
{
    size_t n = take8(in) % 24, o = 0;
    while (o < n && o + 1 < len) {
        uint8_t c = take8(in);
        buf[o++] = c ? (char)c : '.';
    }
    buf[o] = '\0';
}

static void part_choose(struct in *in)
{
    struct mock m;
    struct lc_store *stores[1];
    struct lc_restore_opts o;
    struct lc_gen_info g;
    struct lc_error err = {0};
    size_t which = 99;
    char key[LC_KEY_MAX], name[64], gen_filter[17];

    memset(&m, 0, sizeof(m));
    m.base.ops = &mock_ops;
    snprintf(m.base.desc, sizeof(m.base.desc), "mock://fuzz");
    size_t n = take8(in) % MAX_OBJS;
    for (size_t i = 0; i < n && in->n; i++) {
        uint8_t b = take8(in);
        const char *gen = gens[b % 8];
        uint32_t idx = take8(in) % 6, off = (uint32_t)take8(in) * 8;
        switch ((b >> 3) % 4) {
        case 0:
            snprintf(name, sizeof(name), "%08x.snapshot.lz4", idx);
            snprintf(key, sizeof(key), "generations/%s/snapshots/%s", gen, name);
            break;
        case 1:
        case 2:
            snprintf(name, sizeof(name), "%08x_%08x.wal.lz4", idx, (b & 0x80) ? off : 0);
            snprintf(key, sizeof(key), "generations/%s/wal/%s", gen, name);
            break;
        default:
            junk(in, name, sizeof(name));
            snprintf(key, sizeof(key), "generations/%s/%s/%s", gen,
                     (b & 0x40) ? "wal" : "snapshots", name);
            break;
        }
        CHECK(m.keys[m.n] = strdup(key));
        m.mtimes[m.n++] = take8(in);
    }
    uint8_t f = take8(in);
    if (f & 1)
        snprintf(m.fail_prefix, sizeof(m.fail_prefix), "generations/%s/%s/", gens[(f >> 1) % 3],
                 (f & 0x10) ? "wal" : "snapshots");
    lc_restore_opts_init(&o);
    if (f & 0x20) {
        snprintf(gen_filter, sizeof(gen_filter), "%s", gens[(f >> 6) % 3]);
        o.generation = gen_filter;
    }
    if (f & 0x40) {
        o.has_timestamp = 1;
        o.timestamp_ns = take8(in);
    }
    if (f & 0x80)
        o.index = take8(in) % 6;

    stores[0] = &m.base;
    int rc = lc_restore_choose(stores, 1, &o, &which, &g, &err);
    if (rc == 0) {
        struct lc_restore_plan plan;
        CHECK(which == 0);
        CHECK(lc_seg_is_generation(g.id));
        CHECK(!o.generation || strcmp(o.generation, g.id) == 0);
        CHECK(g.nsnaps > 0);
        if (o.has_timestamp)
            CHECK(o.timestamp_ns >= g.start_ns && o.timestamp_ns <= g.end_ns);
        for (size_t i = 1; i < g.nsegs; i++)
            CHECK(seg_cmp(&g.segs[i - 1], &g.segs[i]) < 0);
        for (size_t i = 1; i < g.nsnaps; i++)
            CHECK(g.snaps[i - 1].index < g.snaps[i].index);
        if (lc_restore_plan(&g, &o, &plan, &err) == 0)
            lc_restore_plan_free(&plan);
        lc_gen_info_clear(&g);
    } else {
        CHECK(err.code == rc && err.msg[0]);
        CHECK(g.snaps == NULL && g.segs == NULL);
    }
    for (size_t i = 0; i < m.n; i++)
        free(m.keys[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size};

    if (size == 0)
        return 0;
    if (take8(&in) & 1)
        part_choose(&in);
    else
        part_plan(&in);
    return 0;
}
