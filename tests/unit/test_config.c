/* test_config: src/config.c. A file with every key, the defaults, ${VAR} expansion, and
 * every error the loader reports, each checked for its exact "FILE:LINE: " prefix and
 * for naming the key or section. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define MS 1000000LL
#define SEC 1000000000LL

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/lc-test-config-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("LITESTREAM_ACCESS_KEY_ID");
    unsetenv("LITESTREAM_SECRET_ACCESS_KEY");
    return 0;
}

static int teardown(void **state)
{
    char cmd[512];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void assert_empty(const struct lc_config *cfg)
{
    assert_null(cfg->dbs);
    assert_null(cfg->replicas);
    assert_int_equal(cfg->ndbs, 0);
    assert_int_equal(cfg->nreplicas, 0);
}

/* Load text, expect LC_EINVAL with message "t.ini:LINE: ..." containing every needle. */
static void check_error(const char *text, int line, const char *n1, const char *n2)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    char prefix[32];
    size_t len;
    int rc = lc_config_load_string(&cfg, "t.ini", text, &err);

    if (rc != LC_EINVAL)
        fail_msg("rc %d (%s) for:\n%s", rc, err.msg, text);
    snprintf(prefix, sizeof(prefix), "t.ini:%d: ", line);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\" lacks prefix \"%s\" for:\n%s", err.msg, prefix, text);
    if (n1 && !strstr(err.msg, n1))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, n1);
    if (n2 && !strstr(err.msg, n2))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, n2);
    len = strlen(err.msg);
    if (strchr(err.msg, '\n') || err.msg[len - 1] == '.')
        fail_msg("message \"%s\" is not one line without a final period", err.msg);
    assert_int_equal(err.code, LC_EINVAL);
    assert_empty(&cfg);
    assert_string_equal(cfg.path, "");
}

