/* File-descriptor helpers. Every fd received is made O_CLOEXEC at once (MSG_CMSG_CLOEXEC), so
 * nothing received can leak into a process that a later fork or exec starts. */
#include "util/fd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "util/macro.h"

int fd_send(int sock, const void *p, size_t n, const int *fds, size_t nfds) {
        struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
        union {
                char buf[CMSG_SPACE(sizeof(int) * FD_PASS_MAX)];
                struct cmsghdr align;
        } u;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

        if (nfds > FD_PASS_MAX)
                return -EINVAL;
        if (nfds > 0) {
                memset(&u, 0, sizeof u);
                msg.msg_control = u.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
        }
        for (;;) {
                ssize_t k = sendmsg(sock, &msg, MSG_NOSIGNAL);
                if (k >= 0)
                        return (size_t)k == n ? 0 : -EMSGSIZE;
                if (errno != EINTR)
                        return -errno;
        }
}

ssize_t fd_recv(int sock, void *p, size_t n, int *fds, size_t *nfds) {
        struct iovec iov = {.iov_base = p, .iov_len = n};
        union {
                char buf[CMSG_SPACE(sizeof(int) * FD_PASS_MAX)];
                struct cmsghdr align;
        } u;
        struct msghdr msg = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        size_t want = *nfds, got = 0;
        ssize_t k;

        *nfds = 0;
        do
                k = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;

        int bad = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? -EMSGSIZE : 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *in = (int *)CMSG_DATA(c);
                for (size_t i = 0; i < m; i++) {
                        if (!bad && got < want)
                                fds[got++] = in[i];
                        else {
                                close(in[i]);
                                bad = -EMSGSIZE;
                        }
                }
        }
        if (bad) {
                for (size_t i = 0; i < got; i++)
                        close(fds[i]);
                return bad;
        }
        *nfds = got;
        return k;
}

int fd_write_all(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t k = write(fd, c, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                c += k;
                n -= (size_t)k;
        }
        return 0;
}

int fd_read_file(const char *path, size_t max, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        size_t alloc = 4096, len = 0;
        _cleanup_free_ char *b = malloc(alloc);
        if (!b)
                return -ENOMEM;
        for (;;) {
                if (len + 1 >= alloc) {
                        if (alloc - 1 > max)
                                return -EFBIG;
                        char *nb = realloc(b, alloc * 2);
                        if (!nb)
                                return -ENOMEM;
                        b = nb;
                        alloc *= 2;
                }
                ssize_t k = read(fd, b + len, alloc - len - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                len += (size_t)k;
                if (len > max)
                        return -EFBIG;
        }
        b[len] = 0;
        *ret = TAKE_PTR(b);
        *ret_len = len;
        return 0;
}

int fd_write_file(const char *path, const char *s) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return fd_write_all(fd, s, strlen(s));
}

int fd_nonblock(int fd) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

ssize_t fd_copy(int out, int in, off_t size) {
        off_t off = 0;
        while (off < size) {
                ssize_t k = sendfile(out, in, &off, (size_t)(size - off));
                if (k < 0 && errno != EINTR)
                        return -errno;
                if (k == 0)
                        break;
        }
        return (ssize_t)off;
}

int fd_mkdir_p(char *path, mode_t mode) {
        for (char *s = path + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        int r = mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
                        *s = '/';
                        if (r < 0)
                                return r;
                }
        if (mkdir(path, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}
