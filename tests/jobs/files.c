/*
 * files: the file-system system calls of a native job, checked against Linux's behaviour.
 *
 * Usage: files (no arguments). Environment: MANUL_CPUS, if set, the number of CPUs the
 * machine has (checked against /sys/devices/system/cpu/online and /proc/cpuinfo).
 *
 * What it checks, in order: the initrd's known data (/data/known.txt: 178 bytes, 10 lines, md5
 * 2b9792704368ec0253216182485a960b); directory listings of /bin and /data; creating, writing,
 * seeking, reading back, stat, rename and unlink in /tmp; mkdir and rmdir; pread and pwrite;
 * dup, dup2 and fcntl; a pipe within the process; /proc, /sys and /dev; the working directory;
 * the error numbers of common mistakes; the console as a terminal.
 *
 * Output goes through write(2) (no stdio buffering for the verdict), one line per failed check
 * on stderr: "files: FAIL <code>: <what>". All checks run; the exit status is the code of the
 * first failure, or 0 when everything passed. The codes:
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#define CHECKS_PROGRAM "files"
#define CHECKS_ERRNO
#include "checks.h"

enum failure {
    FAIL_KNOWN_OPEN = 10,     /* /data/known.txt cannot be opened */
    FAIL_KNOWN_SIZE = 11,     /* reading it gives other than 178 bytes */
    FAIL_KNOWN_MD5 = 12,      /* its md5 differs */
    FAIL_KNOWN_LINES = 13,    /* it has other than 10 lines */
    FAIL_KNOWN_STAT = 14,     /* fstat/stat: not a regular file of 178 bytes */
    FAIL_KNOWN_SEEK = 15,     /* lseek (SEEK_SET/SEEK_CUR/SEEK_END) on it */
    FAIL_LIST_BIN = 20,       /* /bin lacks hello or busybox, or a d_type is wrong */
    FAIL_LIST_DATA = 21,      /* /data lacks known.txt, or . and .. */
    FAIL_TMP_CREATE = 22,     /* creating or writing /tmp/files-a */
    FAIL_TMP_READBACK = 23,   /* lseek and read back differ from what was written */
    FAIL_TMP_FSTAT = 24,      /* fstat size of the new file */
    FAIL_TMP_STAT = 25,       /* stat size of the new file */
    FAIL_TMP_RENAME = 26,     /* rename (and replacing an existing name) */
    FAIL_TMP_UNLINK = 27,     /* unlink, or an unlinked open file stops working */
    FAIL_DIRS = 28,           /* mkdir, rmdir, listing a new directory */
    FAIL_PREAD_PWRITE = 29,   /* pread/pwrite (offset unchanged, holes read as zeros) */
    FAIL_DUP = 30,            /* dup (shared offset) */
    FAIL_DUP2 = 31,           /* dup2 */
    FAIL_DUPFD = 32,          /* fcntl F_DUPFD / F_DUPFD_CLOEXEC */
    FAIL_GETFL = 33,          /* fcntl F_GETFL / F_SETFL */
    FAIL_SETFD = 34,          /* fcntl F_SETFD / F_GETFD */
    FAIL_PIPE = 35,           /* a pipe within the process */
    FAIL_EXE = 36,            /* readlink("/proc/self/exe") */
    FAIL_CPUINFO = 37,        /* /proc/cpuinfo */
    FAIL_MAPS = 38,           /* /proc/self/maps */
    FAIL_CPU_ONLINE = 39,     /* /sys/devices/system/cpu/online */
    FAIL_MEMINFO = 40,        /* /proc/meminfo */
    FAIL_DEV_NULL = 41,       /* /dev/null */
    FAIL_DEV_ZERO = 42,       /* /dev/zero */
    FAIL_DEV_URANDOM = 43,    /* /dev/urandom */
    FAIL_CWD_ROOT = 44,       /* getcwd is not "/" at start */
    FAIL_CHDIR = 45,          /* chdir("/tmp") then getcwd */
    FAIL_RELATIVE = 46,       /* relative paths in /tmp, openat with a directory descriptor */
    FAIL_APPEND_TRUNC = 47,   /* O_APPEND, ftruncate, O_TRUNC */
    FAIL_VECTOR_IO = 48,      /* readv / writev */
    FAIL_BIG_IO = 49,         /* a 3 MiB write and read in one call each */
    FAIL_ENOENT = 50,         /* a missing file */
    FAIL_EROFS = 51,          /* writing the read-only initrd */
    FAIL_EFAULT = 52,         /* bad pointers; a failed read must not consume data */
    FAIL_ENOTDIR = 53,        /* a file used as a directory */
    FAIL_EISDIR = 54,         /* a directory used as a file */
    FAIL_EBADF = 55,          /* closed descriptors, wrong access mode */
    FAIL_EEXIST = 56,         /* O_CREAT|O_EXCL, mkdir of an existing name */
    FAIL_ENOTEMPTY = 57,      /* rmdir of a non-empty directory */
    FAIL_SYMLINK = 58,        /* symlink, readlink, lstat, following a link */
    FAIL_GETDENTS = 59,       /* getdents64 with a small buffer lists what readdir lists */
    FAIL_ISATTY = 60,         /* stdout is not a terminal per isatty(1), or a file is */
    FAIL_TCGETS = 61,         /* TCGETS writes more than struct termios */
    FAIL_WINSZ = 62,          /* TIOCGWINSZ */
    FAIL_STDIO = 63,          /* fopen/fgets/fprintf/fclose through glibc's stdio */
};

#define SELF_PATH "/bin/files"