static void test_full_file(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    const struct lc_db_config *db;
    const struct lc_replica_config *r;
    const char *text = "; every key\n"                         /* 1 */
                       "[litecast]\n"                           /* 2 */
                       "debounce = 5ms\n"                       /* 3 */
                       "max-delay = 50ms ; inline comment\n"    /* 4 */
                       "fallback-interval = 2s\n"               /* 5 */
                       "shutdown-timeout = 1m30s\n"             /* 6 */
                       "log-level = debug\n"                    /* 7 */
                       "metrics-addr = 127.0.0.1:9090\n"        /* 8 */
                       "status-socket = /run/litecast.sock\n"   /* 9 */
                       "\n"                                     /* 10 */
                       "[replica app-s3]\n"                     /* 11: before its db */
                       "  db = app\n"                           /* 12: indented */
                       "url = s3://bucket/app/prefix\n"
                       "retention = 48h\n"
                       "retention-check-interval = 2h\n"
                       "snapshot-interval = 6h\n"
                       "sync-interval = 250ms\n"
                       "endpoint = http://127.0.0.1:7480\n"
                       "region = eu-west-1\n"
                       "bucket = other-bucket\n"
                       "access-key-id = ${LC_TEST_AKID}\n"
                       "secret-access-key = ${LC_TEST_SECRET}\n"
                       "force-path-style = yes\n"
                       "skip-verify = on\n"
                       "\n"
                       "# hash comment\n"
                       "[db app]\n" /* 27 */
                       "path = /var/lib/app/app.db\n"
                       "meta-dir = /var/lib/app/meta/\n"
                       "min-checkpoint-pages = 100\n"
                       "max-checkpoint-pages = 0\n"
                       "truncate-pages = 123456\n"
                       "checkpoint-interval = 0\n"
                       "max-wal-index-bytes = 65536\n"
                       "watch = false\n"
                       "\n"
                       "[replica app-local]\n" /* 37 */
                       "db = app\n"
                       "url = file:///var/backups/app\n"
                       "retention = 0\n";
    (void)state;

    setenv("LC_TEST_AKID", "AKIAEXAMPLE", 1);
    setenv("LC_TEST_SECRET", "s3cr3t/value", 1);
    assert_int_equal(lc_config_load_string(&cfg, "full.ini", text, &err), 0);
    assert_string_equal(cfg.path, "");
    assert_int_equal(cfg.debounce_ns, 5 * MS);
    assert_int_equal(cfg.max_delay_ns, 50 * MS);
    assert_int_equal(cfg.fallback_interval_ns, 2 * SEC);
    assert_int_equal(cfg.shutdown_timeout_ns, 90 * SEC);
    assert_int_equal(cfg.log_level, LC_LOG_DEBUG);
    assert_string_equal(cfg.metrics_addr, "127.0.0.1:9090");
    assert_string_equal(cfg.status_socket, "/run/litecast.sock");

    assert_int_equal(cfg.ndbs, 1);
    db = &cfg.dbs[0];
    assert_string_equal(db->name, "app");
    assert_string_equal(db->path, "/var/lib/app/app.db");
    assert_string_equal(db->meta_dir, "/var/lib/app/meta");
    assert_int_equal(db->min_checkpoint_pages, 100);
    assert_int_equal(db->max_checkpoint_pages, 0);
    assert_int_equal(db->truncate_pages, 123456);
    assert_int_equal(db->checkpoint_interval_ns, 0);
    assert_int_equal(db->max_wal_index_bytes, 65536);
    assert_int_equal(db->watch, 0);
    assert_int_equal(db->line, 27);

    assert_int_equal(cfg.nreplicas, 2);
    r = &cfg.replicas[0];
    assert_string_equal(r->name, "app-s3");
    assert_string_equal(r->db, "app");
    assert_string_equal(r->url, "s3://bucket/app/prefix");
    assert_int_equal(r->retention_ns, 48 * 3600 * SEC);
    assert_int_equal(r->retention_check_ns, 2 * 3600 * SEC);
    assert_int_equal(r->snapshot_interval_ns, 6 * 3600 * SEC);
    assert_int_equal(r->sync_interval_ns, 250 * MS);
    assert_int_equal(r->sync_interval_set, 1);
    assert_string_equal(r->endpoint, "http://127.0.0.1:7480");
    assert_string_equal(r->region, "eu-west-1");
    assert_string_equal(r->bucket, "other-bucket");
    assert_string_equal(r->access_key_id, "AKIAEXAMPLE");
    assert_string_equal(r->secret_access_key, "s3cr3t/value");
    assert_int_equal(r->force_path_style, 1);
    assert_int_equal(r->skip_verify, 1);
    assert_int_equal(r->line, 11);

    r = &cfg.replicas[1];
    assert_string_equal(r->name, "app-local");
    assert_string_equal(r->url, "file:///var/backups/app");
    assert_int_equal(r->retention_ns, 0);
    assert_int_equal(r->retention_check_ns, 3600 * SEC); /* no clamp: retention off */
    assert_int_equal(r->sync_interval_ns, 0);
    assert_int_equal(r->sync_interval_set, 0);
    assert_int_equal(r->force_path_style, -1);
    assert_int_equal(r->line, 37);

    assert_ptr_equal(lc_config_find_db(&cfg, "app"), db);
    assert_null(lc_config_find_db(&cfg, "nope"));
    assert_ptr_equal(lc_config_find_db_path(&cfg, "/var/lib/app/./app.db"), db);
    assert_ptr_equal(lc_config_find_db_path(&cfg, "/var/lib//x/../app/app.db"), db);
    assert_null(lc_config_find_db_path(&cfg, "/var/lib/app/other.db"));
    lc_config_free(&cfg);
    assert_empty(&cfg);
    lc_config_free(&cfg); /* twice is fine */
    lc_config_free(NULL);
    unsetenv("LC_TEST_AKID");
    unsetenv("LC_TEST_SECRET");
}

