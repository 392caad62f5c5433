/* main.c — pboxd: parse the command line and config, fork the unprivileged
 * api process, and run the privileged core (see core.h and api.h).
 *
 *   pboxd [--listen ADDR:PORT] [--state-dir DIR] [--runtime-dir DIR] [--config FILE]
 *
 * The core runs as root, single-threaded; the api process (civetweb) drops
 * to an unprivileged user with no capabilities before it reads a byte from
 * the network, and reaches the core only through the privsep channel. */
#include "config.h"

#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "api.h"
#include "conf.h"
#include "core.h"
#include "log.h"
#include "util.h"

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: pboxd [OPTIONS]\n"
                "Run the pbox sandbox daemon.\n\n"
                "  -l, --listen ADDR:PORT   address of the HTTP API (default 127.0.0.1:7269)\n"
                "  -s, --state-dir DIR      images, layers, sandbox records (default /var/lib/pbox)\n"
                "  -r, --runtime-dir DIR    mount points of live sandboxes (default /run/pbox)\n"
                "  -c, --config FILE        configuration file, see pbox.conf(5) / pboxd(8)\n"
                "  -h, --help               show this help\n"
                "      --version            show the version\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "listen", required_argument, NULL, 'l' }, { "state-dir", required_argument, NULL, 's' },
                { "runtime-dir", required_argument, NULL, 'r' }, { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }, { NULL, 0, NULL, 0 },
        };
        const char *listen = NULL, *state = NULL, *runtime = NULL, *config = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "l:s:r:c:h", opts, NULL)) != -1) {
                switch (c) {
                case 'l': listen = optarg; break;
                case 's': state = optarg; break;
                case 'r': runtime = optarg; break;
                case 'c': config = optarg; break;
                case 'h': usage(stdout); return 0;
                case 'V': printf("pboxd %s\n", PACKAGE_VERSION); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return 2;
        }

        struct pboxd_config cfg;
        struct pbox_error err = PBOX_ERROR_INIT;
        config_init_defaults(&cfg);
        if ((config && config_load_file(&cfg, config, &err) < 0) ||
            (listen && config_set(&cfg, "listen", listen, &err) < 0) ||
            (state && config_set(&cfg, "state_dir", state, &err) < 0) ||
            (runtime && config_set(&cfg, "runtime_dir", runtime, &err) < 0) || config_validate(&cfg, &err) < 0) {
                log_error("configuration: %s", err.message);
                return 2;
        }
        log_set_max_priority(cfg.log_level);
        if (geteuid() != 0) {
                log_error("pboxd must run as root: it builds namespaces, mounts and cgroups");
                return 1;
        }
        umask(022);

        errno = 0;
        struct passwd *pw = getpwnam(cfg.api_user);
        if (!pw || pw->pw_uid == 0) {
                log_error("api_user '%s' must be an existing user other than root", cfg.api_user);
                return 1;
        }
        uid_t api_uid = pw->pw_uid;
        gid_t api_gid = pw->pw_gid;

        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
                log_error("socketpair: %m");
                return 1;
        }
        pid_t api_pid = fork();
        if (api_pid < 0) {
                log_error("fork: %m");
                return 1;
        }
        if (api_pid == 0) {
                close(sp[0]);
                prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
                if (getppid() == 1)
                        _exit(1);
                log_set_ident("pboxd-api");
                struct api_options ao = {
                        .listen = cfg.listen, .control_sock = sp[1], .run_uid = api_uid, .run_gid = api_gid,
                        .max_json_body = cfg.max_json_body, .max_image_body = cfg.max_image_bytes,
                        .threads = (int) cfg.api_threads,
                };
                _exit(api_main(&ao));
        }
        close(sp[1]);

        struct core core;
        if (core_init(&core, &cfg, sp[0], api_pid, &err) < 0) {
                log_error("%s", err.message);
                kill(api_pid, SIGTERM);
                return 1;
        }
        log_notice("pboxd %s ready on %s (state %s, runtime %s)", PACKAGE_VERSION, cfg.listen, cfg.state_dir,
                   cfg.runtime_dir);
        int r = core_run(&core);
        /* Take the api process down with us, and wait for it (bounded), so
         * that nothing of pboxd is left running when this process is gone. */
        kill(api_pid, SIGTERM);
        int status;
        for (int i = 0; i < 100 && waitpid(api_pid, &status, WNOHANG) == 0; i++)
                usleep(50 * 1000);
        if (kill(api_pid, SIGKILL) == 0)
                waitpid(api_pid, &status, 0);
        core_free(&core);
        config_free(&cfg);
        return r < 0 ? 1 : 0;
}
