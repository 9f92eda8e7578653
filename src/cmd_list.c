/* cmd_list: the listings `generations`, `snapshots`, `wal` and `databases`, with
 * exactly Litestream v0.3's columns (reference §6), aligned as Go's tabwriter does
 * with minwidth 0 and padding 2: every column but the last is padded with spaces to
 * its widest cell plus two. Times are RFC 3339 UTC seconds; sizes are stored bytes.
 * A replica that cannot be read is logged and skipped, and the exit status is 1. */
#include "cmd.h"

#include <ev.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog.h"
#include "log.h"
#include "segment.h"
#include "store.h"

#define MAX_COLS 6
#define MAX_ROWS 10000000 /* a bound on buffered rows */

/* ---- the table ---------------------------------------------------------------------- */

struct table {
    size_t ncols;
    char **cells; /* rows * ncols, owned */
    size_t rows, cap;
    int oom;      /* an allocation failed: output is incomplete */
};

static void table_row(struct table *t, const char *const *v)
{
    if (t->oom)
        return;
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **p = cap <= MAX_ROWS ? realloc(t->cells, cap * t->ncols * sizeof(*p)) : NULL;
        if (!p) {
            t->oom = 1;
            return;
        }
        t->cells = p;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        char *s = strdup(v[i]);
        if (!s) {
            for (size_t k = 0; k < i; k++)
                free(t->cells[t->rows * t->ncols + k]);
            t->oom = 1;
            return;
        }
        t->cells[t->rows * t->ncols + i] = s;
    }
    t->rows++;
}

/* Display width as tabwriter counts it: UTF-8 code points. */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void table_print(struct table *t, FILE *f)
{
    size_t width[MAX_COLS] = {0};

    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c + 1 < t->ncols; c++) {
            size_t w = text_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            fputs(s, f);
            if (c + 1 < t->ncols)
                fprintf(f, "%*s", (int)(width[c] + 2 - text_width(s)), "");
        }
        fputc('\n', f);
    }
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

static int finish_output(struct table *t, int ret)
{
    table_print(t, stdout);
    if (t->oom) {
        lc_error("listing incomplete", "error=\"out of memory\"");
        ret = LC_EXIT_FAIL;
    }
    table_free(t);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        lc_error("write listing failed", "error=\"stdout\"");
        ret = LC_EXIT_FAIL;
    }
    return ret;
}

/* ---- options ------------------------------------------------------------------------ */

enum { OPT_REPLICA = 256, OPT_GENERATION };

struct list_opts {
    const char *config;     /* -c, or NULL for the default */
    const char *replica;    /* --replica filter */
    const char *generation; /* --generation filter (wal) */
    const char *arg;        /* DB_PATH or REPLICA_URL */
};

static int usage(const char *cmd, const char *msg, int with_gen)
{
    FILE *f = msg ? stderr : stdout;
    if (msg)
        fprintf(f, "%s: %s\n", cmd, msg);
    fprintf(f, "usage: litecast %s [-c FILE] [--replica NAME]%s DB_PATH|REPLICA_URL\n", cmd,
            with_gen ? " [--generation G]" : "");
    return msg ? LC_EXIT_USAGE : LC_EXIT_OK;
}

/* Returns -1 to go on, else the exit status. */
static int parse_opts(int argc, char **argv, int with_gen, struct list_opts *lo)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"replica", required_argument, NULL, OPT_REPLICA},
        {"generation", required_argument, NULL, OPT_GENERATION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    int c;

    memset(lo, 0, sizeof(*lo));
    optind = 0;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            lo->config = optarg;
            break;
        case OPT_REPLICA:
            lo->replica = optarg;
            break;
        case OPT_GENERATION:
            if (!with_gen)
                return usage(cmd, "invalid option --generation", with_gen);
            if (!lc_seg_is_generation(optarg))
                return usage(cmd, "invalid --generation: want 16 lowercase hex characters",
                             with_gen);
            lo->generation = optarg;
            break;
        case 'h':
            return usage(cmd, NULL, with_gen);
        default: {
            char msg[256];
            snprintf(msg, sizeof(msg), "invalid option or missing value: %.200s",
                     argv[optind - 1]);
            return usage(cmd, msg, with_gen);
        }
        }
    }
    if (argc - optind != 1)
        return usage(cmd, argc - optind ? "too many arguments"
                                        : "database path or replica url required",
                     with_gen);
    lo->arg = argv[optind];
    return -1;
}

