/* store_s3: the S3 backend (AWS and S3-compatible servers such as Ceph RGW or MinIO).
 *
 * Every request goes through libcurl's multi-socket interface driven by the store's libev
 * loop (the pattern of curl's docs/examples/evhiperfifo.c): curl tells us which sockets to
 * watch (CURLMOPT_SOCKETFUNCTION -> one ev_io each) and when to call it back
 * (CURLMOPT_TIMERFUNCTION -> one ev_timer), and we hand each event to
 * CU.multi_socket_action(). Nothing here blocks on the network.
 *
 * Requests are signed by curl (CURLOPT_AWS_SIGV4). curl 7.88 signs the query string exactly
 * as written and signs the payload hash given in x-amz-content-sha256, so this file builds
 * canonical query strings itself (keys sorted, values %-encoded, "key=" for value-less keys)
 * and always sends x-amz-content-sha256 with the hex SHA-256 of the body, which is always in
 * memory: a put reads its source one part at a time (at most PART_SIZE bytes buffered), a
 * single PutObject when the whole body fits in one part, a multipart upload otherwise.
 *
 * An operation (put, get, list, delete) is a small state machine with at most one request in
 * flight. A request that fails transiently (connection refused or reset, timeouts, 5xx, 429,
 * SlowDown, RequestTimeTooSkewed) is retried on an ev_timer with exponential backoff and
 * jitter, up to max_attempts attempts; since request bodies are buffered a retry replays the
 * buffer, and a download that already passed bytes to its sink resets the sink first. Other
 * 4xx answers fail at once. Messages name the operation and key and carry the HTTP status
 * and S3 error code; the secret key is handed to curl only and never formatted anywhere.
 *
 * Invariants: every operation calls its done callback exactly once, after it has been
 * unlinked and freed (so the callback may free the store); freeing a store with operations
 * in flight cancels them without calling their callbacks; the store is destroyed only when
 * no loop callback of ours is on the stack (depth == 0). */
#include "store.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <ev.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define PART_SIZE ((size_t)8 << 20)    /* multipart part size and single-put limit */
#define MAX_PARTS 10000                /* S3's limit on parts per upload */
#define DEL_BATCH 1000                 /* S3's limit on keys per DeleteObjects */
#define RESP_MAX ((size_t)16 << 20)    /* XML answers (a 1000-key list page is ~300 KiB) */
#define ERRBODY_MAX ((size_t)64 << 10) /* error bodies and small answers */
#define URL_BUF_MAX ((size_t)16 << 10) /* a request URL */
#define XML_BODY_MAX ((size_t)4 << 20) /* DeleteObjects / CompleteMultipartUpload bodies */
#define TEXT_MAX 4096                  /* one decoded XML text value (keys are <= 1024) */
#define DEFAULT_ATTEMPTS 8             /* per request, first try included */
#define ABORT_ATTEMPTS 3               /* AbortMultipartUpload is best effort */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 10000L
#define LOW_SPEED_BYTES 1024L /* a transfer slower than this ... */
#define LOW_SPEED_SECS 30L    /* ... for this long is a timeout */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_XMLNS "http://s3.amazonaws.com/doc/2006-03-01/"

/* Request types, counted per store. DeleteObjects and AbortMultipartUpload count as DELETE,
 * CreateMultipartUpload and CompleteMultipartUpload as POST, ListObjectsV2 as LIST. */
enum kind { K_GET, K_PUT, K_LIST, K_DELETE, K_POST, K_COUNT };
static const char *const kind_names[K_COUNT] = {"GET", "PUT", "LIST", "DELETE", "POST"};

enum phase {
    PH_GET,      /* GetObject into the sink */
    PH_LIST,     /* one ListObjectsV2 page */
    PH_DEL,      /* one DeleteObjects batch */
    PH_SINGLE,   /* PutObject of the whole (small) body */
    PH_CREATE,   /* CreateMultipartUpload */
    PH_PART,     /* UploadPart */
    PH_COMPLETE, /* CompleteMultipartUpload */
    PH_ABORT,    /* AbortMultipartUpload after a failure */
};

struct s3_store;

/* One socket curl asked us to watch. */
struct sockw {
    struct ev_io io;           /* io.data is the store */
    struct sockw *prev, *next; /* in the store's list, so free can reclaim leftovers */
};

/* One operation in flight. */
struct op {
    struct s3_store *st;
    struct op *prev, *next; /* in st->ops */
    enum phase phase;
    const char *opname; /* "put", "get", "list", "delete": for messages */
    char *key;          /* key or prefix as the caller gave it: for messages */
    char *full;         /* the object key or list prefix inside the bucket */
    lc_store_done_fn done;
    void *arg;

    /* The request in flight (or waiting on the retry timer). */
    CURL *easy;
    struct curl_slist *hdrs;
    const uint8_t *body; /* borrowed from the op's own buffers */
    size_t body_len;
    struct lc_buf resp; /* response body (XML), bounded */
    int resp_over;      /* the response went past its bound */
    char etag[256];     /* ETag response header (UploadPart) */
    char errbuf[CURL_ERROR_SIZE];
    enum kind kind;        /* of the current request, for counting and logs */
    int attempt;           /* attempts made for the current request */
    int max_attempts;      /* for the current request */
    struct ev_timer retry; /* backoff before the next attempt */
    int sink_used;         /* get: bytes went to the sink in this attempt */
    int sink_failed;       /* get: the sink refused data; sink_err says why */
    struct lc_error sink_err;

    /* put */
    struct lc_store_src *src; /* borrowed */
    uint8_t *part;            /* one part of the body */
    size_t part_cap, part_len;
    char part_sha[65]; /* hex SHA-256 of the part */
    int src_eof;
    uint64_t total; /* bytes read from the source so far */
    char *upload_id;
    int partno;
    struct lc_buf parts_xml; /* CompleteMultipartUpload body being built */
    int final_rc;            /* the failure being reported once the abort is done */
    struct lc_error final_err;

    /* get */
    struct lc_store_sink *sink; /* borrowed */

    /* list */
    struct lc_obj_list *out; /* borrowed */
    size_t out_n0;           /* entries out had before: rolled back on failure */
    char *token;             /* continuation token of the next page */

    /* delete */
    char **keys; /* copies of the caller's keys */
    size_t nkeys, kpos, kbatch;
    struct lc_buf xml; /* current batch body */
    char xml_sha[65];  /* hex SHA-256 of xml (delete) or parts_xml (complete) */
};

struct s3_store {
    struct lc_store base; /* first: the generic store */
    CURLM *multi;
    struct ev_timer timer; /* curl's timeout */
    struct sockw *socks;
    struct op *ops;
    char base_url[LC_URL_MAX + 320]; /* scheme://host[:port][/path], bucket host for vhost */
    char bucket_path[272];           /* "/BUCKET" for path style, "" for virtual-host style */
    char prefix[LC_URL_MAX];         /* key prefix inside the bucket, "" or ending in '/' */
    char bucket[256];
    char region[64];
    char sigv4[128]; /* "aws:amz:REGION:s3" */
    char access_key[256];
    char secret[256]; /* never formatted into any message or log */
    int path_style;
    int skip_verify;
    int max_attempts; /* per request, first try included */
    int list_page;    /* ListObjectsV2 max-keys, 0 = server default */
    uint64_t rng;     /* xorshift state for backoff jitter */
    uint64_t nreq[K_COUNT];
    int depth;   /* loop callbacks of ours on the stack */
    int closing; /* free requested while depth > 0 */
};

static void start_request(struct op *op);
static void check_multi_info(struct s3_store *st);
static void retry_cb(struct ev_loop *loop, struct ev_timer *w, int revents);
static const struct lc_store_ops s3_ops;

/* libcurl and libcrypto are loaded when the first S3 store is opened, not linked: a daemon
 * with file replicas only never maps them and their dependencies (TLS, Kerberos, LDAP,
 * SSH: some 5 MB of resident pages). Calls go through these tables, typed from the
 * libraries' own prototypes so a mismatch fails to compile. curl's typecheck macros are
 * bypassed: option values are passed as long, pointers or curl_off_t explicitly. */
