/* cmd_replicate: the daemon. Builds databases and replicas from the configuration (or
 * from `replicate DB_PATH URL...`), runs the libev loop, and shuts down cleanly.
 *
 * Signals only set libev watchers (ev_signal), never do work in a handler. SIGINT and
 * SIGTERM: a final sync of every database, then the loop runs until every replica has
 * shipped it or shutdown-timeout passes; a second signal exits at once. */
#include "cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "replica.h"
#include "watch.h"

struct dbent {
    struct lc_db *db;
    struct lc_replica **reps; /* owned array of owned replicas */
    size_t nreps;
};

struct daemon {
    struct lc_config cfg;
    struct ev_loop *loop;
    struct lc_watch *watch;
    struct dbent *dbs;        /* owned, cfg.ndbs entries */
    size_t ndbs;
    ev_signal sigint, sigterm, sighup;
    ev_timer shutdown_timer;  /* bounds the final flush */
    ev_check flush_check;     /* during shutdown: stop once every replica caught up */
    int stopping;             /* signals seen */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: litecast replicate [-c FILE] [--check]\n"
               "       litecast replicate DB_PATH REPLICA_URL...\n"
               "\n"
               "Continuously replicate the databases of the configuration file (default\n"
               "$LITECAST_CONFIG, else /etc/litecast.ini), or one database to the given\n"
               "replica URLs (file:///dir, s3://bucket/prefix).\n"
               "\n"
               "  -c, --config FILE   configuration file\n"
               "      --check         validate the configuration, print 'configuration OK'\n"
               "  -h, --help          this text\n");
}

/* Keep only the shadow files some replica still needs. */
static void prune(void *arg)
{
    struct dbent *e = arg;
    struct lc_db *db = e->db;
    uint32_t min = db->sh.index;

    for (size_t i = 0; i < e->nreps; i++) {
        struct lc_replica *r = e->reps[i];
        if (!r->known || strcmp(r->gen, db->sh.gen) != 0)
            return; /* position unknown: keep everything for now */
        if (r->index < min)
            min = r->index;
    }
    lc_db_release_before(db, min);
}

static int all_caught_up(struct daemon *d)
{
    for (size_t i = 0; i < d->ndbs; i++)
        for (size_t j = 0; j < d->dbs[i].nreps; j++) {
            struct lc_replica *r = d->dbs[i].reps[j];
            if (d->dbs[i].db->is_open && r->last_err[0] == '\0' && !lc_replica_caught_up(r))
                return 0;
        }
    return 1;
}

static void flush_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    struct daemon *d = w->data;
    (void)revents;
    if (all_caught_up(d))
        ev_break(loop, EVBREAK_ALL);
}

static void shutdown_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    lc_warn("shutdown timeout: exiting with replicas behind", "%s", "");
    ev_break(loop, EVBREAK_ALL);
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct daemon *d = w->data;
    struct lc_error err = {0};
    (void)revents;

    if (d->stopping++) {
        lc_warn("second signal: exiting now", "signal=%d", w->signum);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    lc_info("shutting down: final sync", "signal=%d", w->signum);
    for (size_t i = 0; i < d->ndbs; i++) {
        struct lc_db *db = d->dbs[i].db;
        lc_trigger_stop(&db->trig);
        if (lc_db_sync(db, LC_SYNC_OTHER, &err) < 0)
            lc_warn("final sync failed", "db=%s error=\"%s\"", db->cfg.name, err.msg);
        for (size_t j = 0; j < d->dbs[i].nreps; j++)
            lc_replica_kick(d->dbs[i].reps[j]);
    }
    if (all_caught_up(d)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&d->shutdown_timer, shutdown_timer_cb,
                  (double)d->cfg.shutdown_timeout_ns / 1e9, 0.);
    ev_timer_start(loop, &d->shutdown_timer);
    ev_check_init(&d->flush_check, flush_check_cb);
    d->flush_check.data = d;
    ev_check_start(loop, &d->flush_check);
    ev_unref(loop); /* the check watcher alone must not keep the loop alive */
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    lc_warn("SIGHUP: configuration reload is not supported yet; restart to apply changes",
            "%s", "");
}

