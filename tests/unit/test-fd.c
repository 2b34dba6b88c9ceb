/* Unit tests of src/util/fd.c: fd passing over a SOCK_SEQPACKET socketpair (0, 1, 3 and
 * FD_PASS_MAX fds, received O_CLOEXEC and usable; too many fds, a truncated message and EOF,
 * with /proc/self/fd counted to prove no received fd leaks), fd_write_all through partial writes
 * and EINTR, and fd_read_file's size limit around its internal buffer sizes. Files are made in
 * a private directory under /tmp, removed by the group teardown. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/fd.h"

static char tmpdir[] = "/tmp/snakebox-test-fd-XXXXXX";

static int setup_dir(void **state) {
        (void)state;
        if (!mkdtemp(tmpdir))
                return -1;
        /* fd_write_all into a pipe with no reader must return -EPIPE, not kill the test. */
        signal(SIGPIPE, SIG_IGN);
        return 0;
}

static int teardown_dir(void **state) {
        (void)state;
        DIR *d = opendir(tmpdir);
        if (d) {
                struct dirent *e;
                while ((e = readdir(d)))
                        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                                unlinkat(dirfd(d), e->d_name, 0);
                closedir(d);
        }
        return rmdir(tmpdir) == 0 ? 0 : -1;
}

static void tmp_path(char *buf, size_t n, const char *name) {
        snprintf(buf, n, "%s/%s", tmpdir, name);
}

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        assert_non_null(d);
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory's own fd */
}

static bool is_cloexec(int fd) {
        int fl = fcntl(fd, F_GETFD);
        assert_true(fl >= 0);
        return fl & FD_CLOEXEC;
}

static void seqpacket_pair(int sv[2]) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

/* A plain pipe, on purpose without O_CLOEXEC: received copies must gain it. */
static void plain_pipe(int p[2]) {
        assert_int_equal(pipe(p), 0);
        assert_false(is_cloexec(p[1]));
}

/* Writes a token through `via` and checks it comes out of `rd`. */
static void assert_same_pipe(int via, int rd, const char *token) {
        char got[32] = {0};
        size_t n = strlen(token);
        assert_int_equal(write(via, token, n), (ssize_t)n);
        assert_int_equal(read(rd, got, sizeof got - 1), (ssize_t)n);
        assert_string_equal(got, token);
}

static void test_send_recv_no_fds(void **state) {
        (void)state;
        int sv[2];
        seqpacket_pair(sv);
        int fds[FD_PASS_MAX];
        size_t nfds = FD_PASS_MAX;
        char buf[64];

        assert_int_equal(fd_send(sv[0], "hello", 5, NULL, 0), 0);
        assert_int_equal(fd_recv(sv[1], buf, sizeof buf, fds, &nfds), 5);
        assert_int_equal(nfds, 0);
        assert_memory_equal(buf, "hello", 5);

        close(sv[0]);
        close(sv[1]);
}

/* Sends the write ends of k pipes and checks that what arrives is k new, CLOEXEC fds, in order,
 * each writing into its own pipe. */
static void send_recv_pipes(size_t k) {
        int sv[2], pipes[FD_PASS_MAX][2], sent[FD_PASS_MAX], got[FD_PASS_MAX];
        size_t nfds = FD_PASS_MAX;
        char buf[64];
        seqpacket_pair(sv);
        for (size_t i = 0; i < k; i++) {
                plain_pipe(pipes[i]);
                sent[i] = pipes[i][1];
        }
        int before = count_fds();

        assert_int_equal(fd_send(sv[0], "fds", 3, sent, k), 0);
        assert_int_equal(fd_recv(sv[1], buf, sizeof buf, got, &nfds), 3);
        assert_memory_equal(buf, "fds", 3);
        assert_int_equal(nfds, k);
        assert_int_equal(count_fds(), before + (int)k);
        for (size_t i = 0; i < k; i++) {
                char token[16];
                assert_true(got[i] >= 0);
                assert_int_not_equal(got[i], sent[i]);
                assert_true(is_cloexec(got[i]));
                /* close the original first: only the received fd still reaches the pipe */
                close(pipes[i][1]);
                snprintf(token, sizeof token, "pipe%zu", i);
                assert_same_pipe(got[i], pipes[i][0], token);
                close(got[i]);
                close(pipes[i][0]);
        }
        close(sv[0]);
        close(sv[1]);
}