/* ---- the replica listings ----------------------------------------------------------- */

enum listing { LIST_GENERATIONS, LIST_SNAPSHOTS, LIST_WAL };

/* Lag reference: the database's last write (db or -wal mtime), or now for a URL. */
static int64_t db_updated_ns(const struct lc_cmd_target *t)
{
    char wal[LC_PATH_MAX + 8];
    struct stat sb;
    int64_t best;

    if (!t->db || stat(t->db->path, &sb) < 0)
        return lc_now_wall_ns();
    best = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    if (snprintf(wal, sizeof(wal), "%s-wal", t->db->path) < (int)sizeof(wal) &&
        stat(wal, &sb) == 0) {
        int64_t w = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        if (w > best)
            best = w;
    }
    return best;
}

/* Go's truncateDuration for the lag column: coarser units as the magnitude grows. */
static int64_t truncate_lag(int64_t d)
{
    int64_t a = d < 0 ? -d : d, m;

    if (a > 10000000000LL)
        m = 1000000000LL;
    else if (a > 1000000000LL)
        m = 100000000LL;
    else if (a > 1000000LL)
        m = 1000000LL;
    else if (a > 1000LL)
        m = 1000LL;
    else
        return d;
    return d - d % m;
}

static void add_rows(struct table *tb, enum listing what, const char *name,
                     const struct lc_gen_info *g, const struct list_opts *lo, int64_t updated)
{
    char a[32], b[48], c[48], d[48];

    if (lo->generation && strcmp(lo->generation, g->id) != 0)
        return;
    if (what == LIST_GENERATIONS) {
        if (g->nsnaps == 0 && g->nsegs == 0)
            return; /* an empty generation directory holds nothing to restore */
        lc_duration_format(truncate_lag(updated - g->end_ns), a, sizeof(a));
        lc_time_format(g->start_ns, 0, b, sizeof(b));
        lc_time_format(g->end_ns, 0, c, sizeof(c));
        const char *row[] = {name, g->id, a, b, c};
        table_row(tb, row);
    } else if (what == LIST_SNAPSHOTS) {
        for (size_t i = 0; i < g->nsnaps; i++) {
            const struct lc_snap_info *s = &g->snaps[i];
            snprintf(a, sizeof(a), "%u", s->index);
            snprintf(b, sizeof(b), "%llu", (unsigned long long)s->size);
            lc_time_format(s->mtime_ns, 0, c, sizeof(c));
            const char *row[] = {name, g->id, a, b, c};
            table_row(tb, row);
        }
    } else {
        for (size_t i = 0; i < g->nsegs; i++) {
            const struct lc_seg_info *s = &g->segs[i];
            snprintf(a, sizeof(a), "%u", s->index);
            snprintf(b, sizeof(b), "%u", s->offset);
            snprintf(c, sizeof(c), "%llu", (unsigned long long)s->size);
            lc_time_format(s->mtime_ns, 0, d, sizeof(d));
            const char *row[] = {name, g->id, a, b, c, d};
            table_row(tb, row);
        }
    }
}

