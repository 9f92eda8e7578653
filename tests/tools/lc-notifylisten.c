/* lc-notifylisten: stand in for systemd's notify socket in tests. Binds a datagram
 * UNIX socket at PATH and prints every message it receives, one line each, flushed,
 * until SIGTERM or SIGINT. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    struct sockaddr_un sa;
    struct sigaction act;
    char buf[4096];

    if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "usage: lc-notifylisten PATH\n");
        return 2;
    }
    memset(&act, 0, sizeof(act));
    act.sa_handler = on_signal; /* no SA_RESTART: recv returns EINTR */
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, argv[1], strlen(argv[1]));
    unlink(argv[1]);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror(argv[1]);
        return 1;
    }
    while (!stop) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("recv");
            return 1;
        }
        buf[n] = '\0';
        for (char *p = buf; *p; p++)
            if (*p == '\n')
                *p = ' ';
        printf("%s\n", buf);
        fflush(stdout);
    }
    unlink(argv[1]);
    return 0;
}