static void test_defaults(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    const struct lc_db_config *db;
    const struct lc_replica_config *r;
    char cwd[LC_PATH_MAX], want[LC_PATH_MAX + 64];
    (void)state;

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(lc_config_load_string(&cfg, "d.ini",
                                           "[db a]\npath = ./x/../a.db\n"
                                           "[replica f]\ndb = a\nurl = file:///bk/a\n"
                                           "retention = 30m\n"
                                           "[replica s]\ndb = a\nurl = s3://b/a\n",
                                           &err),
                     0);
    assert_int_equal(cfg.debounce_ns, 1 * MS);
    assert_int_equal(cfg.max_delay_ns, 5 * MS);
    assert_int_equal(cfg.fallback_interval_ns, 1 * SEC);
    assert_int_equal(cfg.shutdown_timeout_ns, 10 * SEC);
    assert_int_equal(cfg.log_level, LC_LOG_INFO);
    assert_string_equal(cfg.metrics_addr, "");
    assert_string_equal(cfg.status_socket, "");

    db = &cfg.dbs[0];
    snprintf(want, sizeof(want), "%s/a.db", strcmp(cwd, "/") ? cwd : "");
    assert_string_equal(db->path, want);
    snprintf(want, sizeof(want), "%s/.a.db-litecast", strcmp(cwd, "/") ? cwd : "");
    assert_string_equal(db->meta_dir, want);
    assert_int_equal(db->min_checkpoint_pages, 1000);
    assert_int_equal(db->max_checkpoint_pages, 10000);
    assert_int_equal(db->truncate_pages, 500000);
    assert_int_equal(db->checkpoint_interval_ns, 60 * SEC);
    assert_int_equal(db->max_wal_index_bytes, 1073741824LL);
    assert_int_equal(db->watch, 1);

    r = &cfg.replicas[0];
    assert_int_equal(r->retention_ns, 30 * 60 * SEC);
    assert_int_equal(r->retention_check_ns, 30 * 60 * SEC); /* clamped to retention */
    assert_int_equal(r->snapshot_interval_ns, 0);
    assert_int_equal(r->sync_interval_ns, 0);
    assert_int_equal(r->force_path_style, -1);
    assert_int_equal(r->skip_verify, 0);
    assert_string_equal(r->region, "");

    r = &cfg.replicas[1];
    assert_int_equal(r->retention_ns, 24 * 3600 * SEC);
    assert_int_equal(r->retention_check_ns, 3600 * SEC);
    assert_int_equal(r->sync_interval_ns, 1 * SEC);
    assert_int_equal(r->sync_interval_set, 0);
    assert_string_equal(r->region, ""); /* no endpoint: left to the store */
    assert_string_equal(r->access_key_id, "");
    assert_string_equal(r->secret_access_key, "");
    assert_int_equal(r->force_path_style, -1);
    lc_config_free(&cfg);

    /* An empty file is valid: defaults and no dbs. */
    assert_int_equal(lc_config_load_string(&cfg, "e.ini", "", &err), 0);
    assert_int_equal(cfg.ndbs, 0);
    assert_int_equal(cfg.fallback_interval_ns, 1 * SEC);
    lc_config_free(&cfg);

    lc_config_defaults(&cfg);
    assert_int_equal(cfg.debounce_ns, 1 * MS);
    assert_int_equal(cfg.shutdown_timeout_ns, 10 * SEC);
    assert_int_equal(cfg.log_level, LC_LOG_INFO);
    assert_empty(&cfg);
}

static void test_s3_env_credentials(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    const char *text = "[db a]\npath = /d/a.db\n"
                       "[replica s]\ndb = a\nurl = s3://b/p\nendpoint = https://s3.local\n"
                       "[replica t]\ndb = a\nurl = s3://c/p\naccess-key-id = mine\n"
                       "region = r1\nsync-interval = 0\n";
    (void)state;

    setenv("LITESTREAM_ACCESS_KEY_ID", "ls-id", 1);
    setenv("LITESTREAM_SECRET_ACCESS_KEY", "ls-secret", 1);
    assert_int_equal(lc_config_load_string(&cfg, "s.ini", text, &err), 0);
    assert_string_equal(cfg.replicas[0].access_key_id, "ls-id");
    assert_string_equal(cfg.replicas[0].secret_access_key, "ls-secret");
    assert_string_equal(cfg.replicas[0].region, "us-east-1");
    assert_string_equal(cfg.replicas[1].access_key_id, "mine");
    assert_string_equal(cfg.replicas[1].secret_access_key, "ls-secret");
    assert_string_equal(cfg.replicas[1].region, "r1");
    assert_int_equal(cfg.replicas[1].sync_interval_ns, 0);
    assert_int_equal(cfg.replicas[1].sync_interval_set, 1);
    lc_config_free(&cfg);

    /* AWS_* wins over LITESTREAM_*. */
    setenv("AWS_ACCESS_KEY_ID", "aws-id", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "aws-secret", 1);
    assert_int_equal(lc_config_load_string(&cfg, "s.ini", text, &err), 0);
    assert_string_equal(cfg.replicas[0].access_key_id, "aws-id");
    assert_string_equal(cfg.replicas[0].secret_access_key, "aws-secret");
    lc_config_free(&cfg);

    /* An empty AWS_* falls through to LITESTREAM_*. */
    setenv("AWS_ACCESS_KEY_ID", "", 1);
    assert_int_equal(lc_config_load_string(&cfg, "s.ini", text, &err), 0);
    assert_string_equal(cfg.replicas[0].access_key_id, "ls-id");
    lc_config_free(&cfg);

    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("LITESTREAM_ACCESS_KEY_ID");
    unsetenv("LITESTREAM_SECRET_ACCESS_KEY");
}

