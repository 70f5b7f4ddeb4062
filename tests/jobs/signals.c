/* Signals on Manul: handlers for synchronous faults (recovering from SIGSEGV and SIGFPE with
 * siglongjmp), self-sent signals (raise, kill, tgkill), SA_SIGINFO details, blocking and pending
 * signals, SIG_IGN, SIGPIPE on a broken pipe, an alternate signal stack, the FPU image in the
 * signal frame (what a handler writes there is what the registers hold after it; an image the
 * CPU would refuse ends the process with SIGSEGV), and the default action ending a child (its
 * wait status). Exits 0 when every check passes. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                            \
    do {                                            \
        if (!(cond)) {                              \
            printf("signals: FAIL: " __VA_ARGS__);  \
            printf("\n");                           \
            failures++;                             \
        }                                           \
    } while (0)

static sigjmp_buf recover;
static volatile sig_atomic_t got;
static volatile void *fault_address;
static volatile int on_alt_stack;
static char alt_stack[64 * 1024];

static void on_fault(int sig, siginfo_t *info, void *context) {
    (void)context;
    got = sig;
    fault_address = info->si_addr;
    siglongjmp(recover, 1);
}

static void on_signal(int sig) {
    got = sig;
}

static void on_alt(int sig) {
    char here;
    got = sig;
    on_alt_stack = &here >= alt_stack && &here < alt_stack + sizeof alt_stack;
}

/* What the FPU handler does to the image in its frame. */
enum { FPU_MARK_XMM0 = 1, FPU_BAD_MXCSR = 2 };
static volatile int fpu_mode;
static const unsigned MARK = 0x600df00d;

static void on_fpu(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    ucontext_t *uc = context;
    if (fpu_mode == FPU_MARK_XMM0)
        uc->uc_mcontext.fpregs->_xmm[0].element[0] = MARK;
    else if (fpu_mode == FPU_BAD_MXCSR)
        uc->uc_mcontext.fpregs->mxcsr = 0xffffffff; /* reserved bits: XRSTOR would fault */
}

/* Puts `before` in XMM0, sends itself SIGUSR1 with a bare tgkill (the handler runs on the way
 * back from it) and returns XMM0's low half as the registers hold it afterwards. */
static unsigned long xmm0_across_signal(unsigned long before) {
    long nr = SYS_tgkill;
    unsigned long after;
    __asm__ volatile("movq %[before], %%xmm0\n\t"
                     "syscall\n\t"
                     "movq %%xmm0, %[after]"
                     : [after] "=&r"(after), "+a"(nr)
                     : [before] "r"(before), "D"((long)getpid()), "S"((long)gettid()), "d"((long)SIGUSR1)
                     : "rcx", "r11", "xmm0", "memory");
    return after;
}

static void install(int sig, void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction %d", sig);
}

int main(void) {
    /* A fault caught by a handler, recovered with siglongjmp. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    if (sigsetjmp(recover, 1) == 0) {
        *(volatile int *)0x1000 = 1;
        CHECK(0, "the write to 0x1000 did not fault");
    }
    CHECK(got == SIGSEGV, "SIGSEGV handler (got %d)", got);
    CHECK(fault_address == (void *)0x1000, "si_addr %p", fault_address);
    got = 0;
    if (sigsetjmp(recover, 1) == 0) {
        /* In assembly: gcc turns `1 / x` in C into a comparison that never faults. */
        __asm__ volatile("xor %%ecx, %%ecx\n\tmov $1, %%eax\n\tcltd\n\tidiv %%ecx" ::: "eax", "ecx", "edx");
        CHECK(0, "the division by zero did not fault");
    }
    CHECK(got == SIGFPE, "SIGFPE handler (got %d)", got);

    /* Self-sent signals. */
    install(SIGUSR1, on_signal, 0);
    got = 0;
    raise(SIGUSR1);
    CHECK(got == SIGUSR1, "raise(SIGUSR1)");
    got = 0;
    kill(getpid(), SIGUSR1);
    CHECK(got == SIGUSR1, "kill(getpid(), SIGUSR1)");
    got = 0;
    syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
    CHECK(got == SIGUSR1, "tgkill");

    /* Blocked signals stay pending until unblocked. */
    sigset_t block, pending;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    got = 0;
    raise(SIGUSR1);
    CHECK(got == 0, "a blocked signal ran its handler");
    sigpending(&pending);
    CHECK(sigismember(&pending, SIGUSR1), "SIGUSR1 not pending");
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    CHECK(got == SIGUSR1, "the pending signal was not delivered on unblock");

    /* Ignored signals vanish. */
    signal(SIGUSR2, SIG_IGN);
    raise(SIGUSR2);

    /* SIGPIPE: ignored, the write says EPIPE; with a handler, the handler runs too. */
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    CHECK(write(fds[1], "x", 1) == -1 && errno == EPIPE, "write to a broken pipe: errno %d", errno);
    install(SIGPIPE, on_signal, 0);
    got = 0;
    CHECK(write(fds[1], "x", 1) == -1 && errno == EPIPE, "write to a broken pipe with a handler");
    CHECK(got == SIGPIPE, "SIGPIPE handler");
    close(fds[1]);

    /* An alternate signal stack. */
    stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack");
    install(SIGUSR2, on_alt, SA_ONSTACK);
    got = 0;
    raise(SIGUSR2);
    CHECK(got == SIGUSR2 && on_alt_stack, "handler on the alternate stack (got %d, on it %d)", got, on_alt_stack);

    /* The handler's FPU image is what the thread resumes with. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpu;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction for the FPU image");
    fpu_mode = 0;
    CHECK(xmm0_across_signal(0x1234) == 0x1234, "XMM0 changed across a handler that left it alone");
    fpu_mode = FPU_MARK_XMM0;
    unsigned long marked = xmm0_across_signal(0x1234);
    CHECK(marked == MARK, "XMM0 after the handler marked its image: %#lx", marked);
    /* An image the CPU would refuse to load ends the process, not the node. */
    pid_t refused = fork();
    if (refused == 0) {
        fpu_mode = FPU_BAD_MXCSR;
        xmm0_across_signal(0);
        _exit(0);
    }
    int refused_status = 0;
    CHECK(refused > 0 && waitpid(refused, &refused_status, 0) == refused, "waitpid (bad MXCSR)");
    CHECK(WIFSIGNALED(refused_status) && WTERMSIG(refused_status) == SIGSEGV,
          "a frame with reserved MXCSR bits: child status %#x", refused_status);

    /* The default action ends a child; its parent sees the signal in the wait status. */
    pid_t child = fork();
    if (child == 0) {
        signal(SIGTERM, SIG_DFL);
        for (;;)
            pause();
    }
    CHECK(child > 0, "fork");
    usleep(20000);
    kill(child, SIGTERM);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child, "waitpid");
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "child status %#x", status);

    printf("signals: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
