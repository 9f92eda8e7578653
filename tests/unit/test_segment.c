/* Unit tests for src/segment.c: object keys and strict name parsing, and LZ4 frames:
 * round trips, the streaming encoder, frames written by liblz4 with other options,
 * every kind of damage, and the output bound. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"
#include "util.h"

#define GEN "0123456789abcdef"
#define MiB ((size_t)1 << 20)
#define BLOCK ((size_t)64 << 10) /* the encoder's block size */

/* ------------------------------------------------------------------------------------ */
/* Keys and names                                                                        */

static void test_keys(void **state)
{
    char k[LC_KEY_MAX];

    (void)state;
    assert_int_equal(lc_seg_generations_prefix(k, sizeof(k)), 0);
    assert_string_equal(k, "generations/");
    assert_int_equal(lc_seg_snapshots_prefix(k, sizeof(k), GEN), 0);
    assert_string_equal(k, "generations/0123456789abcdef/snapshots/");
    assert_int_equal(lc_seg_wal_prefix(k, sizeof(k), GEN), 0);
    assert_string_equal(k, "generations/0123456789abcdef/wal/");
    assert_int_equal(lc_seg_snapshot_key(k, sizeof(k), GEN, 0), 0);
    assert_string_equal(k, "generations/0123456789abcdef/snapshots/00000000.snapshot.lz4");
    assert_int_equal(lc_seg_snapshot_key(k, sizeof(k), GEN, 0x1f), 0);
    assert_string_equal(k, "generations/0123456789abcdef/snapshots/0000001f.snapshot.lz4");
    assert_int_equal(lc_seg_snapshot_key(k, sizeof(k), GEN, LC_MAX_INDEX), 0);
    assert_string_equal(k, "generations/0123456789abcdef/snapshots/7fffffff.snapshot.lz4");
    assert_int_equal(lc_seg_wal_key(k, sizeof(k), GEN, 0, 0), 0);
    assert_string_equal(k, "generations/0123456789abcdef/wal/00000000_00000000.wal.lz4");
    assert_int_equal(lc_seg_wal_key(k, sizeof(k), GEN, 1, 0x4080), 0);
    assert_string_equal(k, "generations/0123456789abcdef/wal/00000001_00004080.wal.lz4");
    assert_int_equal(lc_seg_wal_key(k, sizeof(k), GEN, LC_MAX_INDEX, LC_MAX_OFFSET), 0);
    assert_string_equal(k, "generations/0123456789abcdef/wal/7fffffff_ffffffff.wal.lz4");
}

static void test_keys_rejected(void **state)
{
    char k[LC_KEY_MAX];
    static const char *const bad_gens[] = {
        "",           "0123456789abcde",   "0123456789abcdef0", "0123456789ABCDEF",
        "../../../..", "0123456789abcdeg", "0123456789abcde/",  " 123456789abcdef",
    };

    (void)state;
    /* offsets past 8 hex digits and indexes past 0x7fffffff */
    assert_int_equal(lc_seg_wal_key(k, sizeof(k), GEN, 0, (uint64_t)LC_MAX_OFFSET + 1),
                     LC_EINVAL);
    assert_int_equal(lc_seg_wal_key(k, sizeof(k), GEN, 0, UINT64_MAX), LC_EINVAL);
    assert_int_equal(lc_seg_wal_key(k, sizeof(k), GEN, LC_MAX_INDEX + 1, 0), LC_EINVAL);
    assert_int_equal(lc_seg_wal_key(k, sizeof(k), GEN, UINT32_MAX, 0), LC_EINVAL);
    assert_int_equal(lc_seg_snapshot_key(k, sizeof(k), GEN, LC_MAX_INDEX + 1), LC_EINVAL);
    for (size_t i = 0; i < sizeof(bad_gens) / sizeof(bad_gens[0]); i++) {
        assert_int_equal(lc_seg_wal_key(k, sizeof(k), bad_gens[i], 0, 0), LC_EINVAL);
        assert_int_equal(lc_seg_snapshot_key(k, sizeof(k), bad_gens[i], 0), LC_EINVAL);
        assert_int_equal(lc_seg_wal_prefix(k, sizeof(k), bad_gens[i]), LC_EINVAL);
        assert_int_equal(lc_seg_snapshots_prefix(k, sizeof(k), bad_gens[i]), LC_EINVAL);
    }
    assert_int_equal(lc_seg_wal_key(k, sizeof(k), NULL, 0, 0), LC_EINVAL);
    /* the buffer must hold the key and its NUL */
    const size_t klen = strlen("generations/0123456789abcdef/wal/00000000_00000000.wal.lz4");
    assert_int_equal(lc_seg_wal_key(k, klen, GEN, 0, 0), LC_EINVAL);
    assert_string_equal(k, "");
    assert_int_equal(lc_seg_wal_key(k, klen + 1, GEN, 0, 0), 0);
    assert_int_equal(strlen(k), klen);
    assert_int_equal(lc_seg_generations_prefix(k, 12), LC_EINVAL);
    assert_int_equal(lc_seg_generations_prefix(k, 13), 0);
}

