/* cmd_restore: `litecast restore`, Litestream v0.3's flags and exit codes (reference
 * §4.1, §6): choose a replica and generation, plan, apply (src/restore.c). */
#include "cmd.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "restore.h"
#include "segment.h"
#include "store.h"

/* A restore interrupted by a signal leaves nothing behind: OUT.tmp and its -wal and
 * -shm are removed by the handler (unlink and _exit are async-signal-safe). */
static char tmp_paths[3][LC_PATH_MAX + 16];

static void on_signal(int sig)
{
    for (size_t i = 0; i < 3; i++)
        if (tmp_paths[i][0])
            (void)unlink(tmp_paths[i]);
    _exit(128 + sig);
}

static void cleanup_on_signal(const char *out)
{
    static const char *const sfx[3] = {".tmp", ".tmp-wal", ".tmp-shm"};
    struct sigaction sa;

    for (size_t i = 0; i < 3; i++)
        snprintf(tmp_paths[i], sizeof(tmp_paths[i]), "%s%s", out, sfx[i]);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGHUP, &sa, NULL);
}

static const char usage_line[] =
    "usage: litecast restore [-c FILE] [-o OUT] [--replica NAME] [--generation G]\n"
    "                        [--index HEX | --timestamp RFC3339] [--parallelism N]\n"
    "                        [--if-db-not-exists] [--if-replica-exists] DB_PATH|REPLICA_URL\n";
static const char usage_help[] =
    "\n"
    "Restore a database from its replicas (DB_PATH, looked up in the config) or from one\n"
    "replica URL (file:///dir, s3://bucket/path; -o required).\n"
    "\n"
    "  -c, --config FILE      config file (default $LITECAST_CONFIG or /etc/litecast.ini)\n"
    "  -o, --output OUT       output path (default: the database path)\n"
    "  --replica NAME         restore from this replica only\n"
    "  --generation G         restore from this generation only\n"
    "  --index HEX            restore up to this WAL index (hex)\n"
    "  --timestamp T          restore to this point in time (RFC 3339)\n"
    "  --parallelism N        WAL segments downloaded at once (default 8)\n"
    "  --if-db-not-exists     exit 0 when the output already exists\n"
    "  --if-replica-exists    exit 0 when no backup is found\n";

static int usage(const char *msg)
{
    if (msg) {
        fprintf(stderr, "restore: %s\n", msg);
        fputs(usage_line, stderr);
    } else {
        fputs(usage_line, stdout);
        fputs(usage_help, stdout);
    }
    return msg ? LC_EXIT_USAGE : LC_EXIT_OK;
}

static int bad_option(const char *opt)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "invalid option or missing value: %.200s", opt);
    return usage(msg);
}

static int parse_index(const char *s, int64_t *out)
{
    uint64_t v = 0;

    if (!*s || strlen(s) > 8)
        return LC_EINVAL;
    for (const char *p = s; *p; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            return LC_EINVAL;
        v = v * 16 + (uint64_t)d;
    }
    if (v > LC_MAX_INDEX)
        return LC_EINVAL;
    *out = (int64_t)v;
    return 0;
}

enum {
    OPT_GENERATION = 256,
    OPT_INDEX,
    OPT_TIMESTAMP,
    OPT_IF_DB,
    OPT_IF_REPLICA,
    OPT_PARALLELISM,
    OPT_REPLICA,
};