static void test_env_expansion(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    (void)state;

    setenv("LC_T_DIR", "/srv/data", 1);
    setenv("LC_T_NESTED", "${LC_T_DIR}", 1);
    setenv("LC_T_UNIT", "ms", 1);
    unsetenv("LC_T_UNSET");
    assert_int_equal(lc_config_load_string(&cfg, "x.ini",
                                           "[litecast]\n"
                                           "debounce = 3${LC_T_UNIT}\n"
                                           "status-socket = ${LC_T_DIR}/$x$${LC_T_UNSET}$\n"
                                           "metrics-addr = ${LC_T_UNSET}\n"
                                           "[db a]\n"
                                           "path = ${LC_T_DIR}/${LC_T_DIR}/a.db\n"
                                           "meta-dir = /m/${LC_T_NESTED}\n",
                                           &err),
                     0);
    assert_int_equal(cfg.debounce_ns, 3 * MS);
    assert_string_equal(cfg.status_socket, "/srv/data/$x$$");
    assert_string_equal(cfg.metrics_addr, "");
    assert_string_equal(cfg.dbs[0].path, "/srv/data/srv/data/a.db");
    /* Not expanded twice: the value of LC_T_NESTED is kept as text. */
    assert_string_equal(cfg.dbs[0].meta_dir, "/m/${LC_T_DIR}");
    lc_config_free(&cfg);
    unsetenv("LC_T_DIR");
    unsetenv("LC_T_NESTED");
    unsetenv("LC_T_UNIT");
}

static void test_errors_sections(void **state)
{
    (void)state;
    check_error("[foo]\nx = 1\n", 1, "unknown section [foo]", NULL);
    check_error("[litecast]\n\n[foo]\n", 3, "[foo]", NULL); /* empty sections too */
    check_error("[db]\npath = /a.db\n", 1, "[db]", "name");
    check_error("[replica]\n", 1, "[replica]", "name");
    check_error("[litecast extra]\n", 1, "[litecast extra]", NULL);
    check_error("[db a b]\npath = /a.db\n", 1, "[db a b]", "name");
    check_error("[db a] junk\npath = /a.db\n", 1, "[db a]", "section header");
    check_error("debounce = 1s\n[litecast]\n", 1, "debounce", "outside any section");
    check_error("\n\n[litecast]\nfoo = 1\n", 4, "[litecast]", "unknown key \"foo\"");
    check_error("[db a]\npath = /a.db\npaht = x\n", 3, "[db a]", "unknown key \"paht\"");
    check_error("[db a]\npath = /a.db\n[replica r]\ndb = a\nurl = file:///b\ncolor = red\n", 6,
                "[replica r]", "unknown key \"color\"");
    check_error("[db a]\n; no path\nwatch = 1\n", 1, "[db a]", "missing required key path");
    check_error("[db a]\npath = /a.db\n\n[replica r]\nurl = file:///b\n", 4, "[replica r]",
                "missing required key db");
    check_error("[db a]\npath = /a.db\n[replica r]\ndb = a\n[litecast]\n", 3, "[replica r]",
                "missing required key url");
    check_error("[db a]\npath = /a.db\n[replica r]\ndb = b\nurl = file:///b\n", 3,
                "[replica r]", "[db b]");
    check_error("[db a]\npath = /a.db\n[db a]\npath = /b.db\n", 3, "duplicate section [db a]",
                "line 1");
    check_error("[db a]\npath = /a.db\n[replica r]\ndb = a\nurl = file:///b\n"
                "[replica r]\ndb = a\nurl = file:///c\n",
                6, "duplicate section [replica r]", "line 3");
    check_error("[litecast]\n[litecast]\n", 2, "duplicate section [litecast]", NULL);
    check_error("[db a]\npath = /x/a.db\n[db b]\npath = /x/y/../a.db\n", 3, "[db b]",
                "path");
    check_error("[db a]\npath = /x/a.db\nmeta-dir = /m\n[db b]\npath = /x/b.db\n"
                "meta-dir = /m/\n",
                4, "[db b]", "meta-dir");
    check_error("[db a]\npath = /a.db\n[replica r]\ndb = a\nurl = file:///b\n"
                "[replica s]\ndb = a\nurl = file:///b\n",
                6, "[replica s]", "url");
    check_error("[db a]\npath = /a.db\npath = /b.db\n", 3, "duplicate key path", "line 2");
}

