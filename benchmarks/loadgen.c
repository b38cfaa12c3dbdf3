/*
 * loadgen: a small, fast echo load generator for weft's benchmarks.
 *
 * N TCP connections to host:port, each playing ping-pong: send a message of
 * S bytes, wait until S bytes have come back, check its sequence stamp, send
 * the next.  One thread, level-triggered epoll, non-blocking sockets, no
 * allocation after start-up, one recv per readiness event.  Its user-space
 * work is a few dozen instructions per message; what it costs is the
 * kernel's TCP work for one recv and one send, the same as the cheapest
 * possible echo server (c_echo.c), so it can keep any server at least that
 * expensive saturated.
 *
 * Two modes:
 *   --duration D [--warmup W]  run W seconds unmeasured, then D measured;
 *   --count M                  every connection exchanges exactly M messages,
 *                              all of them measured (for syscall counting).
 *
 * --spin polls with a zero timeout instead of sleeping in epoll_wait.  On a
 * virtual machine, waking a sleeping vCPU costs the waker an inter-processor
 * interrupt and an exit to the hypervisor; a spinning client never needs
 * waking, so the server's CPU figure holds only the server's own work.  The
 * client then reports client_busy: the time of the polls that found work
 * and of that work, its true cost per message.
 *
 * With --server-pid, the server's CPU time over exactly the measured window
 * is read from its own accounting in /proc: utime+stime from
 * /proc/PID/stat (clock ticks) and the scheduler's nanosecond run time,
 * summed over /proc/PID/task/TID/schedstat.  The client's own CPU over the
 * window comes from getrusage.  The same schedstat files give, for both
 * sides, the time spent runnable but waiting for the core because another
 * task had it (server_waited, client_waited): a measure of how much
 * something else on the machine disturbed the run.
 *
 * Output, on success, is one line of key=value pairs on stdout:
 *   messages=... seconds=... server_cpu=... server_runtime=... client_cpu=...
 *   client_busy=... server_waited=... client_waited=... connections=... size=...
 * (CPU figures in seconds; -1 where not measured.)  Errors go to stderr with
 * exit status 1; a stalled server (no reply for --stall-timeout seconds) is
 * an error, so a run never hangs.
 *
 * Build: gcc -O2 -o loadgen loadgen.c   (benchmarks/native.py does this.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define HEADER 8 /* bytes of each message that carry its sequence number */

struct conn {
    int fd;
    int want_out;   /* EPOLLOUT registered: a send was partial */
    size_t sent;    /* bytes of the current message sent */
    size_t got;     /* bytes of the current reply received */
    uint64_t seq;   /* messages completed on this connection */
    unsigned char *wbuf;
    unsigned char *rbuf;
};