static void test_parse_names(void **state)
{
    uint32_t idx = 1, off = 1;

    (void)state;
    assert_int_equal(lc_seg_parse_snapshot_name("00000000.snapshot.lz4", &idx), 0);
    assert_int_equal(idx, 0);
    assert_int_equal(lc_seg_parse_snapshot_name("7fffffff.snapshot.lz4", &idx), 0);
    assert_int_equal(idx, 0x7fffffffu);
    assert_int_equal(lc_seg_parse_snapshot_name("0000abcd.snapshot.lz4", &idx), 0);
    assert_int_equal(idx, 0xabcd);
    assert_int_equal(lc_seg_parse_wal_name("00000000_00000000.wal.lz4", &idx, &off), 0);
    assert_int_equal(idx, 0);
    assert_int_equal(off, 0);
    assert_int_equal(lc_seg_parse_wal_name("0000001f_ffffffff.wal.lz4", &idx, &off), 0);
    assert_int_equal(idx, 0x1f);
    assert_int_equal(off, 0xffffffffu);
    /* the parser reads exactly what the formatter writes */
    for (uint32_t i = 0; i < 40; i++) {
        char k[LC_KEY_MAX];
        uint32_t index = i * 0x0c0ffee1u & LC_MAX_INDEX, offset = i * 0x9e3779b9u;
        assert_int_equal(lc_seg_wal_key(k, sizeof(k), GEN, index, offset), 0);
        assert_int_equal(lc_seg_parse_wal_name(lc_path_base(k), &idx, &off), 0);
        assert_int_equal(idx, index);
        assert_int_equal(off, offset);
        assert_int_equal(lc_seg_snapshot_key(k, sizeof(k), GEN, index), 0);
        assert_int_equal(lc_seg_parse_snapshot_name(lc_path_base(k), &idx), 0);
        assert_int_equal(idx, index);
    }
}

static void test_parse_bad_names(void **state)
{
    static const char *const bad_snap[] = {
        "",
        "0000000.snapshot.lz4",
        "000000000.snapshot.lz4",
        "0000000A.snapshot.lz4",
        "0000000g.snapshot.lz4",
        "-0000001.snapshot.lz4",
        "+0000001.snapshot.lz4",
        " 0000001.snapshot.lz4",
        "0x000001.snapshot.lz4",
        "00000000.snapshot.lz4.tmp",
        "00000000.snapshot.lz",
        "00000000.snapshot.LZ4",
        "00000000.snapshot",
        "00000000.snapshot.lz4 ",
        "00000000.wal.lz4",
        "../00000.snapshot.lz4",
        "snapshots/00000000.snapshot.lz4",
        "0000/000.snapshot.lz4",
        "00000000_00000000.wal.lz4",
        "00000000..snapshot.lz4",
        ".00000000.snapshot.lz4",
    };
    static const char *const bad_wal[] = {
        "",
        "00000000_00000000.wal",
        "00000000_00000000.wal.lz4.tmp",
        "00000000_00000000.WAL.lz4",
        "00000000-00000000.wal.lz4",
        "00000000_0000000.wal.lz4",
        "0000000_00000000.wal.lz4",
        "00000000_100000000.wal.lz4", /* an offset of 4 GiB: nine digits */
        "000000000_0000000.wal.lz4",
        "0000000F_00000000.wal.lz4",
        "00000000_0000000F.wal.lz4",
        "00000000_0000000 .wal.lz4",
        "00000000__0000000.wal.lz4",
        "../../00_00000000.wal.lz4",
        "00000000_00000000..wal.lz4",
        "00000000_00000000.wal.lz4/",
        "wal/00000000_00000000.wal.lz4",
        "00000000.snapshot.lz4",
        "00000000_00000000.snapshot.lz4",
    };
    uint32_t idx = 77, off = 88;

    (void)state;
    for (size_t i = 0; i < sizeof(bad_snap) / sizeof(bad_snap[0]); i++) {
        if (lc_seg_parse_snapshot_name(bad_snap[i], &idx) != LC_EINVAL)
            fail_msg("accepted snapshot name \"%s\"", bad_snap[i]);
        assert_int_equal(idx, 77);
    }
    for (size_t i = 0; i < sizeof(bad_wal) / sizeof(bad_wal[0]); i++) {
        if (lc_seg_parse_wal_name(bad_wal[i], &idx, &off) != LC_EINVAL)
            fail_msg("accepted wal name \"%s\"", bad_wal[i]);
        assert_int_equal(idx, 77);
        assert_int_equal(off, 88);
    }
    assert_int_equal(lc_seg_parse_wal_name(NULL, &idx, &off), LC_EINVAL);
    assert_int_equal(lc_seg_parse_snapshot_name(NULL, &idx), LC_EINVAL);
}

static void test_is_generation(void **state)
{
    (void)state;
    assert_true(lc_seg_is_generation(GEN));
    assert_true(lc_seg_is_generation("ffffffffffffffff"));
    assert_false(lc_seg_is_generation(NULL));
    assert_false(lc_seg_is_generation(""));
    assert_false(lc_seg_is_generation("0123456789abcde"));
    assert_false(lc_seg_is_generation("0123456789abcdef0"));
    assert_false(lc_seg_is_generation("0123456789ABCDEF"));
    assert_false(lc_seg_is_generation("0123456789abcdeF"));
    assert_false(lc_seg_is_generation("..3456789abcdef0"));
    assert_false(lc_seg_is_generation("0123456789abcde/"));
    assert_false(lc_seg_is_generation("0123456789abcdef/"));
}