static void test_errors_values(void **state)
{
    char big[9000], text[9200];
    (void)state;

    check_error("[litecast]\ndebounce = 5x\n", 2, "debounce", "bad duration \"5x\"");
    check_error("[litecast]\nmax-delay = 10\n", 2, "max-delay", "bad duration");
    check_error("[litecast]\nshutdown-timeout = -1s\n", 2, "shutdown-timeout", "negative");
    check_error("[litecast]\nfallback-interval = 0\n", 2, "fallback-interval", "greater than 0");
    check_error("[litecast]\ndebounce = 30ms\nmax-delay = 10ms\n", 3, "max-delay", "debounce");
    check_error("[litecast]\n\ndebounce = 30ms\n", 3, "debounce", "max-delay");
    check_error("[litecast]\nlog-level = loud\n", 2, "log-level", "\"loud\"");
    check_error("[litecast]\nmetrics-addr = localhost\n", 2, "metrics-addr", "HOST:PORT");
    check_error("[litecast]\nmetrics-addr = :99999\n", 2, "metrics-addr", NULL);
    check_error("[litecast]\nmetrics-addr = \"\"\n", 2, "metrics-addr", NULL);
    memset(big, 'a', 200);
    big[200] = '\0';
    snprintf(text, sizeof(text), "[litecast]\nstatus-socket = /%s\n", big);
    check_error(text, 2, "status-socket", "too long");

    check_error("[db a]\npath = /a.db\nmin-checkpoint-pages = 0\n", 3, "min-checkpoint-pages",
                "greater than 0");
    check_error("[db a]\npath = /a.db\nmin-checkpoint-pages = 12abc\n", 3,
                "min-checkpoint-pages", "bad integer");
    check_error("[db a]\npath = /a.db\nmax-checkpoint-pages = 1e3\n", 3, "max-checkpoint-pages",
                "bad integer");
    check_error("[db a]\npath = /a.db\ntruncate-pages = 99999999999999999999\n", 3,
                "truncate-pages", "bad integer");
    check_error("[db a]\npath = /a.db\ntruncate-pages = -5\n", 3, "truncate-pages", "negative");
    check_error("[db a]\npath = /a.db\ntruncate-pages = +5\n", 3, "truncate-pages",
                "bad integer");
    check_error("[db a]\npath = /a.db\nmin-checkpoint-pages = 500\nmax-checkpoint-pages = 100\n",
                4, "max-checkpoint-pages", "min-checkpoint-pages");
    check_error("[db a]\npath = /a.db\n\nmin-checkpoint-pages = 20000\n", 4,
                "min-checkpoint-pages", "max-checkpoint-pages");
    check_error("[db a]\npath = /a.db\ncheckpoint-interval = 1d\n", 3, "checkpoint-interval",
                "bad duration");
    check_error("[db a]\npath = /a.db\nmax-wal-index-bytes = 65535\n", 3, "max-wal-index-bytes",
                "65536");
    check_error("[db a]\npath = /a.db\nmax-wal-index-bytes = 3758096385\n", 3,
                "max-wal-index-bytes", "3758096384");
    check_error("[db a]\npath = /a.db\nmax-wal-index-bytes = 1GiB\n", 3, "max-wal-index-bytes",
                "bad integer");
    check_error("[db a]\npath = /a.db\nwatch = maybe\n", 3, "watch", "\"maybe\"");
    check_error("[db a]\npath =\n", 2, "path", "empty");
    check_error("[db a]\npath = /\n", 1, "path", "not a file");

    check_error("[replica r]\ndb = a\nurl = gs://b/p\n", 3, "url", "unsupported scheme \"gs\"");
    check_error("[replica r]\ndb = a\nurl = /var/backups\n", 3, "url", "file:///");
    check_error("[replica r]\ndb = a\nurl = file://relative/dir\n", 3, "url", "absolute");
    check_error("[db a]\npath = /a.db\n[replica r]\ndb = a\nurl = s3:///p\n", 3, "url",
                "bucket");
    check_error("[replica r]\ndb = a\nurl = s3://b/p\nretention = 1 h\n", 4, "retention",
                "bad duration");
    check_error("[replica r]\ndb = a\nurl = s3://b/p\nretention-check-interval = 0\n", 4,
                "retention-check-interval", "greater than 0");
    check_error("[replica r]\ndb = a\nurl = s3://b/p\nsnapshot-interval = -1h\n", 4,
                "snapshot-interval", "negative");
    check_error("[replica r]\ndb = a\nurl = s3://b/p\nsync-interval = fast\n", 4,
                "sync-interval", "bad duration");
    check_error("[replica r]\ndb = a\nurl = s3://b/p\nforce-path-style = 2\n", 4,
                "force-path-style", "true or false");
    check_error("[replica r]\ndb = a\nurl = s3://b/p\nskip-verify = nope\n", 4, "skip-verify",
                "true or false");
    check_error("[replica r]\ndb = a\nurl = s3://b/p\nendpoint = 127.0.0.1:9000\n", 4,
                "endpoint", "http://");
    check_error("[replica r]\ndb =\nurl = s3://b/p\n", 2, "db", "empty");
    check_error("[db a]\npath = /a.db\n[replica r]\ndb = a\nregion = x\nurl = file:///b\n", 5,
                "region", "s3");
    check_error("[db a]\npath = /a.db\n[replica r]\ndb = a\nurl = file:///b\nskip-verify = 0\n",
                6, "skip-verify", "s3");
    memset(big, 'r', 100);
    big[100] = '\0';
    snprintf(text, sizeof(text), "[replica r]\ndb = a\nurl = s3://b/p\nregion = %s\n", big);
    check_error(text, 4, "region", "too long");
}

