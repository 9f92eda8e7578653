/* Unit tests for src/wal.c: header parsing for both checksum byte orders and every page
 * size, the frame cursor (commits, salts, checksum breaks, partial and uncommitted tails,
 * mid-file resume), frame alignment, and a cross-check against WAL files written by the
 * real libsqlite3. Checksums are also recomputed here by an independent implementation
 * so the encoder and the cursor cannot agree on a shared mistake. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "wal.h"

/* ------------------------------------------------------------------------------------ */
/* Helpers                                                                               */

/* The checksum as SQLite's walChecksumBytes() computes it, written out longhand. */
static void ref_checksum(int big_endian, const uint8_t *p, size_t n, uint32_t s[2])
{
    for (size_t i = 0; i < n; i += 8) {
        uint32_t a, b;
        if (big_endian) {
            a = (uint32_t)p[i] << 24 | (uint32_t)p[i + 1] << 16 | (uint32_t)p[i + 2] << 8 |
                p[i + 3];
            b = (uint32_t)p[i + 4] << 24 | (uint32_t)p[i + 5] << 16 | (uint32_t)p[i + 6] << 8 |
                p[i + 7];
        } else {
            a = (uint32_t)p[i + 3] << 24 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 1] << 8 |
                p[i];
            b = (uint32_t)p[i + 7] << 24 | (uint32_t)p[i + 6] << 16 | (uint32_t)p[i + 5] << 8 |
                p[i + 4];
        }
        s[0] += a + s[1];
        s[1] += b + s[0];
    }
}

static struct lc_wal_hdr mkhdr(uint32_t magic, uint32_t page_size, uint32_t salt1, uint32_t salt2)
{
    struct lc_wal_hdr h;
    memset(&h, 0, sizeof(h));
    h.magic = magic;
    h.version = LC_WAL_VERSION;
    h.page_size = page_size;
    h.ckpt_seq = 7;
    h.salt1 = salt1;
    h.salt2 = salt2;
    h.big_endian = magic == LC_WAL_MAGIC_BE;
    return h;
}

static uint32_t rng_state = 0x12345678u;

static uint32_t rng(void)
{
    /* xorshift32: deterministic test data */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* An in-memory WAL under construction. */
struct wal {
    struct lc_wal_hdr h; /* parsed back from the encoded header, so cksum is filled */
    uint8_t *buf;        /* header + frames */
    size_t len;
    size_t cap;
    uint32_t ck[2]; /* running checksum after the last frame */
};

static void wal_init(struct wal *w, uint32_t magic, uint32_t page_size)
{
    struct lc_wal_hdr h = mkhdr(magic, page_size, 0xa36c6aedu, 0x5eed1234u);
    struct lc_error err = {0};

    memset(w, 0, sizeof(*w));
    w->cap = LC_WAL_HDR_SIZE + 16 * (size_t)lc_wal_frame_size(page_size);
    w->buf = malloc(w->cap);
    assert_non_null(w->buf);
    lc_wal_hdr_encode(&h, w->buf);
    assert_int_equal(lc_wal_hdr_parse(w->buf, LC_WAL_HDR_SIZE, &w->h, &err), 0);
    w->len = LC_WAL_HDR_SIZE;
    w->ck[0] = w->h.cksum[0];
    w->ck[1] = w->h.cksum[1];
}

/* Append a frame written with header h (whose salts may differ from w->h's). */
static uint8_t *wal_frame_as(struct wal *w, const struct lc_wal_hdr *h, uint32_t pgno,
                             uint32_t commit)
{
    size_t fsz = (size_t)lc_wal_frame_size(w->h.page_size);
    uint8_t *page = malloc(w->h.page_size), *f;

    assert_non_null(page);
    if (w->len + fsz > w->cap) {
        w->cap *= 2;
        w->buf = realloc(w->buf, w->cap);
        assert_non_null(w->buf);
    }
    for (uint32_t i = 0; i < w->h.page_size; i += 4) {
        uint32_t r = rng();
        memcpy(page + i, &r, 4);
    }
    f = w->buf + w->len;
    lc_wal_frame_encode(h, pgno, commit, page, w->ck, f);
    free(page);
    w->len += fsz;
    return f;
}

static uint8_t *wal_frame(struct wal *w, uint32_t pgno, uint32_t commit)
{
    return wal_frame_as(w, &w->h, pgno, commit);
}

static void wal_free(struct wal *w)
{
    free(w->buf);
    w->buf = NULL;
}

static const uint32_t magics[2] = {LC_WAL_MAGIC_LE, LC_WAL_MAGIC_BE};

/* ------------------------------------------------------------------------------------ */
/* Header                                                                                */

static void test_hdr_roundtrip(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        for (uint32_t ps = 512; ps <= 65536; ps <<= 1) {
            struct lc_wal_hdr in = mkhdr(magics[m], ps, 0xdeadbeefu ^ ps, 0x01020304u + ps);
            struct lc_wal_hdr out;
            struct lc_error err = {0};
            uint8_t buf[LC_WAL_HDR_SIZE];
            uint32_t ck[2] = {0, 0};

            in.ckpt_seq = ps / 512;
            lc_wal_hdr_encode(&in, buf);
            /* every field big-endian on disk, whatever the checksum order */
            assert_int_equal(lc_get32be(buf), magics[m]);
            assert_int_equal(lc_get32be(buf + 4), 3007000);
            assert_int_equal(lc_get32be(buf + 8), ps);
            ref_checksum(magics[m] == LC_WAL_MAGIC_BE, buf, 24, ck);
            assert_int_equal(lc_get32be(buf + 24), ck[0]);
            assert_int_equal(lc_get32be(buf + 28), ck[1]);

            memset(&out, 0xee, sizeof(out));
            assert_int_equal(lc_wal_hdr_parse(buf, sizeof(buf), &out, &err), 0);
            assert_int_equal(out.magic, magics[m]);
            assert_int_equal(out.version, LC_WAL_VERSION);
            assert_int_equal(out.page_size, ps);
            assert_int_equal(out.ckpt_seq, ps / 512);
            assert_int_equal(out.salt1, in.salt1);
            assert_int_equal(out.salt2, in.salt2);
            assert_int_equal(out.cksum[0], ck[0]);
            assert_int_equal(out.cksum[1], ck[1]);
            assert_int_equal(out.big_endian, m == 1);

            /* a longer buffer (a whole file) parses the same */
            uint8_t big[LC_WAL_HDR_SIZE + 100];
            memcpy(big, buf, sizeof(buf));
            memset(big + sizeof(buf), 0x5a, 100);
            assert_int_equal(lc_wal_hdr_parse(big, sizeof(big), &out, &err), 0);
            assert_int_equal(out.page_size, ps);
        }
    }
}

