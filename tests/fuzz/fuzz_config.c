/* fuzz_config: the INI loader (src/config.c, inih underneath) on arbitrary text.
 *
 * lc_config_load_string gets the input cut at its first NUL; when the input holds a NUL,
 * lc_config_load also reads it whole from a memfd, so NUL bytes reach the line reader.
 * Either way the result is 0 with a consistent configuration, or an error that is one line
 * starting with the file name and leaves the configuration empty. A few environment
 * variables are set for ${VAR}: one whose value is itself "${...}" (never expanded
 * again), one at the value size limit, credentials (never quoted in a message). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "s3cr3t-never-shown"

#define CHECK(c)                                                                            \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            fprintf(stderr, "fuzz_config: check failed at line %d: %s\n", __LINE__, #c);    \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char big[8200];

    (void)argc;
    (void)argv;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    setenv("A", "${B}", 1);
    setenv("B", "5ms", 1);
    setenv("C", "${", 1);
    setenv("DIR", "/var/lib/app", 1);
    setenv("BIG", big, 1);
    setenv("EMPTY", "", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIAFUZZ", 1);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
    setenv("LITESTREAM_SECRET_ACCESS_KEY", SECRET, 1);
    return 0;
}

/* quoting: the text may itself put the secret into a value (a "${" or the secret's text),
 * and then a message may rightly quote it; otherwise it only ever arrives through the
 * credential defaults, and must never be shown. */
static void check_result(int rc, struct lc_config *cfg, const struct lc_error *err,
                         const char *name, int quoting)
{
    if (rc) {
        CHECK(rc == err->code);
        CHECK(rc == LC_EINVAL || rc == LC_ENOMEM || rc == LC_EIO);
        CHECK(strncmp(err->msg, name, strlen(name)) == 0 && err->msg[strlen(name)] == ':');
        CHECK(strchr(err->msg, '\n') == NULL);
        if (!quoting)
            CHECK(strstr(err->msg, SECRET) == NULL);
        CHECK(cfg->dbs == NULL && cfg->ndbs == 0 && cfg->replicas == NULL &&
              cfg->nreplicas == 0);
        return;
    }
    CHECK(cfg->max_delay_ns >= cfg->debounce_ns);
    for (size_t i = 0; i < cfg->ndbs; i++) {
        const struct lc_db_config *d = &cfg->dbs[i];
        CHECK(d->path[0] == '/' && d->meta_dir[0] == '/');
        CHECK(memchr(d->name, '\0', sizeof(d->name)) != NULL && d->name[0]);
        CHECK(lc_config_find_db(cfg, d->name) == d);
    }
    for (size_t i = 0; i < cfg->nreplicas; i++) {
        const struct lc_replica_config *r = &cfg->replicas[i];
        CHECK(lc_config_find_db(cfg, r->db) != NULL);
        CHECK(memchr(r->url, '\0', sizeof(r->url)) != NULL && r->url[0]);
        CHECK(r->retention_ns == 0 || r->retention_check_ns <= r->retention_ns);
    }
    lc_config_free(cfg);
    CHECK(cfg->dbs == NULL && cfg->ndbs == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_config cfg;
    struct lc_error err = {0};
    char *text = malloc(size + 1);
    int rc, quoting;

    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&cfg, 0xa5, sizeof(cfg)); /* the loader must not depend on what was there */
    quoting = memmem(data, size, "${", 2) || memmem(data, size, "s3cr3t", 6);
    rc = lc_config_load_string(&cfg, "fuzz.ini", text, &err);
    check_result(rc, &cfg, &err, "fuzz.ini", quoting);
    lc_config_free(&cfg);

    if (memchr(data, '\0', size)) {
        char path[64];
        int fd = memfd_create("fuzz.ini", MFD_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(write(fd, data, size) == (ssize_t)size);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        memset(&err, 0, sizeof(err));
        rc = lc_config_load(&cfg, path, &err);
        check_result(rc, &cfg, &err, path, quoting);
        lc_config_free(&cfg);
        close(fd);
    }
    free(text);
    return 0;
}
