/* segment: replica object names and LZ4 framing. No I/O: callers hand in buffers.
 *
 * NAMES
 *
 * A replica holds, relative to its root (reference §3):
 *
 *   generations/<gen>/snapshots/<index>.snapshot.lz4
 *   generations/<gen>/wal/<index>_<offset>.wal.lz4
 *
 * gen is exactly 16 lowercase hex digits; index (the shadow WAL number, at most
 * 0x7fffffff) and offset (a byte offset in that shadow WAL) are printed "%08x". The widths
 * are fixed so that lexicographic order, the only order an S3 listing gives, is numeric
 * order. An offset of 4 GiB or more would print nine digits, which Litestream's parser
 * rejects, so such keys are refused here rather than written and later lost. Parsing is
 * exact: eight lowercase hex digits and the literal suffix, nothing before or after;
 * uppercase digits, signs, spaces, dots and slashes all make a name "not ours", which
 * callers skip, and so does an index above LC_MAX_INDEX: every name that parses can be
 * built again as a key (a stray "ffffffff.snapshot.lz4" would otherwise be chosen as
 * the newest snapshot and then have no key to download it by). Keys are only ever built
 * from a valid generation name, so no key can climb out of its generation with "..".
 *
 * LZ4 FRAMES
 *
 * Every object is one standard LZ4 frame (the frame format, not raw blocks):
 *
 *   magic      04 22 4d 18 (0x184d2204 little-endian)
 *   FLG        version 01, block independence, block checksum, content size,
 *              content checksum, dictionary id flags
 *   BD         maximum block size: 64 KiB, 256 KiB, 1 MiB or 4 MiB
 *   [content size, 8 bytes] [dictionary id, 4 bytes]   when flagged
 *   HC         one byte of the header's xxHash32
 *   blocks     each a 4-byte little-endian size (high bit set: stored uncompressed),
 *              the data, and a 4-byte xxHash32 when block checksums are on
 *   end mark   00 00 00 00
 *   [content checksum, 4 bytes: xxHash32 of all decompressed bytes]   when flagged
 *
 * We write what Litestream v0.3.13 writes (content checksum, independent blocks, no block
 * checksums, no content size, the fastest level) but in 64 KiB blocks where it uses
 * 4 MiB: a whole block in one update lets liblz4 compress it straight from our read
 * buffer, where a 4 MiB block is first copied into liblz4's own staging buffer (a memcpy
 * of every shipped byte, and 8 MiB of buffers a frame). LZ4's matches reach back 64 KiB
 * at most, so smaller blocks cost only a 4-byte header a block. Litestream v0.3.13
 * restores such frames (the interop test checks it). We read any valid frame
 * (linked blocks, any block size, any checksum combination, content size) because other
 * writers, including the lz4 CLI used to build fixtures, choose differently. Exactly one
 * frame per object: a bad magic (skippable and legacy frames included), a failed header,
 * block or content check, a truncated frame and bytes after the end mark are all
 * LC_ECORRUPT.
 *
 * BOUNDS
 *
 * Output always goes into a struct lc_buf and never past its max. The encoder feeds
 * liblz4 at most up to the next block boundary per call, and tracks how much input liblz4
 * is holding, so it reserves exactly what liblz4 demands: 8 bytes while input is merely
 * buffered, one worst-case block (64 KiB + 12) when a block is due. The decoder writes
 * into a fixed scratch buffer and appends only what was produced, so the size fields of an
 * untrusted frame (content size, block sizes) never decide an allocation; liblz4's own
 * buffers are bounded by the 4 MiB format maximum. Both are reusable: the encoder starts
 * a new frame on the first update after lc_lz4_enc_end() or after an error, the decoder
 * after lc_lz4_dec_reset(). On error, out may hold a partial frame: discard it. */
#include "segment.h"

#include <assert.h>
#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENC_BLOCK ((size_t)64 << 10)  /* LZ4F_max64KB */
#define ENC_FRAME_END 8               /* what liblz4 adds to every bound: end mark + checksum */
#define ENC_BLOCK_HDR 4               /* block size word */
#define DEC_SCRATCH ((size_t)4 << 20) /* a whole block: liblz4 decodes into it directly */

static const uint8_t lz4_magic[4] = {0x04, 0x22, 0x4d, 0x18};

/* ------------------------------------------------------------------------------------ */
/* Names                                                                                 */

