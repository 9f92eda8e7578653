/* cmd_replicate: the daemon. Builds databases and replicas from the configuration (or
 * from `replicate DB_PATH URL...`), runs the libev loop, and shuts down cleanly.
 *
 * Signals only set libev watchers (ev_signal), never do work in a handler.
 * SIGINT/SIGTERM: a final sync of every database, then the loop runs until every
 * replica has shipped it or shutdown-timeout passes; a second signal exits at once.
 * SIGHUP: re-read the configuration; databases and replicas whose settings did not
 * change keep running untouched (same generation, same position). With --exec the
 * child starts after the first sync, gets SIGINT/SIGTERM/SIGHUP forwarded, and its exit
 * status becomes ours after a final sync. With NOTIFY_SOCKET set, the supervisor gets
 * READY=1 (every db synced once, every replica resumed), STATUS=, WATCHDOG=1 and
 * STOPPING=1 through the sd_notify datagram protocol. */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "replica.h"
#include "status.h"
#include "watch.h"

struct daemon {
    struct lc_daemon d;        /* the state reporters see */
    const char *config_path;   /* NULL for ad hoc */
    ev_signal sigint, sigterm, sighup;
    ev_timer shutdown_timer;   /* bounds the final flush */
    ev_check flush_check;      /* during shutdown: stop once every replica caught up */
    ev_timer ready_timer;      /* polls for readiness until READY=1 */
    ev_timer watchdog_timer;   /* WATCHDOG=1 at half of WATCHDOG_USEC */
    ev_child child_watcher;    /* --exec child */
    const char *exec_cmd;      /* --exec, NULL when none */
    pid_t child;               /* 0 when none running */
    int child_status;          /* exit status to return, -1 when none */
    int stopping;              /* shutdown signals seen */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: litecast replicate [-c FILE] [--exec CMD] [--check]\n"
               "       litecast replicate DB_PATH REPLICA_URL...\n"
               "\n"
               "Continuously replicate the databases of the configuration file (default\n"
               "$LITECAST_CONFIG, else /etc/litecast.ini), or one database to the given\n"
               "replica URLs (file:///dir, s3://bucket/prefix).\n"
               "\n"
               "  -c, --config FILE   configuration file\n"
               "      --exec CMD      run CMD (through /bin/sh -c) after the first sync; exit\n"
               "                      with its status after a final sync when it ends\n"
               "      --check         validate the configuration, print 'configuration OK'\n"
               "  -h, --help          this text\n");
}

/* ---- sd_notify (the datagram protocol; no libsystemd needed) ----------------- */

static void notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t n;

    if (!path || !*path || (path[0] != '/' && path[0] != '@'))
        return;
    n = strlen(path);
    if (n >= sizeof(sa.sun_path))
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
        lc_debug("sd_notify failed", "error=\"%s\"", strerror(errno));
    close(fd);
}

static void notify_status(struct daemon *dm)
{
    size_t nreps = 0, failing = 0;
    char msg[256];

    for (size_t i = 0; i < dm->d.ndbs; i++)
        for (size_t j = 0; j < dm->d.dbs[i].nreps; j++) {
            nreps++;
            if (dm->d.dbs[i].reps[j]->last_err[0])
                failing++;
        }
    snprintf(msg, sizeof(msg), "STATUS=replicating %zu database(s) to %zu replica(s); %zu failing",
             dm->d.ndbs, nreps, failing);
    notify(msg);
}

/* ---- the database set ------------------------------------------------------------ */

/* Keep only the shadow files some replica still needs, up to max-spool: past it, what a
 * slow or failing replica has not shipped is dropped, and that replica starts over from
 * a new snapshot (replica.c) instead of filling the disk. */
