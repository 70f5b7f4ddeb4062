/*
 * hello: the first native job. It prints who it is and its arguments, then checks what the
 * kernel gave it: the arguments, the environment and the auxiliary vector.
 *
 * Usage: hello ['--expect=A|B|C'] ARG...
 *   --expect=LIST  the arguments that must follow it, separated by '|'; an empty LIST means
 *                  none. On the kernel command line:
 *                  job=/bin/hello job.args="'--expect=a|b c|d' a 'b c' d" job.env="MANUL_TEST=yes"
 *                  Without --expect, any arguments are accepted (and printed).
 * Environment:
 *   MANUL_TEST     must be "yes" (checks that job.env reaches the program).
 *   MANUL_EXIT     if set, a number 0-255: the exit status when every check passes (checks that
 *                  the status reaches the job_exit event). Avoid 10-49, the failure codes.
 *
 * Output goes through write(2) only (no stdio buffering), one line per failed check on stderr:
 * "hello: FAIL <code>: <what>". All checks run; the exit status is the code of the first
 * failure, or MANUL_EXIT (default 0) when everything passed.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#define CHECKS_PROGRAM "hello"
#include "checks.h"

enum failure {
    FAIL_ARGV = 10,        /* argc < 1, argv[0] empty or argv[argc] not NULL */
    FAIL_ARG_COUNT = 11,   /* not as many arguments as --expect lists */
    FAIL_ARG_VALUE = 12,   /* an argument differs from --expect */
    FAIL_ENV_MISSING = 13, /* MANUL_TEST is not set */
    FAIL_ENV_VALUE = 14,   /* MANUL_TEST is not "yes" */
    FAIL_EXIT_VALUE = 15,  /* MANUL_EXIT is not a number 0-255 */
    FAIL_AUXV_END = 16,    /* no AT_NULL within MAX_AUXV entries after the environment */
    FAIL_PAGESZ = 20,      /* AT_PAGESZ is not 4096 */
    FAIL_RANDOM = 21,      /* AT_RANDOM is missing or NULL */
    FAIL_RANDOM_BYTES = 22, /* the 16 AT_RANDOM bytes are all zero */
    FAIL_PHDR = 23,        /* AT_PHDR is missing or its table has no PT_LOAD */
    FAIL_PHNUM = 24,       /* AT_PHNUM is missing, 0 or absurd */
    FAIL_ENTRY = 25,       /* AT_ENTRY is not the address of _start */
    FAIL_EXECFN = 26,      /* AT_EXECFN is missing or names neither argv[0] nor a path to it */
    FAIL_PLATFORM = 27,    /* AT_PLATFORM is missing or not "x86_64" */
    FAIL_HWCAP = 28,       /* AT_HWCAP is missing */
    FAIL_CLKTCK = 29,      /* AT_CLKTCK is not 100 */
    FAIL_UID = 30,         /* AT_UID is missing or not 0 */
    FAIL_EUID = 31,        /* AT_EUID is missing or not 0 */
    FAIL_GID = 32,         /* AT_GID is missing or not 0 */
    FAIL_EGID = 33,        /* AT_EGID is missing or not 0 */
    FAIL_SECURE = 34,      /* AT_SECURE is missing or not 0 */
};

/* A sane bound on the auxiliary vector's length (Linux passes about 20 entries). */
#define MAX_AUXV 256
/* A sane bound on the number of program headers. */
#define MAX_PHNUM 128

extern char _start[];

/* The auxiliary vector as the kernel laid it out, right after the environment's NULL. */
static const Elf64_auxv_t *auxv;

/* Whether the kernel passed an entry of this type (getauxval cannot tell for every type:
 * glibc answers AT_HWCAP from its own CPU detection). */
static int aux_present(unsigned long type) {
    for (const Elf64_auxv_t *entry = auxv; entry != NULL && entry->a_type != AT_NULL; entry++) {
        if (entry->a_type == type) {
            return 1;
        }
    }
    return 0;
}

static void find_auxv(char **envp) {
    char **p = envp;
    while (*p != NULL) {
        p++;
    }
    const Elf64_auxv_t *entry = (const Elf64_auxv_t *)(p + 1);
    for (int i = 0; i < MAX_AUXV; i++) {
        if (entry[i].a_type == AT_NULL) {
            auxv = entry;
            return;
        }
    }
    fail(FAIL_AUXV_END, "no AT_NULL within %d auxiliary vector entries after the environment", MAX_AUXV);
}

