/* segment: replica object names and LZ4 framing.
 *
 * Names are fixed-width lowercase hex so that lexicographic order is numeric order
 * (S3 listings are never sorted client-side by Litestream). Parsing is strict: a name
 * that is not exactly one of the two forms is not ours and is ignored by callers.
 * LZ4 objects are standard frames; we write what Litestream v0.3.13 writes (4 MiB
 * independent blocks, content checksum, no content size) and read any valid frame. */
#include "segment.h"

#include <lz4frame.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEC_CHUNK (256u * 1024)

static int fmt(size_t len, int n)
{
    return (n < 0 || (size_t)n >= len) ? LC_EINVAL : 0;
}

int lc_seg_generations_prefix(char *buf, size_t len)
{
    return fmt(len, snprintf(buf, len, "generations/"));
}

int lc_seg_snapshots_prefix(char *buf, size_t len, const char *gen)
{
    return fmt(len, snprintf(buf, len, "generations/%s/snapshots/", gen));
}

int lc_seg_wal_prefix(char *buf, size_t len, const char *gen)
{
    return fmt(len, snprintf(buf, len, "generations/%s/wal/", gen));
}

int lc_seg_snapshot_key(char *buf, size_t len, const char *gen, uint32_t index)
{
    if (index > LC_MAX_INDEX || !lc_seg_is_generation(gen))
        return LC_EINVAL;
    return fmt(len, snprintf(buf, len, "generations/%s/snapshots/%08x.snapshot.lz4", gen,
                                  index));
}

int lc_seg_wal_key(char *buf, size_t len, const char *gen, uint32_t index, uint64_t offset)
{
    if (index > LC_MAX_INDEX || offset > LC_MAX_OFFSET || !lc_seg_is_generation(gen))
        return LC_EINVAL;
    return fmt(len, snprintf(buf, len, "generations/%s/wal/%08x_%08x.wal.lz4", gen, index,
                                  (uint32_t)offset));
}

static uint32_t hex8(const char *s)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 4 | (uint32_t)(s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
    return v;
}

int lc_seg_parse_snapshot_name(const char *name, uint32_t *index)
{
    if (strlen(name) != 21 || !lc_is_hex(name, 8) || strcmp(name + 8, ".snapshot.lz4") != 0)
        return LC_EINVAL;
    *index = hex8(name);
    return 0;
}

int lc_seg_parse_wal_name(const char *name, uint32_t *index, uint32_t *offset)
{
    if (strlen(name) != 25 || !lc_is_hex(name, 8) || name[8] != '_' ||
        !lc_is_hex(name + 9, 8) || strcmp(name + 17, ".wal.lz4") != 0)
        return LC_EINVAL;
    *index = hex8(name);
    *offset = hex8(name + 9);
    return 0;
}

int lc_seg_is_generation(const char *name)
{
    return name && strlen(name) == LC_GEN_LEN && lc_is_hex(name, LC_GEN_LEN);
}

struct lc_lz4_enc {
    LZ4F_cctx *cctx;  /* liblz4 compression context */
    int started;      /* the frame header has been written */
};

static const LZ4F_preferences_t prefs = {
    .frameInfo = {.blockSizeID = LZ4F_max4MB,
                  .blockMode = LZ4F_blockIndependent,
                  .contentChecksumFlag = LZ4F_contentChecksumEnabled},
    .compressionLevel = 0,
};

int lc_lz4_enc_new(struct lc_lz4_enc **out, struct lc_error *err)
{
    struct lc_lz4_enc *e = calloc(1, sizeof(*e));
    if (!e)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    if (LZ4F_isError(LZ4F_createCompressionContext(&e->cctx, LZ4F_VERSION))) {
        free(e);
        return lc_err_set(err, LC_ENOMEM, "lz4: cannot create context");
    }
    *out = e;
    return 0;
}

static int lz_err(struct lc_error *err, size_t r)
{
    return lc_err_set(err, LC_EIO, "lz4: %s", LZ4F_getErrorName(r));
}

