/*
 * checks.h: what the self-checking test programs of tests/jobs/ share, so that each holds only
 * its own checks: the FAIL line and the code of the first failure, output through write(2) (no
 * stdio buffering for the verdict), the CHECK macro, the errno checks, bad addresses the
 * compiler cannot see through, and the facts of the initrd's known data.
 *
 * Before including it (after the system headers), a program defines CHECKS_PROGRAM, the name
 * its FAIL lines start with ("files" gives "files: FAIL <code>: <what>" on stderr), and
 * CHECKS_ERRNO if it uses expect_errno and expect_ok: they name error numbers with glibc's
 * strerrorname_np, so they need glibc and _GNU_SOURCE (musl has no such function, and hello.c
 * is also built with musl-gcc). Every function is static and marked unused: a program that does
 * not call one gets no warning.
 */
#ifndef CHECKS_H
#define CHECKS_H

#ifndef CHECKS_PROGRAM
#error "define CHECKS_PROGRAM, the program's name for its FAIL lines, before including checks.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(CHECKS_ERRNO) && !defined(__GLIBC__)
#error "CHECKS_ERRNO needs glibc (strerrorname_np)"
#endif

/* The initrd's known data, tests/jobs/data/known.txt. */
#define KNOWN_PATH "/data/known.txt"
#define KNOWN_SIZE 178
#define KNOWN_LINES 10
#define KNOWN_MD5 "2b9792704368ec0253216182485a960b"

/* The code of the first failed check (0 while every check has passed), for the exit status. */
static int first_failure;

static void __attribute__((unused)) write_all(int fd, const char *text, size_t length) {
    while (length > 0) {
        ssize_t written = write(fd, text, length);
        if (written <= 0) {
            return;
        }
        text += written;
        length -= (size_t)written;
    }
}

static void __attribute__((unused, format(printf, 2, 3))) say(int fd, const char *format, ...) {
    char line[512];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (length > 0) {
        write_all(fd, line, (size_t)length < sizeof line ? (size_t)length : sizeof line - 1);
    }
}

/* Reports a failed check on stderr, "<program>: FAIL <code>: <what>", and records the code if it
 * is the first. The message is cut at 399 bytes, so the line fits say's buffer, newline and all. */
static void __attribute__((unused, format(printf, 2, 3))) fail(int code, const char *format, ...) {
    char line[400];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    say(2, CHECKS_PROGRAM ": FAIL %d: %s\n", code, length > 0 ? line : "(unprintable message)");
    if (first_failure == 0) {
        first_failure = code;
    }
}

#define CHECK(code, condition, ...)                                                                \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fail(code, __VA_ARGS__);                                                               \
        }                                                                                          \
    } while (0)

#ifdef CHECKS_ERRNO
/* A call that must fail with -1 and `expected` in errno. */
static void __attribute__((unused)) expect_errno(int code, const char *what, long result, int expected) {
    int error = errno;
    if (result != -1) {
        fail(code, "%s returned %ld, expected -1 with %s", what, result, strerrorname_np(expected));
    } else if (error != expected) {
        fail(code, "%s failed with %s, expected %s", what, strerrorname_np(error), strerrorname_np(expected));
    }
}

/* A call that must succeed (not -1); returns its result. */
static long __attribute__((unused)) expect_ok(int code, const char *what, long result) {
    if (result == -1) {
        fail(code, "%s failed: %s", what, strerror(errno));
    }
    return result;
}
#endif

/* An address the compiler cannot reason about (it would warn about the constant bad pointers). */
static __attribute__((unused)) void *opaque(uintptr_t address) {
    volatile uintptr_t hidden = address;
    return (void *)hidden;
}

#endif