#define FN(name) __typeof__(name) *
static struct {
    FN(curl_easy_cleanup) easy_cleanup;
    FN(curl_easy_getinfo) easy_getinfo;
    FN(curl_easy_init) easy_init;
    FN(curl_easy_setopt) easy_setopt;
    FN(curl_easy_strerror) easy_strerror;
    FN(curl_global_init) global_init;
    FN(curl_multi_add_handle) multi_add_handle;
    FN(curl_multi_assign) multi_assign;
    FN(curl_multi_cleanup) multi_cleanup;
    FN(curl_multi_info_read) multi_info_read;
    FN(curl_multi_init) multi_init;
    FN(curl_multi_remove_handle) multi_remove_handle;
    FN(curl_multi_setopt) multi_setopt;
    FN(curl_multi_socket_action) multi_socket_action;
    FN(curl_slist_append) slist_append;
    FN(curl_slist_free_all) slist_free_all;
} CU;
static struct {
    FN(EVP_Digest) Digest;
    FN(EVP_EncodeBlock) EncodeBlock;
    FN(EVP_md5) md5;
    FN(EVP_sha256) sha256;
} CR;
#undef FN

static int curl_ready; /* libraries loaded and curl_global_init done */

/* dlsym into a typed pointer (POSIX guarantees the conversion; memcpy keeps C quiet). */
static int load_sym(void *lib, const char *name, void *slot, size_t len, const char *soname,
                    const char *url, struct lc_error *err)
{
    void *p = dlsym(lib, name);
    if (!p)
        return lc_err_set(err, LC_EIO, "replica url %s: %s lacks %s", url, soname, name);
    memcpy(slot, &p, len);
    return 0;
}

static void *load_lib(const char *const *sonames, const char **which, const char *url,
                      struct lc_error *err)
{
    const char *why = "";
    for (size_t i = 0; sonames[i]; i++) {
        void *lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
        if (lib) {
            *which = sonames[i];
            return lib;
        }
        why = dlerror();
    }
    lc_err_set(err, LC_EIO, "replica url %s: s3 needs %s, which cannot be loaded: %s", url,
               sonames[0], why ? why : "?");
    return NULL;
}

#define SYM(lib, tab, field, name, so)                                                       \
    if (load_sym(lib, name, &tab.field, sizeof(tab.field), so, url, err))                    \
        return err->code;

/* Load both libraries and start curl, once. Failure leaves nothing half-loaded in use. */
static int libs_load(const char *url, struct lc_error *err)
{
    static const char *const curl_so[] = {"libcurl.so.4", "libcurl-gnutls.so.4", NULL};
    static const char *const crypto_so[] = {"libcrypto.so.3", NULL};
    const char *cso = NULL, *kso = NULL;
    void *c, *k;

    if (curl_ready)
        return 0;
    if (!(c = load_lib(curl_so, &cso, url, err)) || !(k = load_lib(crypto_so, &kso, url, err)))
        return err->code;
    SYM(c, CU, easy_cleanup, "curl_easy_cleanup", cso)
    SYM(c, CU, easy_getinfo, "curl_easy_getinfo", cso)
    SYM(c, CU, easy_init, "curl_easy_init", cso)
    SYM(c, CU, easy_setopt, "curl_easy_setopt", cso)
    SYM(c, CU, easy_strerror, "curl_easy_strerror", cso)
    SYM(c, CU, global_init, "curl_global_init", cso)
    SYM(c, CU, multi_add_handle, "curl_multi_add_handle", cso)
    SYM(c, CU, multi_assign, "curl_multi_assign", cso)
    SYM(c, CU, multi_cleanup, "curl_multi_cleanup", cso)
    SYM(c, CU, multi_info_read, "curl_multi_info_read", cso)
    SYM(c, CU, multi_init, "curl_multi_init", cso)
    SYM(c, CU, multi_remove_handle, "curl_multi_remove_handle", cso)
    SYM(c, CU, multi_setopt, "curl_multi_setopt", cso)
    SYM(c, CU, multi_socket_action, "curl_multi_socket_action", cso)
    SYM(c, CU, slist_append, "curl_slist_append", cso)
    SYM(c, CU, slist_free_all, "curl_slist_free_all", cso)
    SYM(k, CR, Digest, "EVP_Digest", kso)
    SYM(k, CR, EncodeBlock, "EVP_EncodeBlock", kso)
    SYM(k, CR, md5, "EVP_md5", kso)
    SYM(k, CR, sha256, "EVP_sha256", kso)
    if (CU.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return lc_err_set(err, LC_EIO, "replica url %s: curl_global_init failed", url);
    curl_ready = 1; /* the libraries stay loaded for the life of the process */
    return 0;
}
#undef SYM

/* ---- small string helpers ------------------------------------------------------------- */

static int sb_add(struct lc_buf *b, const char *s)
{
    return lc_buf_append(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static int sb_addf(struct lc_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || lc_buf_reserve(b, (size_t)n + 1)) return LC_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* NUL-terminate b without counting the NUL; returns the string. */
static char *sb_str(struct lc_buf *b)
{
    if (lc_buf_reserve(b, 1)) return NULL;
    b->data[b->len] = '\0';
    return (char *)b->data;
}

/* SigV4 URI encoding: unreserved characters stay, everything else is %XX (upper case).
 * keep_slash leaves '/' alone (object paths); query values encode it. */
static int sb_uri_enc(struct lc_buf *b, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        if (keep) {
            if (lc_buf_append(b, p, 1)) return LC_ENOMEM;
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (lc_buf_append(b, e, 3)) return LC_ENOMEM;
        }
    }
    return 0;
}

/* XML text escaping for request bodies. */
static int sb_xml_esc(struct lc_buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        const char *e = NULL;
        switch (*p) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&apos;";
            break;
        default:
            break;
        }
        if (e ? sb_add(b, e) : lc_buf_append(b, p, 1)) return LC_ENOMEM;
    }
    return 0;
}

static int starts_with(const char *s, const char *pre)
{
    return strncmp(s, pre, strlen(pre)) == 0;
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

static int copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) return LC_EINVAL;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static void hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!CR.Digest(p, n, md, &mdlen, CR.sha256(), NULL) || mdlen != 32) return LC_EIO;
    hex_encode(md, 32, out);
    return 0;
}

static int md5_base64(const void *p, size_t n, char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!CR.Digest(p, n, md, &mdlen, CR.md5(), NULL) || mdlen != 16) return LC_EIO;
    CR.EncodeBlock((unsigned char *)out, md, 16); /* 24 characters and a NUL */
    return 0;
}

/* ---- a minimal XML reader: enough for S3's flat answers ------------------------------- */

/* Find the next element <tag>...</tag> (or <tag/>) in [p, end). Sets its content and
 * returns the position after it, or NULL when there is none. Attributes are skipped; S3
 * never nests an element inside one of the same name, and escapes '<' in text. */
static const char *xml_next(const char *p, const char *end, const char *tag, const char **body,
                            size_t *blen)
{
    size_t tl = strlen(tag);

    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt) return NULL;
        const char *q = lt + 1;
        if ((size_t)(end - q) > tl && memcmp(q, tag, tl) == 0 &&
            (q[tl] == '>' || q[tl] == '/' || q[tl] == ' ' || q[tl] == '\t' || q[tl] == '\r' ||
             q[tl] == '\n')) {
            const char *gt = memchr(q + tl, '>', (size_t)(end - (q + tl)));
            if (!gt) return NULL;
            if (gt[-1] == '/') {
                *body = gt;
                *blen = 0;
                return gt + 1;
            }
            const char *start = gt + 1, *c = start;
            for (;;) {
                const char *close = memmem(c, (size_t)(end - c), "</", 2);
                if (!close) return NULL;
                const char *name = close + 2;
                if ((size_t)(end - name) > tl && memcmp(name, tag, tl) == 0 && name[tl] == '>') {
                    *body = start;
                    *blen = (size_t)(close - start);
                    return name + tl + 1;
                }
                c = name;
            }
        }
        p = q;
    }
    return NULL;
}

static int utf8_put(char *out, size_t cap, size_t *o, unsigned long cp)
{
    unsigned char b[4];
    size_t n;

    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return LC_ECORRUPT;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (*o + n >= cap) return LC_EINVAL;
    memcpy(out + *o, b, n);
    *o += n;
    return 0;
}

