/* cmd_status: `litecast status`: ask the running daemon, over its status socket, how
 * every database and replica is doing; print the report and turn its summary into the
 * exit status (0 healthy, 1 unreachable, failing or too far behind, 2 bad usage or
 * configuration). The protocol and the summary line are described in status.h. */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "status.h"

#define REPLY_MAX (LC_STATUS_BODY_MAX + 1024)
#define IO_TIMEOUT_S 10

enum { OPT_JSON = 256, OPT_MAX_LAG };

static int usage(const char *msg)
{
    FILE *f = msg ? stderr : stdout;
    if (msg)
        fprintf(f, "status: %s\n", msg);
    fprintf(f, "usage: litecast status [-c FILE] [--json] [--max-lag DURATION]\n");
    if (msg)
        return LC_EXIT_USAGE;
    fprintf(f, "\n"
               "Ask the running daemon (through the configuration's status-socket) how every\n"
               "database and replica is doing. Exits 1 when the daemon cannot be reached, a\n"
               "database or replica is failing, or a replica is behind by more than\n"
               "--max-lag (default 10s).\n");
    return LC_EXIT_OK;
}

/* Connect, send the request, read the whole reply (at most REPLY_MAX bytes). */
static int fetch_report(const char *path, int json, struct lc_buf *reply, struct lc_error *err)
{
    const char *req = json ? "status json\n" : "status\n";
    struct timeval tv = {IO_TIMEOUT_S, 0};
    struct sockaddr_un sa;
    size_t n = strlen(path);
    int fd, rc;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (n >= sizeof(sa.sun_path))
        return lc_err_set(err, LC_EINVAL, "status socket %s: path too long", path);
    memcpy(sa.sun_path, path, n + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "socket: %s", strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        rc = lc_err_set(err, LC_EIO, "setsockopt: %s", strerror(errno));
        goto out;
    }
    do
        rc = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
    while (rc != 0 && errno == EINTR);
    if (rc != 0 && errno != EISCONN) {
        rc = lc_err_set(err, LC_EIO,
                        "cannot connect to the daemon at status socket %s: %s (is litecast "
                        "replicate running with this configuration?)",
                        path, strerror(errno));
        goto out;
    }
    for (size_t off = 0, len = strlen(req); off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = lc_err_set(err, LC_EIO, "status socket %s: send: %s", path, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    reply->max = REPLY_MAX;
    for (;;) {
        if ((rc = lc_buf_reserve(reply, 65536))) {
            rc = lc_err_set(err, LC_ENOMEM, "status socket %s: reply too large", path);
            goto out;
        }
        ssize_t r = recv(fd, reply->data + reply->len, reply->cap - reply->len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = lc_err_set(err, LC_EIO, "status socket %s: %s", path,
                            errno == EAGAIN || errno == EWOULDBLOCK ? "no reply in time"
                                                                    : strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        reply->len += (size_t)r;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

/* The value of key in the summary s ("key=V" in text, "\"key\":V" in JSON), where the
 * key starts at a field boundary so "replicas" never matches "failing_replicas". */
static int summary_field(const char *s, const char *key, int json, double *out)
{
    char pat[64];
    size_t pl;
    const char *p = s;

    if ((size_t)snprintf(pat, sizeof(pat), json ? "\"%s\":" : "%s=", key) >= sizeof(pat))
        return LC_EINVAL;
    pl = strlen(pat);
    while ((p = strstr(p, pat))) {
        if (json || p == s || p[-1] == ' ') {
            char *end;
            double v = strtod(p + pl, &end);
            if (end == p + pl)
                return LC_EINVAL;
            *out = v;
            return 0;
        }
        p += pl;
    }
    return LC_ENOTFOUND;
}

/* Point at the summary: the last line starting "summary " (text) or the last
 * "\"summary\":{" (JSON; inside strings quotes are escaped, so it cannot occur there). */
static const char *find_summary(const char *reply, int json)
{
    const char *pat = json ? "\"summary\":{" : "\nsummary ";
    const char *p = reply, *last = NULL;

    while ((p = strstr(p, pat))) {
        last = p;
        p++;
    }
    return last ? last + (json ? 0 : 1) : NULL;
}

int lc_cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, OPT_JSON},
        {"max-lag", required_argument, NULL, OPT_MAX_LAG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int json = 0, c, ret = LC_EXIT_OK;
    int64_t max_lag_ns = 10 * (int64_t)1000000000;
    struct lc_config cfg;
    struct lc_error err = {0};
    struct lc_buf reply = {0};
    double failing_dbs, failing_reps, max_lag;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case OPT_JSON:
            json = 1;
            break;
        case OPT_MAX_LAG:
            if (lc_duration_parse(optarg, &max_lag_ns) || max_lag_ns < 0) {
                char msg[256];
                snprintf(msg, sizeof(msg), "invalid --max-lag: %.200s", optarg);
                return usage(msg);
            }
            break;
        case 'h':
            return usage(NULL);
        default: {
            char msg[256];
            snprintf(msg, sizeof(msg), "invalid option or missing value: %.200s",
                     argv[optind - 1]);
            return usage(msg);
        }
        }
    }
    if (optind != argc)
        return usage("too many arguments");
    if (lc_cmd_load_config(&cfg, config, &err)) {
        fprintf(stderr, "status: %s\n", err.msg);
        return LC_EXIT_USAGE;
    }
    if (!cfg.status_socket[0]) {
        fprintf(stderr, "status: %s: no status-socket configured in [litecast]\n",
                cfg.path[0] ? cfg.path : "config");
        lc_config_free(&cfg);
        return LC_EXIT_USAGE;
    }
    if (fetch_report(cfg.status_socket, json, &reply, &err)) {
        fprintf(stderr, "status: %s\n", err.msg);
        ret = LC_EXIT_FAIL;
        goto out;
    }
    if (lc_buf_append(&reply, "", 1)) { /* NUL-terminate */
        fprintf(stderr, "status: reply too large\n");
        ret = LC_EXIT_FAIL;
        goto out;
    }
    const char *text = (const char *)reply.data;
    if (fwrite(text, 1, reply.len - 1, stdout) != reply.len - 1 || fflush(stdout) != 0) {
        fprintf(stderr, "status: write to stdout failed\n");
        ret = LC_EXIT_FAIL;
        goto out;
    }
    if (strncmp(text, "error:", 6) == 0) {
        fprintf(stderr, "status: the daemon refused the request\n");
        ret = LC_EXIT_FAIL;
        goto out;
    }
    const char *sum = find_summary(text, json);
    if (!sum || summary_field(sum, "failing_databases", json, &failing_dbs) ||
        summary_field(sum, "failing_replicas", json, &failing_reps) ||
        summary_field(sum, "max_lag_seconds", json, &max_lag)) {
        fprintf(stderr, "status: malformed reply from the daemon (no summary)\n");
        ret = LC_EXIT_FAIL;
        goto out;
    }
    if (failing_dbs > 0) {
        fprintf(stderr, "status: %.0f database%s failing to sync\n", failing_dbs,
                failing_dbs == 1 ? "" : "s");
        ret = LC_EXIT_FAIL;
    }
    if (failing_reps > 0) {
        fprintf(stderr, "status: %.0f replica%s failing\n", failing_reps,
                failing_reps == 1 ? "" : "s");
        ret = LC_EXIT_FAIL;
    }
    if (max_lag > (double)max_lag_ns / 1e9) {
        char d[32];
        lc_duration_format(max_lag_ns, d, sizeof(d));
        fprintf(stderr, "status: a replica is %.3fs behind, more than --max-lag %s\n", max_lag,
                d);
        ret = LC_EXIT_FAIL;
    }
out:
    lc_buf_free(&reply);
    lc_config_free(&cfg);
    return ret;
}