/* A header written by libsqlite3 3.40 on x86-64 (page size 4096, first WAL of a db). */
static void test_hdr_known_vector(void **state)
{
    static const uint8_t buf[LC_WAL_HDR_SIZE] = {
        0x37, 0x7f, 0x06, 0x82, 0x00, 0x2d, 0xe2, 0x18, /* magic, version */
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, /* page size, checkpoint seq */
        0x3c, 0x92, 0xe5, 0x94, 0xb9, 0x5b, 0xbc, 0x30, /* salts */
        0x69, 0xcc, 0x95, 0x4f, 0x52, 0x70, 0xc8, 0xad, /* checksum */
    };
    struct lc_wal_hdr h;
    struct lc_error err = {0};
    uint8_t again[LC_WAL_HDR_SIZE];

    (void)state;
    assert_int_equal(lc_wal_hdr_parse(buf, sizeof(buf), &h, &err), 0);
    assert_int_equal(h.magic, LC_WAL_MAGIC_LE);
    assert_int_equal(h.big_endian, 0);
    assert_int_equal(h.version, 3007000);
    assert_int_equal(h.page_size, 4096);
    assert_int_equal(h.ckpt_seq, 0);
    assert_int_equal(h.salt1, 0x3c92e594u);
    assert_int_equal(h.salt2, 0xb95bbc30u);
    assert_int_equal(h.cksum[0], 0x69cc954fu);
    assert_int_equal(h.cksum[1], 0x5270c8adu);
    lc_wal_hdr_encode(&h, again);
    assert_memory_equal(again, buf, sizeof(buf));
}

/* The two byte orders really differ: the same fields give different checksums, and a
 * header whose magic is flipped to the other order fails its checksum. */
static void test_hdr_byte_order_matters(void **state)
{
    struct lc_wal_hdr le = mkhdr(LC_WAL_MAGIC_LE, 4096, 1, 2);
    struct lc_wal_hdr be = mkhdr(LC_WAL_MAGIC_BE, 4096, 1, 2);
    struct lc_wal_hdr out;
    struct lc_error err = {0};
    uint8_t a[LC_WAL_HDR_SIZE], b[LC_WAL_HDR_SIZE];

    (void)state;
    lc_wal_hdr_encode(&le, a);
    lc_wal_hdr_encode(&be, b);
    assert_memory_not_equal(a + 24, b + 24, 8);
    lc_put32be(a, LC_WAL_MAGIC_BE);
    assert_int_equal(lc_wal_hdr_parse(a, sizeof(a), &out, &err), LC_ECORRUPT);
    assert_non_null(strstr(err.msg, "checksum"));
    lc_put32be(b, LC_WAL_MAGIC_LE);
    assert_int_equal(lc_wal_hdr_parse(b, sizeof(b), &out, &err), LC_ECORRUPT);
    assert_non_null(strstr(err.msg, "checksum"));

    /* the encoder follows the magic, not a disagreeing big_endian flag */
    le.big_endian = 1;
    lc_wal_hdr_encode(&le, a);
    assert_int_equal(lc_wal_hdr_parse(a, sizeof(a), &out, &err), 0);
    assert_int_equal(out.big_endian, 0);
}

static void expect_reject(const uint8_t *buf, size_t len, const char *what)
{
    struct lc_wal_hdr out;
    struct lc_error err = {0};

    memset(&out, 0xab, sizeof(out));
    assert_int_equal(lc_wal_hdr_parse(buf, len, &out, &err), LC_ECORRUPT);
    assert_int_equal(err.code, LC_ECORRUPT);
    if (strstr(err.msg, what) == NULL) fail_msg("expected \"%s\" in \"%s\"", what, err.msg);
    assert_non_null(strstr(err.msg, "wal header"));
    /* the output is untouched on failure */
    for (size_t i = 0; i < sizeof(out); i++)
        assert_int_equal(((const uint8_t *)&out)[i], 0xab);
}

