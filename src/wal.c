/* wal: the SQLite write-ahead log format, as bytes. Pure code: no I/O, no allocation.
 *
 * THE FILE
 *
 * A WAL file is a 32-byte header followed by zero or more frames. Every integer in it is
 * an unsigned 32-bit big-endian value, whatever the host or the checksum byte order.
 *
 *   header, 32 bytes
 *     [ 0: 4]  magic: 0x377f0682 or 0x377f0683 (see CHECKSUM)
 *     [ 4: 8]  format version, always 3007000 (0x002de218)
 *     [ 8:12]  database page size P, a power of two in 512..65536
 *     [12:16]  checkpoint sequence number
 *     [16:20]  salt-1
 *     [20:24]  salt-2
 *     [24:28]  checksum s0 of bytes [0,24), starting from (0, 0)
 *     [28:32]  checksum s1
 *
 *   frame, 24 + P bytes, the first at offset 32, frame k at 32 + k * (24 + P)
 *     [ 0: 4]  page number (never 0)
 *     [ 4: 8]  commit size: the database size in pages after the transaction, on the
 *              last frame of a transaction (a "commit frame"); 0 on every other frame
 *     [ 8:12]  salt-1, a copy of the header's
 *     [12:16]  salt-2, a copy of the header's
 *     [16:20]  cumulative checksum s0
 *     [20:24]  cumulative checksum s1
 *     [24:24+P] the page image
 *
 * Page size 65536 is written as 65536 here (the database header stores it as 1).
 *
 * CHECKSUM
 *
 * The checksum is a running pair (s0, s1) of 32-bit words, updated with wraparound over
 * 8-byte units, each unit read as two words a and b:
 *
 *     s0 += a + s1;
 *     s1 += b + s0;
 *
 * SQLite reads the words in the host's native order and records which that was in the
 * magic's low bit: 0x377f0682 means the words are little-endian, 0x377f0683 big-endian.
 * A reader on any host must honour the magic, not its own byte order. The header's pair
 * covers header bytes [0,24) starting from (0, 0). Each frame's pair continues from the
 * previous frame's (the header's for the first frame) over frame-header bytes [0,8) and
 * then the page; the salts and the stored checksum itself are not summed. So the pair
 * stored in frame k vouches for the header and every frame before it: a valid frame at
 * offset X proves the whole prefix [0, X + 24 + P) is one unbroken chain.
 *
 * SALTS AND RESTARTS
 *
 * When a writer finds the WAL fully back-filled into the database and no reader using
 * it, it restarts the log: it rewrites the header with checkpoint sequence + 1, salt-1
 * + 1 and a fresh random salt-2, and writes new frames from offset 32 over the old ones.
 * The file is not shrunk (only TRUNCATE checkpoints and journal_size_limit do that), so
 * frames of the previous incarnation, carrying the old salts, may remain beyond the new
 * end. One (header, salts) pair is an "incarnation"; its valid frames are exactly the
 * prefix of frames whose salts equal the header's and whose checksums continue the
 * chain. The first frame to fail either test, or with page number 0 (SQLite's recovery
 * rejects such a frame too), ends the incarnation: nothing after it is ever trusted,
 * even if a later frame happens to look valid.
 *
 * COMMITS
 *
 * A transaction is a run of frames ending with a commit frame. SQLite treats frames
 * after the last valid commit frame as absent: a reader's snapshot ends at a commit
 * frame, and recovery discards an unfinished tail. A copy of the WAL therefore only
 * ever extends to the end of the last valid commit frame. Copying further would ship
 * half a transaction that may still be rolled back, or be overwritten in place by the
 * writer, and a restore would then replay bytes the source never committed. Each shadow
 * WAL and every segment made from it ends on a commit frame, and the checksum pair at
 * that point seeds the verification of the next copy.
 *
 * THE CURSOR
 *
 * struct lc_wal_cursor walks one incarnation. It is seeded with an offset and the pair
 * that ends there (the header's pair at offset 32, otherwise the pair stored in the frame
 * ending at that offset), so a scan can resume mid-file without rereading the prefix.
 * Invariants, asserted below:
 *   - off and commit_off are frame-aligned: 32 + k * (24 + P) for some k >= 0;
 *   - commit_off <= off, and commit_ck is the running pair at commit_off;
 *   - once stop is set it never clears, and off no longer moves. */
#include "wal.h"

#include <assert.h>
#include <string.h>

static int page_size_ok(uint32_t p)
{
    return p >= 512 && p <= 65536 && (p & (p - 1)) == 0;
}

static int aligned(uint64_t off, uint32_t page_size)
{
    return off >= LC_WAL_HDR_SIZE && (off - LC_WAL_HDR_SIZE) % lc_wal_frame_size(page_size) == 0;
}

static uint32_t get32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void lc_wal_checksum(int big_endian, const uint8_t *buf, size_t n, uint32_t s[2])
{
    uint32_t s0 = s[0], s1 = s[1];

    assert(n % 8 == 0);
    assert(buf != NULL || n == 0);
    if (big_endian) {
        for (size_t i = 0; i < n; i += 8) {
            s0 += lc_get32be(buf + i) + s1;
            s1 += lc_get32be(buf + i + 4) + s0;
        }
    } else {
        for (size_t i = 0; i < n; i += 8) {
            s0 += get32le(buf + i) + s1;
            s1 += get32le(buf + i + 4) + s0;
        }
    }
    s[0] = s0;
    s[1] = s1;
}

