/* run.h — one-shot runs (POST /v1/run, Judge0 / Piston style): a sandbox
 * is created, files are written into it, an optional compile step runs, then
 * the command; both results come back, and the sandbox is removed whatever
 * happened. */
#pragma once

#include <jansson.h>

#include "core.h"

void run_op(struct core *core, struct request *req, json_t *body);
