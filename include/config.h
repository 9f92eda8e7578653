/* config: the INI file (parsed by inih) into struct lc_config.
 *
 *   [litecast]        global settings (optional)
 *   [db NAME]         a watched database
 *   [replica NAME]    a replica of one db (key `db`)
 *
 * Values may reference the environment as ${VAR} (unset => empty string; no nesting:
 * the expanded text is not expanded again). Durations take ms, s, m, h. Every mistake
 * is reported as one line "FILE:LINE: ..." naming the key, and lc_config_load returns
 * LC_EINVAL (the caller exits 2). */
#ifndef LC_CONFIG_H
#define LC_CONFIG_H

#include <stdint.h>
#include <sys/types.h>
#include "log.h"
#include "util.h"

#define LC_NAME_MAX 64
#define LC_PATH_MAX 4096
#define LC_URL_MAX 2048

struct lc_replica_config {
    char name[LC_NAME_MAX];       /* section name: [replica NAME] */
    char db[LC_NAME_MAX];         /* name of the [db] it belongs to */
    char url[LC_URL_MAX];         /* file:///dir or s3://bucket/prefix */
    int64_t retention_ns;         /* default 24h; 0 disables */
    int64_t retention_check_ns;   /* default 1h, clamped to <= retention */
    int64_t snapshot_interval_ns; /* default 0 = only at generation start */
    int64_t sync_interval_ns;     /* default 0 for file, 1s for s3 */
    int sync_interval_set;        /* 1 when given explicitly */
    /* s3 only */
    char endpoint[LC_URL_MAX];    /* http://127.0.0.1:7480 => path style */
    char region[64];              /* default us-east-1 when endpoint set */
    char bucket[256];             /* overrides the URL host */
    char access_key_id[256];      /* default from env, never logged */
    char secret_access_key[256];  /* default from env, never logged */
    int force_path_style;         /* -1 unset, 0, 1 */
    int skip_verify;              /* TLS verification off (tests only) */
    int line;                     /* line of the section header, for messages */
};

struct lc_db_config {
    char name[LC_NAME_MAX];         /* section name: [db NAME] */
    char path[LC_PATH_MAX];         /* absolute path of the database file */
    char meta_dir[LC_PATH_MAX];     /* default: DIR/.BASE-litecast */
    int64_t min_checkpoint_pages;   /* default 1000 */
    int64_t max_checkpoint_pages;   /* default 10000; 0 disables RESTART */
    int64_t truncate_pages;         /* default 500000; TRUNCATE failsafe */
    int64_t checkpoint_interval_ns; /* default 1m; 0 disables the idle rule */
    int64_t max_wal_index_bytes;    /* roll the WAL index past this; default 1 GiB */
    int64_t max_spool_bytes;        /* shadow files kept for slow replicas; default 4 GiB,
                                     * 0 = no bound */
    int watch;                      /* 1 (default): inotify; 0: fallback timer only */
    int line;                       /* line of the section header */
};

struct lc_config {
    char path[LC_PATH_MAX];         /* file it was loaded from ("" for ad hoc) */
    int64_t debounce_ns;            /* default 1ms */
    int64_t max_delay_ns;           /* default 5ms */
    int64_t fallback_interval_ns;   /* default 1s */
    int64_t shutdown_timeout_ns;    /* default 10s */
    enum lc_log_level log_level;    /* default info */
    char metrics_addr[128];         /* "" when off */
    char status_socket[LC_PATH_MAX];/* "" when off */
    struct lc_db_config *dbs;       /* owned array */
    size_t ndbs;
    struct lc_replica_config *replicas; /* owned array */
    size_t nreplicas;
    int secret_line;                /* first line writing a secret-access-key literally
                                     * (not only ${VAR}); 0 when none */
    mode_t file_mode;               /* permission bits of the file; 0 for ad hoc */
};

/* Load and validate path. On failure err holds "FILE:LINE: message" and cfg is empty. */
int lc_config_load(struct lc_config *cfg, const char *path, struct lc_error *err);
/* 1 when the file holds a literal secret-access-key and others (not owner or group) may
 * read it: callers warn, naming the file, its mode and the line. */
int lc_config_secret_exposed(const struct lc_config *cfg);
/* Same, from a string; name is used in messages in place of a file name. */
int lc_config_load_string(struct lc_config *cfg, const char *name, const char *text,
                          struct lc_error *err);
/* Defaults only, no dbs: the base for ad hoc `replicate DB URL...`. */
void lc_config_defaults(struct lc_config *cfg);
/* Fill db defaults (meta dir from path, etc.). path must be set. */
int lc_config_db_defaults(struct lc_db_config *db, struct lc_error *err);
/* Fill replica defaults (sync interval by scheme, env credentials, etc.). url must be set. */
int lc_config_replica_defaults(struct lc_replica_config *r, struct lc_error *err);
/* Append a db / replica (for ad hoc use). */
int lc_config_add_db(struct lc_config *cfg, const struct lc_db_config *db, struct lc_error *err);
int lc_config_add_replica(struct lc_config *cfg, const struct lc_replica_config *r,
                          struct lc_error *err);
const struct lc_db_config *lc_config_find_db(const struct lc_config *cfg, const char *name);
/* Find a db by its path (normalised to absolute). */
const struct lc_db_config *lc_config_find_db_path(const struct lc_config *cfg, const char *path);
void lc_config_free(struct lc_config *cfg);

#endif