static void test_errors_expansion_and_syntax(void **state)
{
    char big[9000], text[9200];
    (void)state;

    check_error("[db a]\npath = /${HOME\n", 2, "path", "unterminated ${");
    check_error("[db a]\npath = /${}\n", 2, "path", "variable name");
    check_error("[db a]\npath = /${A B}\n", 2, "path", "variable name");
    memset(big, 'v', 8500);
    big[8500] = '\0';
    setenv("LC_T_BIG", big, 1);
    check_error("[db a]\npath = ${LC_T_BIG}\n", 2, "path", "too long");
    unsetenv("LC_T_BIG");
    memset(big, 'v', 5000);
    big[5000] = '\0';
    snprintf(text, sizeof(text), "[db a]\npath = /%s\n", big);
    check_error(text, 2, "path", "too long");
    memset(big, 'v', 8300);
    big[8300] = '\0';
    snprintf(text, sizeof(text), "[db a]\n\npath = /%s\n", big);
    check_error(text, 3, "line too long", NULL);

    check_error("[db a]\npath = /a.db\njust some words\n", 3, "syntax error", "key = value");
    check_error("[litecast]\n\n[db a\npath = /a.db\n", 3, "']'", NULL);
    check_error("[db a ; comment]\npath = /a.db\n", 1, "']'", NULL);
    check_error("\n\n\nloose\n", 4, "syntax error", NULL);
}

/* Lines up to 8192 bytes are read whole (inih's default would split them at 200). */
static void test_long_lines(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    static char text[20000];
    char path[4200];
    int n;
    (void)state;

    n = snprintf(text, sizeof(text), ";");
    memset(text + n, 'c', 8191);
    n += 8191; /* a comment line of exactly 8192 bytes */
    memset(path, 'p', 4000);
    path[0] = '/';
    path[4000] = '\0';
    snprintf(text + n, sizeof(text) - (size_t)n, "\n[db a]\npath = %s\nwatch = no\n", path);
    assert_int_equal(lc_config_load_string(&cfg, "l.ini", text, &err), 0);
    assert_int_equal(cfg.ndbs, 1);
    assert_string_equal(cfg.dbs[0].path, path);
    assert_int_equal(cfg.dbs[0].watch, 0);
    assert_int_equal(cfg.dbs[0].line, 2);
    lc_config_free(&cfg);

    text[0] = ';';
    memset(text + 1, 'c', 8192);
    snprintf(text + 8193, sizeof(text) - 8193, "\n[litecast]\n");
    check_error(text, 1, "line too long", NULL);
}

/* Secret values never show up in messages, whatever goes wrong with them. */
static void test_secret_not_logged(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    char big[400], text[600];
    const char *cases[3];
    (void)state;

    memset(big, 'Z', 300);
    memcpy(big, "SECRETMARK", 10);
    big[300] = '\0';
    snprintf(text, sizeof(text),
             "[db a]\npath = /a.db\n[replica r]\ndb = a\nurl = s3://b/p\n"
             "secret-access-key = %s\n",
             big);
    cases[0] = text;
    cases[1] = "[db a]\npath = /a.db\n[replica r]\ndb = a\nurl = s3://b/p\n"
               "secret-access-key = SECRETMARK${X\n";
    cases[2] = "[db a]\npath = /a.db\n[replica r]\ndb = a\nurl = s3://b/p\n"
               "secret-access-key SECRETMARK\n";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lc_config_load_string(&cfg, "t.ini", cases[i], &err), LC_EINVAL);
        assert_non_null(strstr(err.msg, "t.ini:6: "));
        assert_null(strstr(err.msg, "SECRETMARK"));
        assert_empty(&cfg);
    }
    assert_non_null(strstr(text, "SECRETMARK"));
}

