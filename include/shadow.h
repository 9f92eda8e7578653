/* shadow: the meta directory next to a database and the shadow WAL files in it.
 *
 *   .<db>-litecast/generation                      current generation id + "\n"
 *   .<db>-litecast/generations/<gen>/wal/<index %08x>.wal
 *
 * A shadow WAL file is a byte-exact prefix of one incarnation of the real -wal (same
 * header, same offsets) holding only committed frames. The struct caches what the hot
 * path needs (header, size, running checksum) so a sync touches the file only to append. */
#ifndef LC_SHADOW_H
#define LC_SHADOW_H

#include <stdint.h>
#include <sys/types.h>
#include "config.h"
#include "util.h"
#include "wal.h"

struct lc_shadow {
    char meta_dir[LC_PATH_MAX];   /* the meta directory */
    char gen[17];                 /* current generation, "" when none */
    uint32_t index;               /* current shadow WAL index */
    int fd;                       /* open fd of the current shadow file, -1 if none */
    uint64_t size;                /* committed, frame-aligned size of the current file */
    uint8_t hdr_raw[LC_WAL_HDR_SIZE]; /* header bytes of the current file */
    struct lc_wal_hdr hdr;        /* parsed header of the current file */
    uint32_t ck[2];               /* running checksum at size (seed for the next frame) */
    uint32_t min_index;           /* lowest shadow index still on disk */
    mode_t file_mode, dir_mode;   /* the database's modes */
    uid_t uid;                    /* the database's owner */
    gid_t gid;
};

/* Prepare the meta dir (create it, delete stale *.tmp) and load the current generation
 * and its highest shadow file. A damaged or missing state leaves gen = "" and puts the
 * reason in *why (static text) for the caller to log; that is not an error. */
int lc_shadow_open(struct lc_shadow *sh, const char *meta_dir, mode_t file_mode, uid_t uid,
                   gid_t gid, const char **why, struct lc_error *err);
void lc_shadow_close(struct lc_shadow *sh);

/* Start a new generation whose index 0 begins with the given WAL header; deletes every
 * other generation directory. */
int lc_shadow_new_generation(struct lc_shadow *sh, const uint8_t hdr[LC_WAL_HDR_SIZE],
                             struct lc_error *err);
/* Open index+1 beginning with a new header (after a WAL restart). */
int lc_shadow_new_index(struct lc_shadow *sh, const uint8_t hdr[LC_WAL_HDR_SIZE],
                        struct lc_error *err);
/* Write verified frames at off (>= sh->size) without committing them. */
int lc_shadow_write(struct lc_shadow *sh, uint64_t off, const uint8_t *buf, size_t len,
                    struct lc_error *err);
/* Make everything up to size (a commit boundary) part of the shadow; ck is the running
 * checksum there. */
void lc_shadow_commit(struct lc_shadow *sh, uint64_t size, const uint32_t ck[2]);
/* Drop bytes written past sh->size by lc_shadow_write (after a failure). */
void lc_shadow_rollback(struct lc_shadow *sh);
/* Path of shadow file index in the current generation. */
int lc_shadow_path(const struct lc_shadow *sh, uint32_t index, char *buf, size_t len);
/* Frame-aligned size of shadow file index (the current one from the cache). */
int lc_shadow_file_size(const struct lc_shadow *sh, uint32_t index, uint64_t *size,
                        struct lc_error *err);
/* Delete shadow files with index < keep_from (never the current one). */
void lc_shadow_prune(struct lc_shadow *sh, uint32_t keep_from);
/* 1 if the current shadow file was unlinked behind our back (meta dir deleted). */
int lc_shadow_lost(const struct lc_shadow *sh);

#endif
