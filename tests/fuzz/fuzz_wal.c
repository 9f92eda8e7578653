/* fuzz_wal: the WAL header parser and the frame cursor (src/wal.c) over hostile bytes.
 *
 * The first input byte picks a mode:
 *   even  raw: the rest is a WAL file. Parse the header; when it parses, re-encoding it
 *         must give the same 32 bytes, and the cursor is run over the frames twice, once
 *         in one call and once in chunks whose sizes come from the input, and then
 *         resumed from its last commit: all three walks must agree.
 *   odd   built: the rest describes a WAL (page size, byte order, salts, then per frame a
 *         page number, a commit flag and an optional defect) that the harness encodes
 *         with valid checksums. The cursor must accept exactly the frames before the first
 *         defect and stop for the right reason, with commit_off at the end of the last
 *         commit frame before it. A failure aborts (libFuzzer reports the input). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_WAL ((size_t)1 << 20) /* bytes of WAL a built input may expand to */

#define CHECK(c)                                                                            \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            fprintf(stderr, "fuzz_wal: check failed at line %d: %s\n", __LINE__, #c);       \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* Bytes of the input, consumed front to back; zeros once it runs out. */
struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t take8(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint32_t take32(struct in *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | take8(in);
    return v;
}

static void cursor_invariants(const struct lc_wal_cursor *c, uint64_t start)
{
    uint64_t fsz = lc_wal_frame_size(c->page_size);

    CHECK(c->off >= start && c->commit_off >= start);
    CHECK(c->commit_off <= c->off);
    CHECK((c->off - LC_WAL_HDR_SIZE) % fsz == 0);
    CHECK((c->commit_off - LC_WAL_HDR_SIZE) % fsz == 0);
    CHECK(c->frames == (c->off - start) / fsz);
}

/* Feed buf to a fresh cursor in chunks; chunk sizes are drawn from sizes[]. */
static size_t feed_chunked(struct lc_wal_cursor *c, const uint8_t *buf, size_t len,
                           const uint8_t *sizes, size_t nsizes)
{
    size_t pos = 0, k = 0, acc = 0;
    size_t fsz = (size_t)lc_wal_frame_size(c->page_size);

    /* whole frames from c->off on: hand over a frame-aligned prefix of what is left,
     * at least one frame when one is left */
    while (pos + fsz <= len && c->stop == LC_WAL_OK) {
        size_t frames = nsizes ? (size_t)sizes[k++ % nsizes] % 4 + 1 : 1;
        size_t n = frames * fsz;
        if (n > len - pos)
            n = (len - pos) / fsz * fsz;
        size_t got = lc_wal_cursor_feed(c, buf + pos, n);
        acc += got;
        if (got < n)
            break;
        pos += n;
    }
    return acc;
}

static void raw_mode(const uint8_t *data, size_t size)
{
    struct lc_wal_hdr h;
    struct lc_error err = {0};
    uint8_t enc[LC_WAL_HDR_SIZE];

    if (lc_wal_hdr_parse(data, size, &h, &err) != 0) {
        CHECK(err.code == LC_ECORRUPT);
        CHECK(strncmp(err.msg, "wal header: ", 12) == 0);
        return;
    }
    CHECK(size >= LC_WAL_HDR_SIZE);
    CHECK(h.page_size >= 512 && h.page_size <= 65536 && (h.page_size & (h.page_size - 1)) == 0);
    CHECK(h.big_endian == (h.magic == LC_WAL_MAGIC_BE));
    lc_wal_hdr_encode(&h, enc);
    CHECK(memcmp(enc, data, LC_WAL_HDR_SIZE) == 0);

    const uint8_t *frames = data + LC_WAL_HDR_SIZE;
    size_t flen = size - LC_WAL_HDR_SIZE;
    size_t fsz = (size_t)lc_wal_frame_size(h.page_size);
    struct lc_wal_cursor a, b, r;

    lc_wal_cursor_init(&a, &h, LC_WAL_HDR_SIZE, h.cksum);
    size_t got = lc_wal_cursor_feed(&a, frames, flen);
    CHECK(got % fsz == 0 && got <= flen);
    CHECK(a.off == LC_WAL_HDR_SIZE + got);
    cursor_invariants(&a, LC_WAL_HDR_SIZE);
    if (got + fsz <= flen)
        CHECK(a.stop != LC_WAL_OK); /* a whole frame left over means it stopped */
    /* a stopped cursor stays stopped */
    if (a.stop != LC_WAL_OK) {
        struct lc_wal_cursor s = a;
        CHECK(lc_wal_cursor_feed(&s, frames + got, flen - got) == 0);
        CHECK(s.off == a.off && s.stop == a.stop);
    }

    /* the same walk in chunks */
    lc_wal_cursor_init(&b, &h, LC_WAL_HDR_SIZE, h.cksum);
    size_t got2 = feed_chunked(&b, frames, flen, data + 24, 8);
    CHECK(got2 == got);
    CHECK(b.off == a.off && b.commit_off == a.commit_off && b.frames == a.frames);
    CHECK(b.ck[0] == a.ck[0] && b.ck[1] == a.ck[1]);
    CHECK(b.commit_ck[0] == a.commit_ck[0] && b.commit_ck[1] == a.commit_ck[1]);
    CHECK(b.stop == a.stop && b.commit_pages == a.commit_pages);

    /* resume from the last commit, seeded with the checksum stored in its frame */
    if (a.commit_off > LC_WAL_HDR_SIZE) {
        uint32_t ck[2];
        lc_wal_frame_cksum(data + a.commit_off - fsz, ck);
        CHECK(ck[0] == a.commit_ck[0] && ck[1] == a.commit_ck[1]);
        lc_wal_cursor_init(&r, &h, a.commit_off, ck);
        size_t rest = flen - (size_t)(a.commit_off - LC_WAL_HDR_SIZE);
        size_t got3 = lc_wal_cursor_feed(&r, data + a.commit_off, rest);
        CHECK(r.off == a.off && r.stop == a.stop);
        CHECK(r.ck[0] == a.ck[0] && r.ck[1] == a.ck[1]);
        CHECK(got3 == (size_t)(a.off - a.commit_off));
        cursor_invariants(&r, a.commit_off);
    }
    CHECK(lc_wal_frame_align(a.off + fsz - 1, h.page_size) == a.off);
    CHECK(lc_wal_frame_align(7, h.page_size) == 0);
}

enum defect { D_NONE, D_SALT1, D_SALT2, D_CKSUM, D_PAGE, D_PGNO0 };

static void built_mode(const uint8_t *data, size_t size)
{
    struct in in = {data, size};
    struct lc_wal_hdr h;
    uint8_t b0 = take8(&in);
    uint32_t shift = 9 + (uint32_t)(b0 & 7);         /* 512 .. 65536 */

    memset(&h, 0, sizeof(h));
    if (b0 & 0x80)
        shift = 9;                                   /* mostly small pages: more frames */
    h.magic = (b0 & 0x08) ? LC_WAL_MAGIC_BE : LC_WAL_MAGIC_LE;
    h.version = LC_WAL_VERSION;
    h.page_size = 1u << shift;
    h.ckpt_seq = take32(&in);
    h.salt1 = take32(&in);
    h.salt2 = take32(&in);

    size_t fsz = (size_t)lc_wal_frame_size(h.page_size);
    size_t maxf = (MAX_WAL - LC_WAL_HDR_SIZE) / fsz;
    size_t nframes = take8(&in) % 32;
    if (nframes > maxf)
        nframes = maxf;
    size_t len = LC_WAL_HDR_SIZE + nframes * fsz;
    uint8_t *wal = calloc(1, len);
    uint8_t *page = malloc(h.page_size);
    CHECK(wal && page);

    lc_wal_hdr_encode(&h, wal);
    struct lc_error err = {0};
    struct lc_wal_hdr parsed;
    CHECK(lc_wal_hdr_parse(wal, len, &parsed, &err) == 0);
    h = parsed;

    uint32_t ck[2] = {h.cksum[0], h.cksum[1]};
    size_t first_bad = nframes, last_commit = 0; /* frames up to last_commit (count) */
    enum defect why = D_NONE;
    uint32_t commit_pages = 0;
    for (size_t i = 0; i < nframes; i++) {
        uint8_t ctl = take8(&in);
        uint32_t pgno = (uint32_t)take8(&in) + 1;
        uint32_t commit = (ctl & 1) ? pgno + (ctl >> 4) : 0;
        enum defect d = (ctl >> 1) % 16 < 6 ? (enum defect)((ctl >> 1) % 16) : D_NONE;
        uint8_t *f = wal + LC_WAL_HDR_SIZE + i * fsz;

        for (uint32_t k = 0; k < h.page_size; k++)
            page[k] = in.n ? in.p[k % in.n] : (uint8_t)(k * 31 + i);
        take8(&in);
        lc_wal_frame_encode(&h, d == D_PGNO0 ? 0 : pgno, commit, page, ck, f);
        switch (d) {
        case D_SALT1:
            f[8] ^= 0x5a;
            break;
        case D_SALT2:
            f[15] ^= 0x01;
            break;
        case D_CKSUM:
            f[16 + (ctl >> 5) % 8] ^= 0x80;
            break;
        case D_PAGE:
            f[LC_WAL_FRAME_HDR_SIZE + (size_t)ctl * 7 % h.page_size] ^= 0x10;
            break;
        default:
            break;
        }
        if (d != D_NONE && first_bad == nframes) {
            first_bad = i;
            why = d;
        }
        if (first_bad == nframes && commit) {
            last_commit = i + 1;
            commit_pages = commit;
        }
    }

    struct lc_wal_cursor c;
    lc_wal_cursor_init(&c, &h, LC_WAL_HDR_SIZE, h.cksum);
    size_t got = feed_chunked(&c, wal + LC_WAL_HDR_SIZE, len - LC_WAL_HDR_SIZE, in.p,
                              in.n < 16 ? in.n : 16);
    CHECK(got == first_bad * fsz);
    CHECK(c.frames == first_bad);
    CHECK(c.commit_off == LC_WAL_HDR_SIZE + last_commit * fsz);
    CHECK(c.commit_pages == commit_pages);
    if (why == D_NONE)
        CHECK(c.stop == LC_WAL_OK);
    else if (why == D_SALT1 || why == D_SALT2)
        CHECK(c.stop == LC_WAL_SALT);
    else
        CHECK(c.stop == LC_WAL_CKSUM);
    cursor_invariants(&c, LC_WAL_HDR_SIZE);

    /* a flipped header byte in [0,24) must fail the header checksum (or an earlier check) */
    if (len >= LC_WAL_HDR_SIZE && size) {
        size_t at = data[size - 1] % 24;
        wal[at] ^= (uint8_t)(1u << (data[size - 1] >> 5));
        CHECK(lc_wal_hdr_parse(wal, len, &parsed, &err) == LC_ECORRUPT);
    }
    free(page);
    free(wal);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        struct lc_wal_hdr h;
        struct lc_error err = {0};
        CHECK(lc_wal_hdr_parse(NULL, 0, &h, &err) == LC_ECORRUPT);
        return 0;
    }
    if (data[0] & 1)
        built_mode(data + 1, size - 1);
    else
        raw_mode(data + 1, size - 1);
    return 0;
}
