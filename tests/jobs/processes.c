/* Processes inside a job: fork and vfork with execve, exit statuses through wait4 and waitid,
 * WNOHANG and ECHILD, a pipe between parent and child, SIGCHLD, signals to a process group,
 * process groups and sessions. Exits 0 when every check passes. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                              \
    do {                                              \
        if (!(cond)) {                                \
            printf("processes: FAIL: " __VA_ARGS__);  \
            printf("\n");                             \
            failures++;                               \
        }                                             \
    } while (0)

static volatile sig_atomic_t sigchld;
static void on_sigchld(int sig) {
    (void)sig;
    sigchld++;
}

int main(void) {
    int status;
    CHECK(waitpid(-1, &status, 0) == -1 && errno == ECHILD, "wait without children: ECHILD");
    signal(SIGCHLD, on_sigchld);

    /* fork + exit status. */
    pid_t child = fork();
    if (child == 0)
        _exit(42);
    CHECK(child > 1, "fork returned %d", child);
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 42,
          "exit status 42 (status %#x)", status);
    CHECK(sigchld >= 1, "SIGCHLD handler did not run");

    /* fork + execve of another program with arguments and environment. */
    child = fork();
    if (child == 0) {
        char *argv[] = {"/bin/hello", "--expect=x|y z", "x", "y z", NULL};
        char *envp[] = {"MANUL_TEST=yes", "MANUL_EXIT=5", NULL};
        execve(argv[0], argv, envp);
        _exit(127);
    }
    CHECK(waitpid(child, &status, 0) == child && WEXITSTATUS(status) == 5, "exec'd hello status %#x", status);

    /* vfork + execve of a missing program: the child reports it and exits. */
    child = vfork();
    if (child == 0) {
        char *argv[] = {"/nonexistent", NULL};
        execve(argv[0], argv, argv + 1);
        _exit(errno == ENOENT ? 3 : 4);
    }
    CHECK(waitpid(child, &status, 0) == child && WEXITSTATUS(status) == 3, "vfork + failed exec status %#x", status);

    /* A pipe from child to parent. */
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    child = fork();
    if (child == 0) {
        close(fds[0]);
        for (int i = 0; i < 100; i++)
            if (write(fds[1], "0123456789", 10) != 10)
                _exit(1);
        _exit(0);
    }
    close(fds[1]);
    char buf[256];
    long total = 0, n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0)
        total += n;
    close(fds[0]);
    CHECK(total == 1000, "read %ld bytes through the pipe", total);
    waitpid(child, &status, 0);

    /* WNOHANG on a running child, then waitid. */
    int gate[2];
    pipe(gate);
    child = fork();
    if (child == 0) {
        char c;
        close(gate[1]);
        read(gate[0], &c, 1); /* blocks until the parent closes its end */
        _exit(9);
    }
    close(gate[0]);
    CHECK(waitpid(child, &status, WNOHANG) == 0, "WNOHANG on a running child");
    close(gate[1]);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    CHECK(waitid(P_PID, child, &info, WEXITED) == 0 && info.si_pid == child && info.si_status == 9 &&
              info.si_code == CLD_EXITED,
          "waitid pid %d status %d code %d", info.si_pid, info.si_status, info.si_code);

    /* Process groups: two children in a new group, ended with one kill(-group). */
    pid_t group = 0;
    pid_t members[2];
    for (int i = 0; i < 2; i++) {
        members[i] = fork();
        if (members[i] == 0) {
            for (;;)
                pause();
        }
        if (group == 0)
            group = members[i];
        CHECK(setpgid(members[i], group) == 0, "setpgid");
    }
    CHECK(getpgid(members[1]) == group, "getpgid %d", getpgid(members[1]));
    usleep(10000);
    CHECK(kill(-group, SIGKILL) == 0, "kill(-group)");
    for (int i = 0; i < 2; i++) {
        CHECK(waitpid(members[i], &status, 0) == members[i] && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "member %d status %#x", i, status);
    }

    /* Sessions. */
    child = fork();
    if (child == 0) {
        pid_t sid = setsid();
        _exit(sid == getpid() && getsid(0) == getpid() && getpgrp() == getpid() ? 0 : 1);
    }
    CHECK(waitpid(child, &status, 0) == child && WEXITSTATUS(status) == 0, "setsid in a child");
    CHECK(getppid() == 0, "the job's first process has no parent (getppid %d)", getppid());

    printf("processes: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
