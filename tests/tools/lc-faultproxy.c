/* lc-faultproxy: an HTTP/1.1 proxy on 127.0.0.1 that injects faults, for tests.
 *
 *   lc-faultproxy --upstream PORT [--listen PORT] [--seed S] [--fault-pct P]
 *                 [--stall-ms MS] [--weights W500:W503:WSTALL:WCUT] [--log FILE]
 *
 * Every client connection carries exactly one request: the proxy forwards it upstream with
 * "Connection: close" (and answers "Expect: 100-continue" itself), and the response goes
 * back with "Connection: close", so a per-connection choice is a per-request choice. A
 * seeded xorshift decides per connection, in accept order: with probability P% (default
 * 40) a fault, one of four kinds, equally likely unless --weights says otherwise
 * (e.g. 3:3:1:3 makes stalls rarer):
 *   500    read the request, answer 500 InternalError without asking upstream
 *   503    read the request, answer 503 SlowDown without asking upstream
 *   stall  forward, but pause --stall-ms (default 2000) in the middle of the response
 *          (half the body, or half the header when the body is empty)
 *   cut    forward, but close the connection at that same point
 * otherwise "pass". Only libc: sockets, poll, fork (one child per connection).
 *
 * On start it prints "listening port=N" on stdout (--listen 0, the default, picks a free
 * port). The log (--log, default stderr) gets one line per request as it arrives:
 *   req t=MS conn=N kind=GET|PUT|LIST|POST|DELETE|HEAD method=M fault=F target=T
 * and one when it ends: "end conn=N status=S bytes=B". SIGTERM/SIGINT: a
 * "summary conns=N pass=.. 500=.. 503=.. stall=.. cut=.." line, exit 0. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define HDR_MAX (64 * 1024)
#define IO_TIMEOUT_MS 60000

enum fault { F_PASS, F_500, F_503, F_STALL, F_CUT, F_COUNT };
static const char *const fault_names[F_COUNT] = {"pass", "500", "503", "stall", "cut"};

static int logfd = 2;
static int upstream_port;
static long stall_ms = 2000;
static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One log line, one write(2) on an O_APPEND descriptor: lines of concurrent children
 * never interleave. */
__attribute__((format(printf, 1, 2))) static void logline(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(logfd, line, (size_t)n) < 0) {
        /* nothing to do */
    }
}

/* Wait until fd is ready for ev (POLLIN/POLLOUT); 0 ok, -1 timeout or error. */
static int wait_fd(int fd, short ev)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int rc;
    do
        rc = poll(&p, 1, IO_TIMEOUT_MS);
    while (rc < 0 && errno == EINTR);
    return rc > 0 ? 0 : -1;
}

static ssize_t read_some(int fd, char *buf, size_t cap)
{
    ssize_t n;
    if (wait_fd(fd, POLLIN) < 0)
        return -1;
    do
        n = read(fd, buf, cap);
    while (n < 0 && errno == EINTR);
    return n;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read into buf until "\r\n\r\n"; returns the header length (through the blank line),
 * 0 on EOF before any byte, -1 on error. *have is the number of bytes in buf. */
static long read_header(int fd, char *buf, size_t cap, size_t *have)
{
    for (;;) {
        if (*have >= 4) {
            char *e = memmem(buf, *have, "\r\n\r\n", 4);
            if (e)
                return (long)(e - buf) + 4;
        }
        if (*have >= cap)
            return -1;
        ssize_t n = read_some(fd, buf + *have, cap - *have);
        if (n <= 0)
            return (n == 0 && *have == 0) ? 0 : -1;
        *have += (size_t)n;
    }
}

/* The value of header `name` in [hdr, hdr+len) into out (trimmed); 1 if found. */
static int header_value(const char *hdr, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = memchr(hdr, '\n', len), *end = hdr + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t vl = (size_t)(ve - v) < cap - 1 ? (size_t)(ve - v) : cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 1;
        }
        p = eol;
    }
    return 0;
}

/* Copy hdr minus the hop-by-hop headers we manage, plus "Connection: close". */
static size_t rewrite_header(const char *hdr, size_t len, char *out, size_t cap)
{
    static const char *const drop[] = {"connection:", "keep-alive:", "expect:",
                                       "proxy-connection:"};
    size_t o = 0;
    const char *p = hdr, *end = hdr + len - 2; /* without the final blank line */
    int first = 1;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = eol ? (size_t)(eol - p) + 1 : (size_t)(end - p);
        int skip = 0;
        for (size_t i = 0; !first && i < sizeof(drop) / sizeof(drop[0]); i++)
            if (ll >= strlen(drop[i]) && strncasecmp(p, drop[i], strlen(drop[i])) == 0)
                skip = 1;
        if (!skip && o + ll < cap) {
            memcpy(out + o, p, ll);
            o += ll;
        }
        first = 0;
        p += ll;
    }
    const char *tail = "Connection: close\r\n\r\n";
    if (o + strlen(tail) < cap) {
        memcpy(out + o, tail, strlen(tail));
        o += strlen(tail);
    }
    return o;
}