static void prune(void *arg)
{
    struct lc_daemon_db *e = arg;
    struct lc_db *db = e->db;
    uint32_t min = db->sh.index;
    int unknown = 0;

    for (size_t i = 0; i < e->nreps; i++) {
        struct lc_replica *r = e->reps[i];
        if (!r->known || strcmp(r->gen, db->sh.gen) != 0)
            unknown = 1; /* position unknown: keep everything for it */
        else if (r->index < min)
            min = r->index;
    }
    if (!unknown)
        lc_db_release_before(db, min);
    if ((!unknown && min == db->sh.index) || db->cfg.max_spool_bytes <= 0 ||
        db->sh.min_index == db->sh.index)
        return;
    uint64_t spool = 0, size;
    struct lc_error err = {0};
    for (uint32_t i = db->sh.min_index; i <= db->sh.index; i++)
        if (lc_shadow_file_size(&db->sh, i, &size, &err) == 0)
            spool += size;
    if (spool > (uint64_t)db->cfg.max_spool_bytes) {
        lc_warn("shadow spool over max-spool: dropping what slow replicas have not shipped",
                "db=%s spool=%llu max_spool=%lld", db->cfg.name, (unsigned long long)spool,
                (long long)db->cfg.max_spool_bytes);
        lc_db_release_before(db, db->sh.index);
    }
}

static int all_caught_up(struct daemon *dm)
{
    for (size_t i = 0; i < dm->d.ndbs; i++)
        for (size_t j = 0; j < dm->d.dbs[i].nreps; j++) {
            struct lc_replica *r = dm->d.dbs[i].reps[j];
            /* failing replicas too: shutdown-timeout bounds the wait */
            if (dm->d.dbs[i].db->is_open && !lc_replica_caught_up(r))
                return 0;
        }
    return 1;
}

static void dbent_free(struct lc_daemon_db *e)
{
    for (size_t j = 0; j < e->nreps; j++)
        lc_replica_free(e->reps[j]);
    free(e->reps);
    lc_db_free(e->db);
    memset(e, 0, sizeof(*e));
}

static int add_replica(struct lc_daemon *d, struct lc_daemon_db *e,
                       const struct lc_replica_config *rc, struct lc_error *err)
{
    struct lc_replica **v = realloc(e->reps, (e->nreps + 1) * sizeof(*v));
    if (!v)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    e->reps = v;
    int rc2 = lc_replica_new(&e->reps[e->nreps], rc, e->db, d->loop, err);
    if (rc2 < 0)
        return rc2;
    e->nreps++;
    return 0;
}

/* Create database dc with its replicas from cfg into e. */
static int dbent_build(struct lc_daemon *d, const struct lc_config *cfg,
                       const struct lc_db_config *dc, struct lc_daemon_db *e,
                       struct lc_error *err)
{
    int rc;
    memset(e, 0, sizeof(*e));
    if ((rc = lc_db_new(&e->db, dc, d->loop, d->watch, cfg->debounce_ns, cfg->max_delay_ns,
                        cfg->fallback_interval_ns, err)) < 0)
        return rc;
    for (size_t j = 0; j < cfg->nreplicas; j++)
        if (strcmp(cfg->replicas[j].db, dc->name) == 0 &&
            (rc = add_replica(d, e, &cfg->replicas[j], err)) < 0)
            return rc;
    if ((rc = lc_db_add_listener(e->db, prune, e)) < 0)
        return lc_err_set(err, rc, "%s: too many listeners", dc->name);
    if (e->nreps == 0)
        lc_warn("database has no replicas: capturing to the shadow wal only", "db=%s",
                dc->name);
    return 0;
}

static void kick_all(struct lc_daemon_db *e)
{
    for (size_t j = 0; j < e->nreps; j++)
        lc_replica_kick(e->reps[j]);
}

static void first_sync(struct lc_daemon_db *e)
{
    struct lc_error err = {0};
    if (lc_db_sync(e->db, LC_SYNC_OTHER, &err) < 0)
        lc_warn("initial sync failed; will retry", "db=%s error=\"%s\"", e->db->cfg.name,
                err.msg);
    kick_all(e);
}