/* Reads up to `size` bytes (until end of file), in pieces of `piece` bytes. */
static ssize_t read_all(int fd, void *buffer, size_t size, size_t piece) {
    size_t done = 0;
    while (done < size) {
        size_t want = size - done < piece ? size - done : piece;
        ssize_t n = read(fd, (char *)buffer + done, want);
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* A whole (small) file as a NUL-terminated string, or NULL (with the failure reported). */
static char *slurp(int code, const char *path) {
    static char buffer[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail(code, "open(\"%s\") failed: %s", path, strerror(errno));
        return NULL;
    }
    ssize_t n = read_all(fd, buffer, sizeof buffer - 1, 1000);
    close(fd);
    if (n < 0) {
        fail(code, "reading %s failed: %s", path, strerror(errno));
        return NULL;
    }
    buffer[n] = '\0';
    return buffer;
}

/* ---- MD5 (RFC 1321), for the known data ---- */

static uint32_t rotate_left(uint32_t x, int c) {
    return (x << c) | (x >> (32 - c));
}

static void md5_hex(const unsigned char *data, size_t length, char out[33]) {
    static const uint32_t k[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
    };
    static const int r[64] = {
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9,  14, 20, 5, 9,  14, 20,
        5, 9,  14, 20, 5, 9,  14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
        6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    };
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    size_t padded = ((length + 8) / 64 + 1) * 64;
    unsigned char message[1024];
    if (padded > sizeof message) {
        out[0] = '\0';
        return;
    }
    memset(message, 0, padded);
    memcpy(message, data, length);
    message[length] = 0x80;
    uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++) {
        message[padded - 8 + i] = (unsigned char)(bits >> (8 * i));
    }
    for (size_t chunk = 0; chunk < padded; chunk += 64) {
        uint32_t w[16];
        for (int i = 0; i < 16; i++) {
            const unsigned char *p = message + chunk + 4 * i;
            w[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
        for (int i = 0; i < 64; i++) {
            uint32_t f;
            int g;
            if (i < 16) {
                f = (b & c) | (~b & d);
                g = i;
            } else if (i < 32) {
                f = (d & b) | (~d & c);
                g = (5 * i + 1) % 16;
            } else if (i < 48) {
                f = b ^ c ^ d;
                g = (3 * i + 5) % 16;
            } else {
                f = c ^ (b | ~d);
                g = (7 * i) % 16;
            }
            uint32_t next = d;
            d = c;
            c = b;
            b = b + rotate_left(a + f + k[i] + w[g], r[i]);
            a = next;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
    }
    for (int i = 0; i < 16; i++) {
        snprintf(out + 2 * i, 3, "%02x", (h[i / 4] >> (8 * (i % 4))) & 0xff);
    }
}

/* ---- the checks ---- */

static void check_known_data(void) {
    int fd = open(KNOWN_PATH, O_RDONLY);
    if (fd < 0) {
        fail(FAIL_KNOWN_OPEN, "open(\"%s\") failed: %s", KNOWN_PATH, strerror(errno));
        return;
    }
    unsigned char data[512];
    /* Odd-sized pieces, so reads straddle each other's ends. */
    ssize_t n = read_all(fd, data, sizeof data, 37);
    if (n != KNOWN_SIZE) {
        fail(FAIL_KNOWN_SIZE, "reading %s gave %zd bytes, expected %d", KNOWN_PATH, n, KNOWN_SIZE);
    }
    if (n > 0) {
        char digest[33];
        md5_hex(data, (size_t)n, digest);
        CHECK(FAIL_KNOWN_MD5, strcmp(digest, KNOWN_MD5) == 0, "md5 of %s is %s, expected %s", KNOWN_PATH, digest,
              KNOWN_MD5);
        int lines = 0;
        for (ssize_t i = 0; i < n; i++) {
            lines += data[i] == '\n';
        }
        CHECK(FAIL_KNOWN_LINES, lines == KNOWN_LINES, "%s has %d lines, expected %d", KNOWN_PATH, lines, KNOWN_LINES);
    }
    char extra;
    CHECK(FAIL_KNOWN_SIZE, read(fd, &extra, 1) == 0, "read at the end of %s did not return 0", KNOWN_PATH);

    struct stat st;
    if (expect_ok(FAIL_KNOWN_STAT, "fstat(known.txt)", fstat(fd, &st)) == 0) {
        CHECK(FAIL_KNOWN_STAT, S_ISREG(st.st_mode) && st.st_size == KNOWN_SIZE,
              "fstat of %s: mode %#o size %lld, expected a regular file of %d bytes", KNOWN_PATH, st.st_mode,
              (long long)st.st_size, KNOWN_SIZE);
        CHECK(FAIL_KNOWN_STAT, st.st_ino != 0 && st.st_nlink >= 1 && st.st_blksize > 0,
              "fstat of %s: ino %llu nlink %llu blksize %ld", KNOWN_PATH, (unsigned long long)st.st_ino,
              (unsigned long long)st.st_nlink, (long)st.st_blksize);
    }
    struct stat by_path;
    if (expect_ok(FAIL_KNOWN_STAT, "stat(known.txt)", stat(KNOWN_PATH, &by_path)) == 0) {
        CHECK(FAIL_KNOWN_STAT, by_path.st_size == KNOWN_SIZE && by_path.st_ino == st.st_ino,
              "stat of %s: size %lld ino %llu, fstat said ino %llu", KNOWN_PATH, (long long)by_path.st_size,
              (unsigned long long)by_path.st_ino, (unsigned long long)st.st_ino);
    }

    off_t end = lseek(fd, 0, SEEK_END);
    CHECK(FAIL_KNOWN_SEEK, end == KNOWN_SIZE, "lseek(SEEK_END) gave %lld, expected %d", (long long)end, KNOWN_SIZE);
    off_t at = lseek(fd, 10, SEEK_SET);
    off_t cur = lseek(fd, 2, SEEK_CUR);
    char word[5] = {0};
    ssize_t got = read(fd, word, 4);
    CHECK(FAIL_KNOWN_SEEK, at == 10 && cur == 12 && got == 4 && memcmp(word, "data", 4) == 0,
          "lseek 10 SET / 2 CUR gave %lld / %lld and read \"%s\", expected 10 / 12 and \"data\"", (long long)at,
          (long long)cur, word);
    errno = 0;
    expect_errno(FAIL_KNOWN_SEEK, "lseek(-1, SEEK_SET)", lseek(fd, -1, SEEK_SET), EINVAL);
    close(fd);
}

/* Lists `path`; for each name in `wanted` sets found[i] to the entry's d_type + 1. Returns the
 * number of entries, or -1. */
static int list_dir(const char *path, const char *const *wanted, int *found, int count) {
    DIR *dir = opendir(path);
    if (dir == NULL) {
        return -1;
    }
    int entries = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        entries++;
        for (int i = 0; i < count; i++) {
            if (strcmp(entry->d_name, wanted[i]) == 0) {
                found[i] = entry->d_type + 1;
            }
        }
    }
    closedir(dir);
    return entries;
}

/* The entries getdents64 gives with a `size`-byte buffer, or -1. */
static int count_with_getdents(const char *path, size_t size) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        return -1;
    }
    char buffer[4096];
    int entries = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buffer, size);
        if (n < 0) {
            entries = -1;
            break;
        }
        if (n == 0) {
            break;
        }
        for (long at = 0; at < n;) {
            unsigned short reclen;
            memcpy(&reclen, buffer + at + 16, sizeof reclen);
            if (reclen == 0 || reclen % 8 != 0) {
                close(fd);
                return -1;
            }
            entries++;
            at += reclen;
        }
    }
    close(fd);
    return entries;
}