static int fmt_result(char *buf, size_t len, int n)
{
    if (n < 0 || (size_t)n >= len) {
        if (len)
            buf[0] = '\0';
        return LC_EINVAL;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Eight lowercase hex digits at s (which must have at least 8 readable chars or a NUL). */
static int parse_hex8(const char *s, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 8; i++) {
        int d = hexval(s[i]);
        if (d < 0)
            return LC_EINVAL;
        x = x << 4 | (uint32_t)d;
    }
    *v = x;
    return 0;
}

int lc_seg_is_generation(const char *name)
{
    if (!name || strnlen(name, LC_GEN_LEN + 1) != LC_GEN_LEN)
        return 0;
    for (size_t i = 0; i < LC_GEN_LEN; i++)
        if (hexval(name[i]) < 0)
            return 0;
    return 1;
}

int lc_seg_generations_prefix(char *buf, size_t len)
{
    return fmt_result(buf, len, snprintf(buf, len, "generations/"));
}

int lc_seg_snapshots_prefix(char *buf, size_t len, const char *gen)
{
    if (!lc_seg_is_generation(gen))
        return fmt_result(buf, len, -1);
    return fmt_result(buf, len, snprintf(buf, len, "generations/%s/snapshots/", gen));
}

int lc_seg_wal_prefix(char *buf, size_t len, const char *gen)
{
    if (!lc_seg_is_generation(gen))
        return fmt_result(buf, len, -1);
    return fmt_result(buf, len, snprintf(buf, len, "generations/%s/wal/", gen));
}

int lc_seg_snapshot_key(char *buf, size_t len, const char *gen, uint32_t index)
{
    if (index > LC_MAX_INDEX || !lc_seg_is_generation(gen))
        return fmt_result(buf, len, -1);
    return fmt_result(buf, len,
                      snprintf(buf, len, "generations/%s/snapshots/%08x.snapshot.lz4", gen,
                               (unsigned)index));
}

int lc_seg_wal_key(char *buf, size_t len, const char *gen, uint32_t index, uint64_t offset)
{
    if (index > LC_MAX_INDEX || offset > LC_MAX_OFFSET || !lc_seg_is_generation(gen))
        return fmt_result(buf, len, -1);
    return fmt_result(buf, len,
                      snprintf(buf, len, "generations/%s/wal/%08x_%08x.wal.lz4", gen,
                               (unsigned)index, (unsigned)offset));
}

int lc_seg_parse_snapshot_name(const char *name, uint32_t *index)
{
    static const char sfx[] = ".snapshot.lz4";
    uint32_t i;

    if (!name || strnlen(name, 8 + sizeof(sfx)) != 8 + sizeof(sfx) - 1)
        return LC_EINVAL;
    if (parse_hex8(name, &i) < 0 || i > LC_MAX_INDEX ||
        memcmp(name + 8, sfx, sizeof(sfx)) != 0)
        return LC_EINVAL;
    *index = i;
    return 0;
}

int lc_seg_parse_wal_name(const char *name, uint32_t *index, uint32_t *offset)
{
    static const char sfx[] = ".wal.lz4";
    uint32_t i, o;

    if (!name || strnlen(name, 17 + sizeof(sfx)) != 17 + sizeof(sfx) - 1)
        return LC_EINVAL;
    if (parse_hex8(name, &i) < 0 || i > LC_MAX_INDEX || name[8] != '_' ||
        parse_hex8(name + 9, &o) < 0 || memcmp(name + 17, sfx, sizeof(sfx)) != 0)
        return LC_EINVAL;
    *index = i;
    *offset = o;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* liblz4 errors                                                                         */

static int lz_is(size_t r, const char *code)
{
    return strcmp(LZ4F_getErrorName(r), code) == 0;
}

static const char *lz_text(size_t r)
{
    static const struct {
        const char *code, *text;
    } map[] = {
        {"ERROR_frameType_unknown", "bad magic"},
        {"ERROR_headerChecksum_invalid", "bad frame header checksum"},
        {"ERROR_blockChecksum_invalid", "block checksum mismatch"},
        {"ERROR_contentChecksum_invalid", "content checksum mismatch"},
        {"ERROR_decompressionFailed", "corrupt block"},
        {"ERROR_frameSize_wrong", "content size mismatch"},
        {"ERROR_maxBlockSize_invalid", "bad block size in frame header"},
        {"ERROR_blockMode_invalid", "bad block mode in frame header"},
        {"ERROR_reservedFlag_set", "reserved flag set in frame header"},
        {"ERROR_headerVersion_wrong", "unsupported frame version"},
        {"ERROR_allocation_failed", "out of memory"},
    };
    const char *name = LZ4F_getErrorName(r);
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(name, map[i].code) == 0)
            return map[i].text;
    return name;
}

/* ------------------------------------------------------------------------------------ */
/* Encoder                                                                               */

struct lc_lz4_enc {
    LZ4F_cctx *cctx; /* liblz4 compression context, reused frame after frame */
    int started;     /* the frame header is out and the frame not yet ended */
    size_t held;     /* input liblz4 holds for the next block, always < ENC_BLOCK */
};

static const LZ4F_preferences_t enc_prefs = {
    .frameInfo = {.blockSizeID = LZ4F_max64KB,
                  .blockMode = LZ4F_blockIndependent,
                  .contentChecksumFlag = LZ4F_contentChecksumEnabled,
                  .frameType = LZ4F_frame,
                  .contentSize = 0,
                  .blockChecksumFlag = LZ4F_noBlockChecksum},
    .compressionLevel = 0,
    .autoFlush = 0,
};

static int enc_fail(struct lc_lz4_enc *e, struct lc_error *err, int code, size_t r)
{
    e->started = 0; /* the next update begins a fresh frame */
    e->held = 0;
    if (code == LC_ENOMEM)
        return lc_err_set(err, LC_ENOMEM, "lz4: compressed output over its bound");
    return lc_err_set(err, LC_EIO, "lz4: compress: %s", lz_text(r));
}

int lc_lz4_enc_new(struct lc_lz4_enc **out, struct lc_error *err)
{
    struct lc_lz4_enc *e = calloc(1, sizeof(*e));

    *out = NULL;
    if (!e)
        return lc_err_set(err, LC_ENOMEM, "lz4: out of memory");
    if (LZ4F_isError(LZ4F_createCompressionContext(&e->cctx, LZ4F_VERSION))) {
        free(e);
        return lc_err_set(err, LC_ENOMEM, "lz4: cannot create a compression context");
    }
    *out = e;
    return 0;
}

/* One liblz4 call with `need` bytes reserved; if this liblz4 asks for more than our
 * model of it predicts, retry once with its documented worst case. The capacity check
 * happens before liblz4 touches its state, so the retry is safe. */
static size_t enc_call(struct lc_lz4_enc *e, struct lc_buf *out, size_t need, const void *in,
                       size_t n, int end, int *nomem)
{
    size_t r = 0;
    *nomem = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (lc_buf_reserve(out, need) < 0) {
            *nomem = 1;
            return 0;
        }
        if (end)
            r = LZ4F_compressEnd(e->cctx, out->data + out->len, out->cap - out->len, NULL);
        else
            r = LZ4F_compressUpdate(e->cctx, out->data + out->len, out->cap - out->len, in, n,
                                    NULL);
        if (!LZ4F_isError(r) || !lz_is(r, "ERROR_dstMaxSize_tooSmall"))
            break;
        need = LZ4F_compressBound(n, &enc_prefs);
    }
    return r;
}