/* An entry that must be present and equal to `expected`. */
static void check_aux_equals(unsigned long type, const char *name, unsigned long expected, int code) {
    if (!aux_present(type)) {
        fail(code, "%s is missing from the auxiliary vector", name);
        return;
    }
    unsigned long value = getauxval(type);
    if (value != expected) {
        fail(code, "%s is %lu, expected %lu", name, value, expected);
    }
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static void check_arguments(int argc, char **argv) {
    if (argc < 1 || argv[0] == NULL || argv[0][0] == '\0' || argv[argc] != NULL) {
        fail(FAIL_ARGV, "argc is %d: expected argc >= 1, a non-empty argv[0] and argv[argc] == NULL", argc);
        return;
    }
    const char *prefix = "--expect=";
    if (argc < 2 || strncmp(argv[1], prefix, strlen(prefix)) != 0) {
        return;
    }
    const char *list = argv[1] + strlen(prefix);
    int expected = 0;
    if (*list != '\0') {
        expected = 1;
        for (const char *c = list; *c != '\0'; c++) {
            expected += *c == '|';
        }
    }
    if (argc - 2 != expected) {
        fail(FAIL_ARG_COUNT, "%d arguments follow --expect, which lists %d (\"%s\")", argc - 2, expected, list);
        return;
    }
    const char *token = list;
    for (int i = 2; i < argc; i++) {
        size_t length = strcspn(token, "|");
        if (strlen(argv[i]) != length || strncmp(argv[i], token, length) != 0) {
            fail(FAIL_ARG_VALUE, "argv[%d] is \"%s\", expected \"%.*s\"", i, argv[i], (int)length, token);
        }
        token += length + (token[length] == '|');
    }
}

static void check_environment(void) {
    const char *test = getenv("MANUL_TEST");
    if (test == NULL) {
        fail(FAIL_ENV_MISSING, "MANUL_TEST is not set (start with job.env=\"MANUL_TEST=yes\")");
    } else if (strcmp(test, "yes") != 0) {
        fail(FAIL_ENV_VALUE, "MANUL_TEST is \"%s\", expected \"yes\"", test);
    }
}

static void check_auxv(const char *argv0) {
    if (auxv == NULL) {
        return;
    }
    check_aux_equals(AT_PAGESZ, "AT_PAGESZ", 4096, FAIL_PAGESZ);

    const unsigned char *random = (const unsigned char *)getauxval(AT_RANDOM);
    if (random == NULL) {
        fail(FAIL_RANDOM, "AT_RANDOM is missing or NULL");
    } else {
        unsigned char any = 0;
        for (int i = 0; i < 16; i++) {
            any |= random[i];
        }
        if (any == 0) {
            fail(FAIL_RANDOM_BYTES, "the 16 bytes at AT_RANDOM are all zero");
        }
    }

    unsigned long phnum = getauxval(AT_PHNUM);
    const Elf64_Phdr *phdr = (const Elf64_Phdr *)getauxval(AT_PHDR);
    if (phnum == 0 || phnum > MAX_PHNUM) {
        fail(FAIL_PHNUM, "AT_PHNUM is %lu, expected 1 to %d", phnum, MAX_PHNUM);
    } else if (phdr == NULL) {
        fail(FAIL_PHDR, "AT_PHDR is missing or NULL");
    } else {
        int loads = 0;
        for (unsigned long i = 0; i < phnum; i++) {
            loads += phdr[i].p_type == PT_LOAD;
        }
        if (loads == 0) {
            fail(FAIL_PHDR, "the %lu program headers at AT_PHDR %p have no PT_LOAD", phnum, (const void *)phdr);
        }
    }

    unsigned long entry = getauxval(AT_ENTRY);
    if (entry == 0 || entry != (unsigned long)_start) {
        fail(FAIL_ENTRY, "AT_ENTRY is %#lx, expected the address of _start %p", entry, (void *)_start);
    }

    const char *execfn = (const char *)getauxval(AT_EXECFN);
    if (execfn == NULL) {
        fail(FAIL_EXECFN, "AT_EXECFN is missing or NULL");
    } else if (strcmp(execfn, argv0) != 0 &&
               !(execfn[0] == '/' && strcmp(base_name(execfn), base_name(argv0)) == 0)) {
        fail(FAIL_EXECFN, "AT_EXECFN is \"%s\", expected argv[0] \"%s\" or a path to it", execfn, argv0);
    }

    const char *platform = (const char *)getauxval(AT_PLATFORM);
    if (platform == NULL || strcmp(platform, "x86_64") != 0) {
        fail(FAIL_PLATFORM, "AT_PLATFORM is \"%s\", expected \"x86_64\"", platform != NULL ? platform : "(missing)");
    }

    if (!aux_present(AT_HWCAP)) {
        fail(FAIL_HWCAP, "AT_HWCAP is missing from the auxiliary vector");
    }
    check_aux_equals(AT_CLKTCK, "AT_CLKTCK", 100, FAIL_CLKTCK);
    check_aux_equals(AT_UID, "AT_UID", 0, FAIL_UID);
    check_aux_equals(AT_EUID, "AT_EUID", 0, FAIL_EUID);
    check_aux_equals(AT_GID, "AT_GID", 0, FAIL_GID);
    check_aux_equals(AT_EGID, "AT_EGID", 0, FAIL_EGID);
    check_aux_equals(AT_SECURE, "AT_SECURE", 0, FAIL_SECURE);
}

/* MANUL_EXIT as a status, or -1 (after reporting the failure) when it is not 0-255. */
static int requested_status(void) {
    const char *text = getenv("MANUL_EXIT");
    if (text == NULL) {
        return 0;
    }
    char *end;
    errno = 0;
    long status = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || status < 0 || status > 255) {
        fail(FAIL_EXIT_VALUE, "MANUL_EXIT is \"%s\", expected a number from 0 to 255", text);
        return -1;
    }
    return (int)status;
}

int main(int argc, char **argv, char **envp) {
    const char *argv0 = argc >= 1 && argv[0] != NULL ? argv[0] : "";
    say(1, "hello from %s\n", argc >= 1 && argv[0] != NULL ? argv[0] : "(no argv[0])");
    for (int i = 1; i < argc; i++) {
        say(1, "  argv[%d] = \"%s\"\n", i, argv[i]);
    }

    find_auxv(envp);
    check_arguments(argc, argv);
    check_environment();
    check_auxv(argv0);
    int status = requested_status();

    if (first_failure != 0) {
        say(2, "hello: failed, exit status %d (the first failed check)\n", first_failure);
        return first_failure;
    }
    say(1, "hello: all checks passed, exit status %d\n", status);
    return status;
}