static void test_hdr_rejects(void **state)
{
    static const uint32_t bad_sizes[] = {0,    1,     256,   511,    513,         1000,       4095,
                                         4097, 65535, 65537, 131072, 0x80000000u, 0xffffffffu};
    uint8_t buf[LC_WAL_HDR_SIZE];
    struct lc_wal_hdr h;

    (void)state;
    /* bad magic, with a valid checksum so only the magic is wrong */
    static const uint32_t bad_magics[] = {0, 0x377f0681u, 0x377f0684u, 0x82067f37u,
                                          0xd9d505f9u /* rollback journal */};
    for (size_t i = 0; i < sizeof(bad_magics) / sizeof(bad_magics[0]); i++) {
        h = mkhdr(bad_magics[i], 4096, 1, 2);
        lc_wal_hdr_encode(&h, buf);
        expect_reject(buf, sizeof(buf), "magic");
    }
    /* bad version */
    static const uint32_t bad_versions[] = {0, 3007001u, 3006999u, 3008000u};
    for (int m = 0; m < 2; m++) {
        for (size_t i = 0; i < sizeof(bad_versions) / sizeof(bad_versions[0]); i++) {
            h = mkhdr(magics[m], 4096, 1, 2);
            h.version = bad_versions[i];
            lc_wal_hdr_encode(&h, buf);
            expect_reject(buf, sizeof(buf), "version");
        }
    }
    /* bad page sizes */
    for (int m = 0; m < 2; m++) {
        for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
            h = mkhdr(magics[m], bad_sizes[i], 1, 2);
            lc_wal_hdr_encode(&h, buf);
            expect_reject(buf, sizeof(buf), "page size");
        }
    }
    /* checksum mismatch: any single bit in [12,32) (fields checked after the magic,
     * version and page size) breaks it */
    for (int m = 0; m < 2; m++) {
        h = mkhdr(magics[m], 4096, 0x11111111u, 0x22222222u);
        for (int byte = 12; byte < 32; byte++) {
            for (int bit = 0; bit < 8; bit++) {
                lc_wal_hdr_encode(&h, buf);
                buf[byte] ^= (uint8_t)(1u << bit);
                expect_reject(buf, sizeof(buf), "checksum");
            }
        }
    }
    /* short buffer */
    h = mkhdr(LC_WAL_MAGIC_LE, 4096, 1, 2);
    lc_wal_hdr_encode(&h, buf);
    for (size_t n = 0; n < LC_WAL_HDR_SIZE; n++)
        expect_reject(buf, n, "short");
    expect_reject(NULL, 0, "short");
    expect_reject(NULL, 32, "short");
}

/* A NULL error pointer is allowed. */
static void test_hdr_null_err(void **state)
{
    uint8_t buf[LC_WAL_HDR_SIZE] = {0};
    struct lc_wal_hdr h;

    (void)state;
    assert_int_equal(lc_wal_hdr_parse(buf, sizeof(buf), &h, NULL), LC_ECORRUPT);
}

/* ------------------------------------------------------------------------------------ */
/* Frames and the cursor                                                                 */

static void test_frame_encode(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        struct wal w;
        uint32_t ck[2];

        wal_init(&w, magics[m], 512);
        ck[0] = w.ck[0];
        ck[1] = w.ck[1];
        uint8_t *f = wal_frame(&w, 42, 0);
        assert_int_equal(lc_wal_frame_pgno(f), 42);
        assert_int_equal(lc_wal_frame_commit(f), 0);
        assert_int_equal(lc_get32be(f + 8), w.h.salt1);
        assert_int_equal(lc_get32be(f + 12), w.h.salt2);
        /* independent recomputation: header [0,8) then the page, salts skipped */
        ref_checksum(m == 1, f, 8, ck);
        ref_checksum(m == 1, f + LC_WAL_FRAME_HDR_SIZE, 512, ck);
        uint32_t got[2];
        lc_wal_frame_cksum(f, got);
        assert_int_equal(got[0], ck[0]);
        assert_int_equal(got[1], ck[1]);
        assert_int_equal(w.ck[0], ck[0]);
        assert_int_equal(w.ck[1], ck[1]);

        /* a commit frame, then in-place encoding (page already at out + 24) */
        uint8_t *g = wal_frame(&w, 3, 9);
        assert_int_equal(lc_wal_frame_commit(g), 9);
        uint8_t copy[24 + 512];
        uint32_t ck2[2];
        memcpy(copy, g, sizeof(copy));
        lc_wal_frame_cksum(f, ck2);
        memset(copy, 0, 24);
        lc_wal_frame_encode(&w.h, 3, 9, copy + 24, ck2, copy);
        assert_memory_equal(copy, g, sizeof(copy));

        /* lc_wal_checksum agrees with the reference over odd content */
        uint32_t a[2] = {0xffffffffu, 0x80000000u}, b[2] = {0xffffffffu, 0x80000000u};
        lc_wal_checksum(m == 1, w.buf, w.len - (w.len % 8), a);
        ref_checksum(m == 1, w.buf, w.len - (w.len % 8), b);
        assert_int_equal(a[0], b[0]);
        assert_int_equal(a[1], b[1]);
        lc_wal_checksum(m == 1, NULL, 0, a);
        assert_int_equal(a[0], b[0]);
        wal_free(&w);
    }
}