static void daemon_free(struct daemon *d)
{
    for (size_t i = 0; i < d->ndbs; i++) {
        for (size_t j = 0; j < d->dbs[i].nreps; j++)
            lc_replica_free(d->dbs[i].reps[j]);
        free(d->dbs[i].reps);
        lc_db_free(d->dbs[i].db);
    }
    free(d->dbs);
    lc_watch_free(d->watch);
    lc_config_free(&d->cfg);
}

static int build(struct daemon *d, struct lc_error *err)
{
    int rc;

    d->dbs = calloc(d->cfg.ndbs ? d->cfg.ndbs : 1, sizeof(*d->dbs));
    if (!d->dbs)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    if ((rc = lc_watch_new(&d->watch, d->loop, err)) < 0) {
        lc_warn("inotify unavailable; every database runs on the fallback timer",
                "error=\"%s\"", err->msg);
        d->watch = NULL;
    }
    for (size_t i = 0; i < d->cfg.ndbs; i++) {
        struct dbent *e = &d->dbs[i];
        const struct lc_db_config *dc = &d->cfg.dbs[i];
        if ((rc = lc_db_new(&e->db, dc, d->loop, d->watch, d->cfg.debounce_ns,
                            d->cfg.max_delay_ns, d->cfg.fallback_interval_ns, err)) < 0)
            return rc;
        d->ndbs++;
        e->reps = calloc(d->cfg.nreplicas ? d->cfg.nreplicas : 1, sizeof(*e->reps));
        if (!e->reps)
            return lc_err_set(err, LC_ENOMEM, "out of memory");
        for (size_t j = 0; j < d->cfg.nreplicas; j++) {
            if (strcmp(d->cfg.replicas[j].db, dc->name) != 0)
                continue;
            if ((rc = lc_replica_new(&e->reps[e->nreps], &d->cfg.replicas[j], e->db, d->loop,
                                     err)) < 0)
                return rc;
            e->nreps++;
        }
        if ((rc = lc_db_add_listener(e->db, prune, e)) < 0)
            return lc_err_set(err, rc, "%s: too many listeners", dc->name);
        if (e->nreps == 0)
            lc_warn("database has no replicas: capturing to the shadow wal only", "db=%s",
                    dc->name);
    }
    return 0;
}

/* `replicate DB_PATH URL...`: one database, one replica per URL. */
static int adhoc_config(struct lc_config *cfg, int argc, char **argv, struct lc_error *err)
{
    struct lc_db_config db;
    int rc;

    lc_config_defaults(cfg);
    memset(&db, 0, sizeof(db));
    if (argv[0][0] == '/') {
        snprintf(db.path, sizeof(db.path), "%s", argv[0]);
    } else {
        char cwd[LC_PATH_MAX / 2];
        if (!getcwd(cwd, sizeof(cwd)))
            return lc_err_set(err, LC_EIO, "getcwd failed");
        snprintf(db.path, sizeof(db.path), "%s/%s", cwd, argv[0]);
    }
    snprintf(db.name, sizeof(db.name), "%.*s", (int)sizeof(db.name) - 1,
             lc_path_base(db.path));
    if ((rc = lc_config_db_defaults(&db, err)) < 0 || (rc = lc_config_add_db(cfg, &db, err)) < 0)
        return rc;
    for (int i = 1; i < argc; i++) {
        struct lc_replica_config r;
        memset(&r, 0, sizeof(r));
        snprintf(r.url, sizeof(r.url), "%s", argv[i]);
        snprintf(r.db, sizeof(r.db), "%s", db.name);
        const char *colon = strstr(argv[i], "://");
        int slen = colon ? (int)(colon - argv[i]) : 4;
        if (argc > 2)
            snprintf(r.name, sizeof(r.name), "%.*s%d", slen, argv[i], i);
        else
            snprintf(r.name, sizeof(r.name), "%.*s", slen, argv[i]);
        if ((rc = lc_config_replica_defaults(&r, err)) < 0 ||
            (rc = lc_config_add_replica(cfg, &r, err)) < 0)
            return rc;
    }
    return 0;
}