static int enc_begin(struct lc_lz4_enc *e, struct lc_buf *out, struct lc_error *err)
{
    size_t r;

    if (lc_buf_reserve(out, LZ4F_HEADER_SIZE_MAX) < 0)
        return enc_fail(e, err, LC_ENOMEM, 0);
    r = LZ4F_compressBegin(e->cctx, out->data + out->len, out->cap - out->len, &enc_prefs);
    if (LZ4F_isError(r))
        return enc_fail(e, err, LC_EIO, r);
    out->len += r;
    e->started = 1;
    e->held = 0;
    return 0;
}

int lc_lz4_enc_update(struct lc_lz4_enc *e, const void *in, size_t n, struct lc_buf *out,
                      struct lc_error *err)
{
    const uint8_t *p = in;
    int rc, nomem;

    assert(in != NULL || n == 0);
    if (!e->started && (rc = enc_begin(e, out, err)) < 0)
        return rc;
    while (n) {
        size_t take = ENC_BLOCK - e->held;
        if (take > n)
            take = n;
        int full = e->held + take == ENC_BLOCK;
        size_t need = (full ? ENC_BLOCK_HDR + ENC_BLOCK : 0) + ENC_FRAME_END;
        size_t r = enc_call(e, out, need, p, take, 0, &nomem);
        if (nomem)
            return enc_fail(e, err, LC_ENOMEM, 0);
        if (LZ4F_isError(r))
            return enc_fail(e, err, LC_EIO, r);
        assert(out->len + r <= out->cap);
        out->len += r;
        e->held = full ? 0 : e->held + take;
        p += take;
        n -= take;
    }
    assert(e->held < ENC_BLOCK);
    return 0;
}

