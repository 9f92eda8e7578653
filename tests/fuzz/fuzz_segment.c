/* fuzz_segment: LZ4 frame decoding and encoding (src/segment.c) and object names.
 *
 * The first input byte is a control byte; the rest is an untrusted object.
 *   - one-shot: lc_lz4_decompress into an lc_buf bounded at OUT_MAX (never past it);
 *   - streaming: the same bytes through lc_lz4_dec_update in chunks whose sizes come from
 *     the control byte; it must agree with the one-shot result (same output on success;
 *     a failure or an unfinished frame when the one-shot failed);
 *   - a decoder reused after lc_lz4_dec_reset decodes a known frame correctly;
 *   - round trip (control bits 0x60 set): the bytes compressed (in chunks) and decompressed
 *     are the bytes, and an encoder bounded too tightly fails with LC_ENOMEM instead of
 *     overflowing;
 *   - the bytes as a base name: the name parsers must not read past the NUL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX ((size_t)1 << 20) /* decompressed bytes allowed per object */

#define CHECK(c)                                                                            \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            fprintf(stderr, "fuzz_segment: check failed at line %d: %s\n", __LINE__, #c);   \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static void check_err(const struct lc_error *err, int rc)
{
    CHECK(rc < 0 && err->code == rc);
    CHECK(err->msg[0] != '\0');
    CHECK(memchr(err->msg, '\n', sizeof(err->msg)) == NULL);
}

static void names(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    uint32_t idx, off;

    CHECK(s);
    memcpy(s, data, size);
    s[size] = '\0';
    (void)lc_seg_parse_snapshot_name(s, &idx);
    (void)lc_seg_parse_wal_name(s, &idx, &off);
    (void)lc_seg_is_generation(s);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lc_error err = {0};
    struct lc_buf one = {.max = OUT_MAX}, str = {.max = OUT_MAX};
    static struct lc_lz4_dec *d;
    uint8_t ctl;
    int rc1, rc2 = 0, done = 0;

    if (size == 0)
        return 0;
    ctl = data[0];
    data++;
    size--;

    /* one-shot */
    rc1 = lc_lz4_decompress(data, size, &one, "obj", &err);
    CHECK(one.len <= OUT_MAX && one.cap <= OUT_MAX);
    if (rc1) {
        check_err(&err, rc1);
        CHECK(rc1 == LC_ECORRUPT || rc1 == LC_ENOMEM);
        CHECK(strncmp(err.msg, "obj: ", 5) == 0);
    }

    /* streaming, in chunks of 1..256 bytes or all at once, with one decoder reset between
     * inputs (the reuse path; also spares liblz4's block buffers a fresh calloc each time) */
    if (!d)
        CHECK(lc_lz4_dec_new(&d, &err) == 0);
    lc_lz4_dec_reset(d);
    size_t chunk = (ctl & 0x80) ? size : (size_t)(ctl & 0x7f) * 2 + 1;
    for (size_t pos = 0; pos < size && rc2 == 0;) {
        size_t n = size - pos < chunk ? size - pos : chunk;
        rc2 = lc_lz4_dec_update(d, data + pos, n, &str, &done, &err);
        CHECK(str.len <= OUT_MAX);
        pos += n;
    }
    if (rc2)
        check_err(&err, rc2);
    if (rc1 == 0) {
        CHECK(rc2 == 0 && done == 1);
        CHECK(str.len == one.len && (one.len == 0 || memcmp(str.data, one.data, one.len) == 0));
    } else {
        CHECK(rc2 != 0 || done == 0);
    }
    /* after an error the decoder refuses input until reset */
    if (rc2) {
        int dn;
        CHECK(lc_lz4_dec_update(d, "x", 1, &str, &dn, &err) < 0);
    }

    /* one encoder for the whole run (reuse is part of its contract) */
    static struct lc_lz4_enc *e;
    if (!e)
        CHECK(lc_lz4_enc_new(&e, &err) == 0);

    /* reset, then a known frame must decode */
    lc_lz4_dec_reset(d);
    {
        static const char msg[] = "litecast fuzz";
        static struct lc_buf z; /* msg as a frame, made once */
        struct lc_buf back = {.max = 64};
        if (!z.len) {
            CHECK(lc_lz4_enc_update(e, msg, sizeof(msg), &z, &err) == 0);
            CHECK(lc_lz4_enc_end(e, &z, &err) == 0);
        }
        CHECK(lc_lz4_dec_update(d, z.data, z.len, &back, &done, &err) == 0 && done);
        CHECK(back.len == sizeof(msg) && memcmp(back.data, msg, sizeof(msg)) == 0);
        lc_buf_free(&back);
    }

    /* round trip through the streaming encoder, for a quarter of the inputs: liblz4 1.9.4
     * callocs a fresh 4 MiB block buffer at every frame start, the dearest step here */
    if ((ctl & 0x60) == 0x60) {
        struct lc_buf z = {0}, back = {.max = OUT_MAX};
        size_t step = (size_t)(ctl & 0x3f) * 97 + 1;
        int rc = 0;
        for (size_t pos = 0; pos < size && rc == 0; pos += step)
            rc = lc_lz4_enc_update(e, data + pos, size - pos < step ? size - pos : step, &z,
                                   &err);
        CHECK(rc == 0);
        CHECK(lc_lz4_enc_end(e, &z, &err) == 0);
        CHECK(lc_lz4_decompress(z.data, z.len, &back, "round trip", &err) == 0);
        CHECK(back.len == size && (size == 0 || memcmp(back.data, data, size) == 0));
        lc_buf_free(&back);

        /* the encoder is reusable; a tight bound fails cleanly */
        struct lc_buf tight = {.max = (size_t)(ctl & 0x1f) + 1};
        rc = lc_lz4_enc_update(e, data, size, &tight, &err);
        if (rc == 0)
            rc = lc_lz4_enc_end(e, &tight, &err);
        if (rc)
            CHECK(rc == LC_ENOMEM && err.code == LC_ENOMEM);
        CHECK(tight.len <= tight.max && tight.cap <= tight.max);
        lc_buf_free(&tight);
        lc_buf_free(&z);
    }

    names(data, size);
    lc_buf_free(&one);
    lc_buf_free(&str);
    return 0;
}
