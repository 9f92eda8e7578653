/* log: logfmt lines on stderr. One write(2) per line so lines from one process
 * never interleave mid-line under a supervisor. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static enum lc_log_level g_level = LC_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void lc_log_set_level(enum lc_log_level lvl)
{
    g_level = lvl;
}

enum lc_log_level lc_log_get_level(void)
{
    return g_level;
}

int lc_log_level_parse(const char *s, enum lc_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum lc_log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "warning") == 0) {
        *out = LC_LOG_WARN;
        return 0;
    }
    return LC_EINVAL;
}

void lc_log(enum lc_log_level lvl, const char *msg, const char *kvfmt, ...)
{
    char line[2048], ts[48];
    int n;

    if (lvl < g_level)
        return;
    lc_time_format(lc_now_wall_ns(), 1, ts, sizeof(ts));
    /* millisecond precision is plenty for a log line */
    size_t tl = strlen(ts);
    if (tl > 14)
        memmove(ts + tl - 7, ts + tl - 1, 2);
    n = snprintf(line, sizeof(line), "time=%s level=%s msg=\"%s\"", ts, names[lvl], msg);
    if (n < 0)
        return;
    if (kvfmt && *kvfmt && (size_t)n < sizeof(line) - 2) {
        va_list ap;
        line[n++] = ' ';
        va_start(ap, kvfmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, kvfmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
        else
            n--; /* nothing formatted: drop the separator */
    }
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    (void)lc_write_full(STDERR_FILENO, line, (size_t)n);
}

void lc_log_plain(enum lc_log_level lvl, const char *msg)
{
    lc_log(lvl, msg, "%s", "");
}