int lc_lz4_enc_end(struct lc_lz4_enc *e, struct lc_buf *out, struct lc_error *err)
{
    int rc, nomem;

    if (!e->started && (rc = enc_begin(e, out, err)) < 0)
        return rc;
    /* last partial block (stored raw at worst) + end mark + content checksum */
    size_t need = (e->held ? ENC_BLOCK_HDR + e->held : 0) + ENC_FRAME_END;
    size_t r = enc_call(e, out, need, NULL, 0, 1, &nomem);
    if (nomem)
        return enc_fail(e, err, LC_ENOMEM, 0);
    if (LZ4F_isError(r))
        return enc_fail(e, err, LC_EIO, r);
    out->len += r;
    e->started = 0;
    e->held = 0;
    return 0;
}

void lc_lz4_enc_free(struct lc_lz4_enc *e)
{
    if (!e)
        return;
    LZ4F_freeCompressionContext(e->cctx);
    free(e);
}

int lc_lz4_compress(const void *in, size_t n, struct lc_buf *out, struct lc_error *err)
{
    struct lc_lz4_enc *e;
    int rc = lc_lz4_enc_new(&e, err);

    if (rc < 0)
        return rc;
    if ((rc = lc_lz4_enc_update(e, in, n, out, err)) == 0)
        rc = lc_lz4_enc_end(e, out, err);
    lc_lz4_enc_free(e);
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Decoder                                                                               */

struct lc_lz4_dec {
    LZ4F_dctx *dctx;  /* liblz4 decompression context */
    uint8_t *scratch; /* DEC_SCRATCH bytes: liblz4 writes here, we append to out */
    uint8_t magic[5]; /* the frame's magic, checked before liblz4 sees it, and FLG */
    size_t seen;      /* bytes of magic[] filled, at most 5 */
    int done;         /* the frame has ended: further input is trailing garbage */
    int failed;       /* an error left the context undefined until a reset */
};

int lc_lz4_dec_new(struct lc_lz4_dec **out, struct lc_error *err)
{
    struct lc_lz4_dec *d = calloc(1, sizeof(*d));

    *out = NULL;
    if (!d || !(d->scratch = malloc(DEC_SCRATCH))) {
        free(d);
        return lc_err_set(err, LC_ENOMEM, "lz4: out of memory");
    }
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d->dctx, LZ4F_VERSION))) {
        free(d->scratch);
        free(d);
        return lc_err_set(err, LC_ENOMEM, "lz4: cannot create a decompression context");
    }
    *out = d;
    return 0;
}

/* liblz4 1.9.4's reset rewinds the stage but not the remaining content size of a frame
 * that declared one (FLG bit 3) and never ended, so a valid frame decoded next could fail
 * with "content size mismatch". Such a context is replaced; every other one is reused
 * (a fresh context reallocates liblz4's block buffers). */
void lc_lz4_dec_reset(struct lc_lz4_dec *d)
{
    if (!d->done && d->seen == sizeof(d->magic) && (d->magic[4] & 0x08)) {
        LZ4F_dctx *fresh = NULL;
        if (LZ4F_isError(LZ4F_createDecompressionContext(&fresh, LZ4F_VERSION))) {
            d->failed = 1; /* the next update refuses; the old context stays freeable */
            return;
        }
        LZ4F_freeDecompressionContext(d->dctx);
        d->dctx = fresh;
    } else {
        LZ4F_resetDecompressionContext(d->dctx);
    }
    d->seen = 0;
    d->done = 0;
    d->failed = 0;
}

static int dec_fail(struct lc_lz4_dec *d, struct lc_error *err, int code, const char *what)
{
    d->failed = 1;
    return lc_err_set(err, code, "lz4: %s", what);
}

/* Check the frame's first bytes ourselves: liblz4 would also accept skippable frames,
 * and its error would not show what the object starts with. */
