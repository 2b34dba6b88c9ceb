/* Unit tests of src/memwatch.c: a sample of this process and of children it forked (and of
 * their own child, found through the children files of every thread), the counted memory of a
 * child that touched a block, the max_procs bound, and the error when the init is gone. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "memwatch.h"

#define MIB (UINT64_C(1) << 20)

/* Touches mb MiB that the compiler cannot optimize away. */
static void touch(unsigned mb) {
        volatile char *b = mmap(NULL, mb * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(b != MAP_FAILED);
        for (size_t i = 0; i < mb * MIB; i += 4096)
                b[i] = 1;
}

/* Forks a child that touches mb MiB (and, if grandchild, forks one that does too), says so on
 * the pipe, and waits to be killed. Returns its pid. */
static pid_t hoarder(unsigned mb, bool grandchild) {
        int p[2];
        char c;
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* Dies with the test, even one that fails half-way. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(p[0]);
                if (grandchild && fork() == 0) {
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        touch(mb);
                        (void)!write(p[1], "g", 1);
                        pause();
                        _exit(0);
                }
                touch(mb);
                (void)!write(p[1], "c", 1);
                pause();
                _exit(0);
        }
        close(p[1]);
        for (int i = 0; i < (grandchild ? 2 : 1); i++)
                assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

static void reap(pid_t pid) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

static void test_sample_self(void **state) {
        (void)state;
        MemSample s;
        assert_int_equal(memwatch_sample(getpid(), 1, &s), 0);
        assert_int_equal(s.nprocs, 1);
        assert_true(s.pss_bytes > 0);
        assert_true(s.private_bytes <= s.pss_bytes);
}

static void test_children_and_grandchildren_are_counted(void **state) {
        (void)state;
        MemSample before, after;
        assert_int_equal(memwatch_sample(getpid(), 64, &before), 0);
        pid_t a = hoarder(16, false);
        pid_t b = hoarder(16, true);
        assert_int_equal(memwatch_sample(getpid(), 64, &after), 0);
        /* This process, a, b and b's child. */
        assert_int_equal(after.nprocs, before.nprocs + 3);
        assert_false(after.truncated);
        assert_true(after.pss_bytes >= before.pss_bytes + 3 * 16 * MIB);
        reap(b); /* its child is orphaned: reparented, no longer ours to count */
        reap(a);
}

static void test_max_procs_bounds_the_walk(void **state) {
        (void)state;
        MemSample s;
        pid_t a = hoarder(1, false), b = hoarder(1, false);
        assert_int_equal(memwatch_sample(getpid(), 2, &s), 0);
        assert_int_equal(s.nprocs, 2);
        assert_true(s.truncated);
        reap(a);
        reap(b);
}

static void test_gone_init_is_an_error(void **state) {
        (void)state;
        MemSample s = {.pss_bytes = 7};
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                _exit(0);
        }
        waitpid(pid, NULL, 0);
        assert_true(memwatch_sample(pid, 4, &s) < 0);
        assert_int_equal(s.pss_bytes, 7); /* untouched on failure */
}

/* A file written to the tmpfs at /dev/shm (the host's here; in a sandbox, the run's) shows in
 * memwatch_tmpfs_bytes though no process maps it, which Pss would not see; a gone init is an
 * error. */
static void test_tmpfs_files_are_counted(void **state) {
        (void)state;
        char path[64];
        uint64_t before = 0, after = 0;
        static char block[1 << 20];

        if (memwatch_tmpfs_bytes(getpid(), &before) == -EMEDIUMTYPE)
                skip(); /* this host's /dev/shm is not a tmpfs */
        assert_int_equal(memwatch_tmpfs_bytes(getpid(), &before), 0);
        snprintf(path, sizeof path, "/dev/shm/test-memwatch-%d", (int)getpid());
        FILE *f = fopen(path, "wbx");
        assert_non_null(f);
        memset(block, 'x', sizeof block);
        for (int i = 0; i < 8; i++)
                assert_int_equal(fwrite(block, 1, sizeof block, f), sizeof block);
        assert_int_equal(fclose(f), 0);
        int r = memwatch_tmpfs_bytes(getpid(), &after);
        unlink(path);
        assert_int_equal(r, 0);
        /* Others may use the host's /dev/shm meanwhile; 8 MiB of ours stands out. */
        assert_true(after >= before + 6 * MIB);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(0);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
        r = memwatch_tmpfs_bytes(pid, &after);
        assert_true(r == -ENOENT || r == -ESRCH);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sample_self),
                cmocka_unit_test(test_children_and_grandchildren_are_counted),
                cmocka_unit_test(test_max_procs_bounds_the_walk),
                cmocka_unit_test(test_gone_init_is_an_error),
                cmocka_unit_test(test_tmpfs_files_are_counted),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