/* ------------------------------------------------------------------------------------ */
/* LZ4 helpers                                                                           */

static uint8_t *random_bytes(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 32);
    }
    return p;
}

/* Compressible: text-like lines with a counter. */
static uint8_t *text_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    size_t w = 0;
    assert_non_null(p);
    for (unsigned line = 0; w < n; line++) {
        char buf[96];
        int k = snprintf(buf, sizeof(buf), "INSERT INTO t VALUES (%u, 'row number %u');\n",
                         line, line * 7);
        for (int i = 0; i < k && w < n; i++)
            p[w++] = (uint8_t)buf[i];
    }
    return p;
}

/* Decode with liblz4 directly, as an independent check of what we write. */
static void lz4f_decode(const uint8_t *in, size_t n, uint8_t **out, size_t *outlen)
{
    LZ4F_dctx *d;
    size_t cap = 1024, len = 0, r = 1;
    uint8_t *o = malloc(cap);

    assert_non_null(o);
    assert_false(LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)));
    while (r != 0) {
        if (cap - len < 65536) {
            cap *= 2;
            o = realloc(o, cap);
            assert_non_null(o);
        }
        size_t dst = cap - len, src = n;
        r = LZ4F_decompress(d, o + len, &dst, in, &src, NULL);
        if (LZ4F_isError(r))
            fail_msg("liblz4: %s", LZ4F_getErrorName(r));
        len += dst;
        in += src;
        n -= src;
        if (r != 0 && src == 0 && dst == 0)
            fail_msg("liblz4: truncated");
    }
    assert_int_equal(n, 0);
    LZ4F_freeDecompressionContext(d);
    *out = o;
    *outlen = len;
}

/* Encode with liblz4 directly, with arbitrary options. */
static void lz4f_encode(const uint8_t *in, size_t n, const LZ4F_preferences_t *prefs,
                        struct lc_buf *out)
{
    size_t bound = LZ4F_compressFrameBound(n, prefs);
    assert_int_equal(lc_buf_reserve(out, bound), 0);
    size_t r = LZ4F_compressFrame(out->data + out->len, bound, in, n, prefs);
    if (LZ4F_isError(r))
        fail_msg("liblz4: %s", LZ4F_getErrorName(r));
    out->len += r;
}

static void round_trip(const uint8_t *data, size_t n)
{
    struct lc_buf z = {0}, back = {0};
    struct lc_error err = {0};
    uint8_t *check;
    size_t check_len;

    assert_int_equal(lc_lz4_compress(data, n, &z, &err), 0);
    /* Litestream v0.3.13's magic and FLG 0x64; BD 0x40 (64 KiB blocks) where it has 0x70 */
    assert_true(z.len >= 15);
    assert_int_equal(z.data[0], 0x04);
    assert_int_equal(z.data[1], 0x22);
    assert_int_equal(z.data[2], 0x4d);
    assert_int_equal(z.data[3], 0x18);
    assert_int_equal(z.data[4], 0x64);
    assert_int_equal(z.data[5], 0x40);
    /* ends with an end mark and a content checksum */
    assert_int_equal(lc_get32be(z.data + z.len - 8), 0);
    assert_int_equal(lc_lz4_decompress(z.data, z.len, &back, "x.lz4", &err), 0);
    assert_int_equal(back.len, n);
    if (n)
        assert_memory_equal(back.data, data, n);
    lz4f_decode(z.data, z.len, &check, &check_len);
    assert_int_equal(check_len, n);
    if (n)
        assert_memory_equal(check, data, n);
    free(check);
    lc_buf_free(&z);
    lc_buf_free(&back);
}

/* ------------------------------------------------------------------------------------ */
/* LZ4 round trips                                                                       */

static void test_lz4_round_trip_small(void **state)
{
    struct lc_buf z = {0};
    struct lc_error err = {0};

    (void)state;
    round_trip((const uint8_t *)"", 0);
    /* an empty frame: 7-byte header, end mark, checksum */
    assert_int_equal(lc_lz4_compress("", 0, &z, &err), 0);
    assert_int_equal(z.len, 15);
    lc_buf_free(&z);
    round_trip((const uint8_t *)"a", 1);
    round_trip((const uint8_t *)"hello, world", 12);
    uint8_t *t = text_bytes(100000);
    round_trip(t, 100000);
    free(t);
}

static void test_lz4_round_trip_large(void **state)
{
    (void)state;
    /* compressible, spanning many blocks and a bit */
    size_t n = 9 * MiB + 123;
    uint8_t *t = text_bytes(n);
    round_trip(t, n);
    free(t);
    /* incompressible: blocks are stored, each 64 KiB with the high bit of its size set */
    uint8_t *r = random_bytes(n, 1);
    round_trip(r, n);
    struct lc_buf z = {0};
    struct lc_error err = {0};
    assert_int_equal(lc_lz4_compress(r, n, &z, &err), 0);
    uint32_t b0 = (uint32_t)z.data[7] | (uint32_t)z.data[8] << 8 | (uint32_t)z.data[9] << 16 |
                  (uint32_t)z.data[10] << 24;
    assert_int_equal(b0, 0x80000000u | (uint32_t)BLOCK);
    assert_int_equal(z.len, 7 + (n + BLOCK - 1) / BLOCK * 4 + n + 8);
    lc_buf_free(&z);
    free(r);
    /* exactly one block */
    r = random_bytes(BLOCK, 2);
    round_trip(r, BLOCK);
    free(r);
}