static int dec_magic(struct lc_lz4_dec *d, const uint8_t *p, size_t n, struct lc_error *err)
{
    char what[64];
    size_t k = 0, w;

    while (d->seen < sizeof(d->magic) && k < n)
        d->magic[d->seen++] = p[k++];
    size_t m4 = d->seen < 4 ? d->seen : 4;
    if (k == 0 || memcmp(d->magic, lz4_magic, m4) == 0)
        return 0;
    if (m4 == 4) {
        uint32_t m = (uint32_t)d->magic[0] | (uint32_t)d->magic[1] << 8 |
                     (uint32_t)d->magic[2] << 16 | (uint32_t)d->magic[3] << 24;
        snprintf(what, sizeof(what), "bad magic 0x%08x", (unsigned)m);
    } else {
        /* fewer than 4 bytes so far, and already wrong: show them in file order */
        w = (size_t)snprintf(what, sizeof(what), "bad magic, starts");
        for (size_t i = 0; i < m4 && w < sizeof(what); i++)
            w += (size_t)snprintf(what + w, sizeof(what) - w, " %02x", d->magic[i]);
    }
    return dec_fail(d, err, LC_ECORRUPT, what);
}

int lc_lz4_dec_stream(struct lc_lz4_dec *d, const void *in, size_t n, lc_lz4_emit_fn emit,
                      void *arg, int *done, struct lc_error *err)
{
    const uint8_t *p = in;
    int rc;

    assert(in != NULL || n == 0);
    *done = d->done;
    if (d->failed)
        return lc_err_set(err, LC_EINVAL, "lz4: decoder reused after an error without a reset");
    if (d->done && n)
        return dec_fail(d, err, LC_ECORRUPT, "trailing garbage after the end of the frame");
    if ((rc = dec_magic(d, p, n, err)) < 0)
        return rc;
    while (!d->done) {
        size_t dst = DEC_SCRATCH, src = n;
        size_t r = LZ4F_decompress(d->dctx, d->scratch, &dst, p, &src, NULL);
        if (LZ4F_isError(r))
            return dec_fail(d, err, lz_is(r, "ERROR_allocation_failed") ? LC_ENOMEM : LC_ECORRUPT,
                            lz_text(r));
        assert(src <= n && dst <= DEC_SCRATCH);
        p += src;
        n -= src;
        if (dst && (rc = emit(arg, d->scratch, dst, err))) {
            d->failed = 1; /* the consumer refused: this frame cannot go on */
            return rc;
        }
        if (r == 0)
            d->done = 1;
        else if (src == 0 && dst == 0)
            break; /* everything consumed and flushed: wait for more input */
    }
    if (n) {
        /* liblz4 always progresses while it has room and input, so only a finished
         * frame leaves input unconsumed */
        return dec_fail(d, err, LC_ECORRUPT, "trailing garbage after the end of the frame");
    }
    *done = d->done;
    return 0;
}

static int emit_append(void *arg, const uint8_t *b, size_t n, struct lc_error *err)
{
    if (lc_buf_append(arg, b, n) < 0)
        return lc_err_set(err, LC_ENOMEM, "lz4: decompressed data over its bound");
    return 0;
}

int lc_lz4_dec_update(struct lc_lz4_dec *d, const void *in, size_t n, struct lc_buf *out,
                      int *done, struct lc_error *err)
{
    return lc_lz4_dec_stream(d, in, n, emit_append, out, done, err);
}

void lc_lz4_dec_free(struct lc_lz4_dec *d)
{
    if (!d)
        return;
    LZ4F_freeDecompressionContext(d->dctx);
    free(d->scratch);
    free(d);
}

int lc_lz4_decompress(const void *in, size_t n, struct lc_buf *out, const char *name,
                      struct lc_error *err)
{
    struct lc_lz4_dec *d;
    int done = 0, rc;

    if (!name)
        name = "lz4 object";
    if ((rc = lc_lz4_dec_new(&d, err)) < 0)
        return lc_err_wrap(err, "%s", name);
    rc = lc_lz4_dec_update(d, in, n, out, &done, err);
    lc_lz4_dec_free(d);
    if (rc < 0)
        return lc_err_wrap(err, "%s", name);
    if (!done)
        return lc_err_set(err, LC_ECORRUPT, "%s: lz4: truncated frame", name);
    return 0;
}