static void test_load_file(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    char path[512], want[600];
    (void)state;

    snprintf(path, sizeof(path), "%s/good.ini", tmpdir);
    write_file(path, "[db a]\r\npath = /srv/a.db\r\n[replica r]\r\ndb = a\r\n"
                     "url = file:///bk\r\n");
    assert_int_equal(lc_config_load(&cfg, path, &err), 0);
    assert_string_equal(cfg.path, path);
    assert_string_equal(cfg.dbs[0].path, "/srv/a.db");
    assert_string_equal(cfg.replicas[0].url, "file:///bk");
    lc_config_free(&cfg);

    snprintf(path, sizeof(path), "%s/bad.ini", tmpdir);
    write_file(path, "[db a]\npath = /srv/a.db\n\nwatch = sometimes\n");
    assert_int_equal(lc_config_load(&cfg, path, &err), LC_EINVAL);
    snprintf(want, sizeof(want), "%s:4: ", path);
    assert_int_equal(strncmp(err.msg, want, strlen(want)), 0);
    assert_non_null(strstr(err.msg, "watch"));
    assert_empty(&cfg);
    assert_string_equal(cfg.path, "");

    snprintf(path, sizeof(path), "%s/missing.ini", tmpdir);
    assert_int_equal(lc_config_load(&cfg, path, &err), LC_EINVAL);
    snprintf(want, sizeof(want), "%s: open: %s", path, strerror(ENOENT));
    assert_string_equal(err.msg, want);
    assert_empty(&cfg);

    assert_int_equal(lc_config_load(&cfg, tmpdir, &err), LC_EINVAL);
    snprintf(want, sizeof(want), "%s: read: %s", tmpdir, strerror(EISDIR));
    assert_string_equal(err.msg, want);
    assert_empty(&cfg);

    snprintf(path, sizeof(path), "%s/secret.ini", tmpdir);
    write_file(path, "[litecast]\n");
    assert_int_equal(chmod(path, 0), 0);
    if (geteuid() != 0) { /* root reads anything */
        assert_int_equal(lc_config_load(&cfg, path, &err), LC_EINVAL);
        assert_non_null(strstr(err.msg, strerror(EACCES)));
        assert_empty(&cfg);
    }

    /* A NUL byte in the file is an error at its line. */
    snprintf(path, sizeof(path), "%s/nul.ini", tmpdir);
    {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite("[litecast]\n\nlog-level = in\0fo\n", 1, 30, f), 30);
        assert_int_equal(fclose(f), 0);
    }
    assert_int_equal(lc_config_load(&cfg, path, &err), LC_EINVAL);
    snprintf(want, sizeof(want), "%s:3: ", path);
    assert_int_equal(strncmp(err.msg, want, strlen(want)), 0);
    assert_empty(&cfg);
}

