/* cmd_common: what restore and the listings share: the default config path, telling
 * a replica URL from a database path, resolving either into the replicas to read,
 * and reporting an error as one log line. */
#include "cmd.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"

const char *lc_cmd_default_config(void)
{
    const char *p = getenv("LITECAST_CONFIG");
    return p && *p ? p : "/etc/litecast.ini";
}

int lc_cmd_is_url(const char *s)
{
    const char *p = s;

    /* ^\w+:// as Litestream tests it */
    while (*p && (isalnum((unsigned char)*p) || *p == '_'))
        p++;
    return p > s && strncmp(p, "://", 3) == 0;
}

int lc_cmd_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return LC_EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return LC_EINVAL;
    *out = v;
    return 0;
}

int lc_cmd_load_config(struct lc_config *cfg, const char *path, struct lc_error *err)
{
    int rc = lc_config_load(cfg, path ? path : lc_cmd_default_config(), err);
    if (rc)
        err->code = LC_EINVAL; /* any config failure is exit 2 */
    return rc ? LC_EINVAL : 0;
}

static int target_url(struct lc_cmd_target *t, const char *url, struct lc_error *err)
{
    struct lc_replica_config r;
    size_t n = strlen(url);
    int rc;

    memset(&r, 0, sizeof(r));
    if (n >= sizeof(r.url))
        return lc_err_set(err, LC_EINVAL, "replica url too long: %.64s...", url);
    memcpy(r.url, url, n + 1);
    size_t sl = (size_t)(strstr(url, "://") - url);
    if (sl >= sizeof(r.name))
        sl = sizeof(r.name) - 1;
    memcpy(r.name, url, sl);
    r.name[sl] = '\0';
    if ((rc = lc_config_replica_defaults(&r, err))) {
        lc_err_wrap(err, "replica url %s", url);
        err->code = LC_EINVAL;
        return LC_EINVAL;
    }
    t->replicas = malloc(sizeof(r));
    if (!t->replicas)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    t->replicas[0] = r;
    t->n = 1;
    t->is_url = 1;
    return 0;
}

int lc_cmd_target_load(struct lc_cmd_target *t, const char *config, const char *arg,
                       const char *replica, struct lc_error *err)
{
    int rc;

    memset(t, 0, sizeof(*t));
    if (lc_cmd_is_url(arg)) {
        if (config)
            return lc_err_set(err, LC_EINVAL, "cannot specify a replica url and the -config "
                                              "flag");
        return target_url(t, arg, err);
    }
    if ((rc = lc_cmd_load_config(&t->cfg, config, err)))
        return rc;
    t->db = lc_config_find_db_path(&t->cfg, arg);
    if (!t->db) {
        rc = lc_err_set(err, LC_ENOTFOUND, "database not found in config: %s", arg);
        goto fail;
    }
    if (t->cfg.nreplicas) {
        t->replicas = calloc(t->cfg.nreplicas, sizeof(*t->replicas));
        if (!t->replicas) {
            rc = lc_err_set(err, LC_ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < t->cfg.nreplicas; i++) {
        const struct lc_replica_config *r = &t->cfg.replicas[i];
        if (strcmp(r->db, t->db->name) != 0)
            continue;
        if (replica && *replica && strcmp(r->name, replica) != 0)
            continue;
        t->replicas[t->n++] = *r;
    }
    if (replica && *replica && t->n == 0) {
        rc = lc_err_set(err, LC_ENOTFOUND, "replica not found: %s", replica);
        goto fail;
    }
    return 0;

fail:
    lc_cmd_target_free(t);
    return rc;
}

void lc_cmd_target_free(struct lc_cmd_target *t)
{
    if (!t)
        return;
    free(t->replicas);
    lc_config_free(&t->cfg);
    memset(t, 0, sizeof(*t));
}

int lc_cmd_target_store(const struct lc_cmd_target *t, size_t i, struct ev_loop *loop,
                        struct lc_store **out, struct lc_error *err)
{
    int rc = lc_store_open(&t->replicas[i], loop, NULL, out, err);
    if (rc)
        lc_err_wrap(err, "replica %s", t->replicas[i].name);
    return rc;
}

void lc_cmd_log_error(const char *msg, const struct lc_error *err)
{
    char q[LC_ERR_LEN * 2];
    size_t o = 0;

    for (const char *p = err->msg; *p && o + 2 < sizeof(q); p++) {
        if (*p == '"' || *p == '\\')
            q[o++] = '\\';
        q[o++] = *p == '\n' ? ' ' : *p;
    }
    q[o] = '\0';
    lc_error(msg, "error=\"%s\"", q);
}
