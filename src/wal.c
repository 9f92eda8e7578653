/* wal: the SQLite write-ahead log format, as bytes.
 *
 * A WAL file is a 32-byte header followed by frames. Header: magic (0x377f0682 when the
 * checksum words are read little-endian, 0x377f0683 big-endian), format version
 * 3007000, page size, checkpoint sequence, salt-1, salt-2, and a checksum of bytes
 * [0,24). Every integer is stored big-endian. A frame is a 24-byte header (page number;
 * "commit size", the database size in pages after the transaction, non-zero only on a
 * transaction's last frame; salt-1; salt-2; checksum) and one page image.
 *
 * The checksum is a running pair (s0, s1) over 8-byte units, each read as two 32-bit
 * words in the byte order the magic selects: s0 += a + s1; s1 += b + s0. The header's
 * pair covers its first 24 bytes from (0, 0); each frame continues from the previous
 * pair (the header's for the first frame) over its header bytes [0,8) and its page.
 * So a frame's stored checksum vouches for every byte before it in its incarnation.
 *
 * A WAL restart rewrites the header with salt-1 + 1 and a new salt-2 and overwrites
 * frames from offset 32 without shrinking the file, so stale frames with old salts may
 * follow the live ones; readers stop at the first frame whose salts or checksum do not
 * match. Frames after the last commit frame belong to an unfinished transaction and are
 * never copied: a shadow WAL, and every segment made from it, ends on a commit frame. */
#include "wal.h"

#include <assert.h>
#include <string.h>

void lc_wal_checksum(int big_endian, const uint8_t *buf, size_t n, uint32_t s[2])
{
    uint32_t s0 = s[0], s1 = s[1];
    assert(n % 8 == 0);
    if (big_endian) {
        for (size_t i = 0; i < n; i += 8) {
            s0 += lc_get32be(buf + i) + s1;
            s1 += lc_get32be(buf + i + 4) + s0;
        }
    } else {
        for (size_t i = 0; i < n; i += 8) {
            uint32_t a = (uint32_t)buf[i] | (uint32_t)buf[i + 1] << 8 |
                         (uint32_t)buf[i + 2] << 16 | (uint32_t)buf[i + 3] << 24;
            uint32_t b = (uint32_t)buf[i + 4] | (uint32_t)buf[i + 5] << 8 |
                         (uint32_t)buf[i + 6] << 16 | (uint32_t)buf[i + 7] << 24;
            s0 += a + s1;
            s1 += b + s0;
        }
    }
    s[0] = s0;
    s[1] = s1;
}

int lc_wal_hdr_parse(const uint8_t *buf, size_t len, struct lc_wal_hdr *h, struct lc_error *err)
{
    uint32_t ck[2] = {0, 0};

    if (len < LC_WAL_HDR_SIZE)
        return lc_err_set(err, LC_ECORRUPT, "wal header: short (%zu bytes)", len);
    h->magic = lc_get32be(buf);
    if (h->magic != LC_WAL_MAGIC_LE && h->magic != LC_WAL_MAGIC_BE)
        return lc_err_set(err, LC_ECORRUPT, "wal header: bad magic 0x%08x", h->magic);
    h->big_endian = h->magic == LC_WAL_MAGIC_BE;
    h->version = lc_get32be(buf + 4);
    if (h->version != LC_WAL_VERSION)
        return lc_err_set(err, LC_ECORRUPT, "wal header: bad version %u", h->version);
    h->page_size = lc_get32be(buf + 8);
    if (h->page_size < 512 || h->page_size > 65536 || (h->page_size & (h->page_size - 1)))
        return lc_err_set(err, LC_ECORRUPT, "wal header: bad page size %u", h->page_size);
    h->ckpt_seq = lc_get32be(buf + 12);
    h->salt1 = lc_get32be(buf + 16);
    h->salt2 = lc_get32be(buf + 20);
    h->cksum[0] = lc_get32be(buf + 24);
    h->cksum[1] = lc_get32be(buf + 28);
    lc_wal_checksum(h->big_endian, buf, 24, ck);
    if (ck[0] != h->cksum[0] || ck[1] != h->cksum[1])
        return lc_err_set(err, LC_ECORRUPT, "wal header: checksum mismatch");
    return 0;
}

