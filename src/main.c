/* main: command dispatch, usage and exit codes (0 ok, 1 runtime failure, 2 usage). */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"

#define LITECAST_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "litecast: continuous replication of SQLite databases (Litestream v0.3 layout)\n"
            "\n"
            "usage: litecast <command> [options] [arguments]\n"
            "\n"
            "commands:\n"
            "  replicate    run the daemon: replicate databases continuously\n"
            "  restore      rebuild a database from a replica (latest or point in time)\n"
            "  generations  list a replica's generations\n"
            "  snapshots    list a replica's snapshots\n"
            "  wal          list a replica's WAL segments\n"
            "  databases    list the configured databases\n"
            "  status       ask the running daemon how every database and replica is doing\n"
            "  version      print the version\n"
            "\n"
            "Run 'litecast <command> -h' for a command's options.\n");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"replicate", lc_cmd_replicate}, {"restore", lc_cmd_restore},
        {"generations", lc_cmd_generations}, {"snapshots", lc_cmd_snapshots},
        {"wal", lc_cmd_wal}, {"databases", lc_cmd_databases},
        {"status", lc_cmd_status},
    };

    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "replicate") == 0) {
        /* Buffers of a MiB or more (LZ4 blocks, segment bodies) come and go with each
         * shipment. glibc raises its mmap threshold after the first such free, after
         * which they are carved from the heap and stay resident for good (4 MB of an idle
         * daemon's 4.5 MB anonymous memory). A fixed threshold keeps them mmap()ed and
         * returned. */
        (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    } else {
        /* The other commands are short-lived and a restore allocates and frees such
         * buffers for every object: keep them in the heap for reuse, since a fresh
         * mapping costs a page fault and a zeroed page per 4 KiB touched (a quarter of a
         * WAL-chain restore's time, measured) */
        (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
        (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? LC_EXIT_USAGE : LC_EXIT_OK;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("litecast %s\n", LITECAST_VERSION);
        return LC_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "litecast %s: unknown command\n", argv[1]);
    usage(stderr);
    return LC_EXIT_USAGE;
}