static void test_send_recv_one_fd(void **state) {
        (void)state;
        send_recv_pipes(1);
}

static void test_send_recv_three_fds(void **state) {
        (void)state;
        send_recv_pipes(3);
}

static void test_send_recv_max_fds(void **state) {
        (void)state;
        send_recv_pipes(FD_PASS_MAX);
}

static void test_send_too_many_fds_is_einval(void **state) {
        (void)state;
        int sv[2], fds[FD_PASS_MAX + 1];
        seqpacket_pair(sv);
        for (size_t i = 0; i < FD_PASS_MAX + 1; i++)
                fds[i] = sv[0];

        assert_int_equal(fd_send(sv[0], "x", 1, fds, FD_PASS_MAX + 1), -EINVAL);
        close(sv[0]);
        close(sv[1]);
}

/* The caller asked for fewer fds than came: -EMSGSIZE, and every fd that came is closed. */
static void test_recv_more_fds_than_asked(void **state) {
        (void)state;
        int sv[2], p[2], got[FD_PASS_MAX];
        char buf[16];
        seqpacket_pair(sv);
        plain_pipe(p);
        int sent[3] = {p[1], p[1], p[0]};
        int before = count_fds();

        assert_int_equal(fd_send(sv[0], "abc", 3, sent, 3), 0);
        size_t nfds = 1;
        assert_int_equal(fd_recv(sv[1], buf, sizeof buf, got, &nfds), -EMSGSIZE);
        assert_int_equal(nfds, 0);
        assert_int_equal(count_fds(), before);

        /* and with no room at all for fds */
        assert_int_equal(fd_send(sv[0], "abc", 3, sent, 2), 0);
        nfds = 0;
        assert_int_equal(fd_recv(sv[1], buf, sizeof buf, NULL, &nfds), -EMSGSIZE);
        assert_int_equal(nfds, 0);
        assert_int_equal(count_fds(), before);

        /* the socket is still usable: the next message arrives whole */
        assert_int_equal(fd_send(sv[0], "next", 4, NULL, 0), 0);
        nfds = FD_PASS_MAX;
        assert_int_equal(fd_recv(sv[1], buf, sizeof buf, got, &nfds), 4);
        assert_memory_equal(buf, "next", 4);

        close(p[0]);
        close(p[1]);
        close(sv[0]);
        close(sv[1]);
}

/* More fds than the control buffer holds, sent with a raw sendmsg: the kernel truncates the
 * control data (MSG_CTRUNC); fd_recv must refuse the message and leak nothing. */
static void test_recv_control_truncated(void **state) {
        (void)state;
        enum { N = FD_PASS_MAX + 4 };
        int sv[2], p[2], got[FD_PASS_MAX];
        char buf[16];
        seqpacket_pair(sv);
        plain_pipe(p);
        int before = count_fds();

        union {
                char buf[CMSG_SPACE(sizeof(int) * N)];
                struct cmsghdr align;
        } u;
        memset(&u, 0, sizeof u);
        struct iovec iov = {.iov_base = "many", .iov_len = 4};
        struct msghdr msg = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * N);
        for (int i = 0; i < N; i++)
                memcpy(CMSG_DATA(c) + i * sizeof(int), &p[1], sizeof(int));
        assert_int_equal(sendmsg(sv[0], &msg, 0), 4);

        size_t nfds = FD_PASS_MAX;
        assert_int_equal(fd_recv(sv[1], buf, sizeof buf, got, &nfds), -EMSGSIZE);
        assert_int_equal(nfds, 0);
        assert_int_equal(count_fds(), before);

        close(p[0]);
        close(p[1]);
        close(sv[0]);
        close(sv[1]);
}

