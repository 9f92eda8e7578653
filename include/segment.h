/* segment: replica object names (Litestream v0.3 layout, reference §3) and LZ4 frame
 * encoding/decoding through liblz4's frame API. No I/O: callers hand in buffers.
 *
 *   generations/<gen:16 hex>/snapshots/<index:%08x>.snapshot.lz4
 *   generations/<gen:16 hex>/wal/<index:%08x>_<offset:%08x>.wal.lz4            */
#ifndef LC_SEGMENT_H
#define LC_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define LC_GEN_LEN 16
#define LC_MAX_INDEX 0x7fffffffu
#define LC_MAX_OFFSET 0xffffffffu /* an offset must fit 8 hex digits */
#define LC_KEY_MAX 1024

/* Keys relative to the replica root (no leading slash). Return LC_EINVAL on overflow. */
int lc_seg_generations_prefix(char *buf, size_t len);               /* "generations/" */
int lc_seg_snapshots_prefix(char *buf, size_t len, const char *gen); /* ".../snapshots/" */
int lc_seg_wal_prefix(char *buf, size_t len, const char *gen);       /* ".../wal/" */
int lc_seg_snapshot_key(char *buf, size_t len, const char *gen, uint32_t index);
int lc_seg_wal_key(char *buf, size_t len, const char *gen, uint32_t index, uint64_t offset);

/* Parse a base name; 0 on a match, LC_EINVAL otherwise (other names are ignored). */
int lc_seg_parse_snapshot_name(const char *name, uint32_t *index);
int lc_seg_parse_wal_name(const char *name, uint32_t *index, uint32_t *offset);
/* 1 if name is exactly 16 lowercase hex chars. */
int lc_seg_is_generation(const char *name);

/* LZ4 frame: 4 MiB independent blocks, content checksum, no content size (what
 * Litestream v0.3.13 writes). Streaming compressor for large inputs: */
struct lc_lz4_enc;
int lc_lz4_enc_new(struct lc_lz4_enc **out, struct lc_error *err);
/* Append compressed bytes for in[0..n) to out (begins the frame on first use). */
int lc_lz4_enc_update(struct lc_lz4_enc *e, const void *in, size_t n, struct lc_buf *out,
                      struct lc_error *err);
/* Finish the frame (end mark + checksum) into out; the encoder may then be reused. */
int lc_lz4_enc_end(struct lc_lz4_enc *e, struct lc_buf *out, struct lc_error *err);
void lc_lz4_enc_free(struct lc_lz4_enc *e);
/* One-shot: compress in into out (appends). */
int lc_lz4_compress(const void *in, size_t n, struct lc_buf *out, struct lc_error *err);

/* Streaming decompressor: accepts any valid LZ4 frame (linked blocks, any block size,
 * with or without checksums). Output bounded by out->max. */
struct lc_lz4_dec;
int lc_lz4_dec_new(struct lc_lz4_dec **out, struct lc_error *err);
/* Feed compressed bytes; appends decompressed output. *done set to 1 at frame end. */
int lc_lz4_dec_update(struct lc_lz4_dec *d, const void *in, size_t n, struct lc_buf *out,
                      int *done, struct lc_error *err);
/* The same, without a copy: each piece of output (at most one block, 4 MiB) goes to
 * emit straight from the decoder's buffer, valid only during the call. A non-zero return
 * from emit is returned as it is and fails the frame (reset before reusing d). */
typedef int (*lc_lz4_emit_fn)(void *arg, const uint8_t *b, size_t n, struct lc_error *err);
int lc_lz4_dec_stream(struct lc_lz4_dec *d, const void *in, size_t n, lc_lz4_emit_fn emit,
                      void *arg, int *done, struct lc_error *err);
/* Forget the current frame (finished, failed or half-read) to decode a new one. */
void lc_lz4_dec_reset(struct lc_lz4_dec *d);
void lc_lz4_dec_free(struct lc_lz4_dec *d);
/* One-shot: the whole input must be exactly one complete frame (trailing bytes or a
 * truncated frame are LC_ECORRUPT). name is used in messages. */
int lc_lz4_decompress(const void *in, size_t n, struct lc_buf *out, const char *name,
                      struct lc_error *err);

#endif
