/* metrics.c — counters of the core and their rendering (metrics.h).  The
 * core is single-threaded: plain integers, no atomics. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "limits.h"
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

static const char *const exec_statuses[] = { "ok", "exit", "signaled", "timeout", "output_limit", "killed", "lost", "failed",
                                             "cpu_limit", "oom", "pids_limit" };
/* Exec statuses that are limit hits, for pbox_limit_hits_total. */
static const char *const limit_statuses[] = { "oom", "cpu_limit", "pids_limit", "timeout", "output_limit" };
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

/* Per running sandbox, from its cgroup. */
static void render_sandbox_usage(struct core *core, FILE *f)
{
        static const struct {
                const char *name, *type, *help;
        } fam[] = {
                { "pbox_sandbox_cpu_seconds_total", "counter", "CPU time used by a running sandbox." },
                { "pbox_sandbox_memory_bytes", "gauge", "Memory used by a running sandbox (memory.current)." },
                { "pbox_sandbox_memory_peak_bytes", "gauge", "Peak memory of a running sandbox (memory.peak)." },
                { "pbox_sandbox_pids", "gauge", "Processes in a running sandbox (pids.current)." },
                { "pbox_sandbox_oom_kills_total", "counter", "Processes of a running sandbox killed by the OOM killer." },
        };
        size_t n = 0;
        for (struct sandbox *sb = core->sandboxes; sb; sb = sb->next)
                n += sb->state == SB_RUNNING && sb->cgroup_fd >= 0;
        struct row {
                const char *id;
                struct cgroup_usage u;
        } *rows = util_xcalloc(n ? n : 1, sizeof *rows);
        size_t k = 0;
        for (struct sandbox *sb = core->sandboxes; sb && k < n; sb = sb->next)
                if (sb->state == SB_RUNNING && sandbox_read_cgroup_usage(sb, &rows[k].u) == 0)
                        rows[k++].id = sb->id;
        for (size_t i = 0; i < ARRAY_SIZE(fam); i++) {
                fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam[i].name, fam[i].help, fam[i].name, fam[i].type);
                for (size_t r = 0; r < k; r++) {
                        const struct cgroup_usage *u = &rows[r].u;
                        if (i == 0) {
                                fprintf(f, "%s{sandbox=\"%s\"} %.6f\n", fam[i].name, rows[r].id,
                                        (double) u->cpu_usage_us / 1e6);
                                continue;
                        }
                        int64_t v = i == 1 ? u->memory_current_bytes : i == 2 ? u->memory_peak_bytes
                                                                     : i == 3 ? u->pids_current : u->oom_kills;
                        if (v >= 0)
                                fprintf(f, "%s{sandbox=\"%s\"} %lld\n", fam[i].name, rows[r].id, (long long) v);
                }
        }
        free(rows);
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
        fprintf(f, "# HELP pbox_limit_hits_total Execs ended by a limit, by limit.\n# TYPE pbox_limit_hits_total counter\n");
        for (size_t l = 0; l < ARRAY_SIZE(limit_statuses); l++)
                for (size_t i = 0; i < ARRAY_SIZE(exec_statuses); i++)
                        if (!strcmp(limit_statuses[l], exec_statuses[i]))
                                fprintf(f, "pbox_limit_hits_total{limit=\"%s\"} %llu\n", limit_statuses[l],
                                        (unsigned long long) m.execs[i]);
        render_sandbox_usage(core, f);
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
        const struct cgroup_manager *cg = core->cgroups;
        json_t *enabled = json_array(), *missing = json_array();
        unsigned have = limits_enabled_controllers(core);
        for (unsigned bit = 1; bit & CGROUP_CTRL_ALL; bit <<= 1)
                json_array_append_new((have & bit) ? enabled : missing, json_string(cgroup_controller_name(bit)));
        bool all = (have & CGROUP_CTRL_ALL) == CGROUP_CTRL_ALL;
        request_respond(req, 200, json_pack("{s:s,s:s,s:i,s:b,s:s,s:{s:s,s:s,s:b,s:o,s:o,s:b,s:b,s:b}}", "status", "ok",
                                            "version", PACKAGE_VERSION, "sandboxes_running", running, "limits_enforced",
                                            all, "disk_backend",
                                            core->cfg->disk_backend == DISK_BACKEND_EXT4 ? "ext4" : "tmpfs",
                                            "cgroup", "path", cg->base_path, "controllers", cg->controllers,
                                            "kill", cg->has_kill, "enabled", enabled, "missing", missing, "delegated",
                                            cg->delegated, "memory_peak", cg->has_memory_peak, "pids_peak",
                                            cg->has_pids_peak));
}
