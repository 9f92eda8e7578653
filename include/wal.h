/* wal: pure SQLite WAL format code, no I/O. See src/wal.c for the format essay. */
#ifndef LC_WAL_H
#define LC_WAL_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define LC_WAL_HDR_SIZE 32
#define LC_WAL_FRAME_HDR_SIZE 24
#define LC_WAL_MAGIC_LE 0x377f0682u
#define LC_WAL_MAGIC_BE 0x377f0683u
#define LC_WAL_VERSION 3007000u

struct lc_wal_hdr {
    uint32_t magic;      /* LC_WAL_MAGIC_LE or LC_WAL_MAGIC_BE */
    uint32_t version;    /* always 3007000 */
    uint32_t page_size;  /* 512..65536, power of two (65536 stored as 1 in the db, not here) */
    uint32_t ckpt_seq;   /* checkpoint sequence number */
    uint32_t salt1;      /* incremented on every WAL restart */
    uint32_t salt2;      /* random on every WAL restart */
    uint32_t cksum[2];   /* checksum of bytes [0,24) */
    int big_endian;      /* checksum words are read big-endian (magic 0x377f0683) */
};

/* Parse and verify a 32-byte header: magic, version, page size, checksum. */
int lc_wal_hdr_parse(const uint8_t *buf, size_t len, struct lc_wal_hdr *h, struct lc_error *err);
/* Build a header (for tests and fixtures); computes the checksum. */
void lc_wal_hdr_encode(const struct lc_wal_hdr *h, uint8_t out[LC_WAL_HDR_SIZE]);

/* Continue the running checksum s over n bytes (n a multiple of 8). */
void lc_wal_checksum(int big_endian, const uint8_t *buf, size_t n, uint32_t s[2]);

static inline uint64_t lc_wal_frame_size(uint32_t page_size)
{
    return (uint64_t)LC_WAL_FRAME_HDR_SIZE + page_size;
}
/* Round off down to a frame boundary (0 below the header). */
uint64_t lc_wal_frame_align(uint64_t off, uint32_t page_size);

/* A cursor walks frames of one WAL incarnation, verifying salts and the checksum
 * chain, and remembers the end of the last commit frame. Feed it whole frames in
 * order; it stops (and stays stopped) at the first frame that breaks the chain. */
enum lc_wal_stop {
    LC_WAL_OK = 0,          /* not stopped */
    LC_WAL_SALT,            /* a frame's salts differ from the header's */
    LC_WAL_CKSUM,           /* a frame's checksum breaks the chain */
};

struct lc_wal_cursor {
    uint32_t page_size;   /* from the header */
    int big_endian;       /* from the header's magic */
    uint32_t salt1, salt2;/* from the header */
    uint32_t ck[2];       /* running checksum after the last accepted frame */
    uint64_t off;         /* file offset of the next frame */
    uint64_t commit_off;  /* end offset of the last accepted commit frame */
    uint32_t commit_ck[2];/* running checksum at commit_off */
    uint32_t commit_pages;/* db size in pages at the last commit (0 if none yet) */
    uint64_t frames;      /* frames accepted */
    enum lc_wal_stop stop;/* why it stopped, LC_WAL_OK while running */
};

/* Start at off with checksum seed ck (the header's checksum when off == 32, else
 * the checksum stored in the frame ending at off). commit_off starts at off. */
void lc_wal_cursor_init(struct lc_wal_cursor *c, const struct lc_wal_hdr *h, uint64_t off,
                        const uint32_t ck[2]);
/* Feed len bytes (whole frames from c->off on). Returns bytes accepted (a multiple of the
 * frame size); fewer than len means the cursor stopped (see c->stop) or a partial frame
 * was left over. */
size_t lc_wal_cursor_feed(struct lc_wal_cursor *c, const uint8_t *buf, size_t len);

/* Frame header fields. */
static inline uint32_t lc_wal_frame_pgno(const uint8_t *fh)
{
    return lc_get32be(fh);
}
static inline uint32_t lc_wal_frame_commit(const uint8_t *fh)
{
    return lc_get32be(fh + 4);
}
/* Checksum stored in a frame header. */
void lc_wal_frame_cksum(const uint8_t *fh, uint32_t ck[2]);

/* Build one frame (for tests): header + page, chained from ck (updated). */
void lc_wal_frame_encode(const struct lc_wal_hdr *h, uint32_t pgno, uint32_t commit,
                         const uint8_t *page, uint32_t ck[2], uint8_t *out);

#endif
