/*
 * sessiond-wait: the two waiting processes of a PID-namespace sandbox
 * (isolation/init.py's loops) as a small native program.
 *
 * Why: each waiter is a whole Python interpreter otherwise, ~3.9 MiB PSS
 * (the interpreter's relocated data, its heap and object arenas), twice per
 * session: the root supervisor outside the namespace and the namespace's
 * init. This program does the same with ~0.2 MiB each and starts in
 * microseconds, which also shortens the window after the exec in which a
 * forwarded signal is not yet caught (isolation/init.py's header).
 *
 * Closed set of operations, nothing else: parse "supervise|init PID", catch
 * SIGTERM/SIGINT/SIGHUP and pass each to PID, wait for PID (init: reap every
 * child, return once PID has exited), exit with its status (death by signal
 * N as 128+N). No environment, files, allocation or output except a usage
 * line. It runs as root in the supervisor role, so it stays this small.
 *
 * Usage (isolation/init.py's waiter_argv): sessiond-wait supervise|init PID
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit status conventions, as in isolation/init.py. */
#define SIGNAL_EXIT_BASE 128
#define EXIT_USAGE 71
/* The largest pid Linux hands out (PID_MAX_LIMIT, 2^22). */
#define MAX_PID 4194304L

static volatile pid_t target;

static void forward(int signum)
{
    int saved = errno;
    if (target > 0)
        kill(target, signum); /* ESRCH: already gone, nothing to do */
    errno = saved;
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return SIGNAL_EXIT_BASE + WTERMSIG(status);
    return SIGNAL_EXIT_BASE + SIGKILL;
}

static long parse_pid(const char *text)
{
    long value = 0;
    if (*text == '\0')
        return -1;
    for (; *text; text++) {
        if (*text < '0' || *text > '9')
            return -1;
        value = value * 10 + (*text - '0');
        if (value > MAX_PID)
            return -1;
    }
    return value > 0 ? value : -1;
}

int main(int argc, char **argv)
{
    static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction action;
    int reap_all, status;
    long child;
    pid_t pid;
    size_t i;

    if (argc != 3 || (strcmp(argv[1], "supervise") != 0 && strcmp(argv[1], "init") != 0)
        || (child = parse_pid(argv[2])) < 0) {
        fputs("usage: sessiond-wait supervise|init PID\n", stderr);
        return EXIT_USAGE;
    }
    reap_all = strcmp(argv[1], "init") == 0;
    target = (pid_t)child;
    memset(&action, 0, sizeof action);
    action.sa_handler = forward;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &action, NULL);
    for (;;) {
        pid = waitpid(reap_all ? -1 : (pid_t)child, &status, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            return SIGNAL_EXIT_BASE + SIGKILL; /* the child vanished unseen */
        }
        if (pid == (pid_t)child)
            return exit_code(status);
    }
}
