/* status: the running daemon's report on every database and replica, as aligned text
 * or as one JSON object, served over a UNIX socket to `litecast status`.
 *
 * Protocol: the client connects, sends one line, "status" or "status json" (at most
 * LC_STATUS_REQ_MAX bytes, "\n" or end of input ends it), and reads the report until
 * the server closes. An unknown request gets "error: unknown request\n".
 *
 * Both formats end with a machine-readable summary the client judges health from:
 *   text:  a last line "summary databases=N replicas=N failing_databases=N
 *          failing_replicas=N max_lag_seconds=F"
 *   json:  a last member "summary":{"databases":N,...,"max_lag_seconds":F}
 * A replica is failing when it has a last error; a database when its last sync failed.
 * Credentials (access keys, secret keys) and replica URLs never appear in a report.
 *
 * The socket file is created mode 0600; a stale one (nobody listening) is replaced, a
 * live one is an error; stop removes it if it is still ours. At most
 * LC_STATUS_MAX_CLIENTS connections are served at once; nothing blocks the loop. */
#ifndef LC_STATUS_H
#define LC_STATUS_H

#include <stdint.h>
#include "daemon.h"
#include "listener.h"
#include "util.h"

#define LC_STATUS_MAX_CLIENTS LC_LISTENER_MAX_CONNS
#define LC_STATUS_REQ_MAX 256
#define LC_STATUS_BODY_MAX (16u << 20)
#define LC_STATUS_CLIENT_TIMEOUT_S 10.0

/* Append the report for d to out (borrowed): json 0 for text, 1 for JSON. Returns 0
 * or LC_ENOMEM. */
int lc_status_format(const struct lc_daemon *d, int json, struct lc_buf *out);

/* How far r is behind: 0 when caught up, else the time since it last was (since the
 * daemon started when it never was). Shared with metrics. */
int64_t lc_status_lag_ns(const struct lc_daemon *d, const struct lc_replica *r,
                         int64_t now_mono_ns, int64_t now_wall_ns);
/* "file", "s3" or "unknown", from the replica URL's scheme (static text). */
const char *lc_status_replica_type(const struct lc_replica_config *cfg);

/* Listen on the UNIX socket path on d->loop; d is borrowed until lc_status_server_stop.
 * Fails when a server is already running, the path is taken by a live socket or by a
 * file that is not a socket, or it cannot be bound. */
int lc_status_server_start(struct lc_daemon *d, const char *path, struct lc_error *err);
/* Close the listener and every connection, and remove the socket file. No-op when not
 * running. */
void lc_status_server_stop(void);

#endif
