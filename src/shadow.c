/* shadow: the meta directory and the shadow WAL files.
 *
 * Invariants kept here:
 *  - the generation file names a directory that exists, or there is no generation;
 *  - every shadow file starts with a valid WAL header and, up to sh->size, holds only
 *    whole frames of that incarnation that chain by salt and checksum and end on a
 *    commit frame (the caller verifies frames before lc_shadow_append);
 *  - on open the whole current file is re-verified, so a torn tail left by a crash or a
 *    power loss (shadow appends are not fsynced: the real WAL still holds every frame
 *    past our read mark) is cut back to the last commit rather than trusted. */
#include "shadow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "segment.h"

#define VERIFY_CHUNK (1u << 20)

static int gen_dir(const struct lc_shadow *sh, const char *gen, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/generations/%s", sh->meta_dir, gen);
    return (n < 0 || (size_t)n >= len) ? LC_EINVAL : 0;
}

int lc_shadow_path(const struct lc_shadow *sh, uint32_t index, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/generations/%s/wal/%08x.wal", sh->meta_dir, sh->gen, index);
    return (n < 0 || (size_t)n >= len) ? LC_EINVAL : 0;
}

static void own(const struct lc_shadow *sh, const char *path)
{
    if (sh->uid != (uid_t)-1 && geteuid() == 0)
        (void)chown(path, sh->uid, sh->gid);
}

static int mkdir_own(const struct lc_shadow *sh, const char *path, struct lc_error *err)
{
    if (mkdir(path, sh->dir_mode) < 0) {
        if (errno == EEXIST)
            return 0;
        return lc_err_set(err, LC_EIO, "mkdir %s: %s", path, strerror(errno));
    }
    own(sh, path);
    return 0;
}

static void remove_tmp_files(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[PATH_MAX];

    if (!d || depth > 4) {
        if (d)
            closedir(d);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        if (lc_path_join(p, sizeof(p), dir, de->d_name))
            continue;
        if (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0)
            (void)unlink(p);
        else if (de->d_type == DT_DIR)
            remove_tmp_files(p, depth + 1);
    }
    closedir(d);
}

/* Scan the wal/ dir of the current generation: highest and lowest index. */
static int scan_indexes(const struct lc_shadow *sh, uint32_t *lo, uint32_t *hi)
{
    char p[PATH_MAX];
    DIR *d;
    struct dirent *de;
    int found = 0;

    if (gen_dir(sh, sh->gen, p, sizeof(p)) || strlen(p) + 5 >= sizeof(p))
        return 0;
    strncat(p, "/wal", sizeof(p) - strlen(p) - 1);
    d = opendir(p);
    if (!d)
        return 0;
    while ((de = readdir(d)) != NULL) {
        const char *s = de->d_name;
        if (strlen(s) != 12 || strcmp(s + 8, ".wal") != 0 || !lc_is_hex(s, 8))
            continue;
        uint32_t v = (uint32_t)strtoul(s, NULL, 16);
        if (!found || v > *hi)
            *hi = v;
        if (!found || v < *lo)
            *lo = v;
        found = 1;
    }
    closedir(d);
    return found;
}

/* Verify the whole current file; cut a torn or uncommitted tail back to the last commit. */
static int load_current(struct lc_shadow *sh, const char **why, struct lc_error *err)
{
    char p[PATH_MAX];
    struct stat st;
    struct lc_wal_cursor cur;
    uint8_t *buf;

    if (lc_shadow_path(sh, sh->index, p, sizeof(p)))
        return lc_err_set(err, LC_EINVAL, "meta dir path too long: %s", sh->meta_dir);
    sh->fd = open(p, O_RDWR | O_CLOEXEC);
    if (sh->fd < 0) {
        *why = "no shadow wal";
        return 0;
    }
    if (fstat(sh->fd, &st) < 0 || lc_pread_full(sh->fd, sh->hdr_raw, LC_WAL_HDR_SIZE, 0) !=
                                      LC_WAL_HDR_SIZE) {
        *why = "short shadow wal";
        return 0;
    }
    if (lc_wal_hdr_parse(sh->hdr_raw, LC_WAL_HDR_SIZE, &sh->hdr, err) < 0) {
        lc_err_clear(err);
        *why = "bad shadow wal header";
        return 0;
    }
    lc_wal_cursor_init(&cur, &sh->hdr, LC_WAL_HDR_SIZE, sh->hdr.cksum);
    buf = malloc(VERIFY_CHUNK);
    if (!buf)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    uint64_t fsz = lc_wal_frame_size(sh->hdr.page_size);
    size_t chunk = (size_t)(VERIFY_CHUNK / fsz * fsz);
    uint64_t end = lc_wal_frame_align((uint64_t)st.st_size, sh->hdr.page_size);
    while (cur.off < end && cur.stop == LC_WAL_OK) {
        size_t want = (size_t)((end - cur.off) < chunk ? (end - cur.off) : chunk);
        ssize_t n = lc_pread_full(sh->fd, buf, want, (off_t)cur.off);
        if (n <= 0)
            break;
        if (lc_wal_cursor_feed(&cur, buf, (size_t)n) < (size_t)n)
            break;
    }
    free(buf);
    sh->size = cur.commit_off;
    sh->ck[0] = cur.commit_ck[0];
    sh->ck[1] = cur.commit_ck[1];
    if ((uint64_t)st.st_size != sh->size) {
        lc_warn("shadow wal: cutting uncommitted or damaged tail", "path=%s size=%lld kept=%llu",
                p, (long long)st.st_size, (unsigned long long)sh->size);
        if (ftruncate(sh->fd, (off_t)sh->size) < 0)
            return lc_err_set(err, LC_EIO, "truncate %s: %s", p, strerror(errno));
    }
    return 0;
}