static void check_listings(void) {
    const char *const in_bin[] = {"hello", "busybox", "files", ".", ".."};
    int found_bin[5] = {0};
    int n = list_dir("/bin", in_bin, found_bin, 5);
    if (n < 0) {
        fail(FAIL_LIST_BIN, "opendir(\"/bin\") failed: %s", strerror(errno));
    } else {
        for (int i = 0; i < 5; i++) {
            CHECK(FAIL_LIST_BIN, found_bin[i] != 0, "/bin has no entry \"%s\" (%d entries listed)", in_bin[i], n);
        }
        CHECK(FAIL_LIST_BIN, found_bin[0] == 0 || found_bin[0] == DT_REG + 1, "/bin/hello has d_type %d, expected DT_REG",
              found_bin[0] - 1);
        CHECK(FAIL_LIST_BIN, found_bin[3] == 0 || found_bin[3] == DT_DIR + 1, "/bin/. has d_type %d, expected DT_DIR",
              found_bin[3] - 1);
        CHECK(FAIL_LIST_BIN, n > 100, "/bin lists only %d entries (busybox adds one per applet)", n);
    }
    const char *const in_data[] = {"known.txt", ".", ".."};
    int found_data[3] = {0};
    n = list_dir("/data", in_data, found_data, 3);
    if (n < 0) {
        fail(FAIL_LIST_DATA, "opendir(\"/data\") failed: %s", strerror(errno));
    } else {
        for (int i = 0; i < 3; i++) {
            CHECK(FAIL_LIST_DATA, found_data[i] != 0, "/data has no entry \"%s\"", in_data[i]);
        }
        CHECK(FAIL_LIST_DATA, found_data[0] == 0 || found_data[0] == DT_REG + 1,
              "/data/known.txt has d_type %d, expected DT_REG", found_data[0] - 1);
    }
    /* getdents64 with room for one or two entries at a time lists the same as readdir. */
    int by_readdir = list_dir("/bin", in_bin, found_bin, 0);
    int small = count_with_getdents("/bin", 64);
    CHECK(FAIL_GETDENTS, small == by_readdir && small > 100, "getdents64 with 64 bytes lists %d entries of /bin, readdir %d",
          small, by_readdir);
    int fd = open("/bin", O_RDONLY | O_DIRECTORY);
    char tiny[16];
    errno = 0;
    expect_errno(FAIL_GETDENTS, "getdents64 into 16 bytes", syscall(SYS_getdents64, fd, tiny, sizeof tiny), EINVAL);
    errno = 0;
    expect_errno(FAIL_GETDENTS, "getdents64 of a file", syscall(SYS_getdents64, open(KNOWN_PATH, O_RDONLY), tiny, sizeof tiny),
                 ENOTDIR);
    close(fd);

    /* rewinddir (lseek to 0) lists the same again. */
    DIR *dir = opendir("/data");
    if (dir != NULL) {
        int first = 0, second = 0;
        while (readdir(dir) != NULL) {
            first++;
        }
        rewinddir(dir);
        while (readdir(dir) != NULL) {
            second++;
        }
        closedir(dir);
        CHECK(FAIL_LIST_DATA, first == second && first >= 3, "/data lists %d entries, then %d after rewinddir", first,
              second);
    }
}

/* A recognisable pattern: byte i of a file. */
static unsigned char pattern(size_t i) {
    return (unsigned char)(i * 7 + i / 251);
}

static void check_tmp_files(void) {
    const char *a = "/tmp/files-a", *b = "/tmp/files-b";
    unlink(a);
    unlink(b);
    int fd = open(a, O_RDWR | O_CREAT | O_EXCL, 0640);
    if (fd < 0) {
        fail(FAIL_TMP_CREATE, "open(\"%s\", O_RDWR|O_CREAT|O_EXCL) failed: %s", a, strerror(errno));
        return;
    }
    unsigned char data[10000], back[10000];
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = pattern(i);
    }
    ssize_t w1 = write(fd, data, 4000);
    ssize_t w2 = write(fd, data + 4000, sizeof data - 4000);
    CHECK(FAIL_TMP_CREATE, w1 == 4000 && w2 == (ssize_t)sizeof data - 4000, "writes returned %zd and %zd", w1, w2);
    off_t pos = lseek(fd, 0, SEEK_CUR);
    CHECK(FAIL_TMP_CREATE, pos == (off_t)sizeof data, "offset after writing is %lld, expected %zu", (long long)pos,
          sizeof data);

    CHECK(FAIL_TMP_READBACK, lseek(fd, 0, SEEK_SET) == 0, "lseek(0, SEEK_SET) failed");
    memset(back, 0, sizeof back);
    ssize_t n = read_all(fd, back, sizeof back, 3001);
    CHECK(FAIL_TMP_READBACK, n == (ssize_t)sizeof data && memcmp(data, back, sizeof data) == 0,
          "read back %zd bytes, %s", n, n == (ssize_t)sizeof data ? "contents differ" : "expected 10000");
    CHECK(FAIL_TMP_READBACK, lseek(fd, 1234, SEEK_SET) == 1234 && read(fd, back, 10) == 10 &&
                                 memcmp(back, data + 1234, 10) == 0,
          "read after lseek(1234) differs");

    struct stat st;
    if (expect_ok(FAIL_TMP_FSTAT, "fstat(new file)", fstat(fd, &st)) == 0) {
        CHECK(FAIL_TMP_FSTAT, S_ISREG(st.st_mode) && st.st_size == (off_t)sizeof data && (st.st_mode & 0777) == 0640,
              "fstat: mode %#o size %lld, expected a regular file 0640 of %zu bytes", st.st_mode, (long long)st.st_size,
              sizeof data);
    }
    if (expect_ok(FAIL_TMP_STAT, "stat(new file)", stat(a, &st)) == 0) {
        CHECK(FAIL_TMP_STAT, st.st_size == (off_t)sizeof data, "stat size %lld, expected %zu", (long long)st.st_size,
              sizeof data);
    }

    /* Rename: the old name goes, the new one has the contents; renaming over a file replaces it. */
    expect_ok(FAIL_TMP_RENAME, "rename(a, b)", rename(a, b));
    errno = 0;
    expect_errno(FAIL_TMP_RENAME, "stat(old name after rename)", stat(a, &st), ENOENT);
    CHECK(FAIL_TMP_RENAME, stat(b, &st) == 0 && st.st_size == (off_t)sizeof data, "stat(new name) after rename");
    int other = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(FAIL_TMP_RENAME, other >= 0 && write(other, "x", 1) == 1, "creating a second file");
    if (other >= 0) {
        close(other);
    }
    expect_ok(FAIL_TMP_RENAME, "rename(a, b) over an existing b", rename(a, b));
    CHECK(FAIL_TMP_RENAME, stat(b, &st) == 0 && st.st_size == 1, "after renaming over b its size is %lld, expected 1",
          (long long)st.st_size);

    /* The open descriptor still reads the first file, which now has no name. */
    CHECK(FAIL_TMP_UNLINK, pread(fd, back, 5, 100) == 5 && memcmp(back, data + 100, 5) == 0,
          "the replaced file is no longer readable through its descriptor");
    expect_ok(FAIL_TMP_UNLINK, "unlink(b)", unlink(b));
    errno = 0;
    expect_errno(FAIL_TMP_UNLINK, "stat after unlink", stat(b, &st), ENOENT);
    errno = 0;
    expect_errno(FAIL_TMP_UNLINK, "unlink twice", unlink(b), ENOENT);
    CHECK(FAIL_TMP_UNLINK, fstat(fd, &st) == 0 && st.st_nlink == 0, "fstat of an unlinked file: nlink %llu",
          (unsigned long long)st.st_nlink);
    close(fd);
}

static void check_directories(void) {
    const char *dir = "/tmp/files-dir";
    rmdir(dir);
    expect_ok(FAIL_DIRS, "mkdir(/tmp/files-dir)", mkdir(dir, 0755));
    struct stat st;
    CHECK(FAIL_DIRS, stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "the new directory is not a directory");
    errno = 0;
    expect_errno(FAIL_EEXIST, "mkdir of an existing directory", mkdir(dir, 0755), EEXIST);
    int fd = open("/tmp/files-dir/inner", O_WRONLY | O_CREAT, 0644);
    CHECK(FAIL_DIRS, fd >= 0, "creating a file in the new directory: %s", strerror(errno));
    if (fd >= 0) {
        close(fd);
    }
    const char *const wanted[] = {"inner"};
    int found[1] = {0};
    int n = list_dir(dir, wanted, found, 1);
    CHECK(FAIL_DIRS, n == 3 && found[0] == DT_REG + 1, "the new directory lists %d entries (inner: %d), expected 3",
          n, found[0]);
    errno = 0;
    expect_errno(FAIL_ENOTEMPTY, "rmdir of a non-empty directory", rmdir(dir), ENOTEMPTY);
    errno = 0;
    expect_errno(FAIL_EISDIR, "unlink of a directory", unlink(dir), EISDIR);
    errno = 0;
    expect_errno(FAIL_ENOTDIR, "rmdir of a file", rmdir("/tmp/files-dir/inner"), ENOTDIR);
    expect_ok(FAIL_DIRS, "unlink(inner)", unlink("/tmp/files-dir/inner"));
    expect_ok(FAIL_DIRS, "rmdir(empty directory)", rmdir(dir));
    errno = 0;
    expect_errno(FAIL_DIRS, "stat after rmdir", stat(dir, &st), ENOENT);
    errno = 0;
    expect_errno(FAIL_EROFS, "mkdir in /data", mkdir("/data/new", 0755), EROFS);
}

