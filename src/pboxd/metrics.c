/* metrics.c — counters of the core and their rendering (metrics.h).  The
 * core is single-threaded: plain integers, no atomics. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "metrics.h"
#include "sandbox.h"
#include "util.h"

static const double buckets_ms[] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000 };
#define NB ARRAY_SIZE(buckets_ms)

struct histogram {
        uint64_t counts[NB + 1];
        uint64_t n;
        double sum_ms;
};

static const char *const exec_statuses[] = { "ok", "exit", "signaled", "timeout", "output_limit", "killed", "lost", "failed" };
static const char *const end_reasons[] = { "stopped", "killed", "exited", "lost", "ttl_expired", "idle_expired" };
static const int codes[] = { 200, 201, 202, 400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 501, 503 };

static struct {
        struct histogram start, exec;
        uint64_t execs[ARRAY_SIZE(exec_statuses)];
        uint64_t ends[ARRAY_SIZE(end_reasons)];
        uint64_t responses[ARRAY_SIZE(codes) + 1];
} m;

static void observe(struct histogram *h, uint64_t ms)
{
        size_t i = 0;
        while (i < NB && (double) ms > buckets_ms[i])
                i++;
        h->counts[i]++;
        h->n++;
        h->sum_ms += (double) ms;
}

void metrics_count_response(int status)
{
        size_t i;
        for (i = 0; i < ARRAY_SIZE(codes) && codes[i] != status; i++)
                ;
        m.responses[i]++;
}

void metrics_observe_start(uint64_t ms) { observe(&m.start, ms); }

void metrics_observe_exec(uint64_t ms, const char *status)
{
        observe(&m.exec, ms);
        for (size_t i = 0; i < ARRAY_SIZE(exec_statuses); i++)
                if (!strcmp(status, exec_statuses[i]))
                        m.execs[i]++;
}

void metrics_count_sandbox_end(const char *reason)
{
        for (size_t i = 0; i < ARRAY_SIZE(end_reasons); i++)
                if (!strcmp(reason, end_reasons[i]))
                        m.ends[i]++;
}

static void render_histogram(FILE *f, const char *name, const char *help, const struct histogram *h)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
        uint64_t cum = 0;
        for (size_t i = 0; i < NB; i++) {
                cum += h->counts[i];
                fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, buckets_ms[i] / 1000.0, (unsigned long long) cum);
        }
        fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long) h->n);
        fprintf(f, "%s_sum %g\n%s_count %llu\n", name, h->sum_ms / 1000.0, name, (unsigned long long) h->n);
}

void metrics_op(struct core *core, struct request *req)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f)
                return request_error(req, 500, "internal", "out of memory");
        unsigned states[4] = { 0 }, running_execs = 0;
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next) {
                states[sb->state]++;
                running_execs += exec_any_running(sb);
        }
        fprintf(f, "# HELP pbox_sandboxes Sandboxes by state.\n# TYPE pbox_sandboxes gauge\n");
        for (int i = 0; i < 4; i++)
                fprintf(f, "pbox_sandboxes{state=\"%s\"} %u\n", sb_state_names[i], states[i]);
        fprintf(f, "# HELP pbox_sandboxes_with_running_execs Sandboxes with at least one running exec.\n"
                   "# TYPE pbox_sandboxes_with_running_execs gauge\npbox_sandboxes_with_running_execs %u\n", running_execs);
        fprintf(f, "# HELP pbox_execs_total Finished execs by status.\n# TYPE pbox_execs_total counter\n");
        for (size_t i = 0; i < ARRAY_SIZE(exec_statuses); i++)
                fprintf(f, "pbox_execs_total{status=\"%s\"} %llu\n", exec_statuses[i], (unsigned long long) m.execs[i]);
        fprintf(f, "# HELP pbox_timeouts_total Execs ended by their wall-clock limit.\n# TYPE pbox_timeouts_total counter\n"
                   "pbox_timeouts_total %llu\n", (unsigned long long) m.execs[3]);
        fprintf(f, "# HELP pbox_kills_total Execs ended by a kill or stop request.\n# TYPE pbox_kills_total counter\n"
                   "pbox_kills_total %llu\n", (unsigned long long) m.execs[5]);
        fprintf(f, "# HELP pbox_sandbox_ends_total Sandboxes that ended, by reason.\n# TYPE pbox_sandbox_ends_total counter\n");
        for (size_t i = 0; i < ARRAY_SIZE(end_reasons); i++)
                fprintf(f, "pbox_sandbox_ends_total{reason=\"%s\"} %llu\n", end_reasons[i], (unsigned long long) m.ends[i]);
        render_histogram(f, "pbox_sandbox_start_seconds", "Time to create a sandbox.", &m.start);
        render_histogram(f, "pbox_exec_seconds", "Wall time of execs.", &m.exec);
        fprintf(f, "# HELP pbox_api_requests_total API requests by response status.\n# TYPE pbox_api_requests_total counter\n");
        for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
                fprintf(f, "pbox_api_requests_total{code=\"%d\"} %llu\n", codes[i], (unsigned long long) m.responses[i]);
        fprintf(f, "pbox_api_requests_total{code=\"other\"} %llu\n", (unsigned long long) m.responses[ARRAY_SIZE(codes)]);
        fclose(f);
        metrics_count_response(200);
        core_send_raw(req, 200, "text/plain; version=0.0.4", text, len, -1);
        free(text);
        req->answered = true;
        request_release(req);
}

void health_op(struct core *core, struct request *req)
{
        unsigned running = 0;
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                running += sb->state == SB_RUNNING;
        request_respond(req, 200, json_pack("{s:s,s:s,s:i,s:{s:s,s:s,s:b}}", "status", "ok", "version", PACKAGE_VERSION,
                                            "sandboxes_running", running, "cgroup", "path", core->cgroups->base_path,
                                            "controllers", core->cgroups->controllers, "kill", core->cgroups->has_kill));
}
