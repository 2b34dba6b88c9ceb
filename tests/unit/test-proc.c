/* util/proc: CPU ticks from a /proc/<pid>/stat line (the command name may hold anything), and
 * the first child of a process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/proc.h"

static void test_stat_ticks(void **state) {
        (void)state;
        /* utime 11, stime 22, cutime 33, cstime 44 */
        const char *plain = "123 (python3) S 1 123 123 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 5";
        assert_int_equal(proc_stat_ticks(plain), 110);
        /* A name a program chose: spaces and parentheses, even a fake tail. */
        const char *odd = "7 (a) b) S 1 2 3 4 5 6 7 8 9 10 99 99 99 99) S 1 7 7 0 -1 0 0 0 0 0 1 2 3 4 20";
        assert_int_equal(proc_stat_ticks(odd), 10);
        assert_int_equal(proc_stat_ticks(""), -EINVAL);
        assert_int_equal(proc_stat_ticks("12 (x)"), -EINVAL);
        assert_int_equal(proc_stat_ticks("12 (x) S 1 2"), -EINVAL);
}

static void test_first_child(void **state) {
        (void)state;
        assert_int_equal(proc_first_child(getpid()), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                pause();
                _exit(0);
        }
        assert_int_equal(proc_first_child(getpid()), pid);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        assert_int_equal(proc_first_child(getpid()), 0);
        /* A process that does not exist (pid_max is at most 2^22). */
        assert_int_equal(proc_first_child(INT32_MAX), 0);
        assert_int_equal(proc_cpu_ms(INT32_MAX), 0);
}

static void test_left_by_dead_server(void **state) {
        char name[64];
        (void)state;
        /* A pid that cannot run (pid_max is at most 2^22). */
        assert_true(proc_left_by_dead_server("snakebox-2147483000"));
        snprintf(name, sizeof name, "snakebox-%d", (int)getpid());
        assert_false(proc_left_by_dead_server(name)); /* ours */
        snprintf(name, sizeof name, "snakebox-%d", (int)getppid());
        assert_false(proc_left_by_dead_server(name)); /* alive */
        assert_false(proc_left_by_dead_server("snakebox-"));
        assert_false(proc_left_by_dead_server("snakebox-12x"));
        assert_false(proc_left_by_dead_server("snakebox--5"));
        assert_false(proc_left_by_dead_server("snakebox-99999999999999999999"));
        assert_false(proc_left_by_dead_server("other-2147483000"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stat_ticks),
                cmocka_unit_test(test_first_child),
                cmocka_unit_test(test_left_by_dead_server),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
