/*
 * c_uring_echo: the completion model's floor.  A TCP echo server in C on
 * io_uring, shaped like weft's completion driver (drivers/completion): a
 * multishot accept, a receive kept armed per connection (armed again at
 * once into the connection's other buffer when one completes), at most one
 * send in flight per connection, SINGLE_ISSUER | DEFER_TASKRUN, and one
 * io_uring_enter a turn that hands over what was prepared and waits for a
 * completion.  No Python: what it costs a message is what the kernel's
 * completion path costs, the least any completion driver could, as
 * c_echo.c is for readiness (epoll).
 *
 * Usage: c_uring_echo [--cpu CORE] [--mode driver|poll-first|multishot]
 *   driver      the completion driver's shape (above);
 *   poll-first  the same, each receive flagged IORING_RECVSEND_POLL_FIRST
 *               (the socket was just drained: skip the first try);
 *   multishot   the cheapest form io_uring offers: one multishot receive
 *               per connection on a ring of provided buffers, each reply
 *               sent straight from the buffer that received it, which goes
 *               back to the ring when the send completes (no copy in user
 *               space, no receive armed again per message).
 * Listens on a free 127.0.0.1 port, prints "READY <port> <pid>" and serves
 * until killed.  A ping-pong client never has a connection send while
 * another of its replies is in flight; should one, the reply waits.
 *
 * The ring is driven with the three system calls and the kernel's own header
 * (<linux/io_uring.h>, which comes with the C library's headers), as weft's
 * own binding does, so that it builds wherever c_echo.c does.
 *
 * Build: gcc -O2 -o c_uring_echo c_uring_echo.c   (benchmarks/native.py does this.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUFFER_SIZE (64 * 1024)
#define MAX_FD 4096
#define PROVIDED 256 /* buffers in the multishot mode's ring */
#define GROUP 1

enum { ACCEPT = 1, RECV = 2, SEND = 3, SEND_PROVIDED = 4 };
enum { MODE_DRIVER, MODE_POLL_FIRST, MODE_MULTISHOT };

typedef struct {
    char *buffer[2];
    int current;        /* the buffer the armed receive fills */
    int sending;        /* a send is in flight */
    char *pending;      /* what it sends */
    size_t length;
    char *waiting;      /* a reply that came while one was in flight */
    size_t waiting_length;
} Connection;

static Connection connections[MAX_FD];
static int mode = MODE_DRIVER;
static struct io_uring_buf_ring *provided;
static char *provided_memory;

/* The ring: its descriptor and the queues it shares with the kernel. */
static struct {
    int fd;
    unsigned *sq_head, *sq_tail, sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    unsigned tail;       /* entries prepared */
    unsigned entries;
} ring;

static void die(const char *what, int code) {
    fprintf(stderr, "c_uring_echo: %s: %s\n", what, strerror(code));
    exit(1);
}

static void ring_setup(unsigned entries) {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL
                 | IORING_SETUP_CQSIZE;
    params.cq_entries = 8192;
    ring.fd = (int)syscall(__NR_io_uring_setup, entries, &params);
    if (ring.fd < 0) {
        die("io_uring_setup", errno);
    }
    size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
    if (cq_size > sq_size) {
        sq_size = cq_size; /* one mapping serves both (IORING_FEAT_SINGLE_MMAP, Linux 5.4) */
    }
    char *queues = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd,
                        IORING_OFF_SQ_RING);
    ring.sqes = mmap(NULL, params.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
    if (queues == MAP_FAILED || ring.sqes == MAP_FAILED) {
        die("mmap", errno);
    }
    ring.sq_head = (unsigned *)(queues + params.sq_off.head);
    ring.sq_tail = (unsigned *)(queues + params.sq_off.tail);
    ring.sq_mask = *(unsigned *)(queues + params.sq_off.ring_mask);
    ring.sq_array = (unsigned *)(queues + params.sq_off.array);
    ring.cq_head = (unsigned *)(queues + params.cq_off.head);
    ring.cq_tail = (unsigned *)(queues + params.cq_off.tail);
    ring.cq_mask = *(unsigned *)(queues + params.cq_off.ring_mask);
    ring.cqes = (struct io_uring_cqe *)(queues + params.cq_off.cqes);
    ring.entries = params.sq_entries;
    ring.tail = *ring.sq_tail;
}

