/* listener: see include/listener.h. */
#include "listener.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

void lc_conn_close(struct lc_conn *c)
{
    if (c->fd < 0)
        return;
    ev_io_stop(c->l->loop, &c->io);
    ev_timer_stop(c->l->loop, &c->timer);
    close(c->fd);
    c->fd = -1;
    lc_buf_free(&c->out);
    c->req_len = 0;
    c->sent = 0;
}

static void conn_write(struct lc_conn *c)
{
    while (c->sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* the loop calls us again when there is room */
            lc_conn_close(c);
            return;
        }
        c->sent += (size_t)n;
    }
    (void)shutdown(c->fd, SHUT_WR);
    lc_conn_close(c);
}

void lc_conn_reply(struct lc_conn *c)
{
    ev_io_stop(c->l->loop, &c->io);
    ev_io_set(&c->io, c->fd, EV_WRITE);
    ev_io_start(c->l->loop, &c->io);
    conn_write(c);
}

static void on_conn(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lc_conn *c = w->data;
    struct lc_listener *l = c->l;
    (void)loop;

    if (revents & EV_WRITE) {
        conn_write(c);
        return;
    }
    for (;;) {
        if (c->req_len >= l->req_max) {
            l->on_request(c, LC_CONN_FULL);
            return;
        }
        ssize_t n = recv(c->fd, c->req + c->req_len, l->req_max - c->req_len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                lc_conn_close(c);
            return;
        }
        if (n == 0) {
            l->on_request(c, LC_CONN_EOF);
            return;
        }
        c->req_len += (size_t)n;
        if (l->on_request(c, LC_CONN_DATA))
            return;
    }
}

static void on_conn_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    lc_conn_close(w->data);
}

static void on_pause_end(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lc_listener *l = w->data;
    (void)revents;
    ev_io_start(loop, &l->accept_io);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lc_listener *l = w->data;
    (void)revents;

    for (int k = 0; k < 64; k++) { /* bounded work per wake-up */
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* out of descriptors or memory: the listener would stay readable and spin */
            int64_t now = lc_now_mono_ns();
            if (now - l->last_warn_ns > 60 * (int64_t)1000000000) {
                char msg[64];
                snprintf(msg, sizeof(msg), "%s: accept failed; pausing 1s", l->name);
                lc_warn(msg, "error=\"%s\"", strerror(errno));
                l->last_warn_ns = now;
            }
            ev_io_stop(loop, &l->accept_io);
            ev_timer_set(&l->pause, 1.0, 0.0);
            ev_timer_start(loop, &l->pause);
            return;
        }
        struct lc_conn *c = NULL;
        for (size_t i = 0; i < LC_LISTENER_MAX_CONNS && !c; i++)
            if (l->conns[i].fd < 0)
                c = &l->conns[i];
        if (!c) { /* every slot busy: refuse rather than queue without bound */
            close(fd);
            continue;
        }
        c->fd = fd;
        c->l = l;
        c->req_len = 0;
        c->sent = 0;
        memset(&c->out, 0, sizeof(c->out));
        ev_io_init(&c->io, on_conn, fd, EV_READ);
        c->io.data = c;
        ev_timer_init(&c->timer, on_conn_timeout, l->timeout_s, 0.0);
        c->timer.data = c;
        ev_io_start(loop, &c->io);
        ev_timer_start(loop, &c->timer);
    }
}

void lc_listener_start(struct lc_listener *l, struct ev_loop *loop, int fd)
{
    if (l->req_max == 0 || l->req_max > LC_LISTENER_REQ_MAX)
        l->req_max = LC_LISTENER_REQ_MAX;
    l->loop = loop;
    l->fd = fd;
    l->last_warn_ns = 0;
    for (size_t i = 0; i < LC_LISTENER_MAX_CONNS; i++) {
        l->conns[i].fd = -1;
        l->conns[i].l = l;
    }
    ev_io_init(&l->accept_io, on_accept, fd, EV_READ);
    l->accept_io.data = l;
    ev_timer_init(&l->pause, on_pause_end, 1.0, 0.0);
    l->pause.data = l;
    ev_io_start(loop, &l->accept_io);
    l->running = 1;
}

void lc_listener_stop(struct lc_listener *l)
{
    if (!l->running)
        return;
    for (size_t i = 0; i < LC_LISTENER_MAX_CONNS; i++)
        lc_conn_close(&l->conns[i]);
    ev_io_stop(l->loop, &l->accept_io);
    ev_timer_stop(l->loop, &l->pause);
    close(l->fd);
    l->fd = -1;
    l->loop = NULL;
    l->running = 0;
}