static void test_cursor_chain(void **state)
{
    static const uint32_t sizes[] = {512, 4096, 65536};

    (void)state;
    for (int m = 0; m < 2; m++) {
        for (size_t s = 0; s < 3; s++) {
            struct wal w;
            struct lc_wal_cursor c;
            uint32_t ck[2];
            uint64_t fsz = lc_wal_frame_size(sizes[s]);

            wal_init(&w, magics[m], sizes[s]);
            wal_frame(&w, 1, 0);
            wal_frame(&w, 2, 0);
            wal_frame(&w, 3, 3); /* txn 1: 3 pages */
            wal_frame(&w, 4, 0);
            uint8_t *last = wal_frame(&w, 2, 4); /* txn 2: db now 4 pages */

            /* all at once */
            lc_wal_cursor_init(&c, &w.h, LC_WAL_HDR_SIZE, w.h.cksum);
            assert_int_equal(c.commit_off, LC_WAL_HDR_SIZE);
            assert_int_equal(c.commit_pages, 0);
            assert_int_equal(c.frames, 0);
            assert_int_equal(c.stop, LC_WAL_OK);
            assert_int_equal(c.page_size, sizes[s]);
            assert_int_equal(c.big_endian, m == 1);
            assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32, w.len - 32), w.len - 32);
            assert_int_equal(c.stop, LC_WAL_OK);
            assert_int_equal(c.frames, 5);
            assert_int_equal(c.off, w.len);
            assert_int_equal(c.off, 32 + 5 * fsz);
            assert_int_equal(c.commit_off, w.len);
            assert_int_equal(c.commit_pages, 4);
            lc_wal_frame_cksum(last, ck);
            assert_int_equal(c.commit_ck[0], ck[0]);
            assert_int_equal(c.commit_ck[1], ck[1]);
            assert_int_equal(c.ck[0], ck[0]);
            assert_int_equal(c.ck[1], ck[1]);

            /* frame by frame, checking commit_off after each */
            static const uint64_t commit_after[5] = {0, 0, 3, 3, 5};
            lc_wal_cursor_init(&c, &w.h, LC_WAL_HDR_SIZE, w.h.cksum);
            for (int i = 0; i < 5; i++) {
                assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32 + i * fsz, fsz), fsz);
                assert_int_equal(c.frames, i + 1);
                assert_int_equal(c.off, 32 + (i + 1) * fsz);
                assert_int_equal(c.commit_off, 32 + commit_after[i] * fsz);
                assert_int_equal(c.commit_pages, commit_after[i] ? (i < 4 ? 3 : 4) : 0);
            }
            /* nothing more to feed: zero bytes is a no-op */
            assert_int_equal(lc_wal_cursor_feed(&c, NULL, 0), 0);
            assert_int_equal(c.stop, LC_WAL_OK);
            assert_int_equal(c.frames, 5);
            wal_free(&w);
        }
    }
}

static void test_cursor_salt_mismatch(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        struct wal w;
        struct lc_wal_cursor c;
        uint64_t fsz = lc_wal_frame_size(1024);

        wal_init(&w, magics[m], 1024);
        wal_frame(&w, 1, 1);
        wal_frame(&w, 2, 2);
        /* a stale frame of the previous incarnation: old salt-1, checksum chained so that
         * only the salt is wrong */
        struct lc_wal_hdr old = w.h;
        old.salt1 -= 1;
        wal_frame_as(&w, &old, 3, 3);
        size_t good_end = w.len;
        wal_frame(&w, 4, 4); /* a valid-looking frame after the break */

        lc_wal_cursor_init(&c, &w.h, 32, w.h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32, w.len - 32), 2 * fsz);
        assert_int_equal(c.stop, LC_WAL_SALT);
        assert_int_equal(c.frames, 2);
        assert_int_equal(c.off, 32 + 2 * fsz);
        assert_int_equal(c.commit_off, 32 + 2 * fsz);
        assert_int_equal(c.commit_pages, 2);

        /* stays stopped: the next frames, even the valid-looking one, are refused */
        uint64_t off = c.off;
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + good_end, fsz), 0);
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + off, w.len - off), 0);
        assert_int_equal(c.stop, LC_WAL_SALT);
        assert_int_equal(c.off, off);
        assert_int_equal(c.frames, 2);

        /* salt-2 alone differing also stops */
        struct wal w2;
        wal_init(&w2, magics[m], 1024);
        old = w2.h;
        old.salt2 ^= 0x00010000u;
        wal_frame_as(&w2, &old, 1, 1);
        lc_wal_cursor_init(&c, &w2.h, 32, w2.h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, w2.buf + 32, w2.len - 32), 0);
        assert_int_equal(c.stop, LC_WAL_SALT);
        assert_int_equal(c.commit_off, 32);
        assert_int_equal(c.frames, 0);
        wal_free(&w2);
        wal_free(&w);
    }
}