static void test_recv_truncated_message(void **state) {
        (void)state;
        int sv[2], p[2], got[FD_PASS_MAX];
        char big[100], small[10];
        seqpacket_pair(sv);
        plain_pipe(p);
        memset(big, 'x', sizeof big);
        int before = count_fds();

        assert_int_equal(fd_send(sv[0], big, sizeof big, NULL, 0), 0);
        size_t nfds = FD_PASS_MAX;
        assert_int_equal(fd_recv(sv[1], small, sizeof small, got, &nfds), -EMSGSIZE);
        assert_int_equal(nfds, 0);

        /* a truncated message that carried fds: they are closed too */
        assert_int_equal(fd_send(sv[0], big, sizeof big, p, 2), 0);
        nfds = FD_PASS_MAX;
        assert_int_equal(fd_recv(sv[1], small, sizeof small, got, &nfds), -EMSGSIZE);
        assert_int_equal(nfds, 0);
        assert_int_equal(count_fds(), before);

        /* a message of exactly the buffer's size is not truncated */
        assert_int_equal(fd_send(sv[0], big, sizeof small, NULL, 0), 0);
        nfds = FD_PASS_MAX;
        assert_int_equal(fd_recv(sv[1], small, sizeof small, got, &nfds), (ssize_t)sizeof small);

        close(p[0]);
        close(p[1]);
        close(sv[0]);
        close(sv[1]);
}

static void test_recv_eof(void **state) {
        (void)state;
        int sv[2], got[FD_PASS_MAX];
        char buf[16];
        seqpacket_pair(sv);

        assert_int_equal(fd_send(sv[0], "last", 4, NULL, 0), 0);
        close(sv[0]);
        size_t nfds = FD_PASS_MAX;
        assert_int_equal(fd_recv(sv[1], buf, sizeof buf, got, &nfds), 4);
        nfds = FD_PASS_MAX;
        assert_int_equal(fd_recv(sv[1], buf, sizeof buf, got, &nfds), 0);
        assert_int_equal(nfds, 0);
        close(sv[1]);
}

static void test_recv_error_is_negative_errno(void **state) {
        (void)state;
        int p[2];
        char buf[4];
        size_t nfds = 0;
        plain_pipe(p);

        assert_int_equal(fd_recv(p[0], buf, sizeof buf, NULL, &nfds), -ENOTSOCK);
        assert_int_equal(fd_send(p[1], "x", 1, NULL, 0), -ENOTSOCK);
        close(p[0]);
        close(p[1]);
}

static void test_write_all_and_read_file(void **state) {
        (void)state;
        static char data[300000];
        char path[256], *back = NULL;
        size_t n = sizeof data, len = 0;
        for (size_t i = 0; i < n; i++)
                data[i] = (char)(i * 7 % 256);
        tmp_path(path, sizeof path, "write-all");

        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(fd_write_all(fd, data, n), 0);
        assert_int_equal(fd_write_all(fd, data, 0), 0);
        close(fd);

        int r = fd_read_file(path, n, &back, &len);
        unlink(path);
        assert_int_equal(r, 0);
        bool same = len == n && memcmp(back, data, n) == 0 && back[len] == 0;
        free(back);
        assert_true(same);
}

static void test_write_all_errors(void **state) {
        (void)state;
        int p[2];
        plain_pipe(p);
        close(p[0]);

        assert_int_equal(fd_write_all(p[1], "x", 1), -EPIPE);
        close(p[1]);
        assert_int_equal(fd_write_all(-1, "x", 1), -EBADF);
}

/* Reads the pipe until EOF and checks the byte pattern written by the main thread. */
typedef struct Reader {
        int fd;
        size_t got;
        bool ok;
} Reader;

static void *reader_main(void *arg) {
        Reader *r = arg;
        char buf[1000];
        r->ok = true;
        for (;;) {
                ssize_t k = read(r->fd, buf, sizeof buf);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                for (ssize_t i = 0; i < k; i++)
                        if ((unsigned char)buf[i] != (r->got + (size_t)i) % 253)
                                r->ok = false;
                r->got += (size_t)k;
                usleep(50); /* keep the pipe full so the writer blocks and is interrupted */
        }
        return NULL;
}

static void on_alarm(int sig) {
        (void)sig;
}

/* A blocking write into a full pipe that a signal interrupts returns a short count (or EINTR if
 * nothing was written); fd_write_all must carry on until every byte is written, in order. */
