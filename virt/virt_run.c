/*
 * virt_run.c - run a helper program (qemu-img) without a shell, bounded.
 *
 * The child gets /dev/null as stdin and stdout; its stderr is read through
 * a pipe and the last bytes are kept for the error message.  The parent
 * polls the pipe in 100 ms steps so that a cancellation flag or a timeout
 * ends the child (SIGTERM, then SIGKILL after 3 s).  argv never holds a
 * secret: cephx keys are read by the child from a keyring file.
 */
#define RS_LOG_MODULE "virt"
#include "virt/virt-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

extern char **environ;

#define TAIL_MAX 768

static void tail_add(char *tail, size_t *len, const char *buf, size_t n)
{
    if (n >= TAIL_MAX - 1) {
        buf += n - (TAIL_MAX - 1);
        n = TAIL_MAX - 1;
    }
    if (*len + n > TAIL_MAX - 1) {
        size_t drop = *len + n - (TAIL_MAX - 1);
        memmove(tail, tail + drop, *len - drop);
        *len -= drop;
    }
    memcpy(tail + *len, buf, n);
    *len += n;
    tail[*len] = '\0';
}

static void tail_clean(char *tail)
{
    size_t n = strlen(tail);
    for (size_t i = 0; i < n; i++)
        if (tail[i] == '\n' || tail[i] == '\r' || tail[i] == '"')
            tail[i] = ' ';
    while (n && tail[n - 1] == ' ')
        tail[--n] = '\0';
}

static int reap(pid_t pid, int *status, int kill_after_ms)
{
    uint64_t deadline = rs_now_ms() + (uint64_t)kill_after_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (rs_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return 0;
        }
        rs_sleep_ms(20);
    }
}

int rs_virt_run(char *const argv[], const atomic_bool *cancel, int timeout_s,
                rs_error *err)
{
    posix_spawn_file_actions_t fa;
    int pfd[2] = { -1, -1 };
    char tail[TAIL_MAX] = "";
    size_t tail_len = 0;
    uint64_t deadline = timeout_s > 0 ? rs_now_ms() + (uint64_t)timeout_s * 1000u : 0;
    pid_t pid;
    int rc, status = 0;
    bool eof = false, stopped = false;
    int why = 0;

    if (pipe2(pfd, O_CLOEXEC) < 0)
        return rs_error_set(err, -errno, "%s: pipe: %s", argv[0], strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return rs_error_set(err, -rc, "%s: cannot run: %s", argv[0], strerror(rc));
    }

    while (!eof) {
        struct pollfd p = { pfd[0], POLLIN, 0 };
        int n = poll(&p, 1, 100);
        if (n > 0) {
            char buf[512];
            ssize_t r = read(pfd[0], buf, sizeof(buf));
            if (r > 0)
                tail_add(tail, &tail_len, buf, (size_t)r);
            else if (r == 0 || (errno != EINTR && errno != EAGAIN))
                eof = true;
        }
        if (!stopped && cancel && atomic_load(cancel))
            why = -ECANCELED;
        else if (!stopped && deadline && rs_now_ms() >= deadline)
            why = -ETIMEDOUT;
        if (why && !stopped) {
            kill(pid, SIGTERM);
            stopped = true;
            break;
        }
    }
    close(pfd[0]);
    rc = reap(pid, &status, stopped ? 3000 : 24 * 3600 * 1000);
    if (rc < 0)
        return rs_error_set(err, rc, "%s: waitpid failed", argv[0]);
    if (why == -ECANCELED)
        return rs_error_set(err, why, "%s: cancelled", argv[0]);
    if (why == -ETIMEDOUT)
        return rs_error_set(err, why, "%s: timed out after %d s", argv[0], timeout_s);
    tail_clean(tail);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return rs_error_set(err, -EIO, "%s %s: exit status %d: %s", argv[0],
                            argv[1] ? argv[1] : "", WEXITSTATUS(status), tail);
    return rs_error_set(err, -EIO, "%s %s: killed by signal %d: %s", argv[0],
                        argv[1] ? argv[1] : "", WTERMSIG(status), tail);
}