static void test_cursor_checksum_break(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        /* which byte of frame 2 (of 3) to damage: page number, commit size, each checksum
         * word, first, middle and last page bytes */
        static const size_t spots[] = {0, 3, 4, 7, 16, 19, 20, 23, 24, 24 + 300, 24 + 511};
        for (size_t s = 0; s < sizeof(spots) / sizeof(spots[0]); s++) {
            struct wal w;
            struct lc_wal_cursor c;
            uint64_t fsz = lc_wal_frame_size(512);

            wal_init(&w, magics[m], 512);
            wal_frame(&w, 1, 1);
            uint8_t *f = wal_frame(&w, 2, 2);
            wal_frame(&w, 3, 3);
            f[spots[s]] ^= 0x40;

            lc_wal_cursor_init(&c, &w.h, 32, w.h.cksum);
            assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32, w.len - 32), fsz);
            assert_int_equal(c.stop, LC_WAL_CKSUM);
            assert_int_equal(c.frames, 1);
            assert_int_equal(c.off, 32 + fsz);
            assert_int_equal(c.commit_off, 32 + fsz);
            assert_int_equal(c.commit_pages, 1);
            /* frame 3 still carries a chain-valid checksum, but nothing after a break is
             * trusted, and the cursor never restarts */
            f[spots[s]] ^= 0x40;
            assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32 + fsz, 2 * fsz), 0);
            assert_int_equal(c.stop, LC_WAL_CKSUM);
            assert_int_equal(c.off, 32 + fsz);
            wal_free(&w);
        }

        /* page number 0 with an otherwise valid checksum ends the incarnation too */
        struct wal w;
        struct lc_wal_cursor c;
        wal_init(&w, magics[m], 512);
        wal_frame(&w, 1, 1);
        wal_frame(&w, 0, 2);
        lc_wal_cursor_init(&c, &w.h, 32, w.h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32, w.len - 32), lc_wal_frame_size(512));
        assert_int_equal(c.stop, LC_WAL_CKSUM);
        assert_int_equal(c.commit_pages, 1);

        /* a wrong seed fails the very first frame */
        uint32_t bad[2] = {w.h.cksum[0] + 1, w.h.cksum[1]};
        lc_wal_cursor_init(&c, &w.h, 32, bad);
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32, w.len - 32), 0);
        assert_int_equal(c.stop, LC_WAL_CKSUM);
        assert_int_equal(c.commit_off, 32);
        wal_free(&w);
    }
}

static void test_cursor_partial_frame(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        struct wal w;
        struct lc_wal_cursor c;
        size_t fsz = (size_t)lc_wal_frame_size(4096);

        wal_init(&w, magics[m], 4096);
        wal_frame(&w, 1, 0);
        wal_frame(&w, 2, 2);
        wal_frame(&w, 3, 3);

        /* every truncation of the third frame leaves it unconsumed */
        for (size_t cut = 1; cut < fsz; cut += 97) {
            lc_wal_cursor_init(&c, &w.h, 32, w.h.cksum);
            assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32, w.len - 32 - cut), 2 * fsz);
            assert_int_equal(c.stop, LC_WAL_OK);
            assert_int_equal(c.frames, 2);
            assert_int_equal(c.off, 32 + 2 * fsz);
            assert_int_equal(c.commit_off, 32 + 2 * fsz);
            /* a lone partial frame: nothing consumed, nothing changed */
            assert_int_equal(lc_wal_cursor_feed(&c, w.buf + c.off, fsz - cut), 0);
            assert_int_equal(c.stop, LC_WAL_OK);
            assert_int_equal(c.off, 32 + 2 * fsz);
            /* the whole frame, once it arrives, is accepted */
            assert_int_equal(lc_wal_cursor_feed(&c, w.buf + c.off, fsz), fsz);
            assert_int_equal(c.commit_off, w.len);
            assert_int_equal(c.commit_pages, 3);
        }
        wal_free(&w);
    }
}

static void test_cursor_uncommitted_tail(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        struct wal w;
        struct lc_wal_cursor c;
        uint32_t ck[2];
        uint64_t fsz = lc_wal_frame_size(2048);

        wal_init(&w, magics[m], 2048);
        wal_frame(&w, 1, 0);
        uint8_t *commit = wal_frame(&w, 2, 7);
        wal_frame(&w, 3, 0);
        uint8_t *tail = wal_frame(&w, 4, 0);

        lc_wal_cursor_init(&c, &w.h, 32, w.h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + 32, w.len - 32), 4 * fsz);
        assert_int_equal(c.stop, LC_WAL_OK);
        assert_int_equal(c.frames, 4);
        assert_int_equal(c.off, w.len);
        assert_int_equal(c.commit_off, 32 + 2 * fsz);
        assert_int_equal(c.commit_pages, 7);
        lc_wal_frame_cksum(commit, ck);
        assert_int_equal(c.commit_ck[0], ck[0]);
        assert_int_equal(c.commit_ck[1], ck[1]);
        lc_wal_frame_cksum(tail, ck);
        assert_int_equal(c.ck[0], ck[0]);
        assert_int_equal(c.ck[1], ck[1]);

        /* no commit at all: commit_off stays at the start */
        struct wal w2;
        wal_init(&w2, magics[m], 2048);
        wal_frame(&w2, 1, 0);
        wal_frame(&w2, 2, 0);
        lc_wal_cursor_init(&c, &w2.h, 32, w2.h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, w2.buf + 32, w2.len - 32), 2 * fsz);
        assert_int_equal(c.commit_off, 32);
        assert_int_equal(c.commit_pages, 0);
        assert_int_equal(c.commit_ck[0], w2.h.cksum[0]);
        assert_int_equal(c.commit_ck[1], w2.h.cksum[1]);
        wal_free(&w2);
        wal_free(&w);
    }
}

