/* File-descriptor helpers: passing fds over unix sockets, whole reads and writes. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#define FD_PASS_MAX 8

/* Sends one message of n bytes with nfds fds attached (SCM_RIGHTS). Returns 0 or -errno. */
int fd_send(int sock, const void *p, size_t n, const int *fds, size_t nfds);

/* Receives one message into p (at most n bytes) and up to *nfds fds, which are O_CLOEXEC.
 * Sets *nfds to the number received and returns the message length (0 at EOF), or -errno.
 * A truncated message or control data is -EMSGSIZE, and any fds that came with it are closed. */
ssize_t fd_recv(int sock, void *p, size_t n, int *fds, size_t *nfds);

/* write(2) until all of p is written, retrying on EINTR. Returns 0 or -errno. */
int fd_write_all(int fd, const void *p, size_t n);

/* Reads at most max bytes of a file into a malloc'ed NUL-terminated buffer. A longer file is
 * -EFBIG. Returns 0 and sets *ret, *ret_len, or -errno. */
int fd_read_file(const char *path, size_t max, char **ret, size_t *ret_len);

/* Writes a short string to a file (for /proc and cgroup knobs). Returns 0 or -errno. */
int fd_write_file(const char *path, const char *s);

int fd_nonblock(int fd);

/* Copies up to size bytes from in (from its start) to out with sendfile. Returns the number of
 * bytes copied, less than size when in ended early, or -errno. */
ssize_t fd_copy(int out, int in, off_t size);

/* mkdir -p: creates path's missing parents (mode 0755) and path itself (mode), which may
 * already exist. path is modified while it works and restored. Returns 0 or -errno. */
int fd_mkdir_p(char *path, mode_t mode);