int lc_wal_hdr_parse(const uint8_t *buf, size_t len, struct lc_wal_hdr *h, struct lc_error *err)
{
    struct lc_wal_hdr v;
    uint32_t ck[2] = {0, 0};

    assert(h != NULL);
    if (buf == NULL || len < LC_WAL_HDR_SIZE)
        return lc_err_set(err, LC_ECORRUPT, "wal header: short buffer (%zu of %d bytes)",
                          buf ? len : 0, LC_WAL_HDR_SIZE);
    memset(&v, 0, sizeof(v));
    v.magic = lc_get32be(buf);
    if (v.magic != LC_WAL_MAGIC_LE && v.magic != LC_WAL_MAGIC_BE)
        return lc_err_set(err, LC_ECORRUPT, "wal header: bad magic 0x%08x", v.magic);
    v.big_endian = v.magic == LC_WAL_MAGIC_BE;
    v.version = lc_get32be(buf + 4);
    if (v.version != LC_WAL_VERSION)
        return lc_err_set(err, LC_ECORRUPT, "wal header: bad version %u", v.version);
    v.page_size = lc_get32be(buf + 8);
    if (!page_size_ok(v.page_size))
        return lc_err_set(err, LC_ECORRUPT, "wal header: bad page size %u", v.page_size);
    v.ckpt_seq = lc_get32be(buf + 12);
    v.salt1 = lc_get32be(buf + 16);
    v.salt2 = lc_get32be(buf + 20);
    v.cksum[0] = lc_get32be(buf + 24);
    v.cksum[1] = lc_get32be(buf + 28);
    lc_wal_checksum(v.big_endian, buf, 24, ck);
    if (ck[0] != v.cksum[0] || ck[1] != v.cksum[1])
        return lc_err_set(err, LC_ECORRUPT,
                          "wal header: bad checksum 0x%08x%08x (computed 0x%08x%08x)",
                          v.cksum[0], v.cksum[1], ck[0], ck[1]);
    *h = v;
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
    /* the magic, not h->big_endian, decides: the two must never disagree on disk */
    lc_wal_checksum(h->magic == LC_WAL_MAGIC_BE, out, 24, ck);
    lc_put32be(out + 24, ck[0]);
    lc_put32be(out + 28, ck[1]);
}

uint64_t lc_wal_frame_align(uint64_t off, uint32_t page_size)
{
    uint64_t fsz = lc_wal_frame_size(page_size);

    assert(page_size_ok(page_size));
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
    assert(page_size_ok(h->page_size));
    assert(aligned(off, h->page_size));
    memset(c, 0, sizeof(*c));
    c->page_size = h->page_size;
    c->big_endian = h->big_endian;
    c->salt1 = h->salt1;
    c->salt2 = h->salt2;
    c->ck[0] = c->commit_ck[0] = ck[0];
    c->ck[1] = c->commit_ck[1] = ck[1];
    c->off = c->commit_off = off;
    c->stop = LC_WAL_OK;
}

size_t lc_wal_cursor_feed(struct lc_wal_cursor *c, const uint8_t *buf, size_t len)
{
    size_t fsz = (size_t)lc_wal_frame_size(c->page_size), done = 0;

    assert(buf != NULL || len == 0);
    assert(aligned(c->off, c->page_size) && aligned(c->commit_off, c->page_size));
    assert(c->commit_off <= c->off);
    while (c->stop == LC_WAL_OK && len - done >= fsz) {
        const uint8_t *f = buf + done;
        uint32_t ck[2] = {c->ck[0], c->ck[1]};
        uint32_t commit = lc_wal_frame_commit(f);

        if (lc_get32be(f + 8) != c->salt1 || lc_get32be(f + 12) != c->salt2) {
            c->stop = LC_WAL_SALT;
            break;
        }
        lc_wal_checksum(c->big_endian, f, 8, ck);
        lc_wal_checksum(c->big_endian, f + LC_WAL_FRAME_HDR_SIZE, c->page_size, ck);
        if (ck[0] != lc_get32be(f + 16) || ck[1] != lc_get32be(f + 20) ||
            lc_wal_frame_pgno(f) == 0) {
            c->stop = LC_WAL_CKSUM;
            break;
        }
        c->ck[0] = ck[0];
        c->ck[1] = ck[1];
        c->off += fsz;
        c->frames++;
        done += fsz;
        if (commit != 0) {
            c->commit_off = c->off;
            c->commit_ck[0] = ck[0];
            c->commit_ck[1] = ck[1];
            c->commit_pages = commit;
        }
    }
    assert(done % fsz == 0 && done <= len);
    return done;
}

void lc_wal_frame_encode(const struct lc_wal_hdr *h, uint32_t pgno, uint32_t commit,
                         const uint8_t *page, uint32_t ck[2], uint8_t *out)
{
    int be = h->magic == LC_WAL_MAGIC_BE;

    assert(page_size_ok(h->page_size));
    lc_put32be(out, pgno);
    lc_put32be(out + 4, commit);
    lc_put32be(out + 8, h->salt1);
    lc_put32be(out + 12, h->salt2);
    if (out + LC_WAL_FRAME_HDR_SIZE != page)
        memmove(out + LC_WAL_FRAME_HDR_SIZE, page, h->page_size);
    lc_wal_checksum(be, out, 8, ck);
    lc_wal_checksum(be, out + LC_WAL_FRAME_HDR_SIZE, h->page_size, ck);
    lc_put32be(out + 16, ck[0]);
    lc_put32be(out + 20, ck[1]);
}