static void test_cursor_resume(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        struct wal w;
        struct lc_wal_cursor full, c;
        uint32_t seed[2];
        uint64_t fsz = lc_wal_frame_size(512);
        uint8_t *f[8];

        wal_init(&w, magics[m], 512);
        for (uint32_t i = 0; i < 8; i++)
            f[i] = wal_frame(&w, i + 1, i % 2 ? i + 1 : 0); /* commits at frames 2,4,6,8 */

        lc_wal_cursor_init(&full, &w.h, 32, w.h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&full, w.buf + 32, w.len - 32), w.len - 32);

        /* resume after every frame k, seeded with the checksum stored in frame k */
        for (int k = 0; k < 8; k++) {
            uint64_t off = 32 + (uint64_t)(k + 1) * fsz;
            lc_wal_frame_cksum(f[k], seed);
            lc_wal_cursor_init(&c, &w.h, off, seed);
            assert_int_equal(c.off, off);
            assert_int_equal(c.commit_off, off);
            assert_int_equal(lc_wal_cursor_feed(&c, w.buf + off, w.len - off), w.len - off);
            assert_int_equal(c.stop, LC_WAL_OK);
            assert_int_equal(c.frames, 7 - k);
            assert_int_equal(c.off, full.off);
            assert_int_equal(c.commit_off, full.commit_off);
            assert_int_equal(c.commit_ck[0], full.commit_ck[0]);
            assert_int_equal(c.commit_ck[1], full.commit_ck[1]);
            assert_int_equal(c.commit_pages, k == 7 ? 0 : 8);
        }

        /* resume in the middle, then stop short of the next commit: commit_off stays at
         * the seed offset */
        uint64_t off = 32 + 2 * fsz;
        lc_wal_frame_cksum(f[1], seed);
        lc_wal_cursor_init(&c, &w.h, off, seed);
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + off, fsz), fsz);
        assert_int_equal(c.commit_off, off);
        assert_int_equal(c.commit_ck[0], seed[0]);
        assert_int_equal(c.commit_ck[1], seed[1]);

        /* a seed from the wrong frame fails at once */
        lc_wal_frame_cksum(f[0], seed);
        lc_wal_cursor_init(&c, &w.h, off, seed);
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + off, w.len - off), 0);
        assert_int_equal(c.stop, LC_WAL_CKSUM);
        /* so does the header's seed used mid-file */
        lc_wal_cursor_init(&c, &w.h, off, w.h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, w.buf + off, w.len - off), 0);
        assert_int_equal(c.stop, LC_WAL_CKSUM);
        wal_free(&w);
    }
}

static void test_frame_align(void **state)
{
    (void)state;
    assert_int_equal(lc_wal_frame_size(512), 536);
    assert_int_equal(lc_wal_frame_size(4096), 4120);
    assert_int_equal(lc_wal_frame_size(65536), 65560);
    for (uint32_t ps = 512; ps <= 65536; ps <<= 1) {
        uint64_t fsz = lc_wal_frame_size(ps);
        assert_int_equal(lc_wal_frame_align(0, ps), 0);
        assert_int_equal(lc_wal_frame_align(1, ps), 0);
        assert_int_equal(lc_wal_frame_align(31, ps), 0);
        assert_int_equal(lc_wal_frame_align(32, ps), 32);
        assert_int_equal(lc_wal_frame_align(33, ps), 32);
        assert_int_equal(lc_wal_frame_align(32 + fsz - 1, ps), 32);
        assert_int_equal(lc_wal_frame_align(32 + fsz, ps), 32 + fsz);
        assert_int_equal(lc_wal_frame_align(32 + fsz + 1, ps), 32 + fsz);
        assert_int_equal(lc_wal_frame_align(32 + 1000 * fsz - 1, ps), 32 + 999 * fsz);
        /* past 4 GiB, and at the very top of the range, without overflow */
        uint64_t k = (((uint64_t)5 << 32) - 32) / fsz;
        assert_int_equal(lc_wal_frame_align(32 + k * fsz + fsz / 2, ps), 32 + k * fsz);
        k = (UINT64_MAX - 32) / fsz;
        assert_int_equal(lc_wal_frame_align(UINT64_MAX, ps), 32 + k * fsz);
        assert_true(lc_wal_frame_align(UINT64_MAX, ps) <= UINT64_MAX - 0);
    }
    /* reference §3: offset 0x4080 = 32 + 4 * (24 + 4096) is a frame boundary */
    assert_int_equal(lc_wal_frame_align(0x4080, 4096), 0x4080);
    assert_int_equal(lc_wal_frame_align(0x4080 + 4119, 4096), 0x4080);
    /* a 64 KiB page is stored as 65536 in a WAL header (unlike the db header's 1) */
    assert_int_equal(lc_wal_frame_align(32 + 3 * 65560 + 65559, 65536), 32 + 3 * 65560);
}

/* ------------------------------------------------------------------------------------ */
/* Real SQLite                                                                           */

