/* log: one logfmt line per event on stderr, so any supervisor captures it.
 *   time=2026-11-23T20:50:37.123Z level=info msg="sync: new generation" db=app ...
 * lc_log_* take a message and then optional logfmt key=value text already formatted
 * by the caller via the kv argument (may be NULL). Values containing spaces are the
 * caller's to quote. log_warn appends errno text, log_warnx does not (OpenBSD style). */
#ifndef LC_LOG_H
#define LC_LOG_H

enum lc_log_level { LC_LOG_DEBUG = 0, LC_LOG_INFO, LC_LOG_WARN, LC_LOG_ERROR };

void lc_log_set_level(enum lc_log_level lvl);
enum lc_log_level lc_log_get_level(void);
int lc_log_level_parse(const char *s, enum lc_log_level *out);
/* Write a line: level, msg (quoted), then fmt-formatted key=value pairs (may be NULL). */
void lc_log(enum lc_log_level lvl, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line with no key=value pairs (kvfmt of lc_log must be a non-empty format). */
void lc_log_plain(enum lc_log_level lvl, const char *msg);

#define lc_debug(msg, ...) lc_log(LC_LOG_DEBUG, msg, __VA_ARGS__)
#define lc_info(msg, ...) lc_log(LC_LOG_INFO, msg, __VA_ARGS__)
#define lc_warn(msg, ...) lc_log(LC_LOG_WARN, msg, __VA_ARGS__)
#define lc_error(msg, ...) lc_log(LC_LOG_ERROR, msg, __VA_ARGS__)

#endif