static void check_pread_pwrite(void) {
    const char *path = "/tmp/files-p";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fail(FAIL_PREAD_PWRITE, "creating %s: %s", path, strerror(errno));
        return;
    }
    unlink(path);
    CHECK(FAIL_PREAD_PWRITE, write(fd, "0123456789", 10) == 10, "write failed");
    CHECK(FAIL_PREAD_PWRITE, pwrite(fd, "AB", 2, 3) == 2, "pwrite at 3 failed");
    char buffer[32] = {0};
    CHECK(FAIL_PREAD_PWRITE, pread(fd, buffer, 10, 0) == 10 && memcmp(buffer, "012AB56789", 10) == 0,
          "pread gave \"%.10s\", expected \"012AB56789\"", buffer);
    CHECK(FAIL_PREAD_PWRITE, lseek(fd, 0, SEEK_CUR) == 10, "pread/pwrite moved the offset to %lld",
          (long long)lseek(fd, 0, SEEK_CUR));
    /* Beyond the end: a hole of zeros. */
    CHECK(FAIL_PREAD_PWRITE, pwrite(fd, "Z", 1, 20) == 1, "pwrite at 20 failed");
    memset(buffer, 'x', sizeof buffer);
    ssize_t n = pread(fd, buffer, sizeof buffer, 8);
    int zeros = n == 13;
    for (int i = 2; zeros && i < 12; i++) {
        zeros = buffer[i] == 0;
    }
    CHECK(FAIL_PREAD_PWRITE, zeros && buffer[12] == 'Z', "pread over a hole gave %zd bytes, expected 13 with zeros", n);
    CHECK(FAIL_PREAD_PWRITE, pread(fd, buffer, 4, 100) == 0, "pread past the end did not return 0");
    errno = 0;
    expect_errno(FAIL_PREAD_PWRITE, "pread at a negative offset", pread(fd, buffer, 1, -1), EINVAL);
    int fds[2];
    if (pipe(fds) == 0) {
        errno = 0;
        expect_errno(FAIL_PREAD_PWRITE, "pread on a pipe", pread(fds[0], buffer, 1, 0), ESPIPE);
        errno = 0;
        expect_errno(FAIL_PREAD_PWRITE, "lseek on a pipe", lseek(fds[0], 0, SEEK_SET), ESPIPE);
        close(fds[0]);
        close(fds[1]);
    }
    close(fd);
}

