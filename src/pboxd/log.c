/* log.c — sd-daemon style logging to stderr (log.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const char *log_ident = "pboxd";
static int log_max = LOG_INFO;

void log_set_ident(const char *ident) { log_ident = ident; }
void log_set_max_priority(int prio) { log_max = prio; }

void log_msg(int prio, const char *fmt, ...)
{
        if (prio > log_max)
                return;
        char buf[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        /* One event, one line: newlines in messages (from clients) are flattened. */
        for (char *p = buf; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        fprintf(stderr, "<%d>%s: %s\n", prio, log_ident, buf);
}
