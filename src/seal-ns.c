/* The user namespace's id maps, both halves of the handshake in one place: userns_write_maps
 * runs in the zygote (the parent) for each new child, userns_wait_maps in the child (SEAL_SYNC,
 * the first step of seal.c's pipeline). A process cannot map an arbitrary host id for
 * itself; its parent, holding CAP_SETUID/CAP_SETGID in the namespace above, can. So the child waits on a pipe (SEAL_SYNC) until the zygote has written a one-line
 * map: inside id SANDBOX_INNER_ID is the host uid/gid of the sandbox's slot (SANDBOX_UID_RANGE,
 * or SANDBOX_UID/GID), an unprivileged id, and no other id (root included) exists inside. An
 * unprivileged zygote may only map its own ids, and must deny setgroups first; that is the
 * kernel's rule, not a choice. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "seal.h"
#include "util/fd.h"

/* Parent half: runs in the zygote, after clone and before it writes 'G' on the child's pipe. */
int userns_write_maps(pid_t pid, uint32_t host_uid, uint32_t host_gid) {
        char path[64], line[64];
        int r;

        if (geteuid() != 0) {
                host_uid = (uint32_t)geteuid();
                host_gid = (uint32_t)getegid();
                snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
                r = fd_write_file(path, "deny");
                if (r < 0)
                        return r;
        }
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
        snprintf(line, sizeof line, "%d %u 1\n", SANDBOX_INNER_ID, host_uid);
        r = fd_write_file(path, line);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
        snprintf(line, sizeof line, "%d %u 1\n", SANDBOX_INNER_ID, host_gid);
        return fd_write_file(path, line);
}

/* Child half: runs in the child, before anything else of the pipeline. */
int userns_wait_maps(int sync_fd) {
        char c;
        ssize_t k;
        do
                k = read(sync_fd, &c, 1);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        if (k == 0 || c != 'G')
                return -EPERM; /* the zygote could not map our ids: it closed the pipe */
        return 0;
}
