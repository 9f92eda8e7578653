/* Unit tests for src/vfs.c: the checkpoint-lock pin, on a real WAL database, against a
 * checkpoint run by another process (a forked child that opens its own connection with
 * SQLite's default VFS, as an application would). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"
#include "vfs.h"

struct app {
    pid_t pid;
    int to, from; /* pipes to and from the child */
};

/* The child: on 'c' run a PASSIVE checkpoint, on 'f' a FULL one (which holds the lock
 * while it waits for readers), and answer "rc nlog nckpt"; on 'q' exit. */
static void app_main(const char *path, int in, int out)
{
    sqlite3 *c = NULL;
    char cmd;
    while (read(in, &cmd, 1) == 1 && (cmd == 'c' || cmd == 'f')) {
        int nlog = -1, nckpt = -1, rc = SQLITE_CANTOPEN;
        int mode = cmd == 'c' ? SQLITE_CHECKPOINT_PASSIVE : SQLITE_CHECKPOINT_FULL;
        if (c || sqlite3_open(path, &c) == SQLITE_OK) {
            sqlite3_busy_timeout(c, 5000);
            /* a connection that has read nothing does not know the WAL yet */
            (void)sqlite3_exec(c, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
            rc = sqlite3_wal_checkpoint_v2(c, NULL, mode, &nlog, &nckpt);
        }
        char line[64];
        int n = snprintf(line, sizeof(line), "%d %d %d\n", rc, nlog, nckpt);
        if (write(out, line, (size_t)n) != n)
            break;
    }
    sqlite3_close(c);
    _exit(0);
}

/* Forked before the test opens any connection, so the child inherits no SQLite state. */
static void app_start(struct app *a, const char *path)
{
    int p1[2], p2[2];
    assert_int_equal(pipe(p1), 0);
    assert_int_equal(pipe(p2), 0);
    a->pid = fork();
    assert_true(a->pid >= 0);
    if (a->pid == 0) {
        close(p1[1]);
        close(p2[0]);
        app_main(path, p1[0], p2[1]);
    }
    close(p1[0]);
    close(p2[1]);
    a->to = p1[1];
    a->from = p2[0];
}

static void app_send(struct app *a, char cmd)
{
    assert_int_equal(write(a->to, &cmd, 1), 1);
}

/* The answer to the last command: its rc; *nlog and *nckpt as SQLite reports them. */
static int app_answer(struct app *a, int *nlog, int *nckpt)
{
    char line[64] = {0};
    size_t got = 0;
    int rc = -1;
    while (got < sizeof(line) - 1) {
        ssize_t n = read(a->from, line + got, 1);
        assert_true(n == 1);
        if (line[got++] == '\n')
            break;
    }
    assert_int_equal(sscanf(line, "%d %d %d", &rc, nlog, nckpt), 3);
    return rc;
}

/* The app's PASSIVE checkpoint (what its automatic checkpoint runs). */
static int app_checkpoint(struct app *a, int *nlog, int *nckpt)
{
    app_send(a, 'c');
    return app_answer(a, nlog, nckpt);
}

static void app_stop(struct app *a)
{
    int st = 0;
    assert_int_equal(write(a->to, "q", 1), 1);
    close(a->to);
    close(a->from);
    assert_int_equal(waitpid(a->pid, &st, 0), a->pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static sqlite3 *open_ours(const char *path)
{
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     LC_VFS_NAME),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, "PRAGMA wal_autocheckpoint = 0", NULL, NULL, NULL),
                     SQLITE_OK);
    /* read once, so that the connection knows the WAL (and maps its index) */
    assert_int_equal(sqlite3_exec(c, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL),
                     SQLITE_OK);
    return c;
}

static void insert(sqlite3 *c, int rows)
{
    for (int i = 0; i < rows; i++)
        assert_int_equal(sqlite3_exec(c, "INSERT INTO t VALUES (randomblob(3000))", NULL, NULL,
                                      NULL),
                         SQLITE_OK);
}

