/* fuzz_names: replica object names (src/segment.c) against a reference grammar.
 *
 * The input, cut at its first NUL, is a base name. lc_seg_is_generation,
 * lc_seg_parse_snapshot_name and lc_seg_parse_wal_name must accept exactly what the
 * grammar below accepts, and whatever they accept must print back, through the key
 * builders, to the very same name: a name that parses but cannot be written back is one
 * that litecast would read and never produce (and would then fail to name in messages).
 *
 *   generation  [0-9a-f]{16}
 *   snapshot    [0-9a-f]{8} ".snapshot.lz4"          index <= LC_MAX_INDEX
 *   wal         [0-9a-f]{8} "_" [0-9a-f]{8} ".wal.lz4" index <= LC_MAX_INDEX */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                            \
    do {                                                                                    \
        if (!(c)) {                                                                         \
            fprintf(stderr, "fuzz_names: check failed at line %d: %s\n", __LINE__, #c);     \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

static const char GEN[] = "0123456789abcdef";

static int lhex(const char *s, size_t n, uint32_t *v)
{
    uint32_t x = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            x = x << 4 | (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x = x << 4 | (uint32_t)(c - 'a' + 10);
        else
            return 0;
    }
    if (v)
        *v = x;
    return 1;
}

static int ref_generation(const char *s)
{
    return strlen(s) == 16 && lhex(s, 16, NULL);
}

static int ref_snapshot(const char *s, uint32_t *index)
{
    return strlen(s) == 8 + 13 && lhex(s, 8, index) && strcmp(s + 8, ".snapshot.lz4") == 0 &&
           *index <= LC_MAX_INDEX;
}

static int ref_wal(const char *s, uint32_t *index, uint32_t *offset)
{
    return strlen(s) == 17 + 8 && lhex(s, 8, index) && s[8] == '_' && lhex(s + 9, 8, offset) &&
           strcmp(s + 17, ".wal.lz4") == 0 && *index <= LC_MAX_INDEX;
}

/* base name of a key built by the library */
static const char *base(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), key[LC_KEY_MAX];
    uint32_t idx = 0, off = 0, ridx = 0, roff = 0;
    int got, want;

    CHECK(s);
    memcpy(s, data, size);
    s[size] = '\0';

    got = lc_seg_is_generation(s);
    want = ref_generation(s);
    CHECK(got == want);
    if (got) {
        CHECK(lc_seg_snapshots_prefix(key, sizeof(key), s) == 0);
        CHECK(strlen(key) == 12 + 16 + 11 && memcmp(key + 12, s, 16) == 0);
        CHECK(lc_seg_wal_prefix(key, sizeof(key), s) == 0);
    } else {
        CHECK(lc_seg_snapshots_prefix(key, sizeof(key), s) == LC_EINVAL);
        CHECK(lc_seg_wal_key(key, sizeof(key), s, 1, 0) == LC_EINVAL);
    }

    got = lc_seg_parse_snapshot_name(s, &idx) == 0;
    want = ref_snapshot(s, &ridx);
    CHECK(got == want);
    if (got) {
        CHECK(idx == ridx);
        CHECK(lc_seg_snapshot_key(key, sizeof(key), GEN, idx) == 0);
        CHECK(strcmp(base(key), s) == 0);
    }

    got = lc_seg_parse_wal_name(s, &idx, &off) == 0;
    want = ref_wal(s, &ridx, &roff);
    CHECK(got == want);
    if (got) {
        CHECK(idx == ridx && off == roff);
        CHECK(lc_seg_wal_key(key, sizeof(key), GEN, idx, off) == 0);
        CHECK(strcmp(base(key), s) == 0);
    }

    /* a key never escapes its generation and never fits in a too small buffer */
    if (size >= 8) {
        uint32_t i = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
                     (uint32_t)data[2] << 8 | data[3];
        uint64_t o = (uint64_t)data[4] << 32 | (uint32_t)data[5] << 24 |
                     (uint32_t)data[6] << 16 | data[7];
        int rc = lc_seg_wal_key(key, sizeof(key), GEN, i, o);
        CHECK((rc == 0) == (i <= LC_MAX_INDEX && o <= LC_MAX_OFFSET));
        if (rc == 0) {
            uint32_t pi, po;
            CHECK(strstr(key, "..") == NULL && key[0] != '/');
            CHECK(lc_seg_parse_wal_name(base(key), &pi, &po) == 0 && pi == i && po == o);
            char small[8];
            CHECK(lc_seg_wal_key(small, (size_t)data[0] % sizeof(small), GEN, i, o) ==
                  LC_EINVAL);
        }
        rc = lc_seg_snapshot_key(key, sizeof(key), GEN, i);
        CHECK((rc == 0) == (i <= LC_MAX_INDEX));
    }
    free(s);
    return 0;
}