/* Read and drop (or forward to `to`) n body bytes from `from`. */
static int pump(int from, int to, uint64_t n)
{
    char buf[65536];
    while (n > 0) {
        ssize_t r = read_some(from, buf, n < sizeof(buf) ? (size_t)n : sizeof(buf));
        if (r <= 0)
            return -1;
        if (to >= 0 && write_all(to, buf, (size_t)r) < 0)
            return -1;
        n -= (uint64_t)r;
    }
    return 0;
}

static void send_error(int cfd, int status, const char *reason, const char *code)
{
    char body[512], resp[1024];
    int bl = snprintf(body, sizeof(body),
                      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                      "<Message>injected by lc-faultproxy</Message></Error>",
                      code);
    int rl = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      status, reason, bl, body);
    (void)write_all(cfd, resp, (size_t)rl);
}

static void hard_close(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)); /* RST, not FIN */
    close(fd);
}

static int connect_upstream(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)upstream_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Serve one connection (in a child). */
static void serve(int cfd, unsigned long conn, enum fault f, int use_rst)
{
    static char req[HDR_MAX], out[HDR_MAX + 64], resp[HDR_MAX];
    char method[16] = "", target[1024] = "", val[64];
    size_t have = 0;
    long hl = read_header(cfd, req, sizeof(req), &have);
    if (hl <= 0) {
        close(cfd);
        return;
    }
    sscanf(req, "%15s %1023s", method, target);
    const char *kind = method;
    if (strcmp(method, "GET") == 0 && strstr(target, "list-type="))
        kind = "LIST";
    logline("req t=%lld conn=%lu kind=%s method=%s fault=%s target=%s", (long long)now_ms(),
            conn, kind, method, fault_names[f], target);

    uint64_t clen = 0;
    if (header_value(req, (size_t)hl, "Content-Length", val, sizeof(val)))
        clen = strtoull(val, NULL, 10);
    if (header_value(req, (size_t)hl, "Transfer-Encoding", val, sizeof(val))) {
        send_error(cfd, 501, "Not Implemented", "NotImplemented");
        logline("end conn=%lu status=501 bytes=0 (chunked request)", conn);
        close(cfd);
        return;
    }
    size_t extra = have - (size_t)hl; /* body bytes already read */
    if (extra > clen)
        extra = (size_t)clen;
    if (clen > extra && header_value(req, (size_t)hl, "Expect", val, sizeof(val)) &&
        strcasecmp(val, "100-continue") == 0) {
        const char *c = "HTTP/1.1 100 Continue\r\n\r\n";
        if (write_all(cfd, c, strlen(c)) < 0) {
            close(cfd);
            return;
        }
    }

    if (f == F_500 || f == F_503) {
        if (pump(cfd, -1, clen - extra) == 0) {
            if (f == F_500)
                send_error(cfd, 500, "Internal Server Error", "InternalError");
            else
                send_error(cfd, 503, "Service Unavailable", "SlowDown");
        }
        logline("end conn=%lu status=%s bytes=0", conn, fault_names[f]);
        close(cfd);
        return;
    }

    int ufd = connect_upstream();
    if (ufd < 0) {
        send_error(cfd, 502, "Bad Gateway", "BadGateway");
        logline("end conn=%lu status=502 bytes=0 (upstream: %s)", conn, strerror(errno));
        close(cfd);
        return;
    }
    size_t ol = rewrite_header(req, (size_t)hl, out, sizeof(out));
    if (write_all(ufd, out, ol) < 0 || write_all(ufd, req + hl, extra) < 0 ||
        pump(cfd, ufd, clen - extra) < 0) {
        logline("end conn=%lu status=0 bytes=0 (request forwarding failed)", conn);
        close(ufd);
        close(cfd);
        return;
    }

    /* The response: skip 1xx heads, then the real head (rewritten), then the body. */
    size_t rh = 0;
    long rl;
    int status = 0;
    for (;;) {
        rl = read_header(ufd, resp, sizeof(resp), &rh);
        if (rl <= 0) {
            logline("end conn=%lu status=0 bytes=0 (no response from upstream)", conn);
            close(ufd);
            close(cfd);
            return;
        }
        status = 0;
        sscanf(resp, "HTTP/%*s %d", &status);
        if (status >= 200 || status < 100)
            break;
        memmove(resp, resp + rl, rh - (size_t)rl); /* drop an upstream 1xx */
        rh -= (size_t)rl;
    }
    long long blen = -1; /* body length when known */
    if (strcmp(method, "HEAD") == 0 || status == 204 || status == 304)
        blen = 0;
    else if (!header_value(resp, (size_t)rl, "Transfer-Encoding", val, sizeof(val)) &&
             header_value(resp, (size_t)rl, "Content-Length", val, sizeof(val)))
        blen = strtoll(val, NULL, 10);
    size_t ohl = rewrite_header(resp, (size_t)rl, out, sizeof(out));
    /* The fault point, in bytes of what the client receives. */
    uint64_t fault_at;
    if (blen >= 2)
        fault_at = ohl + (uint64_t)blen / 2;
    else if (blen < 0)
        fault_at = ohl + 1; /* chunked or until EOF: just into the body */
    else
        fault_at = ohl / 2; /* no body: in the middle of the header */

    /* Stream: the rewritten head, the body bytes already read, then the rest. */
    uint64_t sent = 0;
    int faulted = 0, cut = 0;
    const char *chunk = out;
    size_t clenb = ohl;
    char buf[65536];
    int phase = 0; /* 0: head, 1: buffered body, 2: reading */
    for (;;) {
        if (phase == 0) {
            chunk = out;
            clenb = ohl;
        } else if (phase == 1) {
            chunk = resp + rl;
            clenb = rh - (size_t)rl;
        } else {
            ssize_t n = read_some(ufd, buf, sizeof(buf));
            if (n <= 0)
                break;
            chunk = buf;
            clenb = (size_t)n;
        }
        phase = phase < 2 ? phase + 1 : 2;
        while (clenb > 0) {
            size_t part = clenb;
            if ((f == F_STALL || f == F_CUT) && !faulted && sent + part > fault_at)
                part = (size_t)(fault_at - sent);
            if (part && write_all(cfd, chunk, part) < 0) {
                cut = 2;
                break;
            }
            sent += part;
            chunk += part;
            clenb -= part;
            if ((f == F_STALL || f == F_CUT) && !faulted && sent == fault_at) {
                faulted = 1;
                if (f == F_CUT) {
                    cut = 1;
                    break;
                }
                struct timespec ts = {stall_ms / 1000, (stall_ms % 1000) * 1000000};
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
                }
            }
        }
        if (cut)
            break;
    }
    logline("end conn=%lu status=%d bytes=%llu%s", conn, status, (unsigned long long)sent,
            cut == 1 ? " (cut)" : cut == 2 ? " (client gone)" : "");
    close(ufd);
    if (cut == 1 && use_rst)
        hard_close(cfd);
    else
        close(cfd);
}