/* Hand over what is prepared and wait for at least one completion. */
static void ring_enter(void) {
    unsigned head = __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE);
    __atomic_store_n(ring.sq_tail, ring.tail, __ATOMIC_RELEASE);
    long code = syscall(__NR_io_uring_enter, ring.fd, ring.tail - head, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    if (code < 0 && errno != EINTR && errno != ETIME && errno != EAGAIN && errno != EBUSY) {
        die("io_uring_enter", errno);
    }
}

/* Hand over what is prepared without waiting (the queue is full). */
static void ring_submit(void) {
    unsigned head = __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE);
    __atomic_store_n(ring.sq_tail, ring.tail, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring.fd, ring.tail - head, 0, 0, NULL, 0) < 0 && errno != EINTR) {
        die("io_uring_enter", errno);
    }
}

static struct io_uring_sqe *entry(void) {
    if (ring.tail - __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE) >= ring.entries) {
        ring_submit();
    }
    unsigned index = ring.tail & ring.sq_mask;
    struct io_uring_sqe *sqe = &ring.sqes[index];
    memset(sqe, 0, sizeof *sqe);
    ring.sq_array[index] = index;
    ring.tail++;
    return sqe;
}

static void tag(struct io_uring_sqe *sqe, unsigned long long index, int kind) {
    sqe->user_data = (index << 8) | (unsigned long long)kind;
}

static void prepare(struct io_uring_sqe *sqe, int opcode, int fd, const void *addr, size_t length) {
    sqe->opcode = (unsigned char)opcode;
    sqe->fd = fd;
    sqe->addr = (unsigned long)addr;
    sqe->len = (unsigned)length;
}

static void arm_accept(int listener) {
    struct io_uring_sqe *sqe = entry();
    prepare(sqe, IORING_OP_ACCEPT, listener, NULL, 0);
    sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    tag(sqe, 0, ACCEPT);
}

static void arm_receive(int fd) {
    struct io_uring_sqe *sqe = entry();
    if (mode == MODE_MULTISHOT) {
        prepare(sqe, IORING_OP_RECV, fd, NULL, 0);
        sqe->ioprio = IORING_RECV_MULTISHOT;
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = GROUP;
    }
    else {
        Connection *c = &connections[fd];
        prepare(sqe, IORING_OP_RECV, fd, c->buffer[c->current], BUFFER_SIZE);
        if (mode == MODE_POLL_FIRST) {
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        }
    }
    tag(sqe, (unsigned long long)fd, RECV);
}

static void send_reply(int fd, char *data, size_t length) {
    Connection *c = &connections[fd];
    struct io_uring_sqe *sqe = entry();
    prepare(sqe, IORING_OP_SEND, fd, data, length);
    sqe->msg_flags = MSG_NOSIGNAL;
    tag(sqe, (unsigned long long)fd, SEND);
    c->sending = 1;
    c->pending = data;
    c->length = length;
}

/* Put buffer id back in the provided ring, for the kernel to take again. */
static void give_back(int id) {
    unsigned short tail = provided->tail;
    struct io_uring_buf *buffer = &provided->bufs[tail & (PROVIDED - 1)];
    buffer->addr = (unsigned long)(provided_memory + (size_t)id * BUFFER_SIZE);
    buffer->len = BUFFER_SIZE;
    buffer->bid = (unsigned short)id;
    __atomic_store_n(&provided->tail, (unsigned short)(tail + 1), __ATOMIC_RELEASE);
}

