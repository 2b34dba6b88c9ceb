"""Attack: reach the kernel's riskiest interfaces (new namespaces, mounts, tracing, keyrings, BPF,
perf, userfaultfd, io_uring, modules, kexec, reboot, swap, 16-bit segments, personality flags that
weaken exec), or any interface the filter does not know. The seccomp filter is an allow-list: a
denied call fails with EPERM; a number the table does not name (a call newer than the filter, or
no call at all) fails with ENOSYS and the program goes on. The arguments are harmless (NULL
pointers, invalid values): against a naive server these calls fail with EFAULT/EINVAL/EBADF or
succeed, never with EPERM as root.

Each syscall is its own test case (one line in a table). Run against the old deny-list filter
(a build of the previous commit), seven cases failed, i.e. the call got through:
personality(READ_IMPLIES_EXEC) and personality(ADDR_NO_RANDOMIZE) returned 0 (the persona was
set), modify_ldt(0, NULL, 0) returned 0, memfd_secret returned a file descriptor, and statmount,
listmount and lsm_list_modules reached the kernel and failed with EFAULT instead of ENOSYS. clone3
and number 1000 were ENOSYS before too; they stay as checks that the run goes on."""

import errno
import json
import platform

import pytest

from conftest import code, run_json, run_json_with, run_ok_with, show

MACHINE = platform.machine()
INDEX = {"x86_64": 0, "aarch64": 1}.get(MACHINE)

PER_READ_IMPLIES_EXEC = 0x0400000
PER_ADDR_NO_RANDOMIZE = 0x0040000

# name: (x86_64 number, aarch64 number (None: no such call there), arguments)
DENIED = {
    "mount": (165, 40, (0, 0, 0, 0, 0)),
    "umount2": (166, 39, (0, 0)),
    "pivot_root": (155, 41, (0, 0)),
    "unshare": (272, 97, (0x04000000,)),  # CLONE_NEWUTS
    "setns": (308, 268, (-1, 0)),
    "ptrace": (101, 117, (2, 1, 0, 0)),  # PTRACE_PEEKDATA of a process not traced: ESRCH
    "process_vm_readv": (310, 270, (1, 0, 0, 0, 0, 0)),
    "keyctl": (250, 219, (1, 0)),  # KEYCTL_JOIN_SESSION_KEYRING
    "add_key": (248, 217, (0, 0, 0, 0, 0)),
    "request_key": (249, 218, (0, 0, 0, 0)),
    "bpf": (321, 280, (5, 0, 0)),  # BPF_PROG_LOAD with a NULL attribute
    "perf_event_open": (298, 241, (0, 0, -1, -1, 0)),
    "userfaultfd": (323, 282, (0,)),
    "io_uring_setup": (425, 425, (1, 0)),
    "init_module": (175, 105, (0, 0, 0)),
    "finit_module": (313, 273, (-1, 0, 0)),
    "delete_module": (176, 106, (0, 0)),
    "kexec_load": (246, 104, (0, 0, 0, 0xFFFF0000)),  # an invalid architecture
    "reboot": (169, 142, (0, 0, 0, 0)),  # wrong magic numbers
    "swapon": (167, 224, (0, 0)),
    "swapoff": (168, 225, (0,)),
    "open_by_handle_at": (304, 265, (-1, 0, 0)),
    "name_to_handle_at": (303, 264, (-100, 0, 0, 0, 0)),  # NULL path: EFAULT if allowed
    "setdomainname": (171, 162, (0, 1000)),  # longer than allowed: EINVAL
    "modify_ldt": (154, None, (0, 0, 0)),  # read 0 bytes of the LDT: 0 if allowed
    "personality(READ_IMPLIES_EXEC)": (135, 92, (PER_READ_IMPLIES_EXEC,)),
    "personality(ADDR_NO_RANDOMIZE)": (135, 92, (PER_ADDR_NO_RANDOMIZE,)),
}

# Calls the filter answers as a kernel without them would; the program must go on after each.
ABSENT = {
    "clone3": (435, 435, (0, 0)),  # glibc then falls back to clone, whose flags are checked
    "memfd_secret": (447, 447, (0,)),
    "statmount": (457, 457, (0, 0, 0, 0)),
    "listmount": (458, 458, (0, 0, 0, 0)),
    "lsm_list_modules": (461, 461, (0, 0, 0)),  # newer than the filter's libseccomp
    "number past any table (1000)": (1000, 1000, ()),
}