static void test_pin_excludes_other_processes(void **state)
{
    (void)state;
    char dir[] = "/tmp/lc-vfs-XXXXXX", path[256];
    int nlog = 0, nckpt = 0;
    struct app app;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/app.db", dir);
    assert_int_equal(lc_vfs_register(), 0);
    assert_int_equal(lc_vfs_register(), 0); /* twice is harmless */
    app_start(&app, path);

    sqlite3 *a = open_ours(path);
    /* no wal-index yet: nothing to pin */
    assert_int_equal(lc_vfs_ckpt_pin(a), LC_EINVAL);
    assert_int_equal(sqlite3_exec(a, "PRAGMA journal_mode = wal; CREATE TABLE t (b BLOB)", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    insert(a, 20);

    /* pinned: the app's checkpoint is refused at once and back-fills nothing */
    assert_int_equal(lc_vfs_ckpt_pin(a), 0);
    assert_int_equal(lc_vfs_ckpt_pin(a), LC_EINVAL); /* one pin at a time */
    assert_int_equal(app_checkpoint(&app, &nlog, &nckpt), SQLITE_BUSY);

    /* ... while our other connection's checkpoint runs under the pin */
    sqlite3 *b = open_ours(path);
    assert_int_equal(sqlite3_wal_checkpoint_v2(b, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt),
                     SQLITE_OK);
    assert_true(nlog >= 20);
    assert_int_equal(nckpt, nlog);
    /* and a second one too: its release of the lock did not release the pin */
    insert(a, 5);
    assert_int_equal(sqlite3_wal_checkpoint_v2(b, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt),
                     SQLITE_OK);
    assert_int_equal(nckpt, nlog);
    insert(a, 5);
    assert_int_equal(app_checkpoint(&app, &nlog, &nckpt), SQLITE_BUSY);

    /* unpinned: the app checkpoints again */
    lc_vfs_ckpt_unpin();
    lc_vfs_ckpt_unpin(); /* harmless */
    assert_int_equal(app_checkpoint(&app, &nlog, &nckpt), SQLITE_OK);
    assert_true(nlog > 0);
    assert_int_equal(nckpt, nlog);

    /* a connection of another VFS cannot be pinned */
    sqlite3 *plain = NULL;
    assert_int_equal(sqlite3_open(path, &plain), SQLITE_OK);
    assert_int_equal(lc_vfs_ckpt_pin(plain), LC_EINVAL);

    /* while another process checkpoints, the pin cannot be taken: the app's FULL
     * checkpoint holds the lock while it waits for our reader on an older snapshot */
    assert_int_equal(sqlite3_exec(a, "BEGIN; SELECT count(*) FROM t", NULL, NULL, NULL),
                     SQLITE_OK);
    insert(b, 5);
    app_send(&app, 'f');
    /* wait until the child holds the lock (byte 120 + 1 of the -shm file), looking with
     * F_GETLK so as not to race it; this fd stays open until our connections close, as
     * closing it would drop their POSIX locks on the file */
    char shm[300];
    snprintf(shm, sizeof(shm), "%s-shm", path);
    int shmfd = open(shm, O_RDONLY | O_CLOEXEC);
    assert_true(shmfd >= 0);
    int held = 0;
    for (int i = 0; i < 500 && !held; i++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 121, .l_len = 1};
        assert_int_equal(fcntl(shmfd, F_GETLK, &fl), 0);
        held = fl.l_type == F_WRLCK && fl.l_pid == app.pid;
        if (!held)
            usleep(10000);
    }
    assert_true(held);
    assert_int_equal(lc_vfs_ckpt_pin(b), LC_EBUSY);
    assert_int_equal(sqlite3_exec(a, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(app_answer(&app, &nlog, &nckpt), SQLITE_OK);
    assert_int_equal(nckpt, nlog);

    /* closing the connection that holds the pin releases it */
    insert(a, 5);
    assert_int_equal(lc_vfs_ckpt_pin(b), 0);
    assert_int_equal(app_checkpoint(&app, &nlog, &nckpt), SQLITE_BUSY);
    assert_int_equal(sqlite3_close(b), SQLITE_OK);
    assert_int_equal(app_checkpoint(&app, &nlog, &nckpt), SQLITE_OK);
    assert_int_equal(nckpt, nlog);
    assert_int_equal(lc_vfs_ckpt_pin(a), 0); /* and a new pin can be taken */
    lc_vfs_ckpt_unpin();

    app_stop(&app);
    sqlite3_close(plain);
    assert_int_equal(sqlite3_close(a), SQLITE_OK);
    close(shmfd);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pin_excludes_other_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