/* Decode XML text (entities and character references) into out (NUL-terminated). */
static int xml_decode(const char *p, size_t n, char *out, size_t cap)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    size_t o = 0, i = 0;

    while (i < n) {
        if (p[i] != '&') {
            if (o + 1 >= cap) return LC_EINVAL;
            out[o++] = p[i++];
            continue;
        }
        const char *semi = memchr(p + i, ';', n - i);
        if (!semi) return LC_ECORRUPT;
        size_t elen = (size_t)(semi - (p + i)) + 1; /* "&...;" */
        int done = 0;
        for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
            size_t nl = strlen(ents[k].name);
            if (elen == nl + 1 && memcmp(p + i + 1, ents[k].name, nl) == 0) {
                if (o + 1 >= cap) return LC_EINVAL;
                out[o++] = ents[k].c;
                done = 1;
                break;
            }
        }
        if (!done) {
            char num[16];
            char *endp;
            unsigned long cp;
            int rc;
            if (elen < 4 || elen - 3 >= sizeof(num) || p[i + 1] != '#') return LC_ECORRUPT;
            int hexf = p[i + 2] == 'x' || p[i + 2] == 'X';
            size_t off = hexf ? 3 : 2;
            if (elen - 1 <= off || copy_str(num, sizeof(num), p + i + off, elen - 1 - off))
                return LC_ECORRUPT;
            cp = strtoul(num, &endp, hexf ? 16 : 10);
            if (*endp || !num[0] || num[0] == '-' || num[0] == '+') return LC_ECORRUPT;
            rc = utf8_put(out, cap, &o, cp);
            if (rc) return rc;
        }
        i += elen;
    }
    out[o] = '\0';
    return 0;
}

/* Decoded text of the first <tag> in [p, p+n). LC_ENOTFOUND when absent. */
static int xml_text(const char *p, size_t n, const char *tag, char *out, size_t cap)
{
    const char *body;
    size_t blen;

    if (!xml_next(p, p + n, tag, &body, &blen)) return LC_ENOTFOUND;
    return xml_decode(body, blen, out, cap);
}

/* ---- curl <-> libev glue (evhiperfifo.c) ---------------------------------------------- */

/* Leave a loop callback: destroy the store if it was freed meanwhile. */
static void store_destroy(struct s3_store *st);

static void leave(struct s3_store *st)
{
    if (--st->depth == 0 && st->closing) store_destroy(st);
}

static void io_cb(struct ev_loop *loop, struct ev_io *w, int revents)
{
    struct s3_store *st = w->data;
    int action =
        ((revents & EV_READ) ? CURL_CSELECT_IN : 0) | ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;

    (void)loop;
    st->depth++;
    CU.multi_socket_action(st->multi, w->fd, action, &running); /* may free w */
    check_multi_info(st);
    leave(st);
}

static void curl_timeout_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
    struct s3_store *st = w->data;
    int running = 0;

    (void)loop;
    (void)revents;
    st->depth++;
    CU.multi_socket_action(st->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(st);
    leave(st);
}

/* CURLMOPT_TIMERFUNCTION: one ev_timer, re-armed to whatever curl asks for. */
static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct s3_store *st = userp;

    (void)multi;
    ev_timer_stop(st->base.loop, &st->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&st->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(st->base.loop, &st->timer);
    }
    return 0;
}

static void sockw_free(struct s3_store *st, struct sockw *sw)
{
    ev_io_stop(st->base.loop, &sw->io);
    if (sw->prev)
        sw->prev->next = sw->next;
    else
        st->socks = sw->next;
    if (sw->next) sw->next->prev = sw->prev;
    free(sw);
}

/* CURLMOPT_SOCKETFUNCTION: one ev_io per socket, its events following curl's interest. */
static int multi_sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct s3_store *st = userp;
    struct sockw *sw = socketp;
    int events;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (sw) sockw_free(st, sw);
        CU.multi_assign(st->multi, s, NULL);
        return 0;
    }
    events = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (!sw) {
        sw = calloc(1, sizeof(*sw));
        if (!sw) return -1;
        ev_io_init(&sw->io, io_cb, s, events);
        sw->io.data = st;
        sw->next = st->socks;
        if (st->socks) st->socks->prev = sw;
        st->socks = sw;
        CU.multi_assign(st->multi, s, sw);
    } else {
        ev_io_stop(st->base.loop, &sw->io);
        ev_io_set(&sw->io, s, events);
    }
    ev_io_start(st->base.loop, &sw->io);
    return 0;
}

/* ---- operations: life cycle ------------------------------------------------------------ */

static void req_cleanup(struct op *op)
{
    if (op->easy) {
        CU.multi_remove_handle(op->st->multi, op->easy);
        CU.easy_cleanup(op->easy);
        op->easy = NULL;
    }
    CU.slist_free_all(op->hdrs);
    op->hdrs = NULL;
}

static void op_free(struct op *op)
{
    struct s3_store *st = op->st;

    req_cleanup(op);
    ev_timer_stop(st->base.loop, &op->retry);
    if (op->prev)
        op->prev->next = op->next;
    else if (st->ops == op)
        st->ops = op->next;
    if (op->next) op->next->prev = op->prev;
    free(op->key);
    free(op->full);
    lc_buf_free(&op->resp);
    free(op->part);
    free(op->upload_id);
    lc_buf_free(&op->parts_xml);
    free(op->token);
    for (size_t i = 0; i < op->nkeys; i++)
        free(op->keys[i]);
    free(op->keys);
    lc_buf_free(&op->xml);
    free(op);
}

/* Finish op: free it first, then report, so the callback may do anything (even free the
 * store). The caller must not touch op afterwards. */
static void op_complete(struct op *op, int rc, const struct lc_error *e)
{
    lc_store_done_fn done = op->done;
    void *arg = op->arg;
    struct lc_error copy;

    lc_err_clear(&copy);
    if (rc && e)
        copy = *e;
    else if (rc)
        lc_err_set(&copy, rc, "s3 %s %s: failed", op->opname, op->key);
    if (rc && op->out) {
        /* A failed listing leaves the caller's list as it was. */
        while (op->out->n > op->out_n0)
            free(op->out->v[--op->out->n].name);
    }
    op_free(op);
    done(arg, rc, rc ? &copy : NULL);
}

__attribute__((format(printf, 3, 4))) static void op_fail(struct op *op, int rc, const char *fmt,
                                                          ...)
{
    struct lc_error e;
    char detail[LC_ERR_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    lc_err_set(&e, rc, "s3 %s %s: %s", op->opname, op->key, detail);
    op_complete(op, rc, &e);
}

static struct op *op_new(struct s3_store *st, const char *opname, const char *key,
                         lc_store_done_fn done, void *arg)
{
    struct op *op = calloc(1, sizeof(*op));
    if (!op) return NULL;
    op->st = st;
    op->opname = opname;
    op->done = done;
    op->arg = arg;
    op->key = strdup(key);
    size_t n = strlen(st->prefix) + strlen(key) + 1;
    op->full = malloc(n);
    if (!op->key || !op->full) {
        free(op->key);
        free(op->full);
        free(op);
        return NULL;
    }
    snprintf(op->full, n, "%s%s", st->prefix, key);
    op->max_attempts = st->max_attempts;
    ev_timer_init(&op->retry, retry_cb, 0., 0.);
    op->retry.data = op;
    op->next = st->ops;
    if (st->ops) st->ops->prev = op;
    st->ops = op;
    return op;
}

/* Keys are relative: never empty for objects, never absolute, no ".." (store.h). */
static int bad_key(const char *key, int allow_empty)
{
    if (!key || (!key[0] && !allow_empty) || key[0] == '/' || strstr(key, "..") ||
        strlen(key) > 1024)
        return 1;
    return 0;
}

/* ---- requests ------------------------------------------------------------------------- */

static size_t write_cb(char *p, size_t size, size_t nmemb, void *userp)
{
    struct op *op = userp;
    size_t n = size * nmemb;

    long status = 0;

    CU.easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &status);
    int ok = status >= 200 && status < 300;
    if (op->phase == PH_GET && ok) {
        op->sink_used = 1;
        if (op->sink->write(op->sink->arg, (const uint8_t *)p, n, &op->sink_err)) {
            op->sink_failed = 1;
            return 0; /* CURLE_WRITE_ERROR */
        }
        return n;
    }
    if (lc_buf_append(&op->resp, p, n)) {
        if (!ok) return n; /* an error body: its start (with the Code) is enough */
        op->resp_over = 1;
        return 0;
    }
    return n;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *userp)
{
    struct op *op = userp;
    size_t n = size * nmemb;

    if (n > 5 && strncasecmp(p, "etag:", 5) == 0) {
        const char *v = p + 5, *e = p + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (copy_str(op->etag, sizeof(op->etag), v, (size_t)(e - v))) op->etag[0] = '\0';
    }
    return n;
}