int lc_shadow_open(struct lc_shadow *sh, const char *meta_dir, mode_t file_mode, uid_t uid,
                   gid_t gid, const char **why, struct lc_error *err)
{
    char p[PATH_MAX];
    uint8_t *data = NULL;
    size_t len = 0;
    int rc;

    memset(sh, 0, sizeof(*sh));
    sh->fd = -1;
    sh->file_mode = file_mode & 0666;
    /* directories get x wherever the file has r */
    sh->dir_mode = sh->file_mode | ((sh->file_mode & 0444) >> 2);
    sh->uid = uid;
    sh->gid = gid;
    *why = NULL;
    if (strlen(meta_dir) >= sizeof(sh->meta_dir) - 64)
        return lc_err_set(err, LC_EINVAL, "meta dir path too long: %s", meta_dir);
    memcpy(sh->meta_dir, meta_dir, strlen(meta_dir) + 1);
    if ((rc = mkdir_own(sh, sh->meta_dir, err)) < 0)
        return rc;
    remove_tmp_files(sh->meta_dir, 0);

    if (lc_path_join(p, sizeof(p), sh->meta_dir, "generation"))
        return lc_err_set(err, LC_EINVAL, "meta dir path too long: %s", meta_dir);
    rc = lc_read_file(p, 64, &data, &len, err);
    if (rc == LC_ENOTFOUND || rc == LC_ENOMEM) {
        lc_err_clear(err);
        *why = "no generation exists";
        return 0;
    }
    if (rc < 0)
        return rc;
    while (len && (data[len - 1] == '\n' || data[len - 1] == ' '))
        len--;
    if (len != LC_GEN_LEN || !lc_is_hex((const char *)data, len)) {
        free(data);
        *why = "no generation exists";
        return 0;
    }
    memcpy(sh->gen, data, LC_GEN_LEN);
    sh->gen[LC_GEN_LEN] = '\0';
    free(data);

    uint32_t lo = 0, hi = 0;
    if (!scan_indexes(sh, &lo, &hi)) {
        sh->gen[0] = '\0';
        *why = "no shadow wal";
        return 0;
    }
    if (hi >= LC_MAX_INDEX) {
        sh->gen[0] = '\0';
        *why = "max index exceeded";
        return 0;
    }
    sh->index = hi;
    sh->min_index = lo;
    if ((rc = load_current(sh, why, err)) < 0 || *why) {
        lc_shadow_close(sh);
        sh->gen[0] = '\0';
        return rc;
    }
    return 0;
}

void lc_shadow_close(struct lc_shadow *sh)
{
    if (sh->fd >= 0)
        close(sh->fd);
    sh->fd = -1;
}

/* Create shadow file sh->index with hdr and make it current. */
static int create_file(struct lc_shadow *sh, const uint8_t hdr[LC_WAL_HDR_SIZE],
                       struct lc_error *err)
{
    char p[PATH_MAX], tmp[PATH_MAX + 8];
    struct lc_wal_hdr h;
    int fd, rc;

    if ((rc = lc_wal_hdr_parse(hdr, LC_WAL_HDR_SIZE, &h, err)) < 0)
        return rc;
    if (lc_shadow_path(sh, sh->index, p, sizeof(p)))
        return lc_err_set(err, LC_EINVAL, "meta dir path too long: %s", sh->meta_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, sh->file_mode);
    if (fd < 0)
        return lc_err_set(err, LC_EIO, "create %s: %s", tmp, strerror(errno));
    if (lc_pwrite_full(fd, hdr, LC_WAL_HDR_SIZE, 0) < 0 || rename(tmp, p) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return lc_err_set(err, LC_EIO, "write %s: %s", p, strerror(e));
    }
    own(sh, p);
    lc_shadow_close(sh);
    sh->fd = fd;
    memcpy(sh->hdr_raw, hdr, LC_WAL_HDR_SIZE);
    sh->hdr = h;
    sh->size = LC_WAL_HDR_SIZE;
    sh->ck[0] = h.cksum[0];
    sh->ck[1] = h.cksum[1];
    return 0;
}

int lc_shadow_new_generation(struct lc_shadow *sh, const uint8_t hdr[LC_WAL_HDR_SIZE],
                             struct lc_error *err)
{
    char gen[17], p[PATH_MAX], gens[PATH_MAX];
    int rc;