static int build(struct daemon *dm, struct lc_error *err)
{
    struct lc_daemon *d = &dm->d;
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
        if ((rc = dbent_build(d, &d->cfg, &d->cfg.dbs[i], &d->dbs[i], err)) < 0) {
            if (d->dbs[i].db)
                d->ndbs = i + 1;
            return rc;
        }
        d->ndbs = i + 1;
    }
    return 0;
}

static void daemon_free(struct daemon *dm)
{
    struct lc_daemon *d = &dm->d;
    for (size_t i = 0; i < d->ndbs; i++)
        dbent_free(&d->dbs[i]);
    free(d->dbs);
    d->dbs = NULL;
    d->ndbs = 0;
    lc_watch_free(d->watch);
    lc_config_free(&d->cfg);
}

/* ---- reload ---------------------------------------------------------------------- */

static int same_db(const struct lc_db_config *a, const struct lc_db_config *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->path, b->path) == 0 &&
           strcmp(a->meta_dir, b->meta_dir) == 0 && a->watch == b->watch;
}

static const struct lc_replica_config *find_replica(const struct lc_config *cfg,
                                                    const char *db, const char *name)
{
    for (size_t i = 0; i < cfg->nreplicas; i++)
        if (strcmp(cfg->replicas[i].db, db) == 0 && strcmp(cfg->replicas[i].name, name) == 0)
            return &cfg->replicas[i];
    return NULL;
}

/* A secret written into a file anyone may read deserves a word at every load. */
static void warn_exposed(const struct lc_config *cfg)
{
    if (lc_config_secret_exposed(cfg))
        lc_warn("config file holds a secret and is readable by others",
                "path=\"%s\" mode=%04o line=%d", cfg->path, (unsigned)cfg->file_mode,
                cfg->secret_line);
}