static void sql(sqlite3 *db, const char *q)
{
    char *msg = NULL;
    if (sqlite3_exec(db, q, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sqlite: %s: %s", q, msg ? msg : "?");
}

/* Write a WAL database with page size ps in dir and return the -wal file's bytes. */
static void make_sqlite_wal(const char *dir, uint32_t ps, uint8_t **wal, size_t *wal_len,
                            uint64_t *db_size)
{
    char path[512], walpath[600], q[256];
    sqlite3 *db;
    struct lc_error err = {0};
    struct stat st;
    int one = 1;

    snprintf(path, sizeof(path), "%s/t%u.db", dir, (unsigned)ps);
    snprintf(walpath, sizeof(walpath), "%s-wal", path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(q, sizeof(q), "PRAGMA page_size=%u", (unsigned)ps);
    sql(db, q);
    sql(db, "PRAGMA journal_mode=wal");
    sql(db, "PRAGMA wal_autocheckpoint=0");
    sql(db, "PRAGMA cache_size=8"); /* pages: the big transaction spills mid-way */
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &one), SQLITE_OK);
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    sql(db, "INSERT INTO t(v) VALUES (x'01'), (x'0203')");
    sql(db, "INSERT INTO t(v) VALUES (randomblob(100))");
    /* larger than the page cache: about 3 pages per row, 48 rows */
    snprintf(q, sizeof(q),
             "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
             "WHERE i < 48) INSERT INTO t(v) SELECT randomblob(%u) FROM n; COMMIT",
             (unsigned)ps * 2);
    sql(db, q);
    sql(db, "UPDATE t SET v = x'ff' WHERE id % 3 = 0");
    sql(db, "DELETE FROM t WHERE id = 2");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    assert_int_equal(lc_read_file(walpath, (size_t)64 << 20, wal, wal_len, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    *db_size = (uint64_t)st.st_size;
}

static void test_real_sqlite(void **state)
{
    static const uint32_t sizes[] = {512, 4096, 65536};
    char dir[] = "/tmp/lc-test-wal-XXXXXX";
    struct lc_error err = {0};

    (void)state;
    assert_non_null(mkdtemp(dir));
    for (size_t s = 0; s < 3; s++) {
        uint32_t ps = sizes[s];
        uint64_t fsz = lc_wal_frame_size(ps), db_size;
        uint8_t *wal;
        size_t len;
        struct lc_wal_hdr h;
        struct lc_wal_cursor c;

        make_sqlite_wal(dir, ps, &wal, &len, &db_size);
        assert_true(len > LC_WAL_HDR_SIZE);
        assert_int_equal((len - 32) % fsz, 0);
        assert_int_equal(lc_wal_hdr_parse(wal, len, &h, &err), 0);
        assert_int_equal(h.page_size, ps);
        assert_int_equal(h.version, LC_WAL_VERSION);
        {
            uint16_t probe = 1;
            uint8_t lo;
            memcpy(&lo, &probe, 1);
            /* SQLite writes the host's byte order into the magic */
            assert_int_equal(h.magic, lo ? LC_WAL_MAGIC_LE : LC_WAL_MAGIC_BE);
        }

        lc_wal_cursor_init(&c, &h, 32, h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, wal + 32, len - 32), len - 32);
        assert_int_equal(c.stop, LC_WAL_OK);
        assert_int_equal(c.frames, (len - 32) / fsz);
        assert_int_equal(c.commit_off, len);
        /* more frames than transactions: the big one spilled, so several frames, and
         * rewritten pages, went out before its commit frame */
        assert_true(c.frames > 48);
        /* the checkpoint at close backfilled the db to exactly the last commit's size */
        assert_int_equal((uint64_t)c.commit_pages * ps, db_size);

        /* the commit frames found by a scan match those SQLite flagged */
        uint64_t commits = 0, first_commit_end = 0;
        for (uint64_t off = 32; off < len; off += fsz) {
            if (lc_wal_frame_commit(wal + off) != 0) {
                if (!commits) first_commit_end = off + fsz;
                commits++;
            }
        }
        assert_true(commits >= 6);
        assert_true(first_commit_end > 32);

        /* resume from the end of the first commit frame */
        uint32_t seed[2];
        lc_wal_frame_cksum(wal + first_commit_end - fsz, seed);
        struct lc_wal_cursor r;
        lc_wal_cursor_init(&r, &h, first_commit_end, seed);
        assert_int_equal(lc_wal_cursor_feed(&r, wal + first_commit_end, len - first_commit_end),
                         len - first_commit_end);
        assert_int_equal(r.commit_off, len);
        assert_int_equal(r.commit_ck[0], c.commit_ck[0]);
        assert_int_equal(r.commit_ck[1], c.commit_ck[1]);

        /* garbage after the end changes nothing: first a partial frame of junk, then a
         * whole junk frame (salt mismatch), then a frame with the right salts and a bad
         * checksum */
        size_t old = len;
        uint8_t *g = realloc(wal, len + 2 * fsz + 100);
        assert_non_null(g);
        wal = g;
        memset(wal + old, 0xa5, 2 * fsz + 100);

        lc_wal_cursor_init(&c, &h, 32, h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, wal + 32, old - 32 + 100), old - 32);
        assert_int_equal(c.stop, LC_WAL_OK);
        assert_int_equal(c.commit_off, old);

        lc_wal_cursor_init(&c, &h, 32, h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, wal + 32, old + 2 * fsz + 100 - 32), old - 32);
        assert_int_equal(c.stop, LC_WAL_SALT);
        assert_int_equal(c.commit_off, old);

        lc_put32be(wal + old, 1);
        lc_put32be(wal + old + 4, 1);
        lc_put32be(wal + old + 8, h.salt1);
        lc_put32be(wal + old + 12, h.salt2);
        lc_wal_cursor_init(&c, &h, 32, h.cksum);
        assert_int_equal(lc_wal_cursor_feed(&c, wal + 32, old + 2 * fsz + 100 - 32), old - 32);
        assert_int_equal(c.stop, LC_WAL_CKSUM);
        assert_int_equal(c.commit_off, old);
        assert_int_equal(c.off, old);
        free(wal);
    }
    assert_int_equal(lc_rm_rf(dir, &err), 0);
}