static void test_symlinked_paths(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    char dir[512], link[512], text[1400], p[600];
    (void)state;

    snprintf(dir, sizeof(dir), "%s/real", tmpdir);
    snprintf(link, sizeof(link), "%s/link", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(symlink(dir, link), 0);
    snprintf(text, sizeof(text), "[db a]\npath = %s/a.db\n[db b]\npath = %s/a.db\n", dir, link);
    check_error(text, 3, "[db b]", "[db a]");

    snprintf(text, sizeof(text), "[db a]\npath = %s/a.db\n", dir);
    assert_int_equal(lc_config_load_string(&cfg, "l.ini", text, &err), 0);
    snprintf(p, sizeof(p), "%s/a.db", link);
    assert_ptr_equal(lc_config_find_db_path(&cfg, p), &cfg.dbs[0]);
    lc_config_free(&cfg);
}

static void test_adhoc(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    struct lc_db_config db;
    struct lc_replica_config r;
    (void)state;

    lc_config_defaults(&cfg);
    memset(&db, 0, sizeof(db));
    snprintf(db.name, sizeof(db.name), "app.db");
    snprintf(db.path, sizeof(db.path), "/srv//app/../app/app.db");
    assert_int_equal(lc_config_db_defaults(&db, &err), 0);
    assert_string_equal(db.path, "/srv/app/app.db");
    assert_string_equal(db.meta_dir, "/srv/app/.app.db-litecast");
    assert_int_equal(db.min_checkpoint_pages, 1000);
    assert_int_equal(db.max_wal_index_bytes, 1073741824LL);
    assert_int_equal(db.watch, 1);
    assert_int_equal(lc_config_add_db(&cfg, &db, &err), 0);
    assert_int_equal(lc_config_add_db(&cfg, &db, &err), LC_EINVAL);
    assert_non_null(strstr(err.msg, "app.db"));

    memset(&db, 0, sizeof(db));
    assert_int_equal(lc_config_db_defaults(&db, &err), LC_EINVAL);
    assert_non_null(strstr(err.msg, "path"));

    memset(&r, 0, sizeof(r));
    snprintf(r.db, sizeof(r.db), "app.db");
    snprintf(r.url, sizeof(r.url), "s3://bucket/app");
    setenv("AWS_ACCESS_KEY_ID", "id-from-env", 1);
    assert_int_equal(lc_config_replica_defaults(&r, &err), 0);
    unsetenv("AWS_ACCESS_KEY_ID");
    assert_int_equal(r.sync_interval_ns, 1 * SEC);
    assert_int_equal(r.retention_ns, 24 * 3600 * SEC);
    assert_int_equal(r.force_path_style, -1);
    assert_string_equal(r.access_key_id, "id-from-env");
    assert_int_equal(lc_config_add_replica(&cfg, &r, &err), 0);

    memset(&r, 0, sizeof(r));
    snprintf(r.db, sizeof(r.db), "app.db");
    snprintf(r.url, sizeof(r.url), "file:///bk/app");
    assert_int_equal(lc_config_replica_defaults(&r, &err), 0);
    assert_int_equal(r.sync_interval_ns, 0);
    assert_int_equal(lc_config_add_replica(&cfg, &r, &err), 0);
    assert_int_equal(cfg.nreplicas, 2);

    snprintf(r.db, sizeof(r.db), "other");
    assert_int_equal(lc_config_add_replica(&cfg, &r, &err), LC_EINVAL);
    assert_non_null(strstr(err.msg, "other"));

    memset(&r, 0, sizeof(r));
    snprintf(r.url, sizeof(r.url), "ftp://x/y");
    assert_int_equal(lc_config_replica_defaults(&r, &err), LC_EINVAL);
    assert_non_null(strstr(err.msg, "url"));
    memset(&r, 0, sizeof(r));
    assert_int_equal(lc_config_replica_defaults(&r, &err), LC_EINVAL);

    /* Growth through many appends keeps every entry. */
    for (int i = 0; i < 100; i++) {
        memset(&db, 0, sizeof(db));
        snprintf(db.name, sizeof(db.name), "db%d", i);
        snprintf(db.path, sizeof(db.path), "/many/%d.db", i);
        assert_int_equal(lc_config_db_defaults(&db, &err), 0);
        assert_int_equal(lc_config_add_db(&cfg, &db, &err), 0);
    }
    assert_int_equal(cfg.ndbs, 101);
    assert_string_equal(lc_config_find_db(&cfg, "db77")->path, "/many/77.db");
    assert_string_equal(lc_config_find_db_path(&cfg, "/many/../many/99.db")->name, "db99");
    assert_string_equal(lc_config_find_db(&cfg, "app.db")->path, "/srv/app/app.db");
    lc_config_free(&cfg);
    assert_empty(&cfg);
}

/* The shipped example must load as it is. */
static void test_example_file(void **state)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    char path[512];
    const char *top = __FILE__;
    const char *cut = strstr(top, "tests/unit/test_config.c");
    (void)state;

    snprintf(path, sizeof(path), "%.*sconf/litecast.ini", cut ? (int)(cut - top) : 0, top);
    if (access(path, R_OK) != 0)
        skip();
    if (lc_config_load(&cfg, path, &err) != 0)
        fail_msg("%s", err.msg);
    assert_true(cfg.ndbs >= 1);
    assert_true(cfg.nreplicas >= 2);
    lc_config_free(&cfg);
}

/* A secret-access-key written into the file, readable by others, is flagged; one that
 * only names ${VARS}, or a file only its owner and group read, is not. */
static void test_secret_exposed(void **state)
{
    static const struct {
        const char *value;
        mode_t mode;
        int line;    /* expected secret_line */
        int exposed; /* expected lc_config_secret_exposed */
    } cases[] = {
        {"s3cr3t", 0644, 8, 1},     {"s3cr3t", 0640, 8, 0},   {"s3cr3t", 0600, 8, 0},
        {"${SOME_VAR}", 0644, 0, 0}, {" ${A}${B} ", 0644, 0, 0}, {"${A}x", 0604, 8, 1},
        {"", 0644, 0, 0},
    };
    struct lc_config cfg;
    struct lc_error err = {0};
    char path[512], text[512];
    (void)state;

    snprintf(path, sizeof(path), "%s/exposed.ini", tmpdir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text),
                 "[db a]\npath = /srv/a.db\n[replica r]\ndb = a\nurl = s3://b/p\n"
                 "endpoint = http://127.0.0.1:9\naccess-key-id = AK\nsecret-access-key = %s\n",
                 cases[i].value);
        write_file(path, text);
        assert_int_equal(chmod(path, cases[i].mode), 0);
        if (lc_config_load(&cfg, path, &err))
            fail_msg("case %zu: %s", i, err.msg);
        assert_int_equal(cfg.secret_line, cases[i].line);
        assert_int_equal(cfg.file_mode, cases[i].mode);
        assert_int_equal(lc_config_secret_exposed(&cfg), cases[i].exposed);
        lc_config_free(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_s3_env_credentials),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_errors_sections),
        cmocka_unit_test(test_errors_values),
        cmocka_unit_test(test_errors_expansion_and_syntax),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_secret_not_logged),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_symlinked_paths),
        cmocka_unit_test(test_adhoc),
        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_secret_exposed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
