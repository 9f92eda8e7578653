/* metrics: the daemon's counters in Prometheus text format (version 0.0.4), and a tiny
 * HTTP server on the libev loop that serves them at GET /metrics.
 *
 * Names follow Litestream v0.3 (reference §7) under a litecast_ prefix, plus litecast's
 * own: replica lag, last success, errors, segments, snapshots, spool bytes, syncs by
 * trigger, inotify overflows, up. Every metric has # HELP and # TYPE lines and its
 * samples grouped below them; label values are escaped (\\, \", \n).
 *
 * The server is one per process: a non-blocking listening socket and at most
 * LC_METRICS_MAX_CLIENTS connections, each read up to a bounded request size, answered
 * once (GET /metrics: 200 text/plain; version=0.0.4; anything else: 404) and closed.
 * Nothing it does blocks the loop on a client; a connection that stalls is dropped
 * after LC_METRICS_CLIENT_TIMEOUT_S. */
#ifndef LC_METRICS_H
#define LC_METRICS_H

#include "daemon.h"
#include "listener.h"
#include "util.h"

#define LC_METRICS_MAX_CLIENTS LC_LISTENER_MAX_CONNS /* served at once; more are closed */
#define LC_METRICS_REQ_MAX 8192       /* request line and headers */
#define LC_METRICS_BODY_MAX (64u << 20) /* refuse to build a larger page */
#define LC_METRICS_CLIENT_TIMEOUT_S 10.0
#define LC_METRICS_SPOOL_SCAN_MAX 100000 /* shadow files stat'ed per db per scrape */

/* Append the whole exposition for d to out (borrowed; out->max bounds it). Reads the
 * database and -wal sizes and the shadow files with stat(); a file that cannot be
 * stat'ed counts as 0 bytes. Returns 0 or LC_ENOMEM. */
int lc_metrics_format(const struct lc_daemon *d, struct lc_buf *out);

/* Listen on addr ("127.0.0.1:9090", "[::1]:9090", ":9090" for every interface,
 * "localhost:9090") on d->loop. d is borrowed until lc_metrics_server_stop. Fails when
 * a server is already running or the address cannot be bound. */
int lc_metrics_server_start(struct lc_daemon *d, const char *addr, struct lc_error *err);
/* Close the listener and every connection. No-op when not running. */
void lc_metrics_server_stop(void);

#endif