/* Scan a whole -wal file from its header; returns the cursor. */
static struct lc_wal_cursor scan_file(const char *walpath, struct lc_wal_hdr *h, size_t *len)
{
    struct lc_error err = {0};
    struct lc_wal_cursor c;
    uint8_t *wal;

    assert_int_equal(lc_read_file(walpath, (size_t)64 << 20, &wal, len, &err), 0);
    assert_int_equal(lc_wal_hdr_parse(wal, *len, h, &err), 0);
    lc_wal_cursor_init(&c, h, 32, h->cksum);
    lc_wal_cursor_feed(&c, wal + 32, *len - 32);
    free(wal);
    return c;
}

/* A transaction that spilled into the WAL but is still open, then rolled back: its frames
 * are in the file but never committed, and whatever of them survives the next commit
 * breaks the chain. */
static void test_real_sqlite_uncommitted_spill(void **state)
{
    char dir[] = "/tmp/lc-test-wal-XXXXXX", path[256], walpath[300];
    struct lc_error err = {0};
    struct lc_wal_hdr h;
    struct lc_wal_cursor c;
    sqlite3 *db;
    size_t len, before;
    int one = 1;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/spill.db", dir);
    snprintf(walpath, sizeof(walpath), "%s-wal", path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sql(db, "PRAGMA page_size=1024");
    sql(db, "PRAGMA journal_mode=wal");
    sql(db, "PRAGMA wal_autocheckpoint=0");
    sql(db, "PRAGMA cache_size=8");
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &one), SQLITE_OK);
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    sql(db, "INSERT INTO t(v) VALUES (randomblob(3000))");
    c = scan_file(walpath, &h, &before);
    assert_int_equal(c.commit_off, before);

    sql(db, "BEGIN");
    sql(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64) "
            "INSERT INTO t(v) SELECT randomblob(2000) FROM n");
    c = scan_file(walpath, &h, &len);
    assert_true(len > before); /* the spill reached the file */
    assert_int_equal(c.stop, LC_WAL_OK);
    assert_int_equal(c.off, len);           /* every spilled frame is chain-valid... */
    assert_int_equal(c.commit_off, before); /* ...but none commits */
    sql(db, "ROLLBACK");

    sql(db, "INSERT INTO t(v) VALUES (x'00')");
    c = scan_file(walpath, &h, &len);
    assert_true(c.commit_off > before);
    assert_true(c.commit_off < len); /* the rolled-back frames are still in the file */
    assert_int_equal(c.stop, LC_WAL_CKSUM);
    assert_int_equal(c.off, c.commit_off);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(lc_rm_rf(dir, &err), 0);
}

/* After a checkpoint the next writer restarts the WAL: new header (checkpoint seq + 1,
 * salt-1 + 1), new frames from offset 32, and the old incarnation's frames left behind
 * past them, which the cursor must refuse on their salts. */
static void test_real_sqlite_restart(void **state)
{
    char dir[] = "/tmp/lc-test-wal-XXXXXX", path[256], walpath[300];
    struct lc_error err = {0};
    struct lc_wal_hdr h1, h2;
    struct lc_wal_cursor c;
    sqlite3 *db;
    size_t len1, len2;
    int one = 1;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/restart.db", dir);
    snprintf(walpath, sizeof(walpath), "%s-wal", path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sql(db, "PRAGMA page_size=4096");
    sql(db, "PRAGMA journal_mode=wal");
    sql(db, "PRAGMA wal_autocheckpoint=0");
    assert_int_equal(sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &one), SQLITE_OK);
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int i = 0; i < 10; i++)
        sql(db, "INSERT INTO t(v) VALUES (randomblob(5000))");
    c = scan_file(walpath, &h1, &len1);
    assert_int_equal(c.commit_off, len1);
    assert_int_equal(c.stop, LC_WAL_OK);

    sql(db, "PRAGMA wal_checkpoint(PASSIVE)");
    sql(db, "INSERT INTO t(v) VALUES (x'01')");
    c = scan_file(walpath, &h2, &len2);
    assert_int_equal(len2, len1); /* not shrunk */
    assert_int_equal(h2.ckpt_seq, h1.ckpt_seq + 1);
    assert_int_equal(h2.salt1, h1.salt1 + 1);
    assert_true(c.frames >= 1);
    assert_true(c.commit_off < len1);
    assert_int_equal(c.stop, LC_WAL_SALT);
    assert_int_equal(c.off, c.commit_off);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(lc_rm_rf(dir, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_roundtrip),
        cmocka_unit_test(test_hdr_known_vector),
        cmocka_unit_test(test_hdr_byte_order_matters),
        cmocka_unit_test(test_hdr_rejects),
        cmocka_unit_test(test_hdr_null_err),
        cmocka_unit_test(test_frame_encode),
        cmocka_unit_test(test_cursor_chain),
        cmocka_unit_test(test_cursor_salt_mismatch),
        cmocka_unit_test(test_cursor_checksum_break),
        cmocka_unit_test(test_cursor_partial_frame),
        cmocka_unit_test(test_cursor_uncommitted_tail),
        cmocka_unit_test(test_cursor_resume),
        cmocka_unit_test(test_frame_align),
        cmocka_unit_test(test_real_sqlite),
        cmocka_unit_test(test_real_sqlite_uncommitted_spill),
        cmocka_unit_test(test_real_sqlite_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
