/* log.h — daemon logging: one line per event on stderr with an sd-daemon
 * priority prefix ("<3>pboxd: ..."), which journald and systemd understand. */
#pragma once

#include <syslog.h>

void log_set_ident(const char *ident);
void log_set_max_priority(int prio);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