static void test_write_all_survives_signals_and_short_writes(void **state) {
        (void)state;
        static char data[4 << 20];
        int p[2];
        size_t n = sizeof data;
        for (size_t i = 0; i < n; i++)
                data[i] = (char)(i % 253);
        plain_pipe(p);

        /* the reader thread blocks SIGALRM, so the alarm always lands on the writer */
        sigset_t alrm, old;
        sigemptyset(&alrm);
        sigaddset(&alrm, SIGALRM);
        assert_int_equal(pthread_sigmask(SIG_BLOCK, &alrm, &old), 0);
        Reader r = {.fd = p[0]};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
        assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);

        struct sigaction sa = {.sa_handler = on_alarm}, old_sa; /* no SA_RESTART */
        sigemptyset(&sa.sa_mask);
        assert_int_equal(sigaction(SIGALRM, &sa, &old_sa), 0);
        struct itimerval it = {.it_interval = {0, 200}, .it_value = {0, 200}}, off = {0};
        assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);

        int rc = fd_write_all(p[1], data, n);

        assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
        assert_int_equal(sigaction(SIGALRM, &old_sa, NULL), 0);
        close(p[1]);
        assert_int_equal(pthread_join(t, NULL), 0);
        close(p[0]);

        assert_int_equal(rc, 0);
        assert_int_equal(r.got, n);
        assert_true(r.ok);
}

static void write_file_of(const char *path, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        char block[4096];
        for (size_t i = 0; i < size; i += sizeof block) {
                size_t k = size - i < sizeof block ? size - i : sizeof block;
                for (size_t j = 0; j < k; j++)
                        block[j] = (char)('A' + (i + j) % 26);
                assert_int_equal(write(fd, block, k), (ssize_t)k);
        }
        close(fd);
}

/* Sizes on each side of the internal buffer's 4096-byte steps: max == size reads the whole file,
 * max == size - 1 is -EFBIG and sets nothing. */
static void test_read_file_limits(void **state) {
        (void)state;
        static const size_t sizes[] = {0, 1, 100, 4094, 4095, 4096, 4097, 8191, 8192, 8193, 100000};
        char path[256];
        tmp_path(path, sizeof path, "sized");
        int before = count_fds();

        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
                size_t size = sizes[i], len = 12345;
                char *ret = NULL;
                write_file_of(path, size);

                int r = fd_read_file(path, size, &ret, &len);
                if (r != 0)
                        fail_msg("size %zu, max %zu: %d", size, size, r);
                assert_non_null(ret);
                bool same = len == size && ret[size] == 0;
                for (size_t j = 0; same && j < size; j++)
                        same = ret[j] == (char)('A' + j % 26);
                free(ret);
                if (!same)
                        fail_msg("size %zu: got %zu bytes, not the file's", size, len);

                /* a larger max is fine too */
                ret = NULL;
                r = fd_read_file(path, size + 5000, &ret, &len);
                free(ret);
                assert_int_equal(r, 0);
                assert_int_equal(len, size);

                if (size > 0) {
                        ret = NULL;
                        len = 12345;
                        r = fd_read_file(path, size - 1, &ret, &len);
                        bool untouched = ret == NULL && len == 12345;
                        free(ret);
                        if (r != -EFBIG)
                                fail_msg("size %zu, max %zu: %d, want -EFBIG", size, size - 1, r);
                        assert_true(untouched);
                }
        }
        assert_int_equal(count_fds(), before);
        unlink(path);
}

/* SIZE_MAX means "no limit of ours"; max + 1 must not wrap to 0. */
static void test_read_file_max_size_max(void **state) {
        (void)state;
        char path[256], *ret = NULL;
        size_t len = 0;
        tmp_path(path, sizeof path, "unlimited");
        write_file_of(path, 5000);

        int r = fd_read_file(path, SIZE_MAX, &ret, &len);
        free(ret);
        unlink(path);
        assert_int_equal(r, 0);
        assert_int_equal(len, 5000);
}