static uint64_t rng_state;
static uint64_t next_rand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void usage(void)
{
    fprintf(stderr, "usage: lc-faultproxy --upstream PORT [--listen PORT] [--seed S]"
                    " [--fault-pct P] [--stall-ms MS] [--weights A:B:C:D] [--log FILE]\n");
    exit(2);
}

static long num(const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    long listen_port = 0, seed = 1, pct = 40;
    unsigned long w[4] = {1, 1, 1, 1}, wsum = 4;
    unsigned long counts[F_COUNT] = {0}, conns = 0;

    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (strcmp(o, "--upstream") == 0) upstream_port = (int)num(v, 1, 65535);
        else if (strcmp(o, "--listen") == 0) listen_port = num(v, 0, 65535);
        else if (strcmp(o, "--seed") == 0) seed = num(v, 0, 1L << 30);
        else if (strcmp(o, "--fault-pct") == 0) pct = num(v, 0, 100);
        else if (strcmp(o, "--stall-ms") == 0) stall_ms = num(v, 0, 600000);
        else if (strcmp(o, "--weights") == 0) {
            if (sscanf(v, "%lu:%lu:%lu:%lu", &w[0], &w[1], &w[2], &w[3]) != 4)
                usage();
            wsum = w[0] + w[1] + w[2] + w[3];
            if (!wsum || wsum > 1000000)
                usage();
        }
        else if (strcmp(o, "--log") == 0) {
            logfd = open(v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (logfd < 0) {
                fprintf(stderr, "lc-faultproxy: open %s: %s\n", v, strerror(errno));
                return 2;
            }
        } else
            usage();
        i++;
    }
    if (!upstream_port)
        usage();
    rng_state = (uint64_t)seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)listen_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 128) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
        fprintf(stderr, "lc-faultproxy: listen on 127.0.0.1:%ld: %s\n", listen_port,
                strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGCHLD, SIG_IGN); /* children are reaped automatically */
    signal(SIGPIPE, SIG_IGN);
    printf("listening port=%d\n", ntohs(a.sin_port));
    fflush(stdout);

    while (!stop_flag) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        conns++;
        enum fault f = F_PASS;
        uint64_t r = next_rand();
        if ((long)(r % 100) < pct) {
            unsigned long x = (unsigned long)((r >> 24) % wsum);
            int kind = 0;
            while (x >= w[kind]) {
                x -= w[kind];
                kind++;
            }
            f = (enum fault)(F_500 + kind);
        }
        int use_rst = (int)((r >> 40) & 1);
        counts[f]++;
        pid_t pid = fork();
        if (pid == 0) {
            close(lfd);
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            serve(cfd, conns, f, use_rst);
            _exit(0);
        }
        if (pid < 0) {
            logline("fork failed: %s", strerror(errno));
            counts[f]--;
        }
        close(cfd);
    }
    logline("summary conns=%lu pass=%lu 500=%lu 503=%lu stall=%lu cut=%lu", conns,
            counts[F_PASS], counts[F_500], counts[F_503], counts[F_STALL], counts[F_CUT]);
    return 0;
}
