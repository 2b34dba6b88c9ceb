"""Attack: reach the kernel's riskiest interfaces (new namespaces, mounts, tracing, keyrings, BPF,
perf, userfaultfd, io_uring, modules, kexec, reboot, swap). The seccomp filter must refuse each
with EPERM. The arguments are harmless (NULL pointers, invalid values): against a naive server
these calls fail with EFAULT/EINVAL/EBADF or succeed, never with EPERM as root."""

import errno
import platform

from conftest import code, run_json

# name: (x86_64 number, aarch64 number, arguments)
SYSCALLS = {
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
    "setdomainname": (171, 162, (0, 1000)),  # longer than allowed: EINVAL
}

# clone with a namespace flag, run in a child of the run: if the filter lets it through, the
# clone's child returns 0 here and must leave at once.
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17


def test_dangerous_syscalls_fail_with_eperm(server):
    machine = platform.machine()
    assert machine in ("x86_64", "aarch64"), f"no syscall table for {machine}: extend SYSCALLS"
    index = 0 if machine == "x86_64" else 1
    table = {name: (spec[index], spec[2]) for name, spec in SYSCALLS.items()}
    clone_nr = 56 if machine == "x86_64" else 220
    result = run_json(server, code(f'''
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        result = {{}}
        for name, (nr, args) in {table!r}.items():
            ctypes.set_errno(0)
            r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
            result[name] = [r, ctypes.get_errno()]
        ctypes.set_errno(0)
        r = libc.syscall(ctypes.c_long({clone_nr}), ctypes.c_long({CLONE_NEWUSER | SIGCHLD}),
                         ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
        if r == 0:
            os._exit(0)
        if r > 0:
            os.waitpid(r, 0)
        result["clone(CLONE_NEWUSER)"] = [r, ctypes.get_errno()]
        try:
            libc.unshare.restype = ctypes.c_int
            ctypes.set_errno(0)
            result["libc unshare(CLONE_NEWNS)"] = [libc.unshare(0x00020000), ctypes.get_errno()]
        except AttributeError:
            result["libc unshare(CLONE_NEWNS)"] = "missing"
        print(json.dumps(result))
    '''))
    allowed = {name: r for name, r in result.items() if r != [-1, errno.EPERM]}
    assert not allowed, (
        "these calls were not refused with EPERM ([return value, errno]): " + repr(allowed))
