/* cmd: the sub-commands. Each takes the arguments after the command name (argv[0] is
 * the command) and returns the process exit status: 0 success, 1 runtime failure,
 * 2 bad usage or configuration. */
#ifndef LC_CMD_H
#define LC_CMD_H

#include "config.h"

#define LC_EXIT_OK 0
#define LC_EXIT_FAIL 1
#define LC_EXIT_USAGE 2

int lc_cmd_replicate(int argc, char **argv);
int lc_cmd_restore(int argc, char **argv);
int lc_cmd_generations(int argc, char **argv);
int lc_cmd_snapshots(int argc, char **argv);
int lc_cmd_wal(int argc, char **argv);
int lc_cmd_databases(int argc, char **argv);
int lc_cmd_status(int argc, char **argv);

/* Default config path: $LITECAST_CONFIG, else /etc/litecast.ini. */
const char *lc_cmd_default_config(void);
/* 1 if s looks like a replica URL (scheme://). */
int lc_cmd_is_url(const char *s);

/* Shared by restore and the listings (src/cmd_common.c). */
struct ev_loop;
struct lc_store;

/* The replicas a command works on: those of DB_PATH (looked up in the config) or the
 * one REPLICA_URL. For a URL the replica's name is its scheme ("file", "s3"). */
struct lc_cmd_target {
    struct lc_config cfg;               /* the loaded config; empty for a URL */
    const struct lc_db_config *db;      /* the database named by DB_PATH; NULL for a URL */
    struct lc_replica_config *replicas; /* candidates, copies, config order; owned */
    size_t n;
    int is_url;                         /* the argument was a replica URL */
};

/* Resolve arg. config: the -config value, or NULL for lc_cmd_default_config() (a URL
 * with an explicit config is a usage error). replica: a --replica filter or NULL.
 * LC_EINVAL means bad usage or config (exit 2); other codes a runtime failure (exit 1). */
int lc_cmd_target_load(struct lc_cmd_target *t, const char *config, const char *arg,
                       const char *replica, struct lc_error *err);
void lc_cmd_target_free(struct lc_cmd_target *t);
/* Open the store of candidate i (file stores need no loop; s3 stores run on loop). */
int lc_cmd_target_store(const struct lc_cmd_target *t, size_t i, struct ev_loop *loop,
                        struct lc_store **out, struct lc_error *err);
/* Load a config file (NULL: the default path). Failures are config errors (exit 2). */
int lc_cmd_load_config(struct lc_config *cfg, const char *path, struct lc_error *err);
/* Log one error line: level=error msg="MSG" error="..." with quotes escaped. */
void lc_cmd_log_error(const char *msg, const struct lc_error *err);
/* Parse a decimal integer in [min, max]; LC_EINVAL when s is not exactly that. */
int lc_cmd_parse_long(const char *s, long min, long max, long *out);

#endif