static void test_lz4_streaming_encoder(void **state)
{
    struct lc_lz4_enc *e;
    struct lc_buf z = {0}, back = {0};
    struct lc_error err = {0};
    size_t n = 6 * MiB + 4321;
    uint8_t *t = text_bytes(n), *r = random_bytes(n, 3);
    uint32_t x = 12345;

    (void)state;
    assert_int_equal(lc_lz4_enc_new(&e, &err), 0);
    /* many small updates of irregular size, including empty ones */
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t *src = pass ? r : t;
        size_t done = 0;
        z.len = 0;
        while (done < n) {
            x = x * 1103515245u + 12345u;
            size_t k = (x >> 8) % 20000;
            if (k > n - done)
                k = n - done;
            assert_int_equal(lc_lz4_enc_update(e, src + done, k, &z, &err), 0);
            done += k;
        }
        assert_int_equal(lc_lz4_enc_end(e, &z, &err), 0);
        back.len = 0;
        assert_int_equal(lc_lz4_decompress(z.data, z.len, &back, "s.lz4", &err), 0);
        assert_int_equal(back.len, n);
        assert_memory_equal(back.data, src, n);
    }
    /* the encoder is reusable: two frames back to back, each complete on its own */
    z.len = 0;
    assert_int_equal(lc_lz4_enc_update(e, "first", 5, &z, &err), 0);
    assert_int_equal(lc_lz4_enc_end(e, &z, &err), 0);
    size_t first = z.len;
    assert_int_equal(lc_lz4_enc_end(e, &z, &err), 0); /* end without update: empty frame */
    back.len = 0;
    assert_int_equal(lc_lz4_decompress(z.data, first, &back, "a", &err), 0);
    assert_int_equal(back.len, 5);
    assert_memory_equal(back.data, "first", 5);
    back.len = 0;
    assert_int_equal(lc_lz4_decompress(z.data + first, z.len - first, &back, "b", &err), 0);
    assert_int_equal(back.len, 0);
    /* byte-at-a-time updates */
    z.len = 0;
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(lc_lz4_enc_update(e, t + i, 1, &z, &err), 0);
    assert_int_equal(lc_lz4_enc_end(e, &z, &err), 0);
    back.len = 0;
    assert_int_equal(lc_lz4_decompress(z.data, z.len, &back, "c", &err), 0);
    assert_int_equal(back.len, 5000);
    assert_memory_equal(back.data, t, 5000);
    lc_lz4_enc_free(e);
    lc_lz4_enc_free(NULL);
    lc_buf_free(&z);
    lc_buf_free(&back);
    free(t);
    free(r);
}

/* Frames written by other encoders: every option combination must decode. */
static void test_lz4_foreign_frames(void **state)
{
    static const LZ4F_blockSizeID_t sizes[] = {LZ4F_max64KB, LZ4F_max256KB, LZ4F_max1MB,
                                               LZ4F_max4MB};
    size_t n = 5 * MiB + 77;
    uint8_t *t = text_bytes(n), *r = random_bytes(n / 4, 4);

    (void)state;
    for (size_t s = 0; s < 4; s++) {
        for (int combo = 0; combo < 16; combo++) {
            LZ4F_preferences_t p;
            struct lc_buf z = {0}, back = {0};
            struct lc_error err = {0};
            const uint8_t *src = combo & 8 ? r : t;
            /* several blocks of every size; only 4 MiB blocks need the large input */
            size_t big = sizes[s] == LZ4F_max4MB ? n : n / 4;
            size_t len = combo & 8 ? big / 4 : big;

            memset(&p, 0, sizeof(p));
            p.frameInfo.blockSizeID = sizes[s];
            p.frameInfo.blockMode = combo & 1 ? LZ4F_blockLinked : LZ4F_blockIndependent;
            p.frameInfo.blockChecksumFlag = combo & 2 ? LZ4F_blockChecksumEnabled : 0;
            p.frameInfo.contentChecksumFlag = combo & 4 ? LZ4F_contentChecksumEnabled : 0;
            p.frameInfo.contentSize = combo & 8 ? len : 0;
            p.compressionLevel = combo & 2 ? 9 : 0; /* some frames from the HC compressor */
            lz4f_encode(src, len, &p, &z);
            assert_int_equal(lc_lz4_decompress(z.data, z.len, &back, "f.lz4", &err), 0);
            assert_int_equal(back.len, len);
            assert_memory_equal(back.data, src, len);
            lc_buf_free(&z);
            lc_buf_free(&back);
        }
    }
    free(t);
    free(r);
}

/* What stream_emit saw; it refuses once `refuse_at` bytes have arrived. */
struct emitted {
    uint8_t *got;
    size_t have, cap, calls, largest, refuse_at;
};