static int run_listing(int argc, char **argv, enum listing what)
{
    static const char *const gen_hdr[] = {"name", "generation", "lag", "start", "end"};
    static const char *const snap_hdr[] = {"replica", "generation", "index", "size", "created"};
    static const char *const wal_hdr[] = {"replica", "generation", "index",
                                          "offset",  "size",       "created"};
    struct list_opts lo;
    struct lc_cmd_target t;
    struct lc_error err = {0};
    struct table tb = {0};
    int ret, rc;

    if ((ret = parse_opts(argc, argv, what == LIST_WAL, &lo)) >= 0)
        return ret;
    if ((rc = lc_cmd_target_load(&t, lo.config, lo.arg, lo.replica, &err))) {
        if (rc == LC_EINVAL) {
            fprintf(stderr, "%s: %s\n", argv[0], err.msg);
            return LC_EXIT_USAGE;
        }
        lc_cmd_log_error("failed to run", &err);
        return LC_EXIT_FAIL;
    }
    struct ev_loop *loop = ev_default_loop(0);
    int64_t updated = db_updated_ns(&t);
    ret = LC_EXIT_OK;
    if (what == LIST_GENERATIONS) {
        tb.ncols = 5;
        table_row(&tb, gen_hdr);
    } else if (what == LIST_SNAPSHOTS) {
        tb.ncols = 5;
        table_row(&tb, snap_hdr);
    } else {
        tb.ncols = 6;
        table_row(&tb, wal_hdr);
    }
    for (size_t i = 0; i < t.n; i++) {
        struct lc_store *st = NULL;
        struct lc_gen_info *gens = NULL;
        size_t ng = 0;
        const char *name = t.replicas[i].name;

        if (!loop) {
            lc_err_set(&err, LC_EIO, "cannot initialise the event loop");
            rc = LC_EIO;
        } else if ((rc = lc_cmd_target_store(&t, i, loop, &st, &err)) == 0) {
            rc = lc_catalog_generations(st, &gens, &ng, &err);
        }
        if (rc) {
            lc_error("cannot list replica", "replica=%s error=\"%s\"", name, err.msg);
            ret = LC_EXIT_FAIL;
        }
        for (size_t k = 0; k < ng; k++)
            add_rows(&tb, what, name, &gens[k], &lo, updated);
        lc_gen_info_free_all(gens, ng);
        lc_store_free(st);
    }
    lc_cmd_target_free(&t);
    return finish_output(&tb, ret);
}

int lc_cmd_generations(int argc, char **argv)
{
    return run_listing(argc, argv, LIST_GENERATIONS);
}

int lc_cmd_snapshots(int argc, char **argv)
{
    return run_listing(argc, argv, LIST_SNAPSHOTS);
}

int lc_cmd_wal(int argc, char **argv)
{
    return run_listing(argc, argv, LIST_WAL);
}

/* ---- databases ---------------------------------------------------------------------- */

int lc_cmd_databases(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const hdr[] = {"path", "replicas"};
    const char *config = NULL;
    struct lc_config cfg;
    struct lc_error err = {0};
    struct table tb = {0};
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'h':
            printf("usage: litecast databases [-c FILE]\n");
            return LC_EXIT_OK;
        default:
            fprintf(stderr, "databases: invalid option or missing value: %s\n"
                            "usage: litecast databases [-c FILE]\n",
                    argv[optind - 1]);
            return LC_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "databases: too many arguments\nusage: litecast databases [-c FILE]\n");
        return LC_EXIT_USAGE;
    }
    if (lc_cmd_load_config(&cfg, config, &err)) {
        fprintf(stderr, "databases: %s\n", err.msg);
        return LC_EXIT_USAGE;
    }
    tb.ncols = 2;
    table_row(&tb, hdr);
    for (size_t i = 0; i < cfg.ndbs; i++) {
        const struct lc_db_config *db = &cfg.dbs[i];
        char names[4096];
        size_t o = 0;
        names[0] = '\0';
        for (size_t k = 0; k < cfg.nreplicas; k++) {
            const struct lc_replica_config *r = &cfg.replicas[k];
            if (strcmp(r->db, db->name) != 0)
                continue;
            int n = snprintf(names + o, sizeof(names) - o, "%s%s", o ? "," : "", r->name);
            if (n < 0 || (size_t)n >= sizeof(names) - o) {
                names[o] = '\0';
                break; /* bounded: the rest does not fit one line */
            }
            o += (size_t)n;
        }
        const char *row[] = {db->path, names};
        table_row(&tb, row);
    }
    lc_config_free(&cfg);
    return finish_output(&tb, LC_EXIT_OK);
}