int lc_cmd_restore(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"generation", required_argument, NULL, OPT_GENERATION},
        {"index", required_argument, NULL, OPT_INDEX},
        {"timestamp", required_argument, NULL, OPT_TIMESTAMP},
        {"if-db-not-exists", no_argument, NULL, OPT_IF_DB},
        {"if-replica-exists", no_argument, NULL, OPT_IF_REPLICA},
        {"parallelism", required_argument, NULL, OPT_PARALLELISM},
        {"replica", required_argument, NULL, OPT_REPLICA},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *output = NULL, *replica = NULL;
    int if_db = 0, if_replica = 0, has_index = 0, c, ret = LC_EXIT_FAIL;
    struct lc_restore_opts o;
    struct lc_cmd_target t;
    struct lc_store **stores = NULL;
    struct lc_gen_info gen = {0};
    struct lc_restore_plan plan = {0};
    struct lc_error err = {0};
    size_t which = 0;
    long par;

    lc_restore_opts_init(&o);
    optind = 0; /* full re-initialisation: commands may run more than once per process */
    opterr = 0; /* we report bad options ourselves, in our words */
    while ((c = getopt_long_only(argc, argv, "c:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case OPT_GENERATION:
            if (!lc_seg_is_generation(optarg))
                return usage("invalid --generation: want 16 lowercase hex characters");
            o.generation = optarg;
            break;
        case OPT_INDEX:
            if (parse_index(optarg, &o.index))
                return usage("invalid --index: want a hex WAL index, e.g. 1f");
            has_index = 1;
            break;
        case OPT_TIMESTAMP:
            if (lc_time_parse(optarg, &o.timestamp_ns))
                return usage("invalid --timestamp: want RFC 3339, e.g. 2026-01-02T15:04:05Z");
            o.has_timestamp = 1;
            break;
        case OPT_IF_DB:
            if_db = 1;
            break;
        case OPT_IF_REPLICA:
            if_replica = 1;
            break;
        case OPT_PARALLELISM:
            if (lc_cmd_parse_long(optarg, 1, 64, &par))
                return usage("invalid --parallelism: want 1 to 64");
            o.parallelism = (int)par;
            break;
        case OPT_REPLICA:
            replica = optarg;
            break;
        case 'h':
            return usage(NULL);
        default:
            return bad_option(argv[optind - 1]);
        }
    }
    if (has_index && o.has_timestamp)
        return usage("cannot specify both --index and --timestamp");
    if (argc - optind != 1)
        return usage(argc - optind ? "too many arguments" : "database path or replica url "
                                                            "required");
    const char *arg = argv[optind];
    if (lc_cmd_is_url(arg) && !output)
        return usage("output path required (-o) when restoring from a replica url");

    int rc = lc_cmd_target_load(&t, config, arg, replica, &err);
    if (rc) {
        if (rc == LC_EINVAL) {
            fprintf(stderr, "restore: %s\n", err.msg);
            return LC_EXIT_USAGE;
        }
        lc_cmd_log_error("restore failed", &err);
        return LC_EXIT_FAIL;
    }
    if (!output)
        output = t.db->path;
    o.output = output;

    struct stat sb;
    if (lstat(output, &sb) == 0) {
        if (if_db) {
            lc_info("database already exists, skipping", "path=\"%s\"", output);
            ret = LC_EXIT_OK;
            goto out;
        }
        lc_err_set(&err, LC_EINVAL, "cannot restore, output path already exists: %s", output);
        goto fail;
    } else if (errno != ENOENT) {
        lc_err_set(&err, LC_EIO, "stat %s: %s", output, strerror(errno));
        goto fail;
    }

    struct ev_loop *loop = ev_default_loop(0);
    if (!loop) {
        lc_err_set(&err, LC_EIO, "cannot initialise the event loop");
        goto fail;
    }
    if (t.n) {
        stores = calloc(t.n, sizeof(*stores));
        if (!stores) {
            lc_err_set(&err, LC_ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < t.n; i++)
        if (lc_cmd_target_store(&t, i, loop, &stores[i], &err))
            goto fail;

    rc = lc_restore_choose(stores, t.n, &o, &which, &gen, &err);
    if (rc == LC_ENOTFOUND && if_replica) {
        lc_info("no matching backups found", "%s", "");
        ret = LC_EXIT_OK;
        goto out;
    }
    if (rc)
        goto fail;
    if (lc_restore_plan_live(stores[which], &gen, &o, &plan, &err))
        goto fail;
    lc_info("restoring from replica", "replica=%s generation=%s index=%08x output=\"%s\"",
            t.replicas[which].name, plan.gen, plan.snap.index, output);
    cleanup_on_signal(output);
    if (lc_restore_apply(stores[which], &plan, &o, &err))
        goto fail;
    lc_info("restore complete", "path=\"%s\"", output);
    ret = LC_EXIT_OK;
    goto out;

fail:
    lc_cmd_log_error("restore failed", &err);
    ret = LC_EXIT_FAIL;
out:
    lc_restore_plan_free(&plan);
    lc_gen_info_clear(&gen);
    if (stores)
        for (size_t i = 0; i < t.n; i++)
            lc_store_free(stores[i]);
    free(stores);
    lc_cmd_target_free(&t);
    return ret;
}