static int stream_emit(void *arg, const uint8_t *b, size_t n, struct lc_error *err)
{
    struct emitted *e = arg;
    if (e->refuse_at && e->have + n >= e->refuse_at)
        return lc_err_set(err, LC_EIO, "consumer refused");
    assert_true(e->have + n <= e->cap);
    memcpy(e->got + e->have, b, n);
    e->have += n;
    e->calls++;
    if (n > e->largest)
        e->largest = n;
    return 0;
}

/* Streaming decode to a consumer: whole input at once gives every block in one piece of
 * at most 4 MiB; the consumer's own error comes back as it is and fails the frame. */
static void test_lz4_stream_to_consumer(void **state)
{
    LZ4F_preferences_t p;
    struct lc_buf z = {0};
    struct lc_error err = {0};
    struct lc_lz4_dec *d;
    size_t n = 9u << 20;
    uint8_t *t = text_bytes(n);
    struct emitted e = {.got = malloc(n), .cap = n};
    int done = 0;

    (void)state;
    assert_non_null(e.got);
    memset(&p, 0, sizeof(p));
    p.frameInfo.blockSizeID = LZ4F_max4MB;
    p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    lz4f_encode(t, n, &p, &z);
    assert_int_equal(lc_lz4_dec_new(&d, &err), 0);
    assert_int_equal(lc_lz4_dec_stream(d, z.data, z.len, stream_emit, &e, &done, &err), 0);
    assert_true(done);
    assert_int_equal(e.have, n);
    assert_memory_equal(e.got, t, n);
    assert_int_equal(e.calls, 3); /* 4 + 4 + 1 MiB */
    assert_int_equal(e.largest, (size_t)4 << 20);

    /* the consumer fails in the second block: its code and message, then refusal */
    lc_lz4_dec_reset(d);
    e.have = e.calls = 0;
    e.refuse_at = 5u << 20;
    assert_int_equal(lc_lz4_dec_stream(d, z.data, z.len, stream_emit, &e, &done, &err), LC_EIO);
    assert_string_equal(err.msg, "consumer refused");
    assert_false(done);
    assert_int_equal(e.have, (size_t)4 << 20);
    assert_int_equal(lc_lz4_dec_stream(d, z.data, 4, stream_emit, &e, &done, &err), LC_EINVAL);
    /* after a reset the same decoder decodes the frame again */
    lc_lz4_dec_reset(d);
    e.have = e.calls = 0;
    e.refuse_at = 0;
    assert_int_equal(lc_lz4_dec_stream(d, z.data, z.len, stream_emit, &e, &done, &err), 0);
    assert_true(done);
    assert_memory_equal(e.got, t, n);
    lc_lz4_dec_free(d);
    lc_buf_free(&z);
    free(t);
    free(e.got);
}

/* Streaming decode with tiny inputs and the output drained between calls. */
static void test_lz4_streaming_decoder(void **state)
{
    LZ4F_preferences_t p;
    struct lc_buf z = {0}, out = {0};
    struct lc_error err = {0};
    struct lc_lz4_dec *d;
    size_t n = 300000;
    uint8_t *t = text_bytes(n), *got = malloc(n);
    static const size_t steps[] = {1, 3, 7, 4096, 100000};

    (void)state;
    assert_non_null(got);
    memset(&p, 0, sizeof(p));
    p.frameInfo.blockSizeID = LZ4F_max64KB;
    p.frameInfo.blockMode = LZ4F_blockLinked;
    p.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    lz4f_encode(t, n, &p, &z);
    assert_int_equal(lc_lz4_dec_new(&d, &err), 0);
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        size_t have = 0;
        int done = 0;
        /* a few input bytes can finish at most one 64 KiB block: bound the output by it */
        out.max = steps[s] < 8 ? 70000 : 0;
        for (size_t i = 0; i < z.len; i += steps[s]) {
            size_t k = z.len - i < steps[s] ? z.len - i : steps[s];
            assert_false(done);
            out.len = 0;
            if (lc_lz4_dec_update(d, z.data + i, k, &out, &done, &err) != 0)
                fail_msg("step %zu at %zu: %s", steps[s], i, err.msg);
            assert_true(have + out.len <= n);
            if (out.len)
                memcpy(got + have, out.data, out.len);
            have += out.len;
        }
        assert_true(done);
        assert_int_equal(have, n);
        assert_memory_equal(got, t, n);
        assert_true(out.cap <= (out.max ? out.max : LC_BUF_DEFAULT_MAX));
        /* an empty update after the end is fine; more bytes are trailing garbage */
        out.len = 0;
        assert_int_equal(lc_lz4_dec_update(d, NULL, 0, &out, &done, &err), 0);
        assert_true(done);
        assert_int_equal(lc_lz4_dec_update(d, "x", 1, &out, &done, &err), LC_ECORRUPT);
        assert_non_null(strstr(err.msg, "trailing garbage"));
        /* used again after an error without a reset: refused */
        assert_int_equal(lc_lz4_dec_update(d, z.data, 4, &out, &done, &err), LC_EINVAL);
        lc_lz4_dec_reset(d);
    }
    /* reset in the middle of a frame, then a whole new frame */
    int done = 0;
    out.len = 0;
    assert_int_equal(lc_lz4_dec_update(d, z.data, z.len / 2, &out, &done, &err), 0);
    assert_false(done);
    lc_lz4_dec_reset(d);
    out.max = 0;
    out.len = 0;
    assert_int_equal(lc_lz4_dec_update(d, z.data, z.len, &out, &done, &err), 0);
    assert_true(done);
    assert_int_equal(out.len, n);
    lc_lz4_dec_free(d);
    lc_lz4_dec_free(NULL);
    lc_buf_free(&z);
    lc_buf_free(&out);
    free(t);
    free(got);
}