void lc_wal_hdr_encode(const struct lc_wal_hdr *h, uint8_t out[LC_WAL_HDR_SIZE])
{
    uint32_t ck[2] = {0, 0};
    lc_put32be(out, h->magic);
    lc_put32be(out + 4, h->version);
    lc_put32be(out + 8, h->page_size);
    lc_put32be(out + 12, h->ckpt_seq);
    lc_put32be(out + 16, h->salt1);
    lc_put32be(out + 20, h->salt2);
    lc_wal_checksum(h->magic == LC_WAL_MAGIC_BE, out, 24, ck);
    lc_put32be(out + 24, ck[0]);
    lc_put32be(out + 28, ck[1]);
}

uint64_t lc_wal_frame_align(uint64_t off, uint32_t page_size)
{
    uint64_t fsz = lc_wal_frame_size(page_size);
    if (off < LC_WAL_HDR_SIZE)
        return 0;
    return LC_WAL_HDR_SIZE + (off - LC_WAL_HDR_SIZE) / fsz * fsz;
}

void lc_wal_frame_cksum(const uint8_t *fh, uint32_t ck[2])
{
    ck[0] = lc_get32be(fh + 16);
    ck[1] = lc_get32be(fh + 20);
}

void lc_wal_cursor_init(struct lc_wal_cursor *c, const struct lc_wal_hdr *h, uint64_t off,
                        const uint32_t ck[2])
{
    memset(c, 0, sizeof(*c));
    c->page_size = h->page_size;
    c->big_endian = h->big_endian;
    c->salt1 = h->salt1;
    c->salt2 = h->salt2;
    c->ck[0] = c->commit_ck[0] = ck[0];
    c->ck[1] = c->commit_ck[1] = ck[1];
    c->off = c->commit_off = off;
}

size_t lc_wal_cursor_feed(struct lc_wal_cursor *c, const uint8_t *buf, size_t len)
{
    size_t fsz = (size_t)lc_wal_frame_size(c->page_size), done = 0;

    while (c->stop == LC_WAL_OK && len - done >= fsz) {
        const uint8_t *f = buf + done;
        uint32_t ck[2] = {c->ck[0], c->ck[1]};
        if (lc_get32be(f + 8) != c->salt1 || lc_get32be(f + 12) != c->salt2) {
            c->stop = LC_WAL_SALT;
            break;
        }
        lc_wal_checksum(c->big_endian, f, 8, ck);
        lc_wal_checksum(c->big_endian, f + LC_WAL_FRAME_HDR_SIZE, c->page_size, ck);
        if (ck[0] != lc_get32be(f + 16) || ck[1] != lc_get32be(f + 20)) {
            c->stop = LC_WAL_CKSUM;
            break;
        }
        c->ck[0] = ck[0];
        c->ck[1] = ck[1];
        c->off += fsz;
        c->frames++;
        done += fsz;
        uint32_t commit = lc_get32be(f + 4);
        if (commit) {
            c->commit_off = c->off;
            c->commit_ck[0] = ck[0];
            c->commit_ck[1] = ck[1];
            c->commit_pages = commit;
        }
    }
    return done;
}

void lc_wal_frame_encode(const struct lc_wal_hdr *h, uint32_t pgno, uint32_t commit,
                         const uint8_t *page, uint32_t ck[2], uint8_t *out)
{
    lc_put32be(out, pgno);
    lc_put32be(out + 4, commit);
    lc_put32be(out + 8, h->salt1);
    lc_put32be(out + 12, h->salt2);
    memcpy(out + LC_WAL_FRAME_HDR_SIZE, page, h->page_size);
    lc_wal_checksum(h->big_endian, out, 8, ck);
    lc_wal_checksum(h->big_endian, page, h->page_size, ck);
    lc_put32be(out + 16, ck[0]);
    lc_put32be(out + 20, ck[1]);
}