int lc_cmd_replicate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct daemon d;
    struct lc_error err = {0};
    const char *config = NULL;
    int check = 0, c, rc;

    memset(&d, 0, sizeof(d));
    optind = 1;
    while ((c = getopt_long_only(argc, argv, "c:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return LC_EXIT_OK;
        default:
            usage(stderr);
            return LC_EXIT_USAGE;
        }
    }
    int npos = argc - optind;
    if (npos > 0 && config) {
        fprintf(stderr, "litecast replicate: a DB_PATH and URLs cannot be combined with -c\n");
        return LC_EXIT_USAGE;
    }
    if (npos == 1) {
        fprintf(stderr, "litecast replicate: must specify at least one replica URL for %s\n",
                argv[optind]);
        return LC_EXIT_USAGE;
    }
    if (npos > 1)
        rc = adhoc_config(&d.cfg, npos, argv + optind, &err);
    else
        rc = lc_config_load(&d.cfg, config ? config : lc_cmd_default_config(), &err);
    if (rc < 0) {
        fprintf(stderr, "litecast: %s\n", err.msg);
        return LC_EXIT_USAGE;
    }
    if (check) {
        printf("configuration OK\n");
        lc_config_free(&d.cfg);
        return LC_EXIT_OK;
    }
    lc_log_set_level(d.cfg.log_level);
    d.loop = EV_DEFAULT;
    if (build(&d, &err) < 0) {
        lc_error("cannot start", "error=\"%s\"", err.msg);
        daemon_free(&d);
        return LC_EXIT_FAIL;
    }
    ev_signal_init(&d.sigint, stop_cb, SIGINT);
    ev_signal_init(&d.sigterm, stop_cb, SIGTERM);
    ev_signal_init(&d.sighup, hup_cb, SIGHUP);
    d.sigint.data = d.sigterm.data = d.sighup.data = &d;
    ev_signal_start(d.loop, &d.sigint);
    ev_signal_start(d.loop, &d.sigterm);
    ev_signal_start(d.loop, &d.sighup);
    lc_info("litecast started", "databases=%zu replicas=%zu config=%s", d.cfg.ndbs,
            d.cfg.nreplicas, d.cfg.path[0] ? d.cfg.path : "-");

    for (size_t i = 0; i < d.ndbs; i++) {
        struct lc_db *db = d.dbs[i].db;
        if (lc_db_sync(db, LC_SYNC_OTHER, &err) < 0)
            lc_warn("initial sync failed; will retry", "db=%s error=\"%s\"", db->cfg.name,
                    err.msg);
        for (size_t j = 0; j < d.dbs[i].nreps; j++)
            lc_replica_kick(d.dbs[i].reps[j]);
    }
    ev_run(d.loop, 0);

    ev_signal_stop(d.loop, &d.sigint);
    ev_signal_stop(d.loop, &d.sigterm);
    ev_signal_stop(d.loop, &d.sighup);
    if (ev_is_active(&d.flush_check)) {
        ev_ref(d.loop);
        ev_check_stop(d.loop, &d.flush_check);
        ev_timer_stop(d.loop, &d.shutdown_timer);
    }
    for (size_t i = 0; i < d.ndbs; i++) {
        char pos[64];
        lc_db_position_str(d.dbs[i].db, pos, sizeof(pos));
        lc_info("stopped", "db=%s position=%s", d.dbs[i].db->cfg.name, pos);
    }
    daemon_free(&d);
    return LC_EXIT_OK;
}