/* URL of the object op->full, then "?query" when query is not NULL. */
static int url_object(struct op *op, struct lc_buf *u, const char *query)
{
    struct s3_store *st = op->st;

    if (sb_add(u, st->base_url) || sb_add(u, st->bucket_path) || sb_add(u, "/") ||
        sb_uri_enc(u, op->full, 1))
        return LC_ENOMEM;
    if (query && (sb_add(u, "?") || sb_add(u, query))) return LC_ENOMEM;
    return 0;
}

/* URL of the bucket with an already canonical query. */
static int url_bucket(struct op *op, struct lc_buf *u, const char *query)
{
    struct s3_store *st = op->st;

    if (sb_add(u, st->base_url) || sb_add(u, st->bucket_path[0] ? st->bucket_path : "/") ||
        sb_add(u, "?") || sb_add(u, query))
        return LC_ENOMEM;
    return 0;
}

/* Canonical query for one ListObjectsV2 page: keys in byte order. */
static int list_query(struct op *op, struct lc_buf *q)
{
    int rc = 0;

    if (op->token)
        rc = sb_add(q, "continuation-token=") || sb_uri_enc(q, op->token, 0) || sb_add(q, "&");
    rc = rc || sb_add(q, "delimiter=%2F&list-type=2&");
    if (!rc && op->st->list_page > 0) rc = sb_addf(q, "max-keys=%d&", op->st->list_page);
    rc = rc || sb_add(q, "prefix=") || sb_uri_enc(q, op->full, 0);
    return rc ? LC_ENOMEM : 0;
}

static int add_header(struct op *op, const char *h)
{
    struct curl_slist *l = CU.slist_append(op->hdrs, h);
    if (!l) return LC_ENOMEM;
    op->hdrs = l;
    return 0;
}

/* Build and start the request for op->phase (a new attempt). */
static void start_request(struct op *op)
{
    struct s3_store *st = op->st;
    struct lc_buf url = {.max = URL_BUF_MAX}, q = {.max = URL_BUF_MAX};
    const char *method = "GET", *ctype = NULL, *sha;
    char hdr[128], md5[32];
    enum kind kind = K_GET;
    int rc = 0;
    CURL *e;

    req_cleanup(op);
    lc_buf_free(&op->resp);
    op->resp.max = op->phase == PH_LIST ? RESP_MAX : ERRBODY_MAX;
    op->resp_over = 0;
    op->etag[0] = '\0';
    op->errbuf[0] = '\0';
    op->body = NULL;
    op->body_len = 0;
    op->sink_used = op->sink_failed = 0;
    md5[0] = '\0';

    switch (op->phase) {
    case PH_GET:
        rc = url_object(op, &url, NULL);
        break;
    case PH_LIST:
        kind = K_LIST;
        rc = list_query(op, &q) || url_bucket(op, &url, sb_str(&q) ? (char *)q.data : "");
        break;
    case PH_DEL:
        kind = K_DELETE;
        method = "POST";
        ctype = "application/xml";
        op->body = op->xml.data;
        op->body_len = op->xml.len;
        rc = url_bucket(op, &url, "delete=") || md5_base64(op->body, op->body_len, md5);
        break;
    case PH_SINGLE:
        kind = K_PUT;
        method = "PUT";
        ctype = "application/octet-stream";
        op->body = op->part;
        op->body_len = op->part_len;
        rc = url_object(op, &url, NULL);
        break;
    case PH_CREATE:
        kind = K_POST;
        method = "POST";
        ctype = "application/octet-stream";
        rc = url_object(op, &url, "uploads=");
        break;
    case PH_PART:
        kind = K_PUT;
        method = "PUT";
        ctype = "application/octet-stream";
        op->body = op->part;
        op->body_len = op->part_len;
        rc = sb_addf(&q, "partNumber=%d&uploadId=", op->partno) ||
             sb_uri_enc(&q, op->upload_id, 0) || !sb_str(&q) ||
             url_object(op, &url, (char *)q.data);
        break;
    case PH_COMPLETE:
        kind = K_POST;
        method = "POST";
        ctype = "application/xml";
        op->body = op->parts_xml.data;
        op->body_len = op->parts_xml.len;
        rc = sb_add(&q, "uploadId=") || sb_uri_enc(&q, op->upload_id, 0) || !sb_str(&q) ||
             url_object(op, &url, (char *)q.data);
        break;
    case PH_ABORT:
        kind = K_DELETE;
        method = "DELETE";
        rc = sb_add(&q, "uploadId=") || sb_uri_enc(&q, op->upload_id, 0) || !sb_str(&q) ||
             url_object(op, &url, (char *)q.data);
        break;
    }
    if (rc || !sb_str(&url)) {
        lc_buf_free(&url);
        lc_buf_free(&q);
        op_fail(op, LC_ENOMEM, "request url too long or out of memory");
        return;
    }
    lc_buf_free(&q);

    /* Payload hashes are computed once per body (fill_part, del_batch_body, next_part),
     * not once per attempt. */
    if (!op->body_len)
        sha = EMPTY_SHA256;
    else if (op->phase == PH_SINGLE || op->phase == PH_PART)
        sha = op->part_sha;
    else
        sha = op->xml_sha;
    snprintf(hdr, sizeof(hdr), "x-amz-content-sha256: %s", sha);
    /* No "Expect:" override: curl 7.88 would sign it. Bodies up to 1 MiB go without
     * Expect; bigger ones get curl's own (unsigned) "Expect: 100-continue". */
    rc = add_header(op, hdr);
    if (!rc && ctype) {
        snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
        rc = add_header(op, hdr);
    }
    if (!rc && md5[0]) {
        snprintf(hdr, sizeof(hdr), "Content-MD5: %s", md5);
        rc = add_header(op, hdr);
    }
    e = rc ? NULL : CU.easy_init();
    if (!e) {
        lc_buf_free(&url);
        op_fail(op, LC_ENOMEM, "cannot set up a request");
        return;
    }
    op->easy = e;
    CU.easy_setopt(e, CURLOPT_URL, (char *)url.data);
    CU.easy_setopt(e, CURLOPT_PRIVATE, op);
    CU.easy_setopt(e, CURLOPT_ERRORBUFFER, op->errbuf);
    CU.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    CU.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    CU.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    CU.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    CU.easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
    CU.easy_setopt(e, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_SECS);
    CU.easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    CU.easy_setopt(e, CURLOPT_HTTPHEADER, op->hdrs);
    CU.easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    CU.easy_setopt(e, CURLOPT_WRITEDATA, op);
    CU.easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    CU.easy_setopt(e, CURLOPT_HEADERDATA, op);
    if (st->skip_verify) {
        CU.easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        CU.easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (st->access_key[0]) {
        CU.easy_setopt(e, CURLOPT_AWS_SIGV4, st->sigv4);
        CU.easy_setopt(e, CURLOPT_USERNAME, st->access_key);
        CU.easy_setopt(e, CURLOPT_PASSWORD, st->secret);
    }
    if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
        /* The body is in memory: hand it over whole (curl does not copy it; it lives in
         * the op until the op is freed). A PUT is a POST with another method name. */
        CU.easy_setopt(e, CURLOPT_POST, 1L);
        CU.easy_setopt(e, CURLOPT_POSTFIELDS, op->body ? op->body : (const uint8_t *)"");
        CU.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)op->body_len);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        CU.easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    lc_buf_free(&url); /* curl copied it */

    op->attempt++;
    op->kind = kind;
    st->nreq[kind]++;
    if (CU.multi_add_handle(st->multi, e) != CURLM_OK) {
        CU.easy_cleanup(e);
        op->easy = NULL;
        op_fail(op, LC_EIO, "cannot start a request");
    }
}