/* ------------------------------------------------------------------------------------ */
/* Damage                                                                                */

static int decode(const uint8_t *in, size_t n, struct lc_error *err)
{
    struct lc_buf out = {0};
    memset(err, 0, sizeof(*err));
    int rc = lc_lz4_decompress(in, n, &out, "00000000_00000000.wal.lz4", err);
    lc_buf_free(&out);
    return rc;
}

static void test_lz4_truncated(void **state)
{
    struct lc_buf z = {0};
    struct lc_error err = {0};
    uint8_t *t = text_bytes(200000);

    (void)state;
    assert_int_equal(lc_lz4_compress(t, 200000, &z, &err), 0);
    for (size_t len = 0; len < z.len; len += (len < 64 || z.len - len < 64) ? 1 : 997) {
        assert_int_equal(decode(z.data, len, &err), LC_ECORRUPT);
        assert_string_equal(err.msg, "00000000_00000000.wal.lz4: lz4: truncated frame");
    }
    assert_int_equal(decode(z.data, z.len, &err), 0);
    /* a truncated stream is not an error to the streaming decoder, just not done */
    struct lc_lz4_dec *d;
    struct lc_buf out = {0};
    int done = 1;
    assert_int_equal(lc_lz4_dec_new(&d, &err), 0);
    assert_int_equal(lc_lz4_dec_update(d, z.data, z.len - 1, &out, &done, &err), 0);
    assert_false(done);
    lc_lz4_dec_free(d);
    lc_buf_free(&out);
    lc_buf_free(&z);
    free(t);
}

/* A frame that declares a content size and fails must not poison the decoder: after a
 * reset, a valid frame decodes (liblz4 1.9.4 keeps the stale remaining size; found by
 * fuzz_segment). */
static void test_lz4_reset_after_sized_frame(void **state)
{
    static const uint8_t bad[] = {0x04, 0x22, 0x4d, 0x18, 0x69, 0x40, 0xa7, 0x74,
                                  0x65, 0x6e, 0x74, 0x43, 0x68, 0x65, 0x63, 0x6b,
                                  0x73, 0x75, 0x6d, 0x5f, 0x69, 0x6e, 0x76};
    static const char msg[] = "after a sized frame";
    struct lc_buf z = {0}, out = {0};
    struct lc_error err = {0};
    struct lc_lz4_dec *d;
    int done = 0;

    (void)state;
    assert_int_equal(lc_lz4_compress(msg, sizeof(msg), &z, &err), 0);
    assert_int_equal(lc_lz4_dec_new(&d, &err), 0);
    for (size_t cut = 5; cut <= sizeof(bad); cut++) { /* failed, or stopped half-way */
        lc_lz4_dec_reset(d);
        out.len = 0;
        (void)lc_lz4_dec_update(d, bad, cut, &out, &done, &err);
        lc_lz4_dec_reset(d);
        out.len = 0;
        if (lc_lz4_dec_update(d, z.data, z.len, &out, &done, &err) != 0)
            fail_msg("after %zu bytes of a sized frame: %s", cut, err.msg);
        assert_true(done);
        assert_int_equal(out.len, sizeof(msg));
        assert_memory_equal(out.data, msg, sizeof(msg));
    }
    lc_lz4_dec_free(d);
    lc_buf_free(&z);
    lc_buf_free(&out);
}

/* Decode one whole frame with a reused decoder, as lc_lz4_decompress() would: a fresh
 * decoder per call makes liblz4 allocate its 4 MiB block buffers each time, which for
 * thousands of calls takes minutes under ASan. */
static int decode_again(struct lc_lz4_dec *d, const uint8_t *in, size_t n, struct lc_buf *out,
                        struct lc_error *err)
{
    int done = 0, rc;

    lc_lz4_dec_reset(d);
    out->len = 0;
    memset(err, 0, sizeof(*err));
    rc = lc_lz4_dec_update(d, in, n, out, &done, err);
    if (rc == 0 && !done)
        return lc_err_set(err, LC_ECORRUPT, "lz4: truncated frame");
    return rc;
}

/* Flip bits everywhere in a frame. Each flip is either caught as corruption, or is
 * harmless: LZ4 can encode the same bytes in several ways (a match offset moved onto an
 * identical earlier copy), so a flip that still yields the original data is not damage. */