    if (lc_random_hex16(gen) < 0)
        return lc_err_set(err, LC_EIO, "getrandom: %s", strerror(errno));
    if (lc_path_join(gens, sizeof(gens), sh->meta_dir, "generations"))
        return lc_err_set(err, LC_EINVAL, "meta dir path too long: %s", sh->meta_dir);
    if ((rc = mkdir_own(sh, sh->meta_dir, err)) < 0 || (rc = mkdir_own(sh, gens, err)) < 0)
        return rc;
    lc_shadow_close(sh);
    memcpy(sh->gen, gen, sizeof(gen));
    if ((rc = gen_dir(sh, gen, p, sizeof(p))) < 0)
        return lc_err_set(err, LC_EINVAL, "meta dir path too long: %s", sh->meta_dir);
    if ((rc = mkdir_own(sh, p, err)) < 0)
        return rc;
    strncat(p, "/wal", sizeof(p) - strlen(p) - 1);
    if ((rc = mkdir_own(sh, p, err)) < 0)
        return rc;
    sh->index = 0;
    sh->min_index = 0;
    if ((rc = create_file(sh, hdr, err)) < 0)
        return rc;
    if (lc_path_join(p, sizeof(p), sh->meta_dir, "generation"))
        return lc_err_set(err, LC_EINVAL, "meta dir path too long: %s", sh->meta_dir);
    char line[LC_GEN_LEN + 1];
    memcpy(line, gen, LC_GEN_LEN);
    line[LC_GEN_LEN] = '\n';
    if ((rc = lc_atomic_write(p, line, sizeof(line), sh->file_mode, err)) < 0)
        return rc;
    own(sh, p);

    /* only the current generation is kept locally */
    DIR *d = opendir(gens);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' || strcmp(de->d_name, gen) == 0)
                continue;
            if (lc_path_join(p, sizeof(p), gens, de->d_name) == 0) {
                struct lc_error e2 = {0};
                if (lc_rm_rf(p, &e2) < 0)
                    lc_warn("remove old generation failed", "error=\"%s\"", e2.msg);
            }
        }
        closedir(d);
    }
    return 0;
}

int lc_shadow_new_index(struct lc_shadow *sh, const uint8_t hdr[LC_WAL_HDR_SIZE],
                        struct lc_error *err)
{
    if (sh->index + 1 >= LC_MAX_INDEX)
        return lc_err_set(err, LC_EINVAL, "max index exceeded");
    sh->index++;
    int rc = create_file(sh, hdr, err);
    if (rc < 0)
        sh->index--; /* create_file changed nothing else: no gap in the index numbers */
    return rc;
}

int lc_shadow_write(struct lc_shadow *sh, uint64_t off, const uint8_t *buf, size_t len,
                    struct lc_error *err)
{
    if (lc_pwrite_full(sh->fd, buf, len, (off_t)off) < 0)
        return lc_err_set(err, LC_EIO, "write shadow wal %s/%08x.wal: %s", sh->gen, sh->index,
                          strerror(errno));
    return 0;
}

void lc_shadow_commit(struct lc_shadow *sh, uint64_t size, const uint32_t ck[2])
{
    sh->size = size;
    sh->ck[0] = ck[0];
    sh->ck[1] = ck[1];
}

void lc_shadow_rollback(struct lc_shadow *sh)
{
    if (sh->fd >= 0 && ftruncate(sh->fd, (off_t)sh->size) < 0)
        lc_warn("truncate shadow wal failed", "generation=%s index=%08x error=\"%s\"", sh->gen,
                sh->index, strerror(errno));
}

int lc_shadow_file_size(const struct lc_shadow *sh, uint32_t index, uint64_t *size,
                        struct lc_error *err)
{
    char p[PATH_MAX];
    struct stat st;

    if (index == sh->index) {
        *size = sh->size;
        return 0;
    }
    if (lc_shadow_path(sh, index, p, sizeof(p)))
        return lc_err_set(err, LC_EINVAL, "meta dir path too long: %s", sh->meta_dir);
    if (stat(p, &st) < 0)
        return lc_err_set(err, errno == ENOENT ? LC_ENOTFOUND : LC_EIO, "stat %s: %s", p,
                          strerror(errno));
    *size = (uint64_t)st.st_size;
    if (sh->hdr.page_size)
        *size = lc_wal_frame_align(*size, sh->hdr.page_size);
    return 0;
}

void lc_shadow_prune(struct lc_shadow *sh, uint32_t keep_from)
{
    char p[PATH_MAX];

    if (keep_from > sh->index)
        keep_from = sh->index;
    for (uint32_t i = sh->min_index; i < keep_from; i++) {
        if (lc_shadow_path(sh, i, p, sizeof(p)) == 0 && unlink(p) < 0 && errno != ENOENT)
            lc_warn("remove shadow wal failed", "path=%s error=\"%s\"", p, strerror(errno));
    }
    if (keep_from > sh->min_index)
        sh->min_index = keep_from;
}

int lc_shadow_lost(const struct lc_shadow *sh)
{
    struct stat st;
    return sh->fd >= 0 && fstat(sh->fd, &st) == 0 && st.st_nlink == 0;
}
