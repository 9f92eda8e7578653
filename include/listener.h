/* listener: a small non-blocking stream server on the daemon's libev loop, shared by the
 * metrics (TCP, HTTP) and status (UNIX socket) servers.
 *
 * The owner binds and listens; lc_listener_start takes the socket. Each accepted
 * connection gets one of LC_LISTENER_MAX_CONNS slots and moves READ (bytes collect in
 * c->req until the owner's on_request says the request is complete) → WRITE (c->out is
 * sent) → closed; a timer drops it after timeout_s whatever its state. A connection
 * beyond the slots is accepted and closed at once, and an accept() that fails for want
 * of descriptors pauses the listener for a second (warning at most once a minute), so
 * the loop never spins. */
#ifndef LC_LISTENER_H
#define LC_LISTENER_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define LC_LISTENER_MAX_CONNS 16  /* connections served at once */
#define LC_LISTENER_REQ_MAX 8192  /* upper bound on any request */

enum lc_conn_event {
    LC_CONN_DATA, /* more bytes arrived (c->req_len grew) */
    LC_CONN_EOF,  /* the peer ended its input */
    LC_CONN_FULL, /* c->req holds req_max bytes and the request is not complete */
};

struct lc_listener;

struct lc_conn {
    int fd;                        /* -1 when the slot is free */
    ev_io io;                      /* EV_READ while collecting, EV_WRITE while answering */
    ev_timer timer;                /* drops a stalled connection */
    struct lc_listener *l;
    char req[LC_LISTENER_REQ_MAX]; /* the request so far (at most l->req_max bytes) */
    size_t req_len;
    struct lc_buf out;             /* the answer */
    size_t sent;
};

/* Called on each event while reading. It either returns 0 to wait for more (only for
 * LC_CONN_DATA) or answers with lc_conn_reply / drops with lc_conn_close and returns 1. */
typedef int (*lc_listener_fn)(struct lc_conn *c, enum lc_conn_event ev);

struct lc_listener {
    const char *name;              /* "metrics", "status": for messages */
    lc_listener_fn on_request;
    void *arg;                     /* the owner's */
    size_t req_max;                /* <= LC_LISTENER_REQ_MAX */
    double timeout_s;
    /* state */
    int running;
    struct ev_loop *loop;
    int fd;
    ev_io accept_io;
    ev_timer pause;
    int64_t last_warn_ns;
    struct lc_conn conns[LC_LISTENER_MAX_CONNS];
};

/* Serve the listening socket fd (non-blocking, CLOEXEC) on loop; name, on_request, arg,
 * req_max and timeout_s must be set. Takes ownership of fd. */
void lc_listener_start(struct lc_listener *l, struct ev_loop *loop, int fd);
/* Close every connection and the listening socket. Safe when not running. */
void lc_listener_stop(struct lc_listener *l);
/* Send c->out (filled by the caller), then close. */
void lc_conn_reply(struct lc_conn *c);
void lc_conn_close(struct lc_conn *c);

#endif
