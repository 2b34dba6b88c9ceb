/* Unit tests of seal_run's failure reporting (src/seal.c): a step that fails sends exactly one
 * FRAME_FAIL {step, errno} on the socket, names the step that failed, and no later step runs;
 * and of seal_join_cgroups, which writes "0" to each file it is given. Only the first three
 * steps are driven to fail here, in a forked child: the later ones would
 * change the test process (setsid, namespaces, mounts) and are covered end to end by the API
 * tests. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"
#include "seal.h"

/* Runs seal_run in a child with the given join result, sync byte (none: the pipe is closed,
 * as the zygote does when it cannot write the maps) and out_fd; returns the one frame the
 * child sent. */
static SealFailure seal_failure(int joined, const char *sync_byte, int out_fd) {
        int sv[2], sync[2];
        SealPlan plan = {0};
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(pipe2(sync, O_CLOEXEC), 0);
        if (sync_byte)
                assert_int_equal(write(sync[1], sync_byte, 1), 1);
        close(sync[1]);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(sv[0]);
                int r = seal_run(&plan, joined, sv[1], out_fd, STDERR_FILENO, sync[0]);
                _exit(r < 0 ? 0 : 1);
        }
        close(sv[1]);
        close(sync[0]);

        char msg[64];
        ssize_t k = recv(sv[0], msg, sizeof msg, 0);
        assert_int_equal(k, 1 + (ssize_t)sizeof(SealFailure));
        assert_int_equal(msg[0], FRAME_FAIL);
        SealFailure f;
        memcpy(&f, msg + 1, sizeof f);
        /* One frame, then the child is gone: no later step ran or reported. */
        assert_int_equal(recv(sv[0], msg, sizeof msg, 0), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        close(sv[0]);
        return f;
}

static void test_failed_join_fails_the_first_step(void **state) {
        (void)state;
        /* Even with the maps written: a sandbox outside its cgroups must not go on. */
        SealFailure f = seal_failure(-EACCES, "G", STDOUT_FILENO);
        assert_int_equal(f.step, SEAL_CGROUPS);
        assert_int_equal(f.error, EACCES);
        assert_string_equal(seal_step_name(f.step), "join the run's cgroups");
        assert_non_null(strstr(seal_step_hint(f.step, f.error), "5.16"));
}

static void test_closed_sync_pipe_fails_the_sync_step(void **state) {
        (void)state;
        SealFailure f = seal_failure(0, NULL, STDOUT_FILENO);
        assert_int_equal(f.step, SEAL_SYNC);
        assert_int_equal(f.error, EPERM);
        assert_string_equal(seal_step_name(f.step), "wait for id maps");
}

static void test_wrong_sync_byte_fails_the_sync_step(void **state) {
        (void)state;
        SealFailure f = seal_failure(0, "X", STDOUT_FILENO);
        assert_int_equal(f.step, SEAL_SYNC);
        assert_int_equal(f.error, EPERM);
}

static void test_bad_fd_fails_the_fds_step(void **state) {
        (void)state;
        SealFailure f = seal_failure(0, "G", -1);
        assert_int_equal(f.step, SEAL_FDS);
        assert_int_equal(f.error, EBADF);
        assert_string_equal(seal_step_name(f.step), "file descriptors");
}

/* Each file gets "0" (the caller itself, as the kernel reads it) and is closed after. */
static void test_join_writes_zero_to_each_file_and_closes_it(void **state) {
        (void)state;
        int a[2], b[2];
        assert_int_equal(pipe2(a, O_CLOEXEC), 0);
        assert_int_equal(pipe2(b, O_CLOEXEC), 0);
        int fds[] = {a[1], b[1]};
        assert_int_equal(seal_join_cgroups(fds, 2), 0);
        char buf[8];
        for (int i = 0; i < 2; i++) {
                int rd = i ? b[0] : a[0];
                assert_int_equal(read(rd, buf, sizeof buf), 1);
                assert_int_equal(buf[0], '0');
                /* Closed: the read end sees EOF, not a writer still holding it. */
                assert_int_equal(read(rd, buf, sizeof buf), 0);
                close(rd);
        }
        assert_int_equal(fcntl(a[1], F_GETFD), -1);
        assert_int_equal(fcntl(b[1], F_GETFD), -1);
}

/* A refused write is the result, and the later files are still closed (none leaks into the
 * sandbox). */
static void test_join_reports_the_first_error_and_closes_all(void **state) {
        (void)state;
        int a[2], dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dir >= 0);
        assert_int_equal(pipe2(a, O_CLOEXEC), 0);
        int fds[] = {dir, a[1]};
        assert_int_equal(seal_join_cgroups(fds, 2), -EBADF);
        assert_int_equal(fcntl(dir, F_GETFD), -1);
        assert_int_equal(fcntl(a[1], F_GETFD), -1);
        char buf[8];
        assert_int_equal(read(a[0], buf, sizeof buf), 0); /* not written after the failure */
        close(a[0]);
        assert_int_equal(seal_join_cgroups(NULL, 0), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_join_writes_zero_to_each_file_and_closes_it),
                cmocka_unit_test(test_join_reports_the_first_error_and_closes_all),
                cmocka_unit_test(test_failed_join_fails_the_first_step),
                cmocka_unit_test(test_closed_sync_pipe_fails_the_sync_step),
                cmocka_unit_test(test_wrong_sync_byte_fails_the_sync_step),
                cmocka_unit_test(test_bad_fd_fails_the_fds_step),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