/* Files whose stat size is 0 but that have content (procfs) are read to EOF. */
static void test_read_file_procfs(void **state) {
        (void)state;
        char *ret = NULL;
        size_t len = 0;

        assert_int_equal(fd_read_file("/proc/self/status", 1 << 16, &ret, &len), 0);
        bool ok = len > 0 && strlen(ret) == len && strstr(ret, "Pid:");
        free(ret);
        assert_true(ok);
}

static void test_read_file_errors(void **state) {
        (void)state;
        char path[256], *ret = NULL;
        size_t len = 7;
        tmp_path(path, sizeof path, "does-not-exist");
        int before = count_fds();

        assert_int_equal(fd_read_file(path, 100, &ret, &len), -ENOENT);
        assert_null(ret);
        assert_int_equal(len, 7);
        assert_int_equal(fd_read_file(tmpdir, 100, &ret, &len), -EISDIR);
        assert_null(ret);
        assert_int_equal(count_fds(), before);
}

static void test_write_file(void **state) {
        (void)state;
        char path[256], *ret = NULL;
        size_t len;
        tmp_path(path, sizeof path, "knob");

        assert_int_equal(fd_write_file(path, "max"), -ENOENT); /* never creates */
        write_file_of(path, 0);
        assert_int_equal(fd_write_file(path, "12345\n"), 0);
        assert_int_equal(fd_read_file(path, 100, &ret, &len), 0);
        bool same = strcmp(ret, "12345\n") == 0;
        free(ret);
        unlink(path);
        assert_true(same);
}

static void test_nonblock(void **state) {
        (void)state;
        int p[2];
        char c;
        plain_pipe(p);

        assert_false(fcntl(p[0], F_GETFL) & O_NONBLOCK);
        assert_int_equal(fd_nonblock(p[0]), 0);
        assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
        assert_int_equal(read(p[0], &c, 1), -1);
        assert_int_equal(errno, EAGAIN);
        close(p[0]);
        close(p[1]);
        assert_int_equal(fd_nonblock(p[0]), -EBADF);
}

static void test_mkdir_p(void **state) {
        char base[] = "/tmp/snakebox-test-mkdir-XXXXXX";
        char path[256];
        struct stat st;
        (void)state;
        assert_non_null(mkdtemp(base));
        snprintf(path, sizeof path, "%s/a/b/c", base);
        assert_int_equal(fd_mkdir_p(path, 0700), 0);
        assert_string_equal(path + strlen(base), "/a/b/c"); /* restored */
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        assert_int_equal(fd_mkdir_p(path, 0700), 0); /* already there */
        /* A parent that is a file. */
        char file[256], below[300];
        snprintf(file, sizeof file, "%s/f", base);
        int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        snprintf(below, sizeof below, "%s/x", file);
        assert_int_equal(fd_mkdir_p(below, 0700), -ENOTDIR);
        unlink(file);
        char rm[300];
        for (const char *d = path; strlen(d) > strlen(base);) {
                rmdir(d);
                snprintf(rm, sizeof rm, "%s", d);
                *strrchr(rm, '/') = 0;
                snprintf(path, sizeof path, "%s", rm);
                d = path;
        }
        assert_int_equal(rmdir(base), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_send_recv_no_fds),
                cmocka_unit_test(test_mkdir_p),
                cmocka_unit_test(test_send_recv_one_fd),
                cmocka_unit_test(test_send_recv_three_fds),
                cmocka_unit_test(test_send_recv_max_fds),
                cmocka_unit_test(test_send_too_many_fds_is_einval),
                cmocka_unit_test(test_recv_more_fds_than_asked),
                cmocka_unit_test(test_recv_control_truncated),
                cmocka_unit_test(test_recv_truncated_message),
                cmocka_unit_test(test_recv_eof),
                cmocka_unit_test(test_recv_error_is_negative_errno),
                cmocka_unit_test(test_write_all_and_read_file),
                cmocka_unit_test(test_write_all_errors),
                cmocka_unit_test(test_write_all_survives_signals_and_short_writes),
                cmocka_unit_test(test_read_file_limits),
                cmocka_unit_test(test_read_file_max_size_max),
                cmocka_unit_test(test_read_file_procfs),
                cmocka_unit_test(test_read_file_errors),
                cmocka_unit_test(test_write_file),
                cmocka_unit_test(test_nonblock),
        };
        return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