static void reload(struct daemon *dm)
{
    struct lc_daemon *d = &dm->d;
    struct lc_config cfg;
    struct lc_error err = {0};
    struct lc_daemon_db *dbs;
    size_t kept = 0, added = 0, removed = 0, changed = 0;

    if (!dm->config_path) {
        lc_warn("SIGHUP: no configuration file to reload (ad hoc replicate)", "%s", "");
        return;
    }
    memset(&cfg, 0, sizeof(cfg));
    if (lc_config_load(&cfg, dm->config_path, &err) < 0) {
        lc_error("reload failed; keeping the running configuration", "error=\"%s\"", err.msg);
        return;
    }
    warn_exposed(&cfg);
    dbs = calloc(cfg.ndbs ? cfg.ndbs : 1, sizeof(*dbs));
    if (!dbs) {
        lc_config_free(&cfg);
        lc_error("reload failed: out of memory", "%s", "");
        return;
    }
    for (size_t i = 0; i < cfg.ndbs; i++) {
        const struct lc_db_config *nc = &cfg.dbs[i];
        struct lc_daemon_db *old = NULL;
        for (size_t j = 0; j < d->ndbs; j++)
            if (d->dbs[j].db && same_db(&d->dbs[j].db->cfg, nc))
                old = &d->dbs[j];
        if (!old) {
            if (dbent_build(d, &cfg, nc, &dbs[i], &err) < 0) {
                lc_error("reload: cannot add database", "db=%s error=\"%s\"", nc->name, err.msg);
                if (dbs[i].db)
                    dbent_free(&dbs[i]);
                continue;
            }
            lc_info("reload: database added", "db=%s path=%s", nc->name, nc->path);
            first_sync(&dbs[i]);
            added++;
            continue;
        }
        /* kept: move it, take the new tunables, then reconcile its replicas */
        lc_db_remove_listener(old->db, old); /* prune's argument moves with it */
        dbs[i] = *old;
        memset(old, 0, sizeof(*old));
        struct lc_db *db = dbs[i].db;
        db->cfg = *nc;
        lc_trigger_stop(&db->trig);
        db->trig.debounce_ns = cfg.debounce_ns;
        db->trig.max_delay_ns = cfg.max_delay_ns;
        db->trig.fallback_ns = cfg.fallback_interval_ns;
        ev_timer_set(&db->trig.fallback, 0., (double)cfg.fallback_interval_ns / 1e9);
        lc_trigger_start(&db->trig);
        for (size_t r = 0; r < dbs[i].nreps;) {
            struct lc_replica *rep = dbs[i].reps[r];
            const struct lc_replica_config *rc = find_replica(&cfg, nc->name, rep->cfg.name);
            if (rc && memcmp(rc, &rep->cfg, offsetof(struct lc_replica_config, line)) == 0) {
                r++;
                continue;
            }
            lc_info(rc ? "reload: replica changed" : "reload: replica removed",
                    "db=%s replica=%s", nc->name, rep->cfg.name);
            lc_replica_free(rep);
            dbs[i].reps[r] = dbs[i].reps[--dbs[i].nreps];
            changed++;
        }
        for (size_t j = 0; j < cfg.nreplicas; j++) {
            const struct lc_replica_config *rc = &cfg.replicas[j];
            int have = 0;
            if (strcmp(rc->db, nc->name) != 0)
                continue;
            for (size_t r = 0; r < dbs[i].nreps; r++)
                if (strcmp(dbs[i].reps[r]->cfg.name, rc->name) == 0)
                    have = 1;
            if (have)
                continue;
            if (add_replica(d, &dbs[i], rc, &err) < 0) {
                lc_error("reload: cannot add replica", "db=%s replica=%s error=\"%s\"",
                         nc->name, rc->name, err.msg);
                continue;
            }
            lc_info("reload: replica added", "db=%s replica=%s", nc->name, rc->name);
            changed++;
        }
        (void)lc_db_add_listener(db, prune, &dbs[i]);
        kick_all(&dbs[i]);
        kept++;
    }
    /* what is left in the old set was removed: final sync, ship, stop */
    for (size_t j = 0; j < d->ndbs; j++) {
        struct lc_daemon_db *e = &d->dbs[j];
        if (!e->db)
            continue;
        lc_info("reload: database removed; final sync", "db=%s", e->db->cfg.name);
        if (lc_db_sync(e->db, LC_SYNC_OTHER, &err) < 0)
            lc_warn("final sync failed", "db=%s error=\"%s\"", e->db->cfg.name, err.msg);
        kick_all(e);
        dbent_free(e);
        removed++;
    }
    free(d->dbs);
    d->dbs = dbs;
    d->ndbs = cfg.ndbs;
    lc_config_free(&d->cfg);
    d->cfg = cfg;
    lc_log_set_level(cfg.log_level);
    lc_info("configuration reloaded", "kept=%zu added=%zu removed=%zu replicas_changed=%zu",
            kept, added, removed, changed);
    notify_status(dm);
}

/* ---- exec mode -------------------------------------------------------------------- */

static void child_cb(struct ev_loop *loop, ev_child *w, int revents);

static void start_child(struct daemon *dm)
{
    pid_t pid = fork();
    if (pid < 0) {
        lc_error("exec: fork failed", "error=\"%s\"", strerror(errno));
        dm->child_status = 1;
        ev_break(dm->d.loop, EVBREAK_ALL);
        return;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", dm->exec_cmd, (char *)NULL);
        _exit(127);
    }
    dm->child = pid;
    lc_info("exec: started", "pid=%d command=\"%s\"", (int)pid, dm->exec_cmd);
    ev_child_init(&dm->child_watcher, child_cb, pid, 0);
    dm->child_watcher.data = dm;
    ev_child_start(dm->d.loop, &dm->child_watcher);
}

static void begin_shutdown(struct daemon *dm, const char *why);

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    struct daemon *dm = w->data;
    int st = w->rstatus;
    (void)revents;
    ev_child_stop(loop, w);
    dm->child = 0;
    dm->child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    lc_info("exec: child exited", "status=%d", dm->child_status);
    begin_shutdown(dm, "child exited");
}

/* ---- readiness, watchdog, shutdown -------------------------------------------------- */