# A run that makes one raw system call, given as [number, [arguments]] on its stdin, prints
# [return value, errno] as JSON, then proves it is still running by printing a second line.
SYSCALL_CODE = code('''
    import ctypes, json, sys
    nr, args = json.load(sys.stdin)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    print(json.dumps([r, ctypes.get_errno()]))
    print("still running")
''')




def call(server, table, name):
    assert INDEX is not None, f"no syscall table for {MACHINE}: extend this file"
    spec = table[name]
    if spec[INDEX] is None:
        pytest.skip(f"{name} does not exist on {MACHINE}")
    body = run_ok_with(server, SYSCALL_CODE, [spec[INDEX], list(spec[2])])
    lines = body["stdout"].splitlines()
    assert lines[-1:] == ["still running"], show(body)
    return json.loads(lines[-2])


@pytest.mark.parametrize("name", DENIED)
def test_denied_syscall_fails_with_eperm(server, name):
    assert call(server, DENIED, name) == [-1, errno.EPERM]


@pytest.mark.parametrize("name", ABSENT)
def test_unknown_syscall_fails_with_enosys_and_the_run_goes_on(server, name):
    assert call(server, ABSENT, name) == [-1, errno.ENOSYS]


def test_allowed_personality_values_and_query_still_work(server):
    """Docker's personality values pass; the persona really changes and the query reads it."""
    result = run_json(server, code('''
        import ctypes, json
        libc = ctypes.CDLL(None, use_errno=True)
        libc.personality.restype = ctypes.c_int
        libc.personality.argtypes = [ctypes.c_ulong]
        out = []
        for p in (0x0008, 0x20000, 0x20008, 0x0):
            ctypes.set_errno(0)
            libc.personality(p)
            out.append([ctypes.get_errno(), libc.personality(0xffffffff)])
        print(json.dumps(out))
    '''))
    assert result == [[0, 0x0008], [0, 0x20000], [0, 0x20008], [0, 0x0]], show(result)


def test_clone3_is_absent_and_processes_and_threads_still_work(server):
    """clone3 is ENOSYS (its flags are behind a pointer the filter cannot read); glibc falls back
    to clone, so fork, subprocess and threads keep working after a program probed clone3."""
    nr = ABSENT["clone3"][0]  # the same on both architectures
    result = run_json(server, code(f'''
        import ctypes, json, os, subprocess, sys, threading
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long({nr}), ctypes.c_long(0), ctypes.c_long(0))
        clone3 = [r, ctypes.get_errno()]
        child = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True,
                               text=True).stdout.strip()
        shell = subprocess.run(["sh", "-c", "echo $((2 + 3))"], capture_output=True,
                               text=True).stdout.strip()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        forked = os.WEXITSTATUS(os.waitpid(pid, 0)[1])
        seen = []
        t = threading.Thread(target=seen.append, args=(1,))
        t.start()
        t.join()
        print(json.dumps(dict(clone3=clone3, child=child, shell=shell, forked=forked,
                              thread=seen)))
    '''))
    assert result == dict(clone3=[-1, errno.ENOSYS], child="42", shell="5", forked=7,
                          thread=[1]), show(result)


# clone with a namespace flag, run in a child of the run: if the filter lets it through, the
# clone's child returns 0 here and must leave at once.
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17


def test_clone_with_a_namespace_flag_and_unshare_fail_with_eperm(server):
    clone_nr = {"x86_64": 56, "aarch64": 220}[MACHINE]
    result = run_json_with(server, code('''
        import ctypes, json, os, sys
        clone_nr, flags = json.load(sys.stdin)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        result = {}
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long(clone_nr), ctypes.c_long(flags),
                         ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
        if r == 0:
            os._exit(0)
        if r > 0:
            os.waitpid(r, 0)
        result["clone(CLONE_NEWUSER)"] = [r, ctypes.get_errno()]
        libc.unshare.restype = ctypes.c_int
        ctypes.set_errno(0)
        result["libc unshare(CLONE_NEWNS)"] = [libc.unshare(0x00020000), ctypes.get_errno()]
        print(json.dumps(result))
    '''), [clone_nr, CLONE_NEWUSER | SIGCHLD])
    assert result == {"clone(CLONE_NEWUSER)": [-1, errno.EPERM],
                      "libc unshare(CLONE_NEWNS)": [-1, errno.EPERM]}, show(result)