static void check_dup_fcntl(void) {
    int fd = open(KNOWN_PATH, O_RDONLY);
    if (fd < 0) {
        fail(FAIL_DUP, "open(%s): %s", KNOWN_PATH, strerror(errno));
        return;
    }
    int copy = dup(fd);
    CHECK(FAIL_DUP, copy > fd, "dup returned %d", copy);
    /* The copy shares the offset. */
    char word[6] = {0};
    lseek(fd, 0, SEEK_SET);
    CHECK(FAIL_DUP, read(fd, word, 5) == 5 && lseek(copy, 0, SEEK_CUR) == 5, "dup'd descriptors do not share the offset");
    CHECK(FAIL_DUP, read(copy, word, 5) == 5 && memcmp(word, " know", 5) == 0, "reading the dup gave \"%s\"", word);

    /* dup2 onto an open descriptor closes it first; dup2 to itself is a no-op. */
    int target = open("/dev/null", O_WRONLY);
    int r = dup2(fd, target);
    CHECK(FAIL_DUP2, r == target, "dup2(%d, %d) returned %d", fd, target, r);
    CHECK(FAIL_DUP2, lseek(target, 0, SEEK_CUR) == 10, "dup2 target does not share the offset (it is %lld)",
          (long long)lseek(target, 0, SEEK_CUR));
    CHECK(FAIL_DUP2, dup2(fd, fd) == fd, "dup2(fd, fd) did not return fd");
    errno = 0;
    expect_errno(FAIL_DUP2, "dup2 from a closed descriptor", dup2(999, 998), EBADF);
    errno = 0;
    expect_errno(FAIL_DUP2, "dup3(fd, fd)", dup3(fd, fd, 0), EINVAL);
    close(target);

    int high = fcntl(fd, F_DUPFD, 100);
    CHECK(FAIL_DUPFD, high >= 100, "fcntl(F_DUPFD, 100) returned %d", high);
    CHECK(FAIL_DUPFD, high < 0 || fcntl(high, F_GETFD) == 0, "F_DUPFD set close-on-exec");
    int high2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    CHECK(FAIL_DUPFD, high2 > high, "fcntl(F_DUPFD_CLOEXEC, 100) returned %d after %d", high2, high);
    CHECK(FAIL_DUPFD, high2 < 0 || fcntl(high2, F_GETFD) == FD_CLOEXEC, "F_DUPFD_CLOEXEC did not set close-on-exec");
    close(high);
    close(high2);

    int flags = fcntl(fd, F_GETFL);
    CHECK(FAIL_GETFL, flags >= 0 && (flags & O_ACCMODE) == O_RDONLY, "F_GETFL of a read-only file is %#x", flags);
    int rw = open("/tmp/files-fl", O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (rw >= 0) {
        unlink("/tmp/files-fl");
        flags = fcntl(rw, F_GETFL);
        CHECK(FAIL_GETFL, flags >= 0 && (flags & O_ACCMODE) == O_RDWR && (flags & O_APPEND) != 0,
              "F_GETFL of an O_RDWR|O_APPEND file is %#x", flags);
        CHECK(FAIL_GETFL, (flags & (O_CREAT | O_TRUNC | O_EXCL)) == 0, "F_GETFL keeps open-time flags: %#x", flags);
        CHECK(FAIL_GETFL, fcntl(rw, F_SETFL, O_NONBLOCK) == 0, "F_SETFL failed");
        flags = fcntl(rw, F_GETFL);
        CHECK(FAIL_GETFL, (flags & O_NONBLOCK) != 0 && (flags & O_APPEND) == 0 && (flags & O_ACCMODE) == O_RDWR,
              "after F_SETFL O_NONBLOCK, F_GETFL is %#x", flags);
        close(rw);
    } else {
        fail(FAIL_GETFL, "creating /tmp/files-fl: %s", strerror(errno));
    }

    CHECK(FAIL_SETFD, fcntl(fd, F_GETFD) == 0, "a new descriptor has close-on-exec");
    CHECK(FAIL_SETFD, fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 && fcntl(fd, F_GETFD) == FD_CLOEXEC,
          "F_SETFD FD_CLOEXEC did not stick");
    CHECK(FAIL_SETFD, fcntl(copy, F_GETFD) == 0, "close-on-exec leaked to the dup'd descriptor");
    CHECK(FAIL_SETFD, fcntl(fd, F_SETFD, 0) == 0 && fcntl(fd, F_GETFD) == 0, "F_SETFD 0 did not clear it");
    int cloexec = open(KNOWN_PATH, O_RDONLY | O_CLOEXEC);
    CHECK(FAIL_SETFD, cloexec >= 0 && fcntl(cloexec, F_GETFD) == FD_CLOEXEC, "O_CLOEXEC is not reported by F_GETFD");
    close(cloexec);
    close(copy);
    close(fd);
}

static void check_pipe(void) {
    int fds[2];
    if (pipe(fds) != 0) {
        fail(FAIL_PIPE, "pipe failed: %s", strerror(errno));
        return;
    }
    const char message[] = "through the pipe";
    CHECK(FAIL_PIPE, write(fds[1], message, sizeof message) == (ssize_t)sizeof message, "write to the pipe");
    char buffer[64] = {0};
    ssize_t n = read(fds[0], buffer, 5);
    CHECK(FAIL_PIPE, n == 5 && memcmp(buffer, "throu", 5) == 0, "first read from the pipe gave %zd bytes", n);
    n = read(fds[0], buffer, sizeof buffer);
    CHECK(FAIL_PIPE, n == (ssize_t)sizeof message - 5 && strcmp(buffer, message + 5) == 0,
          "second read from the pipe gave %zd bytes \"%s\"", n, buffer);
    struct stat st;
    CHECK(FAIL_PIPE, fstat(fds[0], &st) == 0 && S_ISFIFO(st.st_mode), "fstat of a pipe is not S_IFIFO (mode %#o)",
          st.st_mode);
    CHECK(FAIL_PIPE, (fcntl(fds[1], F_GETFL) & O_ACCMODE) == O_WRONLY, "the write end is not O_WRONLY");
    errno = 0;
    expect_errno(FAIL_PIPE, "read from the write end", read(fds[1], buffer, 1), EBADF);
    /* Non-blocking and empty: EAGAIN. */
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    errno = 0;
    expect_errno(FAIL_PIPE, "non-blocking read of an empty pipe", read(fds[0], buffer, 1), EAGAIN);
    /* All writers gone: end of file. */
    close(fds[1]);
    CHECK(FAIL_PIPE, read(fds[0], buffer, 1) == 0, "read after the writer closed did not return 0");
    close(fds[0]);

    /* pipe2 with O_CLOEXEC. */
    if (pipe2(fds, O_CLOEXEC) == 0) {
        CHECK(FAIL_PIPE, fcntl(fds[0], F_GETFD) == FD_CLOEXEC && fcntl(fds[1], F_GETFD) == FD_CLOEXEC,
              "pipe2(O_CLOEXEC) descriptors lack close-on-exec");
        close(fds[0]);
        close(fds[1]);
    } else {
        fail(FAIL_PIPE, "pipe2(O_CLOEXEC) failed: %s", strerror(errno));
    }
}

static void check_proc_sys(const char *argv0) {
    char link[256];
    ssize_t n = readlink("/proc/self/exe", link, sizeof link - 1);
    if (n < 0) {
        fail(FAIL_EXE, "readlink(/proc/self/exe) failed: %s", strerror(errno));
    } else {
        link[n] = '\0';
        CHECK(FAIL_EXE, strcmp(link, SELF_PATH) == 0 && strcmp(link, argv0) == 0,
              "/proc/self/exe is \"%s\", expected \"%s\" (argv[0] \"%s\")", link, SELF_PATH, argv0);
    }
    /* A short buffer gets a truncated target, no NUL. */
    char small[4];
    CHECK(FAIL_EXE, readlink("/proc/self/exe", small, sizeof small) == 4 && memcmp(small, "/bin", 4) == 0,
          "readlink into 4 bytes did not truncate to \"/bin\"");
    struct stat st;
    CHECK(FAIL_EXE, stat("/proc/self/exe", &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 10000,
          "stat(/proc/self/exe) does not follow to the program");

    int cpuinfo_processors = 0;
    char *text = slurp(FAIL_CPUINFO, "/proc/cpuinfo");
    if (text != NULL) {
        for (char *line = text; line != NULL && *line != '\0';) {
            if (strncmp(line, "processor", 9) == 0) {
                cpuinfo_processors++;
            }
            line = strchr(line, '\n');
            line = line != NULL ? line + 1 : NULL;
        }
        CHECK(FAIL_CPUINFO, cpuinfo_processors > 0, "/proc/cpuinfo has no \"processor\" line");
        CHECK(FAIL_CPUINFO, strstr(text, "flags") != NULL, "/proc/cpuinfo has no \"flags\"");
    }

    text = slurp(FAIL_MAPS, "/proc/self/maps");
    if (text != NULL) {
        CHECK(FAIL_MAPS, strstr(text, "[stack]") != NULL, "/proc/self/maps does not mention [stack]:\n%s", text);
        CHECK(FAIL_MAPS, strstr(text, SELF_PATH) != NULL, "/proc/self/maps does not mention %s", SELF_PATH);
        /* The line holding a stack variable's address says [stack]. */
        unsigned long here = (unsigned long)&st, found = 0;
        for (char *line = text; line != NULL && *line != '\0';) {
            unsigned long start, end;
            if (sscanf(line, "%lx-%lx", &start, &end) == 2 && start <= here && here < end) {
                char *eol = strchr(line, '\n');
                found = eol != NULL && memmem(line, (size_t)(eol - line), "[stack]", 7) != NULL ? 1 : 2;
            }
            line = strchr(line, '\n');
            line = line != NULL ? line + 1 : NULL;
        }
        CHECK(FAIL_MAPS, found == 1, "the stack address %#lx is %s", here,
              found == 0 ? "in no line of /proc/self/maps" : "not in the [stack] line");
    }

    text = slurp(FAIL_CPU_ONLINE, "/sys/devices/system/cpu/online");
    if (text != NULL) {
        /* "0-3,5": count the CPUs. */
        int count = 0;
        char *p = text;
        int ok = 1;
        while (ok && *p != '\0' && *p != '\n') {
            char *end;
            long first = strtol(p, &end, 10);
            long last = first;
            ok = end != p;
            p = end;
            if (ok && *p == '-') {
                last = strtol(p + 1, &end, 10);
                ok = end != p + 1 && last >= first;
                p = end;
            }
            count += (int)(last - first + 1);
            if (ok && *p == ',') {
                p++;
            }
        }
        CHECK(FAIL_CPU_ONLINE, ok && count > 0 && (*p == '\n' || *p == '\0'),
              "/sys/devices/system/cpu/online is \"%s\", not a CPU list", text);
        CHECK(FAIL_CPU_ONLINE, count == cpuinfo_processors, "online lists %d CPUs, /proc/cpuinfo %d", count,
              cpuinfo_processors);
        const char *expected = getenv("MANUL_CPUS");
        if (expected != NULL) {
            CHECK(FAIL_CPU_ONLINE, count == atoi(expected), "online lists %d CPUs, MANUL_CPUS says %s", count,
                  expected);
        }
        long conf = sysconf(_SC_NPROCESSORS_ONLN);
        CHECK(FAIL_CPU_ONLINE, conf == count, "sysconf(_SC_NPROCESSORS_ONLN) is %ld, online lists %d", conf, count);
    }

    text = slurp(FAIL_MEMINFO, "/proc/meminfo");
    if (text != NULL) {
        char *line = strstr(text, "MemTotal:");
        unsigned long kib = 0;
        CHECK(FAIL_MEMINFO, line != NULL && sscanf(line, "MemTotal: %lu kB", &kib) == 1 && kib > 0,
              "/proc/meminfo has no MemTotal line with a size");
    }

    /* A file of /proc reads the same in one piece as in many. */
    int fd = open("/proc/cpuinfo", O_RDONLY);
    if (fd >= 0) {
        CHECK(FAIL_CPUINFO, fstat(fd, &st) == 0 && S_ISREG(st.st_mode), "fstat of /proc/cpuinfo");
        close(fd);
    }
}

static void check_devices(void) {
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0) {
        fail(FAIL_DEV_NULL, "open(/dev/null): %s", strerror(errno));
    } else {
        char buffer[16];
        CHECK(FAIL_DEV_NULL, write(null_fd, "discarded", 9) == 9, "writing /dev/null");
        CHECK(FAIL_DEV_NULL, read(null_fd, buffer, sizeof buffer) == 0, "reading /dev/null did not give end of file");
        struct stat st;
        CHECK(FAIL_DEV_NULL, fstat(null_fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
                                 minor(st.st_rdev) == 3,
              "fstat(/dev/null): mode %#o rdev %u:%u, expected a character device 1:3", st.st_mode, major(st.st_rdev),
              minor(st.st_rdev));
        CHECK(FAIL_DEV_NULL, stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && minor(st.st_rdev) == 3,
              "stat(/dev/null): mode %#o", st.st_mode);
        close(null_fd);
    }

    int zero_fd = open("/dev/zero", O_RDONLY);
    if (zero_fd < 0) {
        fail(FAIL_DEV_ZERO, "open(/dev/zero): %s", strerror(errno));
    } else {
        static unsigned char buffer[100000];
        memset(buffer, 0xa5, sizeof buffer);
        ssize_t n = read(zero_fd, buffer, sizeof buffer);
        size_t nonzero = 0;
        for (size_t i = 0; i < sizeof buffer; i++) {
            nonzero += buffer[i] != 0;
        }
        CHECK(FAIL_DEV_ZERO, n == (ssize_t)sizeof buffer && nonzero == 0, "read of /dev/zero gave %zd bytes, %zu not zero",
              n, nonzero);
        close(zero_fd);
    }

    int random_fd = open("/dev/urandom", O_RDONLY);
    if (random_fd < 0) {
        fail(FAIL_DEV_URANDOM, "open(/dev/urandom): %s", strerror(errno));
    } else {
        unsigned char a[64] = {0}, b[64] = {0};
        ssize_t na = read(random_fd, a, sizeof a);
        ssize_t nb = read(random_fd, b, sizeof b);
        int distinct = 0;
        for (int i = 0; i < 64; i++) {
            distinct |= a[i] != a[0];
        }
        CHECK(FAIL_DEV_URANDOM, na == 64 && nb == 64 && distinct && memcmp(a, b, sizeof a) != 0,
              "/dev/urandom gave %zd and %zd bytes, not random-looking", na, nb);
        close(random_fd);
    }
}

static void check_cwd(void) {
    char buffer[256];
    char *cwd = getcwd(buffer, sizeof buffer);
    CHECK(FAIL_CWD_ROOT, cwd != NULL && strcmp(cwd, "/") == 0, "getcwd is \"%s\", expected \"/\"",
          cwd != NULL ? cwd : strerror(errno));
    errno = 0;
    CHECK(FAIL_CWD_ROOT, getcwd(buffer, 1) == NULL && errno == ERANGE, "getcwd into 1 byte did not fail with ERANGE");

    if (chdir("/tmp") != 0) {
        fail(FAIL_CHDIR, "chdir(\"/tmp\") failed: %s", strerror(errno));
        return;
    }
    cwd = getcwd(buffer, sizeof buffer);
    CHECK(FAIL_CHDIR, cwd != NULL && strcmp(cwd, "/tmp") == 0, "after chdir(\"/tmp\") getcwd is \"%s\"",
          cwd != NULL ? cwd : strerror(errno));

    int fd = open("files-rel", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fail(FAIL_RELATIVE, "open(\"files-rel\") in /tmp failed: %s", strerror(errno));
    } else {
        CHECK(FAIL_RELATIVE, write(fd, "rel", 3) == 3, "writing files-rel");
        close(fd);
        struct stat st;
        CHECK(FAIL_RELATIVE, stat("/tmp/files-rel", &st) == 0 && st.st_size == 3,
              "the file created as \"files-rel\" is not /tmp/files-rel of 3 bytes");
        CHECK(FAIL_RELATIVE, stat("./files-rel", &st) == 0 && stat("../tmp/files-rel", &st) == 0,
              "\"./files-rel\" or \"../tmp/files-rel\" does not resolve");
        CHECK(FAIL_RELATIVE, access("files-rel", R_OK | W_OK) == 0, "access(\"files-rel\") failed");
        CHECK(FAIL_RELATIVE, unlink("files-rel") == 0, "unlink(\"files-rel\") failed: %s", strerror(errno));
    }
    /* openat relative to a directory descriptor. */
    int dir = open("/data", O_RDONLY | O_DIRECTORY);
    if (dir < 0) {
        fail(FAIL_RELATIVE, "open(\"/data\", O_DIRECTORY) failed: %s", strerror(errno));
    } else {
        int known = openat(dir, "known.txt", O_RDONLY);
        char word[6] = {0};
        CHECK(FAIL_RELATIVE, known >= 0 && read(known, word, 5) == 5 && strcmp(word, "Manul") == 0,
              "openat(/data, \"known.txt\") does not read the known data");
        if (known >= 0) {
            close(known);
        }
        struct stat st;
        CHECK(FAIL_RELATIVE, fstatat(dir, "known.txt", &st, 0) == 0 && st.st_size == KNOWN_SIZE,
              "fstatat(/data, \"known.txt\")");
        errno = 0;
        expect_errno(FAIL_ENOTDIR, "openat with a file as the directory",
                     openat(open(KNOWN_PATH, O_RDONLY), "x", O_RDONLY), ENOTDIR);
        close(dir);
    }
    CHECK(FAIL_CHDIR, chdir("..") == 0 && getcwd(buffer, sizeof buffer) != NULL && strcmp(buffer, "/") == 0,
          "chdir(\"..\") from /tmp does not lead to \"/\"");
    errno = 0;
    expect_errno(FAIL_ENOTDIR, "chdir to a file", chdir(KNOWN_PATH), ENOTDIR);
}

static void check_append_truncate(void) {
    const char *path = "/tmp/files-t";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fail(FAIL_APPEND_TRUNC, "creating %s: %s", path, strerror(errno));
        return;
    }
    CHECK(FAIL_APPEND_TRUNC, write(fd, "hello world", 11) == 11, "write");
    CHECK(FAIL_APPEND_TRUNC, ftruncate(fd, 5) == 0, "ftruncate(5) failed: %s", strerror(errno));
    struct stat st;
    CHECK(FAIL_APPEND_TRUNC, fstat(fd, &st) == 0 && st.st_size == 5, "size after ftruncate(5) is %lld",
          (long long)st.st_size);
    CHECK(FAIL_APPEND_TRUNC, ftruncate(fd, 8) == 0 && fstat(fd, &st) == 0 && st.st_size == 8,
          "ftruncate(8) to grow the file");
    char buffer[16] = {0};
    CHECK(FAIL_APPEND_TRUNC, pread(fd, buffer, 16, 0) == 8 && memcmp(buffer, "hello\0\0\0", 8) == 0,
          "a file grown by ftruncate does not read as \"hello\" and zeros");
    close(fd);

    fd = open(path, O_WRONLY | O_APPEND);
    CHECK(FAIL_APPEND_TRUNC, fd >= 0, "open O_APPEND: %s", strerror(errno));
    if (fd >= 0) {
        lseek(fd, 0, SEEK_SET);
        CHECK(FAIL_APPEND_TRUNC, write(fd, "!", 1) == 1, "write with O_APPEND");
        close(fd);
        CHECK(FAIL_APPEND_TRUNC, stat(path, &st) == 0 && st.st_size == 9, "O_APPEND write did not go to the end (size %lld)",
              (long long)st.st_size);
    }
    fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(FAIL_APPEND_TRUNC, fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0, "O_TRUNC did not empty the file");
    if (fd >= 0) {
        close(fd);
    }
    errno = 0;
    expect_errno(FAIL_APPEND_TRUNC, "ftruncate of a read-only descriptor",
                 ftruncate(fd = open(path, O_RDONLY), 1), EINVAL);
    close(fd);
    unlink(path);
}

static void check_vector_io(void) {
    int fd = open("/tmp/files-v", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fail(FAIL_VECTOR_IO, "creating /tmp/files-v: %s", strerror(errno));
        return;
    }
    unlink("/tmp/files-v");
    struct iovec out[3] = {{"abc", 3}, {"", 0}, {"defgh", 5}};
    CHECK(FAIL_VECTOR_IO, writev(fd, out, 3) == 8, "writev of 3+0+5 bytes");
    char a[2], b[10] = {0};
    struct iovec in[2] = {{a, 2}, {b, 10}};
    lseek(fd, 0, SEEK_SET);
    ssize_t n = readv(fd, in, 2);
    CHECK(FAIL_VECTOR_IO, n == 8 && memcmp(a, "ab", 2) == 0 && memcmp(b, "cdefgh", 6) == 0,
          "readv gave %zd bytes \"%.2s\" \"%s\"", n, a, b);
    close(fd);
}

static void check_big_io(void) {
    const size_t size = 3 << 20;
    unsigned char *data = malloc(size), *back = malloc(size);
    int fd = open("/tmp/files-big", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (data == NULL || back == NULL || fd < 0) {
        fail(FAIL_BIG_IO, "setting up the 3 MiB file failed");
        free(data);
        free(back);
        return;
    }
    unlink("/tmp/files-big");
    for (size_t i = 0; i < size; i++) {
        data[i] = pattern(i);
    }
    ssize_t w = write(fd, data, size);
    CHECK(FAIL_BIG_IO, w == (ssize_t)size, "write of 3 MiB to a file returned %zd", w);
    memset(back, 0, size);
    ssize_t r = pread(fd, back, size, 0);
    CHECK(FAIL_BIG_IO, r == (ssize_t)size && memcmp(data, back, size) == 0, "pread of 3 MiB returned %zd%s", r,
          r == (ssize_t)size ? " with other contents" : "");
    close(fd);
    free(data);
    free(back);
}

static void check_errors(void) {
    struct stat st;
    errno = 0;
    expect_errno(FAIL_ENOENT, "open of a missing file", open("/data/no-such-file", O_RDONLY), ENOENT);
    errno = 0;
    expect_errno(FAIL_ENOENT, "stat of a missing file", stat("/no/such/dir/file", &st), ENOENT);
    errno = 0;
    expect_errno(FAIL_ENOENT, "open(\"\")", open("", O_RDONLY), ENOENT);
    errno = 0;
    expect_errno(FAIL_ENOENT, "O_CREAT in a missing directory", open("/tmp/no-dir/f", O_WRONLY | O_CREAT, 0600),
                 ENOENT);

    errno = 0;
    expect_errno(FAIL_EROFS, "open(known.txt, O_WRONLY)", open(KNOWN_PATH, O_WRONLY), EROFS);
    errno = 0;
    expect_errno(FAIL_EROFS, "open(known.txt, O_RDWR)", open(KNOWN_PATH, O_RDWR), EROFS);
    errno = 0;
    expect_errno(FAIL_EROFS, "creat in /bin", creat("/bin/new-file", 0644), EROFS);
    errno = 0;
    expect_errno(FAIL_EROFS, "unlink in /bin", unlink("/bin/hello"), EROFS);

    int fd = open(KNOWN_PATH, O_RDONLY);
    errno = 0;
    expect_errno(FAIL_EFAULT, "read into address 1", read(fd, opaque(1), 10), EFAULT);
    errno = 0;
    expect_errno(FAIL_EFAULT, "read into a kernel address", read(fd, opaque(0xffff800000000000UL), 10), EFAULT);
    char word[6] = {0};
    CHECK(FAIL_EFAULT, read(fd, word, 5) == 5 && strcmp(word, "Manul") == 0,
          "after failed reads, read gives \"%s\", expected the file's start \"Manul\" (the offset moved)", word);
    errno = 0;
    expect_errno(FAIL_EFAULT, "stat into address 8", stat(KNOWN_PATH, opaque(8)), EFAULT);
    errno = 0;
    expect_errno(FAIL_EFAULT, "open of a path at address 16", open(opaque(16), O_RDONLY), EFAULT);
    errno = 0;
    expect_errno(FAIL_EFAULT, "write from address 1", write(1, opaque(1), 10), EFAULT);
    close(fd);
    int fds[2];
    if (pipe(fds) == 0) {
        CHECK(FAIL_EFAULT, write(fds[1], "kept", 4) == 4, "writing the pipe");
        errno = 0;
        expect_errno(FAIL_EFAULT, "read from a pipe into address 1", read(fds[0], opaque(1), 4), EFAULT);
        char kept[5] = {0};
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        ssize_t n = read(fds[0], kept, 4);
        CHECK(FAIL_EFAULT, n == 4 && strcmp(kept, "kept") == 0,
              "a pipe read into a bad buffer lost the data (the next read gave %zd bytes)", n);
        close(fds[0]);
        close(fds[1]);
    }

    errno = 0;
    expect_errno(FAIL_ENOTDIR, "open(known.txt/x)", open(KNOWN_PATH "/x", O_RDONLY), ENOTDIR);
    errno = 0;
    expect_errno(FAIL_ENOTDIR, "stat(known.txt/)", stat(KNOWN_PATH "/", &st), ENOTDIR);
    errno = 0;
    expect_errno(FAIL_ENOTDIR, "open(known.txt, O_DIRECTORY)", open(KNOWN_PATH, O_RDONLY | O_DIRECTORY), ENOTDIR);
    errno = 0;
    expect_errno(FAIL_ENOTDIR, "opendir of a file", opendir(KNOWN_PATH) == NULL ? -1 : 0, ENOTDIR);

    errno = 0;
    expect_errno(FAIL_EISDIR, "open(/data, O_WRONLY)", open("/data", O_WRONLY), EISDIR);
    errno = 0;
    expect_errno(FAIL_EISDIR, "open(/tmp, O_RDWR)", open("/tmp", O_RDWR), EISDIR);
    int dir = open("/data", O_RDONLY);
    char buffer[8];
    errno = 0;
    expect_errno(FAIL_EISDIR, "read of a directory", read(dir, buffer, sizeof buffer), EISDIR);
    close(dir);

    fd = open(KNOWN_PATH, O_RDONLY);
    close(fd);
    errno = 0;
    expect_errno(FAIL_EBADF, "read of a closed descriptor", read(fd, buffer, 1), EBADF);
    errno = 0;
    expect_errno(FAIL_EBADF, "close of a closed descriptor", close(fd), EBADF);
    errno = 0;
    expect_errno(FAIL_EBADF, "fstat of descriptor -1", fstat(-1, &st), EBADF);
    errno = 0;
    expect_errno(FAIL_EBADF, "write to descriptor 1000000", write(1000000, "x", 1), EBADF);
    fd = open(KNOWN_PATH, O_RDONLY);
    errno = 0;
    expect_errno(FAIL_EBADF, "write to a read-only descriptor", write(fd, "x", 1), EBADF);
    close(fd);
    fd = open("/dev/null", O_WRONLY);
    errno = 0;
    expect_errno(FAIL_EBADF, "read of a write-only descriptor", read(fd, buffer, 1), EBADF);
    close(fd);
    fd = open(KNOWN_PATH, O_PATH);
    errno = 0;
    expect_errno(FAIL_EBADF, "read of an O_PATH descriptor", read(fd, buffer, 1), EBADF);
    CHECK(FAIL_EBADF, fstat(fd, &st) == 0 && st.st_size == KNOWN_SIZE, "fstat of an O_PATH descriptor failed");
    close(fd);

    errno = 0;
    expect_errno(FAIL_EEXIST, "O_CREAT|O_EXCL of an existing file", open(KNOWN_PATH, O_RDONLY | O_CREAT | O_EXCL, 0644),
                 EEXIST);
}

static void check_symlinks(void) {
    const char *link = "/tmp/files-link";
    unlink(link);
    if (symlink(KNOWN_PATH, link) != 0) {
        fail(FAIL_SYMLINK, "symlink failed: %s", strerror(errno));
        return;
    }
    char target[64];
    ssize_t n = readlink(link, target, sizeof target - 1);
    CHECK(FAIL_SYMLINK, n == (ssize_t)strlen(KNOWN_PATH) && memcmp(target, KNOWN_PATH, (size_t)n) == 0,
          "readlink of the new link gave %zd bytes", n);
    struct stat st;
    CHECK(FAIL_SYMLINK, lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "lstat of a link is not S_IFLNK");
    CHECK(FAIL_SYMLINK, stat(link, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == KNOWN_SIZE,
          "stat through the link does not reach the known data");
    errno = 0;
    expect_errno(FAIL_SYMLINK, "readlink of a file", readlink(KNOWN_PATH, target, sizeof target), EINVAL);
    errno = 0;
    expect_errno(FAIL_SYMLINK, "open(link, O_NOFOLLOW)", open(link, O_RDONLY | O_NOFOLLOW), ELOOP);
    CHECK(FAIL_SYMLINK, unlink(link) == 0 && stat(KNOWN_PATH, &st) == 0, "unlinking the link");
}

static void check_terminal(void) {
    CHECK(FAIL_ISATTY, isatty(1) == 1, "isatty(1) is false: %s", strerror(errno));
    CHECK(FAIL_ISATTY, isatty(2) == 1, "isatty(2) is false: %s", strerror(errno));
    int fd = open(KNOWN_PATH, O_RDONLY);
    errno = 0;
    CHECK(FAIL_ISATTY, isatty(fd) == 0 && errno == ENOTTY, "isatty of a file is not 0 with ENOTTY");
    close(fd);

    /* TCGETS fills the kernel's struct termios (36 bytes on x86-64) and nothing after it. */
    unsigned char raw[128];
    memset(raw, 0xa5, sizeof raw);
    CHECK(FAIL_TCGETS, ioctl(1, TCGETS, raw) == 0, "ioctl(1, TCGETS) failed: %s", strerror(errno));
    int clobbered = 0;
    for (size_t i = 36; i < sizeof raw; i++) {
        clobbered += raw[i] != 0xa5;
    }
    CHECK(FAIL_TCGETS, clobbered == 0, "TCGETS wrote %d bytes past the 36 of struct termios", clobbered);
    struct termios t;
    CHECK(FAIL_TCGETS, tcgetattr(0, &t) == 0, "tcgetattr(0) failed: %s", strerror(errno));

    struct winsize ws = {0};
    CHECK(FAIL_WINSZ, ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0,
          "TIOCGWINSZ failed or gave %ux%u", ws.ws_col, ws.ws_row);
    errno = 0;
    expect_errno(FAIL_WINSZ, "TIOCGWINSZ on a pipe-less file", ioctl(fd = open("/dev/null", O_RDONLY), TIOCGWINSZ, &ws),
                 ENOTTY);
    close(fd);
}

static void check_stdio(void) {
    FILE *f = fopen("/tmp/files-stdio", "w+");
    if (f == NULL) {
        fail(FAIL_STDIO, "fopen(w+) failed: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < 1000; i++) {
        fprintf(f, "line %d\n", i);
    }
    rewind(f);
    char line[32];
    int lines = 0, ok = 1;
    while (fgets(line, sizeof line, f) != NULL) {
        char expected[32];
        snprintf(expected, sizeof expected, "line %d\n", lines);
        ok &= strcmp(line, expected) == 0;
        lines++;
    }
    CHECK(FAIL_STDIO, ok && lines == 1000, "stdio read back %d lines%s", lines, ok ? "" : ", some differing");
    CHECK(FAIL_STDIO, fclose(f) == 0, "fclose failed");
    f = fopen(KNOWN_PATH, "r");
    CHECK(FAIL_STDIO, f != NULL && fgets(line, sizeof line, f) != NULL && strncmp(line, "Manul known", 11) == 0,
          "fopen/fgets of the known data");
    if (f != NULL) {
        fclose(f);
    }
    unlink("/tmp/files-stdio");
}

int main(int argc, char **argv) {
    const char *argv0 = argc >= 1 && argv[0] != NULL ? argv[0] : "";
    say(1, "files: checking file-system calls as %s\n", argv0);
    check_known_data();
    check_listings();
    check_tmp_files();
    check_directories();
    check_pread_pwrite();
    check_dup_fcntl();
    check_pipe();
    check_proc_sys(argv0);
    check_devices();
    check_cwd();
    check_append_truncate();
    check_vector_io();
    check_big_io();
    check_errors();
    check_symlinks();
    check_terminal();
    check_stdio();
    if (first_failure != 0) {
        say(2, "files: failed, exit status %d (the first failed check)\n", first_failure);
        return first_failure;
    }
    say(1, "files: all checks passed\n");
    return 0;
}