static size_t msg_size = 64;
static int epfd = -1;

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *message) {
    fprintf(stderr, "loadgen: %s\n", message);
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double own_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* utime+stime of a process, in seconds, from /proc/PID/stat; -1 if unreadable. */
static double proc_stat_cpu(int pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: fields are
       counted from the last ')'.  utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* From /proc/PID/task/TID/schedstat, summed over the process's threads: the
   scheduler's run time (user+system, nanosecond resolution) and the time
   spent runnable but waiting for a core (another task had it), in seconds.
   Both -1 if unavailable.  pid 0 means this process. */
struct sched_times {
    double run, wait;
};

static struct sched_times proc_schedstat(int pid) {
    struct sched_times times = {-1, -1};
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/task", pid);
    else
        snprintf(path, sizeof path, "/proc/self/task");
    DIR *dir = opendir(path);
    if (!dir) return times;
    unsigned long long run = 0, wait = 0;
    int found = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        char file[320];
        snprintf(file, sizeof file, "%s/%s/schedstat", path, entry->d_name);
        FILE *f = fopen(file, "r");
        if (!f) continue;
        unsigned long long task_run, task_wait;
        if (fscanf(f, "%llu %llu", &task_run, &task_wait) == 2) {
            run += task_run;
            wait += task_wait;
            found = 1;
        }
        fclose(f);
    }
    closedir(dir);
    if (found) {
        times.run = (double)run * 1e-9;
        times.wait = (double)wait * 1e-9;
    }
    return times;
}

struct snapshot {
    double wall, server_cpu, server_runtime, server_waited, client_cpu, client_waited;
    uint64_t messages;
};

static struct snapshot take(int server_pid, uint64_t messages) {
    struct snapshot s;
    struct sched_times server = {-1, -1};
    if (server_pid > 0) server = proc_schedstat(server_pid);
    s.server_cpu = server_pid > 0 ? proc_stat_cpu(server_pid) : -1;
    s.server_runtime = server.run;
    s.server_waited = server.wait;
    s.client_waited = proc_schedstat(0).wait;
    s.client_cpu = own_cpu();
    s.messages = messages;
    s.wall = now();
    return s;
}

static double diff(double end, double start) {
    return (end < 0 || start < 0) ? -1 : end - start;
}

static void set_out_interest(struct conn *c, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = on;
}

/* Send what is left of the current message; ask for EPOLLOUT only if the
   kernel took less than all of it. */
static void push(struct conn *c) {
    while (c->sent < msg_size) {
        ssize_t n = send(c->fd, c->wbuf + c->sent, msg_size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            die("send");
        }
        c->sent += (size_t)n;
    }
    int partial = c->sent < msg_size;
    if (partial != c->want_out) set_out_interest(c, partial);
}

static void start_message(struct conn *c) {
    uint64_t seq = c->seq;
    memcpy(c->wbuf, &seq, msg_size < HEADER ? msg_size : HEADER);
    c->sent = 0;
    c->got = 0;
    push(c);
}

static int connect_to(const struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0}; /* bounds the blocking connect */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) die("connect");
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
    struct timeval zero = {0, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof zero);
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) die("fcntl");
    return fd;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--connections N] [--size BYTES]\n"
            "               (--duration SEC [--warmup SEC] | --count MESSAGES_PER_CONNECTION)\n"
            "               [--server-pid PID] [--cpu CORE] [--spin] [--stall-timeout SEC]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, nconns = 1, server_pid = 0, cpu = -1, spin = 0;
    double duration = 0, warmup = 0, stall_timeout = 5;
    uint64_t count = 0;
    static const struct option options[] = {
        {"host", required_argument, 0, 'h'},       {"port", required_argument, 0, 'p'},
        {"connections", required_argument, 0, 'c'}, {"size", required_argument, 0, 's'},
        {"duration", required_argument, 0, 'd'},    {"warmup", required_argument, 0, 'w'},
        {"count", required_argument, 0, 'n'},       {"server-pid", required_argument, 0, 'P'},
        {"cpu", required_argument, 0, 'a'},         {"stall-timeout", required_argument, 0, 't'},
        {"spin", no_argument, 0, 'S'},
        {0, 0, 0, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 's': msg_size = (size_t)strtoull(optarg, NULL, 10); break;
        case 'd': duration = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'n': count = strtoull(optarg, NULL, 10); break;
        case 'P': server_pid = atoi(optarg); break;
        case 'a': cpu = atoi(optarg); break;
        case 't': stall_timeout = atof(optarg); break;
        case 'S': spin = 1; break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || nconns < 1 || msg_size < 1 || (duration > 0) == (count > 0) ||
        warmup < 0 || stall_timeout <= 0)
        usage();

    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
    }

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) fail("--host must be an IPv4 address");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct conn *conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) die("calloc");
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        c->wbuf = malloc(msg_size);
        c->rbuf = malloc(msg_size);
        if (!c->wbuf || !c->rbuf) die("malloc");
        for (size_t j = 0; j < msg_size; j++) c->wbuf[j] = (unsigned char)('a' + (i + j) % 26);
        c->fd = connect_to(&addr);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    }

    uint64_t messages = 0;
    int active = nconns; /* connections still exchanging (count mode) */
    double started = now();
    double measure_at = started + warmup;
    double stop_at = measure_at + duration;
    int measuring = count > 0 || warmup == 0;
    struct snapshot first = {0}, last = {0};
    if (measuring) first = take(server_pid, 0);
    double last_progress = now();

    for (int i = 0; i < nconns; i++) start_message(&conns[i]);

    struct epoll_event events[MAX_EVENTS];
    double busy = 0, busy_at_start = 0; /* wall time in polls that found work, and that work */
    for (;;) {
        double polled_at = spin ? now() : 0;
        int n = epoll_wait(epfd, events, MAX_EVENTS, spin ? 0 : 250);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        uint64_t before = messages;
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            uint32_t ev = events[i].events;
            if ((ev & EPOLLOUT) && c->want_out) push(c);
            if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t got = recv(c->fd, c->rbuf + c->got, msg_size - c->got, 0);
            if (got < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                die("recv");
            }
            if (got == 0) fail("the server closed a connection");
            if (c->got + (size_t)got > c->sent) fail("the server sent bytes that were never sent to it");
            c->got += (size_t)got;
            if (c->got < msg_size) continue;
            if (memcmp(c->rbuf, c->wbuf, msg_size < HEADER ? msg_size : HEADER) != 0)
                fail("the echo does not match the message sent");
            c->seq++;
            messages++;
            if (count > 0 && c->seq >= count) {
                c->sent = c->got = 0; /* any further byte from the server is an error */
                active--;
                continue;
            }
            start_message(c);
        }
        double t = now();
        if (n > 0 && spin) busy += t - polled_at;
        if (messages != before) {
            last_progress = t;
        } else if (t - last_progress > stall_timeout) {
            fail("no echo for the stall timeout: the server is stuck or gone");
        }
        if (count > 0) {
            if (active == 0) {
                last = take(server_pid, messages);
                break;
            }
        } else if (!measuring && t >= measure_at) {
            measuring = 1;
            first = take(server_pid, messages);
            busy_at_start = busy;
            stop_at = first.wall + duration;
        } else if (measuring && t >= stop_at) {
            last = take(server_pid, messages);
            break;
        }
    }

    for (int i = 0; i < nconns; i++) close(conns[i].fd);
    printf("messages=%llu seconds=%.6f server_cpu=%.6f server_runtime=%.9f client_cpu=%.6f "
           "client_busy=%.6f server_waited=%.6f client_waited=%.6f connections=%d size=%zu\n",
           (unsigned long long)(last.messages - first.messages), last.wall - first.wall,
           diff(last.server_cpu, first.server_cpu), diff(last.server_runtime, first.server_runtime),
           last.client_cpu - first.client_cpu, spin ? busy - busy_at_start : -1.0,
           diff(last.server_waited, first.server_waited), diff(last.client_waited, first.client_waited),
           nconns, msg_size);
    return 0;
}