static void test_lz4_corrupt_bytes(void **state)
{
    struct lc_buf z = {0}, out = {0};
    struct lc_error err = {0};
    struct lc_lz4_dec *d;
    const size_t n = 3000;
    uint8_t *t = text_bytes(n), *r = random_bytes(n, 5);

    (void)state;
    assert_int_equal(lc_lz4_dec_new(&d, &err), 0);
    for (int which = 0; which < 2; which++) {
        const uint8_t *src = which ? r : t;
        size_t caught = 0, benign = 0;
        z.len = 0;
        assert_int_equal(lc_lz4_compress(src, n, &z, &err), 0);
        for (size_t i = 0; i < z.len; i++) {
            static const uint8_t flips[] = {0x01, 0x80, 0xff};
            for (size_t f = 0; f < sizeof(flips); f++) {
                z.data[i] ^= flips[f];
                int rc = decode_again(d, z.data, z.len, &out, &err);
                if (rc == 0 && out.len == n && memcmp(out.data, src, n) == 0) {
                    benign++;
                } else if (rc == LC_ECORRUPT) {
                    assert_true(strncmp(err.msg, "lz4: ", 5) == 0);
                    caught++;
                } else {
                    fail_msg("flip 0x%02x at byte %zu of %zu: rc %d", flips[f], i, z.len, rc);
                }
                z.data[i] ^= flips[f];
            }
        }
        /* random data is stored raw: every flip must be caught */
        if (which)
            assert_int_equal(benign, 0);
        assert_true(caught > 10 * benign);
        assert_int_equal(decode(z.data, z.len, &err), 0);
    }
    lc_lz4_dec_free(d);
    lc_buf_free(&out);
    /* the content checksum catches a damaged stored block */
    z.len = 0;
    assert_int_equal(lc_lz4_compress(r, 3000, &z, &err), 0);
    z.data[7 + 4 + 100] ^= 0x20;
    assert_int_equal(decode(z.data, z.len, &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "00000000_00000000.wal.lz4: lz4: content checksum mismatch");
    lc_buf_free(&z);
    free(t);
    free(r);
}

static void test_lz4_bad_magic(void **state)
{
    struct lc_error err = {0};
    uint8_t skippable[8] = {0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0};

    (void)state;
    assert_int_equal(decode((const uint8_t *)"hello world", 11, &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "00000000_00000000.wal.lz4: lz4: bad magic 0x6c6c6568");
    /* a skippable frame is a valid LZ4 stream but never one of our objects */
    assert_int_equal(decode(skippable, sizeof(skippable), &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "00000000_00000000.wal.lz4: lz4: bad magic 0x184d2a50");
    /* wrong from the first byte on, even if the object is shorter than a magic */
    assert_int_equal(decode((const uint8_t *)"\x04\x23", 2, &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "00000000_00000000.wal.lz4: lz4: bad magic, starts 04 23");
    assert_int_equal(decode((const uint8_t *)"\x04\x22", 2, &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "00000000_00000000.wal.lz4: lz4: truncated frame");
    /* a bare SQLite WAL (someone forgot to compress) */
    uint8_t wal[32] = {0x37, 0x7f, 0x06, 0x82};
    assert_int_equal(decode(wal, sizeof(wal), &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "00000000_00000000.wal.lz4: lz4: bad magic 0x82067f37");
    /* magic split across streaming updates */
    struct lc_lz4_dec *d;
    struct lc_buf out = {0};
    int done;
    assert_int_equal(lc_lz4_dec_new(&d, &err), 0);
    assert_int_equal(lc_lz4_dec_update(d, "\x04", 1, &out, &done, &err), 0);
    assert_int_equal(lc_lz4_dec_update(d, "\x22\x4d", 2, &out, &done, &err), 0);
    assert_int_equal(lc_lz4_dec_update(d, "\x19", 1, &out, &done, &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "lz4: bad magic 0x194d2204");
    lc_lz4_dec_free(d);
    lc_buf_free(&out);
}

static void test_lz4_trailing_garbage(void **state)
{
    struct lc_buf z = {0};
    struct lc_error err = {0};

    (void)state;
    assert_int_equal(lc_lz4_compress("abc", 3, &z, &err), 0);
    size_t one = z.len;
    assert_int_equal(lc_buf_append(&z, "\0", 1), 0);
    assert_int_equal(decode(z.data, z.len, &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "00000000_00000000.wal.lz4: lz4: trailing garbage after the "
                                 "end of the frame");
    /* a second complete frame is trailing garbage too */
    z.len = one;
    assert_int_equal(lc_lz4_compress("def", 3, &z, &err), 0);
    assert_int_equal(decode(z.data, z.len, &err), LC_ECORRUPT);
    assert_non_null(strstr(err.msg, "trailing garbage"));
    lc_buf_free(&z);
}

/* ------------------------------------------------------------------------------------ */
/* Bounds                                                                                */

/* xxHash32 of a short input (< 16 bytes), enough for an LZ4 frame header's HC byte. */
static uint32_t rotl(uint32_t x, int r)
{
    return x << r | x >> (32 - r);
}

static uint8_t header_checksum(const uint8_t *frame)
{
    const uint32_t p1 = 2654435761u, p2 = 2246822519u, p3 = 3266489917u, p4 = 668265263u,
                   p5 = 374761393u;
    size_t n = (frame[4] & 0x08) ? 10 : 2; /* FLG, BD, [content size] */
    const uint8_t *d = frame + 4;
    uint32_t h = p5 + (uint32_t)n;
    size_t i = 0;

    assert_int_equal(frame[4] & 0x01, 0); /* no dictionary id in our fixtures */
    for (; i + 4 <= n; i += 4) {
        uint32_t w = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16 |
                     (uint32_t)d[i + 3] << 24;
        h = rotl(h + w * p3, 17) * p4;
    }
    for (; i < n; i++)
        h = rotl(h + d[i] * p5, 11) * p1;
    h ^= h >> 15;
    h *= p2;
    h ^= h >> 13;
    h *= p3;
    h ^= h >> 16;
    return (uint8_t)(h >> 8);
}

static void test_lz4_output_bound(void **state)
{
    struct lc_buf z = {0}, out = {0};
    struct lc_error err = {0};
    size_t n = 5 * MiB;
    uint8_t *t = text_bytes(n);

    (void)state;
    assert_int_equal(lc_lz4_compress(t, n, &z, &err), 0);
    /* exactly enough room */
    out.max = n;
    assert_int_equal(lc_lz4_decompress(z.data, z.len, &out, "b.lz4", &err), 0);
    assert_int_equal(out.len, n);
    assert_true(out.cap <= n);
    lc_buf_free(&out);
    /* one byte short: refused, never grown past the bound */
    out.max = n - 1;
    assert_int_equal(lc_lz4_decompress(z.data, z.len, &out, "b.lz4", &err), LC_ENOMEM);
    assert_string_equal(err.msg, "b.lz4: lz4: decompressed data over its bound");
    assert_true(out.cap <= n - 1 && out.len <= n - 1);
    lc_buf_free(&out);
    /* a frame claiming a huge content size allocates nothing for it */
    LZ4F_preferences_t p;
    memset(&p, 0, sizeof(p));
    p.frameInfo.contentSize = 100;
    lc_buf_free(&z);
    lz4f_encode(t, 100, &p, &z);
    assert_int_equal(z.data[4] & 0x08, 0x08);           /* FLG: content size present */
    assert_int_equal(z.data[14], header_checksum(z.data)); /* our xxh32 agrees with liblz4 */
    for (int i = 0; i < 8; i++)                          /* content size: bytes 6..13 */
        z.data[6 + i] = i == 7 ? 0x00 : 0xff;
    z.data[14] = header_checksum(z.data);
    out.max = 4096;
    assert_int_equal(lc_lz4_decompress(z.data, z.len, &out, "c.lz4", &err), LC_ECORRUPT);
    assert_string_equal(err.msg, "c.lz4: lz4: content size mismatch");
    assert_true(out.cap <= 4096);
    lc_buf_free(&out);
    lc_buf_free(&z);

    /* the encoder: emitting a block needs room for its worst case... */
    z.max = BLOCK;
    assert_int_equal(lc_lz4_compress(t, n, &z, &err), LC_ENOMEM);
    assert_true(z.cap <= z.max);
    lc_buf_free(&z);
    z.max = BLOCK;
    assert_int_equal(lc_lz4_compress(t, 1000, &z, &err), 0); /* ...held input needs little */
    assert_true(z.cap <= z.max);
    lc_buf_free(&z);
    /* ...and incompressible data needs exactly its stored size and no more */
    uint8_t *r = random_bytes(4 * MiB, 6);
    size_t exact = 7 + 4 * MiB / BLOCK * 4 + 4 * MiB + 8;
    z.max = exact;
    assert_int_equal(lc_lz4_compress(r, 4 * MiB, &z, &err), 0);
    assert_int_equal(z.len, exact);
    assert_true(z.cap <= exact);
    lc_buf_free(&z);
    z.max = exact - 1;
    assert_int_equal(lc_lz4_compress(r, 4 * MiB, &z, &err), LC_ENOMEM);
    assert_string_equal(err.msg, "lz4: compressed output over its bound");
    assert_true(z.cap <= exact - 1);
    lc_buf_free(&z);
    /* after a failure the encoder starts a fresh, valid frame */
    struct lc_lz4_enc *e;
    assert_int_equal(lc_lz4_enc_new(&e, &err), 0);
    z.max = 1024;
    assert_int_equal(lc_lz4_enc_update(e, r, BLOCK / 2, &z, &err), 0); /* held, nothing out */
    assert_int_equal(lc_lz4_enc_end(e, &z, &err), LC_ENOMEM);
    lc_buf_free(&z);
    assert_int_equal(lc_lz4_enc_update(e, "again", 5, &z, &err), 0);
    assert_int_equal(lc_lz4_enc_end(e, &z, &err), 0);
    assert_int_equal(lc_lz4_decompress(z.data, z.len, &out, "d", &err), 0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "again", 5);
    lc_lz4_enc_free(e);
    lc_buf_free(&z);
    lc_buf_free(&out);
    free(r);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_keys_rejected),
        cmocka_unit_test(test_parse_names),
        cmocka_unit_test(test_parse_bad_names),
        cmocka_unit_test(test_is_generation),
        cmocka_unit_test(test_lz4_round_trip_small),
        cmocka_unit_test(test_lz4_round_trip_large),
        cmocka_unit_test(test_lz4_streaming_encoder),
        cmocka_unit_test(test_lz4_foreign_frames),
        cmocka_unit_test(test_lz4_streaming_decoder),
        cmocka_unit_test(test_lz4_stream_to_consumer),
        cmocka_unit_test(test_lz4_truncated),
        cmocka_unit_test(test_lz4_reset_after_sized_frame),
        cmocka_unit_test(test_lz4_corrupt_bytes),
        cmocka_unit_test(test_lz4_bad_magic),
        cmocka_unit_test(test_lz4_trailing_garbage),
        cmocka_unit_test(test_lz4_output_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
