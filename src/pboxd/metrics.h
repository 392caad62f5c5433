/* metrics.h — counters and histograms of the core, rendered for GET /metrics
 * in the Prometheus text format, and the GET /healthz summary. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "core.h"

void metrics_count_response(int status);
void metrics_observe_start(uint64_t ms);
void metrics_observe_exec(uint64_t ms, const char *status);
void metrics_count_sandbox_end(const char *reason);

void metrics_op(struct core *core, struct request *req);
void health_op(struct core *core, struct request *req);
