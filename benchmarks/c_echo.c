/*
 * c_echo: the floor.  The cheapest TCP echo server this machine can run: C,
 * one thread, level-triggered epoll, one recv and one send per readiness
 * event, no allocation.  The benchmarks run it as the "c-epoll" server so
 * that every table shows what the kernel's TCP stack alone costs per echoed
 * message, and that the load generator can saturate even this server.
 *
 * Usage: c_echo [--cpu CORE]
 * Listens on a free 127.0.0.1 port, prints "READY <port> <pid>" and serves
 * until killed.  It does not buffer: if the kernel takes only part of a
 * reply it waits (blocking poll on that socket) for room, which a ping-pong
 * client never makes it do.
 *
 * Build: gcc -O2 -o c_echo c_echo.c   (benchmarks/native.py does this.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "c_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Send all of buf, waiting for room if the kernel's buffer is full. */
static int send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) return -1;
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 5000) <= 0) return -1;
            continue;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--cpu") == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(atoi(argv[2]), &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
    } else if (argc != 1) {
        fprintf(stderr, "usage: c_echo [--cpu CORE]\n");
        return 2;
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 1024) < 0) die("listen");
    socklen_t len = sizeof addr;
    if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0) die("getsockname");

    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev) < 0) die("epoll_ctl");

    printf("READY %d %d\n", ntohs(addr.sin_port), (int)getpid());
    fflush(stdout);

    static char buf[64 * 1024];
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int conn;
                while ((conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = conn};
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &cev) < 0) die("epoll_ctl");
                }
                continue;
            }
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (got <= 0 || send_all(fd, buf, (size_t)got) < 0) close(fd); /* EOF or error */
        }
    }
}