/* ---- responses ------------------------------------------------------------------------ */

static int retryable_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return 1;
    default:
        return 0;
    }
}

static int retryable_http(long status, const char *code)
{
    return status >= 500 || status == 429 || strcmp(code, "SlowDown") == 0 ||
           strcmp(code, "RequestTimeout") == 0 || strcmp(code, "RequestTimeTooSkewed") == 0 ||
           strcmp(code, "InternalError") == 0;
}

static uint64_t rng_next(struct s3_store *st)
{
    uint64_t x = st->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    st->rng = x;
    return x;
}

/* Backoff before attempt number `attempt + 1`: 100 ms doubling to 5 s, "equal jitter". */
static double backoff_s(struct s3_store *st, int attempt)
{
    int64_t ms = BACKOFF_MIN_MS;
    for (int i = 1; i < attempt && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS) ms = BACKOFF_MAX_MS;
    ms = ms / 2 + (int64_t)(rng_next(st) % (uint64_t)(ms / 2 + 1));
    return (double)ms / 1000.0;
}

static void retry_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
    struct op *op = w->data;
    struct s3_store *st = op->st;

    (void)loop;
    (void)revents;
    st->depth++;
    start_request(op);
    leave(st);
}

static void request_ok(struct op *op);

/* The current request failed with detail msg (already free of secrets). Retry it, abort a
 * multipart upload, or report. */
static void request_failed(struct op *op, int rc, int retryable, const char *msg)
{
    struct s3_store *st = op->st;
    struct lc_error e;

    if (retryable && op->phase == PH_GET && op->sink_used) {
        struct lc_error re;
        lc_err_clear(&re);
        if (!op->sink->reset) {
            retryable = 0;
        } else if (op->sink->reset(op->sink->arg, &re)) {
            req_cleanup(op);
            op_fail(op, re.code ? re.code : LC_EIO, "%s; reset for retry failed: %s", msg, re.msg);
            return;
        }
    }
    if (retryable && op->attempt < op->max_attempts) {
        double d = backoff_s(st, op->attempt);
        lc_debug("s3 request failed, retrying", "op=%s key=%s attempt=%d delay_ms=%d err=\"%s\"",
                 op->opname, op->key, op->attempt, (int)(d * 1000), msg);
        req_cleanup(op);
        ev_timer_set(&op->retry, d, 0.);
        ev_now_update(st->base.loop);
        ev_timer_start(st->base.loop, &op->retry);
        return;
    }
    req_cleanup(op);
    if (op->attempt > 1)
        lc_err_set(&e, rc, "s3 %s %s: %s (after %d attempts)", op->opname, op->key, msg,
                   op->attempt);
    else
        lc_err_set(&e, rc, "s3 %s %s: %s", op->opname, op->key, msg);

    if (op->upload_id && op->phase != PH_ABORT) {
        /* Do not leave the parts behind; report the original failure afterwards. */
        op->final_rc = rc;
        op->final_err = e;
        op->phase = PH_ABORT;
        op->attempt = 0;
        op->max_attempts = st->max_attempts < ABORT_ATTEMPTS ? st->max_attempts : ABORT_ATTEMPTS;
        start_request(op);
        return;
    }
    if (op->phase == PH_ABORT) {
        lc_warn("s3 abort multipart upload failed", "key=%s err=\"%s\"", op->key, e.msg);
        op_complete(op, op->final_rc, &op->final_err);
        return;
    }
    op_complete(op, rc, &e);
}

/* One finished transfer: classify it. */
static void request_done(struct op *op, CURLcode cc)
{
    char msg[LC_ERR_LEN], code[128];
    long status = 0;

    CU.easy_getinfo(op->easy, CURLINFO_RESPONSE_CODE, &status);
    code[0] = '\0';
    lc_debug("s3 request", "type=%s op=%s key=%s status=%ld attempt=%d curl=%d",
             kind_names[op->kind], op->opname, op->key, status, op->attempt, (int)cc);

    if (cc == CURLE_WRITE_ERROR && op->sink_failed) {
        req_cleanup(op);
        op_complete(op, op->sink_err.code ? op->sink_err.code : LC_EIO, &op->sink_err);
        return;
    }
    if (cc == CURLE_WRITE_ERROR && op->resp_over) {
        request_failed(op, LC_ENOMEM, 0, "response larger than its bound");
        return;
    }
    if (cc != CURLE_OK) {
        const char *d = op->errbuf[0] ? op->errbuf : CU.easy_strerror(cc);
        snprintf(msg, sizeof(msg), "%s", d);
        if (msg[0] >= 'A' && msg[0] <= 'Z')
            msg[0] = (char)(msg[0] - 'A' + 'a'); /* house style: lowercase messages */
        request_failed(op, LC_EAGAIN, retryable_curl(cc), msg);
        return;
    }
    if (status >= 200 && status < 300) {
        request_ok(op);
        return;
    }
    if (op->resp.len && sb_str(&op->resp))
        (void)xml_text((const char *)op->resp.data, op->resp.len, "Code", code, sizeof(code));
    if (code[0])
        snprintf(msg, sizeof(msg), "%ld %s", status, code);
    else
        snprintf(msg, sizeof(msg), "http status %ld", status);
    if (status == 404 && op->phase == PH_GET && (!code[0] || strcmp(code, "NoSuchKey") == 0)) {
        request_failed(op, LC_ENOTFOUND, 0,
                       code[0] ? "not found (404 NoSuchKey)" : "not found (404)");
        return;
    }
    int retry = retryable_http(status, code);
    request_failed(op, retry ? LC_EAGAIN : LC_EIO, retry, msg);
}

