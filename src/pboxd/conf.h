/* conf.h — pboxd's configuration: built-in defaults, then the config file
 * (pbox.conf(5): "key = value" lines, '#' comments), then command-line flags. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

struct pboxd_config {
        char *listen;                   /* ADDR:PORT */
        char *state_dir;
        char *runtime_dir;
        char *init_path;                /* pbox-init binary */
        char *seccomp_policy;           /* OCI seccomp JSON */
        char *cgroup_name;              /* the daemon's cgroup subtree */
        char *api_user;                 /* the api process runs as this user */
        uint32_t uid_base;
        uint32_t gid_base;
        uint32_t uid_count;
        uint64_t max_json_body;
        uint64_t max_image_bytes;
        uint64_t max_layer_bytes;       /* uncompressed, per layer */
        uint64_t max_output_bytes;      /* the most an exec may ask for, per stream */
        uint64_t exec_output_bytes;     /* default per stream of one exec */
        uint32_t exec_timeout_ms;       /* default wall-clock limit of an exec (0: none) */
        uint32_t max_exec_timeout_ms;
        uint32_t exec_grace_ms;         /* default grace after the stop signal */
        uint32_t max_grace_ms;
        uint32_t ttl_s;                 /* default sandbox lifetime (0: none) */
        uint32_t max_ttl_s;             /* 0: no maximum */
        uint32_t idle_timeout_s;        /* default idle timeout (0: none) */
        uint32_t max_idle_timeout_s;    /* 0: no maximum */
        uint32_t expired_keep_s;        /* an expired sandbox's record stays this long */
        uint32_t max_execs_kept;        /* finished execs kept per sandbox for GET */
        uint32_t stop_grace_ms;         /* default grace period of stop */
        uint32_t api_threads;
        uint32_t max_sandboxes;
        uint32_t max_running_execs;     /* beyond it: 503 with Retry-After */
        int log_level;                  /* syslog priority, LOG_INFO by default */

        /* Resource limits (limits.h).  0 = none for defaults, no maximum for max_*. */
        uint64_t default_memory_bytes, max_memory_bytes;
        uint64_t default_swap_bytes;    /* when memory is limited; CONFIG_SWAP_UNLIMITED: "max" */
        uint64_t default_pids, max_pids;
        uint64_t default_cpus_milli, max_cpus_milli;    /* thousandths of a CPU */
        uint64_t default_cpu_weight;
        uint64_t default_disk_bytes, max_disk_bytes;
        uint64_t exec_cpu_limit_ms, max_exec_cpu_limit_ms;
        bool allow_unenforced_limits;   /* run with limits the host cannot enforce */
        int cgroup_delegation;          /* enum cgroup_delegation (cgroup.h) */
        int disk_backend;               /* enum disk_backend: where a disk_bytes layer lives */
};

enum disk_backend { DISK_BACKEND_TMPFS, DISK_BACKEND_EXT4 };

#define CONFIG_SWAP_UNLIMITED UINT64_MAX

void config_init_defaults(struct pboxd_config *cfg);
void config_free(struct pboxd_config *cfg);
/* Set one key from its text value (file or flag).  -EINVAL for unknown keys
 * and bad values, with a message naming both. */
int config_set(struct pboxd_config *cfg, const char *key, const char *value, struct pbox_error *err);
/* Parse the text of a config file; origin names it in error messages. */
int config_parse_text(struct pboxd_config *cfg, const char *text, const char *origin, struct pbox_error *err);
int config_load_file(struct pboxd_config *cfg, const char *path, struct pbox_error *err);
/* Cross-field checks after everything is set; defaults above their
 * maximums are lowered to them. */
int config_validate(struct pboxd_config *cfg, struct pbox_error *err);