static void setup_provided(void) {
    if (posix_memalign((void **)&provided, 4096, PROVIDED * sizeof(struct io_uring_buf)) != 0
        || (provided_memory = malloc((size_t)PROVIDED * BUFFER_SIZE)) == NULL) {
        die("malloc", ENOMEM);
    }
    memset(provided, 0, PROVIDED * sizeof(struct io_uring_buf));
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)provided;
    reg.ring_entries = PROVIDED;
    reg.bgid = GROUP;
    if (syscall(__NR_io_uring_register, ring.fd, IORING_REGISTER_PBUF_RING, &reg, 1) != 0) {
        die("IORING_REGISTER_PBUF_RING", errno);
    }
    for (int id = 0; id < PROVIDED; id++) {
        give_back(id);
    }
}

static void completed(int listener, struct io_uring_cqe *cqe) {
    int kind = (int)(cqe->user_data & 0xff);
    int index = (int)(cqe->user_data >> 8);
    int res = cqe->res;
    int one = 1;
    Connection *c = &connections[index];
    switch (kind) {
    case ACCEPT:
        if (res >= 0 && res < MAX_FD) {
            setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            Connection *new = &connections[res];
            if (new->buffer[0] == NULL && mode != MODE_MULTISHOT) {
                new->buffer[0] = malloc(BUFFER_SIZE);
                new->buffer[1] = malloc(BUFFER_SIZE);
            }
            new->current = 0;
            new->sending = 0;
            new->waiting = NULL;
            arm_receive(res);
        }
        else if (res >= 0) {
            close(res);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            arm_accept(listener);
        }
        break;
    case RECV:
        if (mode == MODE_MULTISHOT) {
            if (res == -ENOBUFS) {
                arm_receive(index);
            }
            else if (res <= 0) {
                close(index);
            }
            else {
                int id = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
                struct io_uring_sqe *sqe = entry();
                prepare(sqe, IORING_OP_SEND, index, provided_memory + (size_t)id * BUFFER_SIZE, (size_t)res);
                sqe->msg_flags = MSG_NOSIGNAL;
                tag(sqe, (unsigned long long)id, SEND_PROVIDED);
                if (!(cqe->flags & IORING_CQE_F_MORE)) {
                    arm_receive(index);
                }
            }
            break;
        }
        if (res <= 0) {
            close(index);
            break;
        }
        if (c->sending) {
            c->waiting = c->buffer[c->current];
            c->waiting_length = (size_t)res;
        }
        else {
            send_reply(index, c->buffer[c->current], (size_t)res);
        }
        c->current ^= 1;
        arm_receive(index);
        break;
    case SEND:
        if (res < 0) {
            break; /* the receive's end closes it */
        }
        if ((size_t)res < c->length) {
            send_reply(index, c->pending + res, c->length - (size_t)res);
            break;
        }
        c->sending = 0;
        if (c->waiting != NULL) {
            char *data = c->waiting;
            c->waiting = NULL;
            send_reply(index, data, c->waiting_length);
        }
        break;
    case SEND_PROVIDED:
        /* A ping-pong reply fits the socket's buffer: sent whole, or failed. */
        give_back(index);
        break;
    }
}

int main(int argc, char **argv) {
    int cpu = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cpu") == 0 && i + 1 < argc) {
            cpu = atoi(argv[++i]);
        }
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
            const char *name = argv[++i];
            mode = strcmp(name, "poll-first") == 0 ? MODE_POLL_FIRST
                 : strcmp(name, "multishot") == 0  ? MODE_MULTISHOT
                                                   : MODE_DRIVER;
        }
    }
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            die("sched_setaffinity", errno);
        }
    }
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0
        || listen(listener, 1024) != 0 || getsockname(listener, (struct sockaddr *)&address, &length) != 0) {
        die("listen", errno);
    }
    ring_setup(1024);
    if (mode == MODE_MULTISHOT) {
        setup_provided();
    }
    arm_accept(listener);
    printf("READY %d %d\n", ntohs(address.sin_port), getpid());
    fflush(stdout);
    for (;;) {
        ring_enter();
        unsigned head = *ring.cq_head;
        unsigned tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
        for (; head != tail; head++) {
            completed(listener, &ring.cqes[head & ring.cq_mask]);
        }
        __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
    }
}