static int is_ready(struct daemon *dm)
{
    for (size_t i = 0; i < dm->d.ndbs; i++) {
        struct lc_daemon_db *e = &dm->d.dbs[i];
        if (!e->db->is_open)
            continue; /* waiting for the file to exist counts as synced */
        for (size_t j = 0; j < e->nreps; j++)
            if ((!e->reps[j]->known || e->reps[j]->need_base) && !e->reps[j]->last_err[0])
                return 0;
    }
    return 1;
}

static void ready_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct daemon *dm = w->data;
    (void)revents;
    if (!is_ready(dm))
        return;
    ev_timer_stop(loop, w);
    dm->d.ready = 1;
    notify("READY=1");
    notify_status(dm);
    lc_info("ready: every database synced, every replica resumed", "databases=%zu",
            dm->d.ndbs);
    if (dm->exec_cmd && !dm->stopping)
        start_child(dm);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    notify("WATCHDOG=1");
}

static void flush_check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
    struct daemon *dm = w->data;
    (void)revents;
    if (all_caught_up(dm))
        ev_break(loop, EVBREAK_ALL);
}

static void shutdown_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    lc_warn("shutdown timeout: exiting with replicas behind", "%s", "");
    ev_break(loop, EVBREAK_ALL);
}

static void begin_shutdown(struct daemon *dm, const char *why)
{
    struct ev_loop *loop = dm->d.loop;
    struct lc_error err = {0};

    notify("STOPPING=1");
    lc_info("shutting down: final sync", "reason=\"%s\"", why);
    ev_timer_stop(loop, &dm->ready_timer);
    for (size_t i = 0; i < dm->d.ndbs; i++) {
        struct lc_db *db = dm->d.dbs[i].db;
        lc_trigger_stop(&db->trig);
        if (lc_db_sync(db, LC_SYNC_OTHER, &err) < 0)
            lc_warn("final sync failed", "db=%s error=\"%s\"", db->cfg.name, err.msg);
        for (size_t j = 0; j < dm->d.dbs[i].nreps; j++)
            lc_replica_retry_now(dm->d.dbs[i].reps[j]);
    }
    if (all_caught_up(dm)) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    ev_timer_init(&dm->shutdown_timer, shutdown_timer_cb,
                  (double)dm->d.cfg.shutdown_timeout_ns / 1e9, 0.);
    ev_timer_start(loop, &dm->shutdown_timer);
    ev_check_init(&dm->flush_check, flush_check_cb);
    dm->flush_check.data = dm;
    ev_check_start(loop, &dm->flush_check);
    ev_unref(loop); /* the check watcher alone must not keep the loop alive */
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct daemon *dm = w->data;
    (void)revents;

    if (w->signum == SIGHUP) {
        if (dm->child)
            kill(dm->child, SIGHUP);
        lc_info("SIGHUP: reloading configuration", "config=%s",
                dm->config_path ? dm->config_path : "-");
        reload(dm);
        return;
    }
    if (dm->stopping++) {
        lc_warn("second signal: exiting now", "signal=%d", w->signum);
        if (dm->child)
            kill(dm->child, SIGKILL);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    if (dm->child) {
        /* the child goes first; its exit starts our shutdown */
        lc_info("exec: forwarding signal to the child", "signal=%d pid=%d", w->signum,
                (int)dm->child);
        kill(dm->child, w->signum);
        return;
    }
    begin_shutdown(dm, w->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- the command ------------------------------------------------------------------ */

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
        {"exec", required_argument, NULL, 'x'},
        {"check", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct daemon dm;
    struct lc_daemon *d = &dm.d;
    struct lc_error err = {0};
    const char *config = NULL;
    int check = 0, c, rc;

    memset(&dm, 0, sizeof(dm));
    dm.child_status = -1;
    optind = 1;
    while ((c = getopt_long_only(argc, argv, "c:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'x':
            dm.exec_cmd = optarg;
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
    if (npos > 1) {
        rc = adhoc_config(&d->cfg, npos, argv + optind, &err);
    } else {
        dm.config_path = config ? config : lc_cmd_default_config();
        rc = lc_config_load(&d->cfg, dm.config_path, &err);
    }
    if (rc < 0) {
        fprintf(stderr, "litecast: %s\n", err.msg);
        return LC_EXIT_USAGE;
    }
    warn_exposed(&d->cfg);
    if (check) {
        printf("configuration OK\n");
        lc_config_free(&d->cfg);
        return LC_EXIT_OK;
    }
    lc_log_set_level(d->cfg.log_level);
    lc_db_global_init();
    d->loop = EV_DEFAULT;
    d->started_wall_ns = lc_now_wall_ns();
    if (build(&dm, &err) < 0) {
        lc_error("cannot start", "error=\"%s\"", err.msg);
        daemon_free(&dm);
        return LC_EXIT_FAIL;
    }
    if ((d->cfg.metrics_addr[0] &&
         lc_metrics_server_start(d, d->cfg.metrics_addr, &err) < 0) ||
        (d->cfg.status_socket[0] && lc_status_server_start(d, d->cfg.status_socket, &err) < 0)) {
        lc_error("cannot start", "error=\"%s\"", err.msg);
        lc_metrics_server_stop();
        daemon_free(&dm);
        return LC_EXIT_FAIL;
    }
    ev_signal_init(&dm.sigint, signal_cb, SIGINT);
    ev_signal_init(&dm.sigterm, signal_cb, SIGTERM);
    ev_signal_init(&dm.sighup, signal_cb, SIGHUP);
    dm.sigint.data = dm.sigterm.data = dm.sighup.data = &dm;
    ev_signal_start(d->loop, &dm.sigint);
    ev_signal_start(d->loop, &dm.sigterm);
    ev_signal_start(d->loop, &dm.sighup);
    lc_info("litecast started", "databases=%zu replicas=%zu config=%s", d->cfg.ndbs,
            d->cfg.nreplicas, d->cfg.path[0] ? d->cfg.path : "-");

    for (size_t i = 0; i < d->ndbs; i++)
        first_sync(&d->dbs[i]);
    ev_timer_init(&dm.ready_timer, ready_cb, 0., 0.01);
    dm.ready_timer.data = &dm;
    ev_timer_start(d->loop, &dm.ready_timer);
    const char *wd = getenv("WATCHDOG_USEC");
    const char *wdpid = getenv("WATCHDOG_PID");
    if (wd && (!wdpid || strtol(wdpid, NULL, 10) == (long)getpid())) {
        double usec = strtod(wd, NULL);
        if (usec > 0) {
            ev_timer_init(&dm.watchdog_timer, watchdog_cb, 0., usec / 2e6);
            ev_timer_again(d->loop, &dm.watchdog_timer);
        }
    }
    ev_run(d->loop, 0);

    ev_signal_stop(d->loop, &dm.sigint);
    ev_signal_stop(d->loop, &dm.sigterm);
    ev_signal_stop(d->loop, &dm.sighup);
    ev_timer_stop(d->loop, &dm.ready_timer);
    ev_timer_stop(d->loop, &dm.watchdog_timer);
    if (ev_is_active(&dm.flush_check)) {
        ev_ref(d->loop);
        ev_check_stop(d->loop, &dm.flush_check);
        ev_timer_stop(d->loop, &dm.shutdown_timer);
    }
    if (dm.child) {
        ev_child_stop(d->loop, &dm.child_watcher);
        kill(dm.child, SIGKILL);
        waitpid(dm.child, NULL, 0);
    }
    lc_metrics_server_stop();
    lc_status_server_stop();
    for (size_t i = 0; i < d->ndbs; i++) {
        char pos[64];
        lc_db_position_str(d->dbs[i].db, pos, sizeof(pos));
        lc_info("stopped", "db=%s position=%s", d->dbs[i].db->cfg.name, pos);
    }
    daemon_free(&dm);
    return dm.child_status >= 0 ? dm.child_status : LC_EXIT_OK;
}