static void check_multi_info(struct s3_store *st)
{
    CURLMsg *m;
    int left;

    while (!st->closing && (m = CU.multi_info_read(st->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        char *priv = NULL;
        CURLcode cc = m->data.result;
        CU.easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        struct op *op = (struct op *)(void *)priv;
        if (op) request_done(op, cc); /* may free op, start requests, or close the store */
    }
}

/* ---- per-operation steps -------------------------------------------------------------- */

/* Read the next part of the body from the source into op->part. */
static int fill_part(struct op *op, struct lc_error *err)
{
    op->part_len = 0;
    while (op->part_len < op->part_cap && !op->src_eof) {
        size_t cap = op->part_cap - op->part_len;
        ssize_t n = op->src->read(op->src->arg, op->part + op->part_len, cap, err);
        if (n < 0) return err->code ? err->code : LC_EIO;
        if ((size_t)n > cap) return lc_err_set(err, LC_EINVAL, "source returned more than asked");
        if (n == 0) op->src_eof = 1;
        op->part_len += (size_t)n;
        op->total += (uint64_t)n;
    }
    if (op->part_len && sha256_hex(op->part, op->part_len, op->part_sha))
        return lc_err_set(err, LC_EIO, "sha-256 failed");
    return 0;
}

static void next_part(struct op *op)
{
    struct lc_error e;
    int rc;

    lc_err_clear(&e);
    op->attempt = 0;
    rc = fill_part(op, &e);
    if (rc) {
        request_failed(op, rc, 0, e.msg);
        return;
    }
    if (op->part_len == 0) {
        if (op->src->size >= 0 && op->total != (uint64_t)op->src->size) {
            char msg[128];
            snprintf(msg, sizeof(msg), "source gave %llu bytes, not the declared %lld",
                     (unsigned long long)op->total, (long long)op->src->size);
            request_failed(op, LC_EINVAL, 0, msg);
            return;
        }
        if (sb_add(&op->parts_xml, "</CompleteMultipartUpload>") ||
            sha256_hex(op->parts_xml.data, op->parts_xml.len, op->xml_sha)) {
            request_failed(op, LC_ENOMEM, 0, "multipart completion body too large");
            return;
        }
        op->phase = PH_COMPLETE;
    } else {
        if (op->partno >= MAX_PARTS) {
            request_failed(op, LC_ENOMEM, 0, "object larger than 10000 parts");
            return;
        }
        op->partno++;
        op->phase = PH_PART;
    }
    start_request(op);
}

static void list_page_done(struct op *op)
{
    const char *doc = (const char *)op->resp.data, *end, *p, *body;
    char text[TEXT_MAX], trunc[16];
    size_t blen, plen = strlen(op->full);
    int rc;

    if (!doc || !sb_str(&op->resp)) {
        request_failed(op, LC_ECORRUPT, 1, "empty list answer");
        return;
    }
    doc = (const char *)op->resp.data;
    end = doc + op->resp.len;
    if (!xml_next(doc, end, "ListBucketResult", &body, &blen)) {
        request_failed(op, LC_ECORRUPT, 0, "list answer is not a ListBucketResult");
        return;
    }
    for (p = doc; (p = xml_next(p, end, "Contents", &body, &blen));) {
        char size_s[32], mod[64], *endp;
        uint64_t size;
        int64_t mtime = 0;
        if (xml_text(body, blen, "Key", text, sizeof(text)) ||
            xml_text(body, blen, "Size", size_s, sizeof(size_s)) ||
            xml_text(body, blen, "LastModified", mod, sizeof(mod))) {
            request_failed(op, LC_ECORRUPT, 0, "list answer: incomplete <Contents>");
            return;
        }
        size = strtoull(size_s, &endp, 10);
        if (!size_s[0] || *endp || size_s[0] == '-' || lc_time_parse(mod, &mtime)) {
            request_failed(op, LC_ECORRUPT, 0, "list answer: bad Size or LastModified");
            return;
        }
        if (strncmp(text, op->full, plen) != 0 || !text[plen] || strchr(text + plen, '/'))
            continue; /* not directly below the prefix (or the "directory" object itself) */
        if (lc_obj_list_add(op->out, text + plen, size, mtime, 0)) {
            request_failed(op, LC_ENOMEM, 0, "too many objects");
            return;
        }
    }
    for (p = doc; (p = xml_next(p, end, "CommonPrefixes", &body, &blen));) {
        const char *q = body, *qe = body + blen, *pb;
        size_t pl;
        while ((q = xml_next(q, qe, "Prefix", &pb, &pl))) {
            size_t n;
            if (xml_decode(pb, pl, text, sizeof(text))) {
                request_failed(op, LC_ECORRUPT, 0, "list answer: bad <Prefix>");
                return;
            }
            n = strlen(text);
            if (n && text[n - 1] == '/') text[--n] = '\0';
            if (strncmp(text, op->full, plen) != 0 || n <= plen) continue;
            if (lc_obj_list_add(op->out, text + plen, 0, 0, 1)) {
                request_failed(op, LC_ENOMEM, 0, "too many objects");
                return;
            }
        }
    }
    rc = xml_text(doc, op->resp.len, "IsTruncated", trunc, sizeof(trunc));
    if (rc == 0 && strcmp(trunc, "true") == 0) {
        if (xml_text(doc, op->resp.len, "NextContinuationToken", text, sizeof(text)) || !text[0]) {
            request_failed(op, LC_ECORRUPT, 0, "list answer truncated without a token");
            return;
        }
        free(op->token);
        op->token = strdup(text);
        if (!op->token) {
            request_failed(op, LC_ENOMEM, 0, "out of memory");
            return;
        }
        op->attempt = 0;
        start_request(op);
        return;
    }
    lc_debug("s3 list done", "prefix=%s entries=%zu", op->key, op->out->n - op->out_n0);
    lc_obj_list_sort(op->out);
    op_complete(op, 0, NULL);
}

/* Build the DeleteObjects body for keys [kpos, kpos + kbatch). */
static int del_batch_body(struct op *op)
{
    struct lc_buf *b = &op->xml;
    struct s3_store *st = op->st;

    lc_buf_free(b);
    b->max = XML_BODY_MAX;
    op->kbatch = op->nkeys - op->kpos;
    if (op->kbatch > DEL_BATCH) op->kbatch = DEL_BATCH;
    if (sb_add(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"" S3_XMLNS
                  "\"><Quiet>true</Quiet>"))
        return LC_ENOMEM;
    for (size_t i = op->kpos; i < op->kpos + op->kbatch; i++) {
        if (sb_add(b, "<Object><Key>") || sb_xml_esc(b, st->prefix) || sb_xml_esc(b, op->keys[i]) ||
            sb_add(b, "</Key></Object>"))
            return LC_ENOMEM;
    }
    if (sb_add(b, "</Delete>") || sha256_hex(b->data, b->len, op->xml_sha)) return LC_ENOMEM;
    return 0;
}

static void del_batch_done(struct op *op)
{
    const char *doc, *end, *body;
    size_t blen;

    if (op->resp.len && sb_str(&op->resp)) {
        doc = (const char *)op->resp.data;
        end = doc + op->resp.len;
        if (xml_next(doc, end, "Error", &body, &blen)) {
            char key[TEXT_MAX], code[128], msg[LC_ERR_LEN];
            if (xml_text(body, blen, "Key", key, sizeof(key))) snprintf(key, sizeof(key), "?");
            if (xml_text(body, blen, "Code", code, sizeof(code)))
                snprintf(code, sizeof(code), "unknown error");
            snprintf(msg, sizeof(msg), "%.300s: %.100s", key, code);
            int retry = retryable_http(0, code);
            request_failed(op, retry ? LC_EAGAIN : LC_EIO, retry, msg);
            return;
        }
    }
    op->kpos += op->kbatch;
    if (op->kpos >= op->nkeys) {
        op_complete(op, 0, NULL);
        return;
    }
    if (del_batch_body(op)) {
        op_fail(op, LC_ENOMEM, "delete request body too large");
        return;
    }
    op->attempt = 0;
    start_request(op);
}

/* A 2xx answer for the current request: go on with the operation. */
static void request_ok(struct op *op)
{
    char text[TEXT_MAX];

    switch (op->phase) {
    case PH_GET:
    case PH_SINGLE:
        req_cleanup(op);
        op_complete(op, 0, NULL);
        return;
    case PH_LIST:
        list_page_done(op);
        return;
    case PH_DEL:
        del_batch_done(op);
        return;
    case PH_CREATE:
        if (!op->resp.len || !sb_str(&op->resp) ||
            xml_text((const char *)op->resp.data, op->resp.len, "UploadId", text, sizeof(text)) ||
            !text[0]) {
            request_failed(op, LC_ECORRUPT, 0, "multipart upload answer without UploadId");
            return;
        }
        op->upload_id = strdup(text);
        if (!op->upload_id) {
            request_failed(op, LC_ENOMEM, 0, "out of memory");
            return;
        }
        lc_buf_free(&op->parts_xml);
        op->parts_xml.max = XML_BODY_MAX;
        if (sb_add(&op->parts_xml, "<CompleteMultipartUpload xmlns=\"" S3_XMLNS "\">")) {
            request_failed(op, LC_ENOMEM, 0, "out of memory");
            return;
        }
        op->partno = 1;
        op->phase = PH_PART;
        op->attempt = 0;
        start_request(op); /* part 1 is already in op->part, part_sha set */
        return;
    case PH_PART:
        if (!op->etag[0]) {
            request_failed(op, LC_ECORRUPT, 0, "upload part answer without ETag");
            return;
        }
        if (sb_addf(&op->parts_xml, "<Part><PartNumber>%d</PartNumber><ETag>", op->partno) ||
            sb_xml_esc(&op->parts_xml, op->etag) || sb_add(&op->parts_xml, "</ETag></Part>")) {
            request_failed(op, LC_ENOMEM, 0, "multipart completion body too large");
            return;
        }
        next_part(op);
        return;
    case PH_COMPLETE:
        /* S3 may answer 200 and put the error in the body. */
        if (op->resp.len && sb_str(&op->resp)) {
            const char *doc = (const char *)op->resp.data, *body;
            size_t blen;
            if (xml_next(doc, doc + op->resp.len, "Error", &body, &blen)) {
                char code[128], msg[256];
                if (xml_text(body, blen, "Code", code, sizeof(code)))
                    snprintf(code, sizeof(code), "unknown error");
                snprintf(msg, sizeof(msg), "complete multipart upload: %s", code);
                int retry = retryable_http(0, code);
                request_failed(op, retry ? LC_EAGAIN : LC_EIO, retry, msg);
                return;
            }
        }
        req_cleanup(op);
        op_complete(op, 0, NULL);
        return;
    case PH_ABORT:
        req_cleanup(op);
        op_complete(op, op->final_rc, &op->final_err);
        return;
    }
}

/* ---- the ops -------------------------------------------------------------------------- */

static void s3_put(struct lc_store *base, const char *key, struct lc_store_src *src,
                   lc_store_done_fn done, void *arg)
{
    struct s3_store *st = (struct s3_store *)base;
    struct lc_error e;
    struct op *op;
    int rc;

    if (bad_key(key, 0)) {
        lc_err_set(&e, LC_EINVAL, "s3 put %s: invalid key", key ? key : "(null)");
        done(arg, LC_EINVAL, &e);
        return;
    }
    op = op_new(st, "put", key, done, arg);
    if (!op) {
        lc_err_set(&e, LC_ENOMEM, "s3 put %s: out of memory", key);
        done(arg, LC_ENOMEM, &e);
        return;
    }
    op->src = src;
    /* A body known to be small gets a buffer of its size (+1 to notice a longer one). */
    op->part_cap =
        (src->size >= 0 && (uint64_t)src->size < PART_SIZE) ? (size_t)src->size + 1 : PART_SIZE;
    op->part = malloc(op->part_cap);
    if (!op->part) {
        op_fail(op, LC_ENOMEM, "out of memory");
        return;
    }
    lc_err_clear(&e);
    rc = fill_part(op, &e);
    if (rc) {
        op_fail(op, rc, "read source: %s", e.msg);
        return;
    }
    if (src->size >= 0 && (op->part_len > (uint64_t)src->size ||
                           (op->src_eof && op->part_len != (uint64_t)src->size))) {
        op_fail(op, LC_EINVAL, "source gave %s%zu bytes, not the declared %lld",
                op->src_eof ? "" : "at least ", op->part_len, (long long)src->size);
        return;
    }
    if (op->src_eof || (src->size >= 0 && op->part_len == (uint64_t)src->size)) {
        op->phase = PH_SINGLE;
    } else {
        op->phase = PH_CREATE;
    }
    start_request(op);
}

static void s3_get(struct lc_store *base, const char *key, struct lc_store_sink *sink,
                   lc_store_done_fn done, void *arg)
{
    struct s3_store *st = (struct s3_store *)base;
    struct lc_error e;
    struct op *op;

    if (bad_key(key, 0)) {
        lc_err_set(&e, LC_EINVAL, "s3 get %s: invalid key", key ? key : "(null)");
        done(arg, LC_EINVAL, &e);
        return;
    }
    op = op_new(st, "get", key, done, arg);
    if (!op) {
        lc_err_set(&e, LC_ENOMEM, "s3 get %s: out of memory", key);
        done(arg, LC_ENOMEM, &e);
        return;
    }
    op->sink = sink;
    op->phase = PH_GET;
    start_request(op);
}

static void s3_list(struct lc_store *base, const char *prefix, struct lc_obj_list *out,
                    lc_store_done_fn done, void *arg)
{
    struct s3_store *st = (struct s3_store *)base;
    struct lc_error e;
    struct op *op;

    if (bad_key(prefix, 1) || (prefix[0] && prefix[strlen(prefix) - 1] != '/')) {
        lc_err_set(&e, LC_EINVAL, "s3 list %s: invalid prefix (must end in '/')",
                   prefix ? prefix : "(null)");
        done(arg, LC_EINVAL, &e);
        return;
    }
    op = op_new(st, "list", prefix, done, arg);
    if (op && !prefix[0]) {
        char *k = strdup("(root)"); /* for messages; op->full stays the bare store prefix */
        if (k) {
            free(op->key);
            op->key = k;
        }
    }
    if (!op) {
        lc_err_set(&e, LC_ENOMEM, "s3 list %s: out of memory", prefix);
        done(arg, LC_ENOMEM, &e);
        return;
    }
    op->out = out;
    op->out_n0 = out->n;
    op->phase = PH_LIST;
    start_request(op);
}

static void s3_del(struct lc_store *base, const char *const *keys, size_t n, lc_store_done_fn done,
                   void *arg)
{
    struct s3_store *st = (struct s3_store *)base;
    struct lc_error e;
    struct op *op;

    if (n == 0) {
        done(arg, 0, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (bad_key(keys[i], 0)) {
            lc_err_set(&e, LC_EINVAL, "s3 delete %s: invalid key", keys[i] ? keys[i] : "(null)");
            done(arg, LC_EINVAL, &e);
            return;
        }
    }
    op = op_new(st, "delete", keys[0], done, arg);
    if (!op) {
        lc_err_set(&e, LC_ENOMEM, "s3 delete %s: out of memory", keys[0]);
        done(arg, LC_ENOMEM, &e);
        return;
    }
    if (n > 1) {
        /* name the batch in messages: "first-key (+N more)" */
        char name[1100];
        snprintf(name, sizeof(name), "%s (+%zu more)", keys[0], n - 1);
        char *k = strdup(name);
        if (k) {
            free(op->key);
            op->key = k;
        }
    }
    op->keys = calloc(n, sizeof(*op->keys));
    if (!op->keys) {
        op_fail(op, LC_ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        op->keys[i] = strdup(keys[i]);
        if (!op->keys[i]) {
            op->nkeys = i;
            op_fail(op, LC_ENOMEM, "out of memory");
            return;
        }
    }
    op->nkeys = n;
    op->phase = PH_DEL;
    if (del_batch_body(op)) {
        op_fail(op, LC_ENOMEM, "delete request body too large");
        return;
    }
    start_request(op);
}

static void store_destroy(struct s3_store *st)
{
    lc_debug("s3 store requests", "url=%s get=%llu put=%llu list=%llu delete=%llu post=%llu",
             st->base.desc, (unsigned long long)st->nreq[K_GET],
             (unsigned long long)st->nreq[K_PUT], (unsigned long long)st->nreq[K_LIST],
             (unsigned long long)st->nreq[K_DELETE], (unsigned long long)st->nreq[K_POST]);
    if (st->multi) CU.multi_cleanup(st->multi); /* closes connections: REMOVE for their sockets */
    while (st->socks)
        sockw_free(st, st->socks);
    ev_timer_stop(st->base.loop, &st->timer);
    explicit_bzero(st->secret, sizeof(st->secret));
    free(st);
}

static void s3_free(struct lc_store *base)
{
    struct s3_store *st = (struct s3_store *)base;

    if (!st || st->closing) return;
    while (st->ops)
        op_free(st->ops); /* cancelled: no callbacks */
    if (st->depth > 0) {
        st->closing = 1; /* destroyed when the loop callback on the stack returns */
        return;
    }
    store_destroy(st);
}

static const struct lc_store_ops s3_ops = {
    .type = "s3",
    .free = s3_free,
    .put = s3_put,
    .get = s3_get,
    .list = s3_list,
    .del = s3_del,
};

/* ---- opening: URL forms, endpoint, bucket, region -------------------------------------- */

/* If rest is PRE<middle>SUF with a non-empty dot-free middle, copy it to out. */
static int match_middle(const char *rest, const char *pre, const char *suf, char *out, size_t cap)
{
    size_t n = strlen(rest), a = strlen(pre), b = strlen(suf);

    if (n <= a + b || !starts_with(rest, pre) || !ends_with(rest, suf)) return 0;
    if (memchr(rest + a, '.', n - a - b) || copy_str(out, cap, rest + a, n - a - b)) return 0;
    return 1;
}

/* What the URL host says (Litestream's table): bucket, endpoint, region, path style. */
struct url_parts {
    char bucket[256];
    char endpoint[600];
    char region[64];
    int path_style; /* 1 when the host pattern implies it */
    char prefix[LC_URL_MAX];
};

static int parse_url(const char *url, struct url_parts *u)
{
    const char *h = url + 5, *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    char host[512], name[512], port[16];
    const char *path = slash ? slash : "";
    char *colon, *dot;

    memset(u, 0, sizeof(*u));
    if (copy_str(host, sizeof(host), h, hl)) return LC_EINVAL;
    if (strpbrk(host, "@?#")) return LC_EINVAL;
    while (*path == '/')
        path++;
    if (strchr(path, '?') || strchr(path, '#')) return LC_EINVAL;
    if (path[0]) {
        size_t pl = strlen(path);
        if (pl + 2 > sizeof(u->prefix)) return LC_EINVAL;
        snprintf(u->prefix, sizeof(u->prefix), "%s%s", path, path[pl - 1] == '/' ? "" : "/");
    }
    if (!host[0]) return 0;

    snprintf(name, sizeof(name), "%s", host);
    port[0] = '\0';
    colon = strrchr(name, ':');
    if (colon) {
        if (copy_str(port, sizeof(port), colon, strlen(colon))) return LC_EINVAL;
        *colon = '\0';
    }
    dot = strchr(name, '.');
    if (dot) {
        const char *rest = dot + 1;
        char region[64];
        int hit = 0;
        *dot = '\0';
        if (strcmp(rest, "localhost") == 0) {
            snprintf(u->endpoint, sizeof(u->endpoint), "http://localhost%s", port);
            hit = 1;
            region[0] = '\0';
        } else if (match_middle(rest, "s3.", ".backblazeb2.com", region, sizeof(region)) ||
                   match_middle(rest, "s3.", ".scw.cloud", region, sizeof(region)) ||
                   match_middle(rest, "", ".digitaloceanspaces.com", region, sizeof(region)) ||
                   match_middle(rest, "", ".linodeobjects.com", region, sizeof(region))) {
            hit = 1;
        } else if (strcmp(rest, "s3.filebase.com") == 0) {
            hit = 1;
            region[0] = '\0';
        }
        if (hit) {
            if (!u->endpoint[0])
                snprintf(u->endpoint, sizeof(u->endpoint), "https://%s%s", rest, port);
            snprintf(u->region, sizeof(u->region), "%s", region);
            if (copy_str(u->bucket, sizeof(u->bucket), name, strlen(name))) return LC_EINVAL;
            u->path_style = 1;
            return 0;
        }
    }
    /* Anything else: the host is the bucket (AWS). */
    if (port[0] || copy_str(u->bucket, sizeof(u->bucket), host, strlen(host))) return LC_EINVAL;
    return 0;
}

static int valid_bucket(const char *b)
{
    if (!b[0] || strlen(b) > 255) return 0;
    for (const char *p = b; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            return 0;
    return 1;
}

static int valid_region(const char *r)
{
    if (!r[0]) return 0;
    for (const char *p = r; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            return 0;
    return 1;
}

int lc_store_s3_open(const struct lc_replica_config *rc, struct ev_loop *loop,
                     struct lc_store **out, struct lc_error *err)
{
    struct url_parts u;
    struct s3_store *st;
    const char *bucket, *endpoint, *region;
    int path_style, rc2;

    *out = NULL;
    if (strncmp(rc->url, "s3://", 5) != 0)
        return lc_err_set(err, LC_EINVAL, "replica url %s: not an s3:// url", rc->url);
    if (!loop) return lc_err_set(err, LC_EINVAL, "replica url %s: s3 needs an event loop", rc->url);
    if (parse_url(rc->url, &u))
        return lc_err_set(err, LC_EINVAL, "replica url %s: bad s3 url (s3://BUCKET/PATH)", rc->url);
    bucket = rc->bucket[0] ? rc->bucket : u.bucket;
    endpoint = rc->endpoint[0] ? rc->endpoint : u.endpoint;
    region = rc->region[0] ? rc->region : u.region[0] ? u.region : "us-east-1";
    if (rc->force_path_style >= 0)
        path_style = rc->force_path_style ? 1 : 0;
    else
        path_style = endpoint[0] ? 1 : u.path_style;
    if (!valid_bucket(bucket))
        return lc_err_set(err, LC_EINVAL, "replica url %s: bad or missing bucket name \"%s\"",
                          rc->url, bucket);
    if (!valid_region(region) || strlen(region) >= 64)
        return lc_err_set(err, LC_EINVAL, "replica url %s: bad region \"%s\"", rc->url, region);
    if (endpoint[0] && !starts_with(endpoint, "http://") && !starts_with(endpoint, "https://"))
        return lc_err_set(err, LC_EINVAL,
                          "replica url %s: endpoint must start with http:// or "
                          "https://",
                          rc->url);
    if (!rc->access_key_id[0] != !rc->secret_access_key[0])
        return lc_err_set(err, LC_EINVAL,
                          "replica url %s: access key id and secret access key "
                          "must be set together",
                          rc->url);
    if (!endpoint[0] && strchr(bucket, '.'))
        path_style = 1; /* a dotted bucket cannot match the *.s3 TLS certificate */

    if ((rc2 = libs_load(rc->url, err)))
        return rc2;
    st = calloc(1, sizeof(*st));
    if (!st) return lc_err_set(err, LC_ENOMEM, "replica url %s: out of memory", rc->url);
    st->base.ops = &s3_ops;
    st->base.loop = loop;
    snprintf(st->base.desc, sizeof(st->base.desc), "%s", rc->url);
    snprintf(st->bucket, sizeof(st->bucket), "%s", bucket);
    snprintf(st->region, sizeof(st->region), "%s", region);
    snprintf(st->prefix, sizeof(st->prefix), "%s", u.prefix);
    snprintf(st->sigv4, sizeof(st->sigv4), "aws:amz:%s:s3", region);
    snprintf(st->access_key, sizeof(st->access_key), "%s", rc->access_key_id);
    snprintf(st->secret, sizeof(st->secret), "%s", rc->secret_access_key);
    st->path_style = path_style;
    st->skip_verify = rc->skip_verify ? 1 : 0;
    st->max_attempts = DEFAULT_ATTEMPTS;
    st->rng = (uint64_t)lc_now_mono_ns() ^ (uint64_t)(uintptr_t)st ^ 0x9e3779b97f4a7c15ULL;
    if (!st->rng) st->rng = 1;

    if (endpoint[0]) {
        const char *hp = strstr(endpoint, "://") + 3;
        size_t el = strlen(endpoint);
        while (el > (size_t)(hp - endpoint) && endpoint[el - 1] == '/')
            el--;
        if (path_style)
            snprintf(st->base_url, sizeof(st->base_url), "%.*s", (int)el, endpoint);
        else
            snprintf(st->base_url, sizeof(st->base_url), "%.*s%s.%.*s", (int)(hp - endpoint),
                     endpoint, bucket, (int)(el - (size_t)(hp - endpoint)), hp);
    } else if (path_style) {
        snprintf(st->base_url, sizeof(st->base_url), "https://s3.%s.amazonaws.com", region);
    } else {
        snprintf(st->base_url, sizeof(st->base_url), "https://%s.s3.%s.amazonaws.com", bucket,
                 region);
    }
    if (path_style) snprintf(st->bucket_path, sizeof(st->bucket_path), "/%s", bucket);

    st->multi = CU.multi_init();
    if (!st->multi) {
        free(st);
        return lc_err_set(err, LC_EIO, "replica url %s: curl_multi_init failed", rc->url);
    }
    CU.multi_setopt(st->multi, CURLMOPT_SOCKETFUNCTION, multi_sock_cb);
    CU.multi_setopt(st->multi, CURLMOPT_SOCKETDATA, st);
    CU.multi_setopt(st->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    CU.multi_setopt(st->multi, CURLMOPT_TIMERDATA, st);
    ev_timer_init(&st->timer, curl_timeout_cb, 0., 0.);
    st->timer.data = st;

    lc_debug("s3 store open", "url=%s endpoint=%s bucket=%s prefix=%s region=%s path_style=%d",
             rc->url, st->base_url, st->bucket, st->prefix[0] ? st->prefix : "/", st->region,
             st->path_style);
    *out = &st->base;
    return 0;
}

int lc_store_s3_tune(struct lc_store *base, int max_attempts, int list_page_size)
{
    struct s3_store *st = (struct s3_store *)base;

    if (!base || base->ops != &s3_ops || max_attempts < 0 || list_page_size < 0 ||
        list_page_size > 1000)
        return LC_EINVAL;
    if (max_attempts > 0) st->max_attempts = max_attempts;
    st->list_page = list_page_size;
    return 0;
}
