/* pbox-init — pid 1 of every sandbox.
 *
 * Theory of operation.  pboxd executes this static binary from a sealed
 * memfd as the last step of building a sandbox, after the rootfs, the
 * capabilities, no_new_privs and the seccomp filter are in place; it is never
 * a file inside the sandbox, and it cannot be written through /proc/1/exe
 * (CVE-2019-5736).  Commands started by `exec` are not its children: pboxd
 * clones them straight into the sandbox's namespaces.  What pid 1 must still
 * do is what only pid 1 can do:
 *   - reap: processes orphaned inside the sandbox (double forks, daemons)
 *     are re-parented to it, and their zombies must be collected;
 *   - forward: a signal sent to the sandbox's init by pboxd (SIGTERM on
 *     stop, SIGHUP, SIGINT, SIGUSR1/2 ...) is passed on to every other process
 *     of the sandbox with kill(-1, sig).
 * It never exits by itself: pboxd ends a sandbox with SIGKILL, which takes
 * the whole pid namespace with it.  It makes itself non-dumpable so sandbox
 * processes (same uid) cannot ptrace it or read its memory. */
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, NULL);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

        for (;;) {
                siginfo_t info;
                int sig = sigwaitinfo(&all, &info);
                if (sig < 0) {
                        if (errno == EINTR)
                                continue;
                        _exit(1);
                }
                if (sig == SIGCHLD) {
                        while (waitpid(-1, NULL, WNOHANG) > 0)
                                ;
                        continue;
                }
                /* Signals the kernel raises for our own faults are not forwarded. */
                if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGSYS)
                        continue;
                kill(-1, sig);
        }
}