int lc_lz4_enc_update(struct lc_lz4_enc *e, const void *in, size_t n, struct lc_buf *out,
                      struct lc_error *err)
{
    size_t r;
    if (!e->started) {
        if (lc_buf_reserve(out, LZ4F_HEADER_SIZE_MAX) < 0)
            return lc_err_set(err, LC_ENOMEM, "lz4: output bound exceeded");
        r = LZ4F_compressBegin(e->cctx, out->data + out->len, out->cap - out->len, &prefs);
        if (LZ4F_isError(r))
            return lz_err(err, r);
        out->len += r;
        e->started = 1;
    }
    const uint8_t *p = in;
    while (n) {
        size_t chunk = n < DEC_CHUNK ? n : DEC_CHUNK;
        size_t bound = LZ4F_compressBound(chunk, &prefs);
        if (lc_buf_reserve(out, bound) < 0)
            return lc_err_set(err, LC_ENOMEM, "lz4: output bound exceeded");
        r = LZ4F_compressUpdate(e->cctx, out->data + out->len, out->cap - out->len, p, chunk,
                                NULL);
        if (LZ4F_isError(r))
            return lz_err(err, r);
        out->len += r;
        p += chunk;
        n -= chunk;
    }
    return 0;
}

int lc_lz4_enc_end(struct lc_lz4_enc *e, struct lc_buf *out, struct lc_error *err)
{
    int rc;
    if (!e->started && (rc = lc_lz4_enc_update(e, "", 0, out, err)) < 0)
        return rc;
    size_t bound = LZ4F_compressBound(0, &prefs);
    if (lc_buf_reserve(out, bound) < 0)
        return lc_err_set(err, LC_ENOMEM, "lz4: output bound exceeded");
    size_t r = LZ4F_compressEnd(e->cctx, out->data + out->len, out->cap - out->len, NULL);
    if (LZ4F_isError(r))
        return lz_err(err, r);
    out->len += r;
    e->started = 0;
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

struct lc_lz4_dec {
    LZ4F_dctx *dctx; /* liblz4 decompression context */
    int done;        /* a whole frame has been decoded */
};

int lc_lz4_dec_new(struct lc_lz4_dec **out, struct lc_error *err)
{
    struct lc_lz4_dec *d = calloc(1, sizeof(*d));
    if (!d)
        return lc_err_set(err, LC_ENOMEM, "out of memory");
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d->dctx, LZ4F_VERSION))) {
        free(d);
        return lc_err_set(err, LC_ENOMEM, "lz4: cannot create context");
    }
    *out = d;
    return 0;
}

int lc_lz4_dec_update(struct lc_lz4_dec *d, const void *in, size_t n, struct lc_buf *out,
                      int *done, struct lc_error *err)
{
    const uint8_t *p = in;
    while (n) {
        if (d->done)
            return lc_err_set(err, LC_ECORRUPT, "lz4: trailing bytes after the frame");
        if (lc_buf_reserve(out, DEC_CHUNK) < 0)
            return lc_err_set(err, LC_ENOMEM, "lz4: decompressed size over the bound");
        size_t dst = out->cap - out->len, src = n;
        size_t r = LZ4F_decompress(d->dctx, out->data + out->len, &dst, p, &src, NULL);
        if (LZ4F_isError(r))
            return lc_err_set(err, LC_ECORRUPT, "lz4: %s", LZ4F_getErrorName(r));
        out->len += dst;
        p += src;
        n -= src;
        if (r == 0)
            d->done = 1;
        if (src == 0 && dst == 0)
            break;
    }
    /* drain output still buffered inside the context */
    while (!d->done) {
        if (lc_buf_reserve(out, DEC_CHUNK) < 0)
            return lc_err_set(err, LC_ENOMEM, "lz4: decompressed size over the bound");
        size_t dst = out->cap - out->len, src = 0;
        size_t r = LZ4F_decompress(d->dctx, out->data + out->len, &dst, NULL, &src, NULL);
        if (LZ4F_isError(r))
            return lc_err_set(err, LC_ECORRUPT, "lz4: %s", LZ4F_getErrorName(r));
        out->len += dst;
        if (r == 0)
            d->done = 1;
        if (dst == 0)
            break;
    }
    *done = d->done;
    return 0;
}

void lc_lz4_dec_free(struct lc_lz4_dec *d)
{
    if (!d)
        return;
    LZ4F_freeDecompressionContext(d->dctx);
    free(d);
}

int lc_lz4_decompress(const void *in, size_t n, struct lc_buf *out, const char *name,
                      struct lc_error *err)
{
    struct lc_lz4_dec *d;
    int done = 0, rc = lc_lz4_dec_new(&d, err);
    if (rc < 0)
        return rc;
    rc = lc_lz4_dec_update(d, in, n, out, &done, err);
    lc_lz4_dec_free(d);
    if (rc < 0)
        return lc_err_wrap(err, "%s", name);
    if (!done)
        return lc_err_set(err, LC_ECORRUPT, "%s: lz4: truncated frame", name);
    return 0;
}
