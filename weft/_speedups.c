/* weft._speedups: the reactor's per-message work below the protocol, in C.
 *
 * Optional: weft runs the same without it, in pure Python (the selection is
 * drivers/_core/accelerator.py; WEFT_PURE_PYTHON=1 forces the pure path).
 * Four parts, each with the Python it replaces written out beside it (or
 * named, for the completion driver's, whose Python is in _ring_poller.py):
 *
 *   - DescriptorReader and DescriptorWriter: a reader and a writer bound to
 *     one non-blocking descriptor, drop-in replacements for
 *     ``functools.partial(os.read, fd)`` and ``functools.partial(os.write,
 *     fd)``, with the same results and the same exceptions.  What they save
 *     per call (see docs/performance.md, "The C accelerator"): the partial's
 *     call and os's argument parsing (they are vectorcall objects that take
 *     their one argument as it is); releasing the GIL around the system call
 *     and taking it back (a few hundred instructions each way); and, for a
 *     small read, the 64 KiB bytes object that os.read allocates and then
 *     shrinks (the read goes into a spare buffer kept here, and only what
 *     arrived is copied out into a bytes object of its size).
 *   - Dispatcher: the reactor loop's handing out of a poll's events, and on
 *     epoll the wait itself (see "dispatch" below).
 *   - loop_calls() and transport_is_closing: weft's asyncio event loop's
 *     call_soon, its running of the ready handles and get_debug, and its
 *     transports' is_closing (see "the asyncio event loop" below).
 *   - RingCore and RingTurn (Linux): the completion driver's turn, its
 *     enter, reaping and handing out of completions, with receives straight
 *     into the bytes delivered (see "completion driver" below).
 *
 * It needs the GIL (a free-threaded build of CPython turns the GIL on to
 * import it, as for any module that does not say otherwise), and keeps its
 * state in process-wide statics, with single-phase initialisation: one
 * interpreter per process (CPython refuses such a module in an isolated
 * subinterpreter).
 *
 * Why holding the GIL through read(2) and write(2) is safe: the reactor's
 * descriptors are non-blocking (sockets, pipes, FIFOs and terminals, each set
 * O_NONBLOCK by weft; the Python side hands a regular file or a block device,
 * which O_NONBLOCK does not stop from waiting on a disk, to os's calls
 * instead).  Such a call returns at once with what the kernel has (or room
 * for), or EAGAIN: it never waits for the peer.  What it costs other threads
 * is that they cannot run Python code for the length of that one system call
 * (a copy of at most 64 KiB in the kernel, microseconds), as with any C
 * extension that makes a short call; uvloop makes its reads and writes the
 * same way.  The case to know: a descriptor someone else turned back to
 * blocking (O_NONBLOCK belongs to the open file, which may be shared) would
 * block every thread, not only the loop's, until it is ready.
 *
 * The spare buffer is shared by every reader of the process.  That is safe
 * because the GIL is held from the read to the copy; it is taken again from
 * the module on every attempt, since a signal handler run between attempts
 * (EINTR) may itself read.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/epoll.h>
#define WEFT_HAS_EPOLL 1
#endif

/* The size of the spare buffer: the reactor's read size (READ_SIZE). */
#define SPARE_SIZE (64 * 1024)

/* A read of at most this many bytes is copied out of the spare into a new
 * bytes object of its size; a larger one takes the spare itself, shrunk in
 * place (as os.read does with its buffer), and a new spare is made for the
 * next read.  Copying is cheaper than allocating and shrinking 64 KiB for a
 * small read, and dearer for a large one. */
#define COPY_LIMIT (4 * 1024)

/* A bytes object of SPARE_SIZE that no one else holds, or NULL. */
static PyObject *spare = NULL;

typedef struct {
    PyObject_HEAD
    int fd;
    vectorcallfunc vectorcall;
} BoundCall;

/* ------------------------------------------------------------ arguments */

static int
one_argument(const char *name, size_t nargsf, PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", name);
        return -1;
    }
    if (PyVectorcall_NARGS(nargsf) != 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly one argument (%zd given)", name,
                     PyVectorcall_NARGS(nargsf));
        return -1;
    }
    return 0;
}

static int
fd_of(PyObject *arg, int *fd)
{
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "file descriptor out of range for a C int");
        return -1;
    }
    *fd = (int)value;
    return 0;
}

/* -------------------------------------------------------------- reading */

/* os.read's way, for a read larger than the spare: a bytes object of the
 * size asked for, shrunk to what arrived. */
static PyObject *
read_into_new(int fd, Py_ssize_t size)
{
    PyObject *buffer = PyBytes_FromStringAndSize(NULL, size);
    if (buffer == NULL) {
        return NULL;
    }
    ssize_t count;
    while ((count = read(fd, PyBytes_AS_STRING(buffer), (size_t)size)) < 0) {
        if (errno != EINTR) {
            Py_DECREF(buffer);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (PyErr_CheckSignals() < 0) {
            Py_DECREF(buffer);
            return NULL;
        }
    }
    if (count != size && _PyBytes_Resize(&buffer, count) < 0) {
        return NULL;
    }
    return buffer;
}

static PyObject *
read_bytes(int fd, Py_ssize_t size)
{
    if (size < 0) {
        /* os.read's answer to a negative size. */
        errno = EINVAL;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (size > SPARE_SIZE) {
        return read_into_new(fd, size);
    }
    ssize_t count;
    for (;;) {
        if (spare == NULL && (spare = PyBytes_FromStringAndSize(NULL, SPARE_SIZE)) == NULL) {
            return NULL;
        }
        count = read(fd, PyBytes_AS_STRING(spare), (size_t)size);
        if (count >= 0) {
            break;
        }
        if (errno != EINTR) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        /* os's rule (PEP 475): run the signal handlers, then try again,
         * unless a handler raised. */
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
    }
    if (count <= COPY_LIMIT) {
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(spare), count);
    }
    PyObject *data = spare;
    spare = NULL;
    if (_PyBytes_Resize(&data, count) < 0) {
        return NULL;
    }
    return data;
}

static PyObject *
reader_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (one_argument("DescriptorReader", nargsf, kwnames) < 0) {
        return NULL;
    }
    Py_ssize_t size = PyLong_CheckExact(args[0]) ? PyLong_AsSsize_t(args[0])
                                                 : PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return read_bytes(((BoundCall *)self)->fd, size);
}

/* -------------------------------------------------------------- writing */

static Py_ssize_t
write_buffer(int fd, const char *data, Py_ssize_t length)
{
    ssize_t count;
    while ((count = write(fd, data, (size_t)length)) < 0) {
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
    }
    return count;
}

static PyObject *
writer_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (one_argument("DescriptorWriter", nargsf, kwnames) < 0) {
        return NULL;
    }
    int fd = ((BoundCall *)self)->fd;
    PyObject *data = args[0];
    Py_ssize_t count;
    if (PyBytes_CheckExact(data)) {
        /* The reactor's hot path: no buffer to export and release. */
        count = write_buffer(fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
    }
    else {
        /* What os.write accepts: any C-contiguous buffer.  The export holds
         * a bytearray's size while a signal handler runs (EINTR). */
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        if (!PyBuffer_IsContiguous(&view, 'C')) {
            PyBuffer_Release(&view);
            PyErr_Format(PyExc_TypeError, "DescriptorWriter() argument must be a contiguous buffer, not %.200s",
                         Py_TYPE(data)->tp_name);
            return NULL;
        }
        count = write_buffer(fd, view.buf, view.len);
        PyBuffer_Release(&view);
    }
    if (count < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(count);
}

/* ---------------------------------------------------------------- types */

static PyObject *
bound_call_new(PyTypeObject *type, PyObject *args, PyObject *kwargs, vectorcallfunc call)
{
    PyObject *fd_arg;
    static char *keywords[] = {"fd", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O", keywords, &fd_arg)) {
        return NULL;
    }
    int fd;
    if (fd_of(fd_arg, &fd) < 0) {
        return NULL;
    }
    BoundCall *self = (BoundCall *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fd = fd;
    self->vectorcall = call;
    return (PyObject *)self;
}

static PyObject *
reader_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return bound_call_new(type, args, kwargs, reader_vectorcall);
}

static PyObject *
writer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    return bound_call_new(type, args, kwargs, writer_vectorcall);
}

static PyObject *
bound_call_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<%s fd=%d>", Py_TYPE(self)->tp_name, ((BoundCall *)self)->fd);
}

static PyMemberDef bound_call_members[] = {
    {"fd", T_INT, offsetof(BoundCall, fd), READONLY, "The descriptor this reads or writes."},
    {NULL},
};

static PyTypeObject DescriptorReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weft._speedups.DescriptorReader",
    .tp_doc = PyDoc_STR(
        "DescriptorReader(fd)\n--\n\n"
        "reader(size) is os.read(fd, size), with the GIL held (fd must be non-blocking).\n\n"
        "The same bytes and the same exceptions as os.read: BlockingIOError when\n"
        "nothing is there, b'' at EOF, OSError with the errno otherwise."),
    .tp_basicsize = sizeof(BoundCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = reader_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(BoundCall, vectorcall),
    .tp_repr = bound_call_repr,
    .tp_members = bound_call_members,
};

static PyTypeObject DescriptorWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weft._speedups.DescriptorWriter",
    .tp_doc = PyDoc_STR(
        "DescriptorWriter(fd)\n--\n\n"
        "writer(data) is os.write(fd, data), with the GIL held (fd must be non-blocking).\n\n"
        "data is any C-contiguous buffer (bytes, bytearray, memoryview); the result\n"
        "is how many bytes the kernel took, and the exceptions are os.write's."),
    .tp_basicsize = sizeof(BoundCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = writer_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(BoundCall, vectorcall),
    .tp_repr = bound_call_repr,
    .tp_members = bound_call_members,
};

/* ----------------------------------------------------------- dispatch */

/* The reactor's handing out of one poll's events (Reactor._loop in
 * drivers/reactor/_loop.py), as one call per turn.  It does what the Python
 * loop there does, event by event and in the same order, and routes every
 * exception to the same hooks:
 *
 *   for fd, mask in events:
 *       if mask == READABLE:
 *           stream = streams.get(fd)
 *           if stream is not None:
 *               try: data = stream._recv(read_size)
 *               except (BlockingIOError, InterruptedError): continue
 *               except OSError as exc: stream._recv_failed(exc); continue
 *               try:
 *                   if data: stream._protocol.data_received(data)
 *                   else: stream._eof()
 *               except Exception as exc: stream._callback_failed(exc)
 *               continue
 *           [readers.get(fd), called as below]; continue
 *       if mask & read_events: [readers.get(fd)(), or reactor._fd_callback_failed(fd, exc)]
 *       if mask & write_events: [writers.get(fd)(), the same]
 *
 * An exception that is no Exception (KeyboardInterrupt, SystemExit) leaves
 * at once, the rest of the events unhandled, as from the Python loop.  What
 * it saves is the interpreter's work between the calls: unpacking, the mask
 * test, the look-ups and attribute loads.
 *
 * On epoll, dispatcher.turn(timeout, before_dispatch, always_ready) is the
 * whole of the loop's I/O step, in place of
 *
 *   events = poller.poll(timeout)        # select.epoll.poll
 *   if before_dispatch is not None: before_dispatch()
 *   if always_ready: events += always_ready.items()
 *   [the loop above]
 *
 * with epoll_wait made here, into an array of its own: no (fd, mask) tuple
 * per event, no list, no array allocated per call.  Its rules are
 * select.epoll.poll's: at most 1023 events; the timeout in seconds, rounded
 * up to milliseconds, negative for none; EINTR runs the signal handlers and
 * waits again for what is left of the timeout, unless a handler raised.  The
 * GIL is released around a wait that can block, and kept for a timeout of 0. */

/* select.epoll.poll's default number of events per call (FD_SETSIZE - 1). */
#define MAX_EVENTS 1023

typedef struct {
    PyObject_HEAD
    PyObject *reactor;
    PyObject *streams;
    PyObject *readers;
    PyObject *writers;
    PyObject *read_size;
    long readable;
    long read_events;
    long write_events;
    vectorcallfunc vectorcall;
    int epoll_fd;                 /* -1: no turn(), only dispatcher(events) */
    int dispatching;              /* in turn(): its events are in use */
#ifdef WEFT_HAS_EPOLL
    struct epoll_event *events;   /* MAX_EVENTS of them, for turn() */
#endif
} Dispatcher;

static PyObject *str_recv, *str_protocol, *str_data_received, *str_eof, *str_recv_failed,
    *str_callback_failed, *str_fd_callback_failed;

/* "except ... as exc: owner.hook(*first, exc)", for the exception being
 * raised: the hook runs with it as the exception being handled, so that one
 * it raises gets it as __context__, as in the Python loop.  (One difference
 * no caller here can see: afterwards the thread's innermost handled
 * exception is what sys.exception() said before, where the Python loop puts
 * back its own frame's, which differs only inside a generator run while an
 * outer exception is being handled.) */
static int
handle(PyObject *owner, PyObject *hook, PyObject *first)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *type, *exc, *traceback;
    PyErr_Fetch(&type, &exc, &traceback);
    PyErr_NormalizeException(&type, &exc, &traceback);
    if (traceback != NULL) {
        PyException_SetTraceback(exc, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
#endif
    PyObject *handled = PyErr_GetHandledException();
    PyErr_SetHandledException(exc);
    PyObject *args[3] = {owner, first, exc};
    PyObject *result = first == NULL
        ? PyObject_VectorcallMethod(hook, (PyObject *[]){owner, exc}, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
        : PyObject_VectorcallMethod(hook, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    PyErr_SetHandledException(handled);
    Py_XDECREF(handled);
    Py_DECREF(exc);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* A plain readable event for a stream transport: read, and hand the bytes
 * (or the EOF) to its protocol. */
static int
read_stream(Dispatcher *self, PyObject *stream)
{
    PyObject *recv = PyObject_GetAttr(stream, str_recv);
    PyObject *data = recv == NULL ? NULL : PyObject_CallOneArg(recv, self->read_size);
    Py_XDECREF(recv);
    if (data == NULL) {
        if (PyErr_ExceptionMatches(PyExc_BlockingIOError) || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
            PyErr_Clear();
            return 0;
        }
        if (PyErr_ExceptionMatches(PyExc_OSError)) {
            return handle(stream, str_recv_failed, NULL);
        }
        return -1;
    }
    PyObject *result = NULL;
    int has_data = PyObject_IsTrue(data);
    if (has_data > 0) {
        PyObject *protocol = PyObject_GetAttr(stream, str_protocol);
        if (protocol != NULL) {
            result = PyObject_CallMethodOneArg(protocol, str_data_received, data);
            Py_DECREF(protocol);
        }
    }
    else if (has_data == 0) {
        result = PyObject_CallMethodNoArgs(stream, str_eof);
    }
    Py_DECREF(data);
    if (result != NULL) {
        Py_DECREF(result);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        return handle(stream, str_callback_failed, NULL);
    }
    return -1;
}

/* callbacks.get(fd)(), its Exception to reactor._fd_callback_failed(fd, exc). */
static int
run_callback(Dispatcher *self, PyObject *callbacks, PyObject *fd)
{
    PyObject *callback = PyDict_GetItemWithError(callbacks, fd);
    if (callback == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(callback);  /* it may unregister itself */
    PyObject *result = PyObject_CallNoArgs(callback);
    Py_DECREF(callback);
    if (result != NULL) {
        Py_DECREF(result);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        return handle(self->reactor, str_fd_callback_failed, fd);
    }
    return -1;
}

static int
dispatch_event(Dispatcher *self, PyObject *fd, long mask)
{
    if (mask == self->readable) {
        PyObject *stream = PyDict_GetItemWithError(self->streams, fd);
        if (stream != NULL) {
            Py_INCREF(stream);  /* its protocol may close it, and so unregister it */
            int done = read_stream(self, stream);
            Py_DECREF(stream);
            return done;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
        return run_callback(self, self->readers, fd);
    }
    if ((mask & self->read_events) && run_callback(self, self->readers, fd) < 0) {
        return -1;
    }
    if ((mask & self->write_events) && run_callback(self, self->writers, fd) < 0) {
        return -1;
    }
    return 0;
}

static int
dispatch_one(Dispatcher *self, PyObject *event)
{
    if (!PyTuple_CheckExact(event) || PyTuple_GET_SIZE(event) != 2) {
        PyErr_Format(PyExc_TypeError, "a poller's event is an (fd, mask) tuple, not %.200R", event);
        return -1;
    }
    long mask = PyLong_AsLong(PyTuple_GET_ITEM(event, 1));
    if (mask == -1 && PyErr_Occurred()) {
        return -1;
    }
    return dispatch_event(self, PyTuple_GET_ITEM(event, 0), mask);
}

/* A poll's list of (fd, mask) events (a Poller's poll returns a list). */
static int
dispatch_events(Dispatcher *self, PyObject *events)
{
    if (!PyList_Check(events)) {
        PyErr_Format(PyExc_TypeError, "a poller's events are a list, not %.200s", Py_TYPE(events)->tp_name);
        return -1;
    }
    /* Indexed, its length read each time: what the Python loop's list
     * iterator does. */
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(events); index++) {
        PyObject *event = PyList_GET_ITEM(events, index);
        Py_INCREF(event);
        int done = dispatch_one(self, event);
        Py_DECREF(event);
        if (done < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
dispatcher_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (one_argument("Dispatcher", nargsf, kwnames) < 0) {
        return NULL;
    }
    if (dispatch_events((Dispatcher *)self, args[0]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

#ifdef WEFT_HAS_EPOLL
static long long
monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* epoll_wait into self->events, as select.epoll.poll waits: how many
 * events came, or -1 with an exception set. */
static int
wait_for_events(Dispatcher *self, double timeout)
{
    if (isnan(timeout)) {
        PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
        return -1;
    }
    double rounded = ceil(timeout * 1e3);
    if (rounded > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "timeout is too large");
        return -1;
    }
    int ms = rounded < 0 ? -1 : (int)rounded;
    long long deadline = ms > 0 ? monotonic_ms() + ms : 0;
    for (;;) {
        int count;
        if (ms == 0) {
            /* Returns at once: no other thread needs the GIL meanwhile. */
            count = epoll_wait(self->epoll_fd, self->events, MAX_EVENTS, 0);
        }
        else {
            Py_BEGIN_ALLOW_THREADS
            count = epoll_wait(self->epoll_fd, self->events, MAX_EVENTS, ms);
            Py_END_ALLOW_THREADS
        }
        if (count >= 0) {
            return count;
        }
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
        if (ms > 0) {
            long long left = deadline - monotonic_ms();
            if (left < 0) {
                return 0;  /* the time is up: no events, as epoll.poll */
            }
            ms = (int)left;
        }
    }
}

#endif

static PyObject *
dispatcher_turn(Dispatcher *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "turn() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
#ifndef WEFT_HAS_EPOLL
    PyErr_SetString(PyExc_RuntimeError, "turn() waits on epoll, which this system does not have");
    return NULL;
#else
    PyObject *before_dispatch = args[1], *always_ready = args[2];
    if (!PyDict_Check(always_ready)) {
        PyErr_SetString(PyExc_TypeError, "turn(): always_ready must be a dict");
        return NULL;
    }
    if (self->epoll_fd < 0) {
        PyErr_SetString(PyExc_RuntimeError, "this dispatcher has no epoll descriptor to wait on");
        return NULL;
    }
    if (self->dispatching) {
        PyErr_SetString(PyExc_RuntimeError, "turn() called from within a turn of the same dispatcher");
        return NULL;
    }
    double timeout = PyFloat_AsDouble(args[0]);
    if (timeout == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    int count = wait_for_events(self, timeout);
    if (count < 0) {
        return NULL;
    }
    if (before_dispatch != Py_None) {
        PyObject *result = PyObject_CallNoArgs(before_dispatch);
        if (result == NULL) {
            return NULL;
        }
        Py_DECREF(result);
    }
    /* Taken now, as the Python loop extends its events before handing any out. */
    PyObject *extra = PyDict_GET_SIZE(always_ready) ? PyDict_Items(always_ready) : NULL;
    if (extra == NULL && PyErr_Occurred()) {
        return NULL;
    }
    int failed = 0;
    self->dispatching = 1;
    for (int index = 0; index < count && !failed; index++) {
        PyObject *fd = PyLong_FromLong(self->events[index].data.fd);
        failed = fd == NULL || dispatch_event(self, fd, (long)self->events[index].events) < 0;
        Py_XDECREF(fd);
    }
    self->dispatching = 0;
    if (!failed && extra != NULL) {
        failed = dispatch_events(self, extra) < 0;
    }
    Py_XDECREF(extra);
    if (failed) {
        return NULL;
    }
    Py_RETURN_NONE;
#endif
}

static PyMethodDef dispatcher_methods[] = {
    {"turn", (PyCFunction)(void (*)(void))dispatcher_turn, METH_FASTCALL,
     PyDoc_STR("turn(timeout, before_dispatch, always_ready)\n--\n\n"
               "Wait on the epoll descriptor, as select.epoll.poll(timeout), run\n"
               "before_dispatch() (unless None), and hand out the events, then\n"
               "always_ready's items, as dispatcher(events) does.")},
    {NULL},
};

static PyObject *
dispatcher_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"reactor", "streams", "readers", "writers", "read_size",
                               "readable", "read_events", "write_events", "epoll_fd", NULL};
    PyObject *reactor, *streams, *readers, *writers, *read_size;
    long readable, read_events, write_events;
    int epoll_fd = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!O!O!Olll|i:Dispatcher", keywords, &reactor,
                                     &PyDict_Type, &streams, &PyDict_Type, &readers, &PyDict_Type,
                                     &writers, &read_size, &readable, &read_events, &write_events,
                                     &epoll_fd)) {
        return NULL;
    }
    Dispatcher *self = (Dispatcher *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
#ifdef WEFT_HAS_EPOLL
    if (epoll_fd >= 0 && (self->events = PyMem_New(struct epoll_event, MAX_EVENTS)) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
#else
    if (epoll_fd >= 0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_ValueError, "an epoll descriptor, on a system without epoll");
        return NULL;
    }
#endif
    self->epoll_fd = epoll_fd;
    self->reactor = Py_NewRef(reactor);
    self->streams = Py_NewRef(streams);
    self->readers = Py_NewRef(readers);
    self->writers = Py_NewRef(writers);
    self->read_size = Py_NewRef(read_size);
    self->readable = readable;
    self->read_events = read_events;
    self->write_events = write_events;
    self->vectorcall = dispatcher_vectorcall;
    return (PyObject *)self;
}

/* The reactor holds its dispatcher, which holds the reactor: a cycle for
 * the garbage collector. */
static int
dispatcher_traverse(Dispatcher *self, visitproc visit, void *arg)
{
    Py_VISIT(self->reactor);
    Py_VISIT(self->streams);
    Py_VISIT(self->readers);
    Py_VISIT(self->writers);
    Py_VISIT(self->read_size);
    return 0;
}

static int
dispatcher_clear(Dispatcher *self)
{
    Py_CLEAR(self->reactor);
    Py_CLEAR(self->streams);
    Py_CLEAR(self->readers);
    Py_CLEAR(self->writers);
    Py_CLEAR(self->read_size);
    return 0;
}

static void
dispatcher_dealloc(Dispatcher *self)
{
    PyObject_GC_UnTrack(self);
    dispatcher_clear(self);
#ifdef WEFT_HAS_EPOLL
    PyMem_Free(self->events);
#endif
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject DispatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weft._speedups.Dispatcher",
    .tp_doc = PyDoc_STR(
        "Dispatcher(reactor, streams, readers, writers, read_size, readable, read_events, write_events,\n"
        "           epoll_fd=-1)\n--\n\n"
        "dispatcher(events) hands out one poll's (fd, mask) events as Reactor._loop's\n"
        "Python loop does, in order, with the same hooks for every exception."),
    .tp_basicsize = sizeof(Dispatcher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_new = dispatcher_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Dispatcher, vectorcall),
    .tp_traverse = (traverseproc)dispatcher_traverse,
    .tp_clear = (inquiry)dispatcher_clear,
    .tp_dealloc = (destructor)dispatcher_dealloc,
    .tp_methods = dispatcher_methods,
};

/* -------------------------------------------------- a transport's write */

/* DescriptorTransport.write (drivers/reactor/_descriptor_transport.py) as a
 * C function, bound to the class as its method (an instancemethod): the
 * same steps, with no Python frame for the call every reply makes.
 *
 *   def write(self, data):
 *       if self._idle_writer and type(data) is bytes:
 *           if not data: return
 *           try: sent = self._send(data)
 *           except (BlockingIOError, InterruptedError): sent = 0
 *           except OSError as exc: self._force_close(exc); return
 *           if sent != len(data): self._queue_first(memoryview(data)[sent:])
 *           return
 *       self._write_otherwise(data)
 */

static PyObject *str_idle_writer, *str_send, *str_force_close, *str_queue_first, *str_write_otherwise;

static PyObject *
queue_rest(PyObject *transport, PyObject *data, Py_ssize_t sent)
{
    PyObject *view = PyMemoryView_FromObject(data);
    if (view == NULL) {
        return NULL;
    }
    PyObject *rest = PySequence_GetSlice(view, sent, PyBytes_GET_SIZE(data));
    Py_DECREF(view);
    if (rest == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallMethodOneArg(transport, str_queue_first, rest);
    Py_DECREF(rest);
    return result;
}

static PyObject *
transport_write(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "write() takes exactly one argument (%zd given)", nargs - 1);
        return NULL;
    }
    PyObject *transport = args[0], *data = args[1];
    if (PyBytes_CheckExact(data)) {
        PyObject *idle = PyObject_GetAttr(transport, str_idle_writer);
        if (idle == NULL) {
            return NULL;
        }
        int is_idle = PyObject_IsTrue(idle);
        Py_DECREF(idle);
        if (is_idle < 0) {
            return NULL;
        }
        if (is_idle) {
            Py_ssize_t length = PyBytes_GET_SIZE(data);
            if (length == 0) {
                Py_RETURN_NONE;
            }
            Py_ssize_t sent;
            PyObject *count = PyObject_CallMethodOneArg(transport, str_send, data);
            if (count == NULL) {
                if (PyErr_ExceptionMatches(PyExc_BlockingIOError) || PyErr_ExceptionMatches(PyExc_InterruptedError)) {
                    PyErr_Clear();
                    sent = 0;
                }
                else if (PyErr_ExceptionMatches(PyExc_OSError)) {
                    return handle(transport, str_force_close, NULL) < 0 ? NULL : Py_NewRef(Py_None);
                }
                else {
                    return NULL;
                }
            }
            else {
                sent = PyLong_AsSsize_t(count);
                Py_DECREF(count);
                if (sent == -1 && PyErr_Occurred()) {
                    return NULL;
                }
            }
            if (sent != length) {
                return queue_rest(transport, data, sent);
            }
            Py_RETURN_NONE;
        }
    }
    return PyObject_CallMethodOneArg(transport, str_write_otherwise, data);
}

static PyMethodDef transport_write_def = {
    "write", (PyCFunction)(void (*)(void))transport_write, METH_FASTCALL,
    PyDoc_STR("write(self, data)\n--\n\n"
              "Send data now if the kernel takes it, else queue the rest.")};

/* The offset of type's attribute ``name`` when it is a plain writable
 * object slot (a __slots__ entry: a member descriptor of T_OBJECT_EX), or -1.
 * What the hot paths below write at directly, instead of PyObject_SetAttr
 * finding the descriptor through the type's MRO every time. */
static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name)
{
    PyObject *descr = _PyType_Lookup(type, name);
    if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READONLY)) {
            return member->offset;
        }
    }
    return -1;
}

/* ------------------------------------------------ the asyncio event loop */

/* weft's asyncio event loop (drivers/reactor/_loop_turn.py, LoopTurn): the
 * two calls every task wake-up goes through, and two one-line methods that
 * asyncio's own code calls once a message.
 *
 *   - call_soon(self, callback, *args, context=None): LoopTurn.call_soon's
 *     common case (not in debug mode, the loop open), which fills a new
 *     asyncio.Handle's slots and appends it to self._ready; anything else
 *     goes to LoopTurn._call_soon_slow, asyncio's own call_soon with its
 *     checks and captured traceback.
 *   - _run_ready(self, count): LoopTurn._run_ready, which pops ``count``
 *     handles and runs each callback in its context (skipping the
 *     cancelled), handing an exception to the loop's exception handler as
 *     Handle._run does (through _loop_turn._report) and letting SystemExit
 *     and KeyboardInterrupt through; in debug mode it calls
 *     LoopTurn._run_ready_in_debug.
 *   - get_debug(self): ``self._debug``.  asyncio's C Future calls
 *     loop.get_debug() each time one is made (a streams read makes one per
 *     message), and asyncio's is a Python method.
 *   - transport_is_closing(self): DescriptorTransport.is_closing,
 *     ``self._lifecycle.closing`` (StreamWriter.drain asks once a message).
 *
 * A handle's slots are written at the offsets of asyncio.Handle's member
 * descriptors, resolved once by loop_calls(); where any of them is not a
 * plain slot (another Python, another asyncio), loop_calls() returns None
 * and the Python methods stay. */

enum { H_CONTEXT, H_LOOP, H_CALLBACK, H_ARGS, H_CANCELLED, H_REPR, H_TRACEBACK, H_COUNT };

static const char *const handle_slot_names[H_COUNT] = {
    "_context", "_loop", "_callback", "_args", "_cancelled", "_repr", "_source_traceback",
};

typedef struct {
    PyObject_HEAD
    PyTypeObject *handle_type;
    Py_ssize_t offsets[H_COUNT];
    PyObject *call_soon_slow;   /* LoopTurn._call_soon_slow (a function: self first) */
    PyObject *report;           /* _loop_turn._report(loop, handle, exc) */
} LoopCalls;

static PyObject *str_debug, *str_closed, *str_ready, *str_append, *str_popleft, *str_context,
    *str_run_ready_in_debug, *str_lifecycle_attr, *str_closing;

static int
loop_calls_traverse(LoopCalls *self, visitproc visit, void *arg)
{
    Py_VISIT(self->handle_type);
    Py_VISIT(self->call_soon_slow);
    Py_VISIT(self->report);
    return 0;
}

static int
loop_calls_clear(LoopCalls *self)
{
    Py_CLEAR(self->handle_type);
    Py_CLEAR(self->call_soon_slow);
    Py_CLEAR(self->report);
    return 0;
}

static void
loop_calls_dealloc(LoopCalls *self)
{
    PyObject_GC_UnTrack(self);
    loop_calls_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject LoopCallsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weft._speedups.LoopCalls",
    .tp_doc = PyDoc_STR("What weft's asyncio loop's C methods share (made by loop_calls())."),
    .tp_basicsize = sizeof(LoopCalls),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)loop_calls_traverse,
    .tp_clear = (inquiry)loop_calls_clear,
    .tp_dealloc = (destructor)loop_calls_dealloc,
};

/* The truth of ``getattr(obj, name)``: 1, 0, or -1 with an exception set. */
static int
attribute_is_true(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) {
        return -1;
    }
    int truth = value == Py_True ? 1 : value == Py_False ? 0 : PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

static PyObject *
loop_call_soon(LoopCalls *calls, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *context = NULL;
    int slow = nargs < 2;
    if (!slow && kwnames != NULL) {
        /* context= is the one keyword; anything else is the slow path's to
         * refuse.  (Not always the interned name: asyncio's C Future passes
         * a string of its own.) */
        PyObject *name = PyTuple_GET_SIZE(kwnames) == 1 ? PyTuple_GET_ITEM(kwnames, 0) : NULL;
        if (name != NULL && (name == str_context || PyUnicode_Compare(name, str_context) == 0)) {
            context = args[nargs];
        }
        else {
            slow = 1;
        }
    }
    if (!slow) {
        int flag = attribute_is_true(args[0], str_debug);
        if (flag == 0) {
            flag = attribute_is_true(args[0], str_closed);
        }
        if (flag < 0) {
            return NULL;
        }
        slow = flag;
    }
    if (slow) {
        return PyObject_Vectorcall(calls->call_soon_slow, args, nargs, kwnames);
    }
    PyObject *loop = args[0], *callback = args[1];
    PyObject *ready = PyObject_GetAttr(loop, str_ready);
    if (ready == NULL) {
        return NULL;
    }
    PyObject *values[H_COUNT];
    values[H_ARGS] = PyTuple_New(nargs - 2);
    if (values[H_ARGS] == NULL) {
        Py_DECREF(ready);
        return NULL;
    }
    for (Py_ssize_t index = 2; index < nargs; index++) {
        PyTuple_SET_ITEM(values[H_ARGS], index - 2, Py_NewRef(args[index]));
    }
    values[H_CONTEXT] = context == NULL || context == Py_None ? PyContext_CopyCurrent() : Py_NewRef(context);
    if (values[H_CONTEXT] == NULL) {
        Py_DECREF(values[H_ARGS]);
        Py_DECREF(ready);
        return NULL;
    }
    PyTypeObject *type = calls->handle_type;
    PyObject *handle = type->tp_alloc(type, 0);
    if (handle == NULL) {
        Py_DECREF(values[H_CONTEXT]);
        Py_DECREF(values[H_ARGS]);
        Py_DECREF(ready);
        return NULL;
    }
    values[H_LOOP] = Py_NewRef(loop);
    values[H_CALLBACK] = Py_NewRef(callback);
    values[H_CANCELLED] = Py_NewRef(Py_False);
    values[H_REPR] = Py_NewRef(Py_None);
    values[H_TRACEBACK] = Py_NewRef(Py_None);
    for (int index = 0; index < H_COUNT; index++) {
        /* A new object's slots are NULL: each takes its reference. */
        *(PyObject **)((char *)handle + calls->offsets[index]) = values[index];
    }
    PyObject *appended = PyObject_CallMethodOneArg(ready, str_append, handle);
    Py_DECREF(ready);
    if (appended == NULL) {
        Py_DECREF(handle);
        return NULL;
    }
    Py_DECREF(appended);
    return handle;
}

/* A handle's slot (a new reference), at its offset for a Handle, else by
 * name; NULL with an exception set if it has none. */
static PyObject *
handle_slot(LoopCalls *calls, PyObject *handle, int index)
{
    if (PyObject_TypeCheck(handle, calls->handle_type)) {
        PyObject *value = *(PyObject **)((char *)handle + calls->offsets[index]);
        if (value != NULL) {
            return Py_NewRef(value);
        }
    }
    return PyObject_GetAttrString(handle, handle_slot_names[index]);
}

/* Run one handle's callback in its context: 0, or -1 with its exception set. */
static int
run_handle(LoopCalls *calls, PyObject *handle)
{
    PyObject *cancelled = handle_slot(calls, handle, H_CANCELLED);
    if (cancelled == NULL) {
        return -1;
    }
    int skip = cancelled == Py_True ? 1 : cancelled == Py_False ? 0 : PyObject_IsTrue(cancelled);
    Py_DECREF(cancelled);
    if (skip != 0) {
        return skip < 0 ? -1 : 0;
    }
    PyObject *context = handle_slot(calls, handle, H_CONTEXT);
    PyObject *callback = context == NULL ? NULL : handle_slot(calls, handle, H_CALLBACK);
    PyObject *arguments = callback == NULL ? NULL : handle_slot(calls, handle, H_ARGS);
    int status = -1;
    if (arguments != NULL && PyContext_Enter(context) == 0) {
        PyObject *result;
        if (PyTuple_CheckExact(arguments)) {
            result = PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(arguments, 0), PyTuple_GET_SIZE(arguments), NULL);
        }
        else {
            PyObject *tuple = PySequence_Tuple(arguments);
            result = tuple == NULL ? NULL : PyObject_Call(callback, tuple, NULL);
            Py_XDECREF(tuple);
        }
        /* As Context.run: the context is left even when the call raised,
         * and a failure to leave it is what the run raises. */
        if (PyContext_Exit(context) < 0) {
            Py_CLEAR(result);
        }
        if (result != NULL) {
            Py_DECREF(result);
            status = 0;
        }
    }
    Py_XDECREF(arguments);
    Py_XDECREF(callback);
    Py_XDECREF(context);
    return status;
}

static PyObject *
loop_run_ready(LoopCalls *calls, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "_run_ready() takes exactly one argument (%zd given)", nargs - 1);
        return NULL;
    }
    PyObject *loop = args[0];
    int debug = attribute_is_true(loop, str_debug);
    if (debug != 0) {
        return debug < 0 ? NULL : PyObject_CallMethodOneArg(loop, str_run_ready_in_debug, args[1]);
    }
    Py_ssize_t count = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (count == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *ready = PyObject_GetAttr(loop, str_ready);
    PyObject *popleft = ready == NULL ? NULL : PyObject_GetAttr(ready, str_popleft);
    Py_XDECREF(ready);
    if (popleft == NULL) {
        return NULL;
    }
    for (Py_ssize_t done = 0; done < count; done++) {
        PyObject *handle = PyObject_CallNoArgs(popleft);
        if (handle == NULL) {
            Py_DECREF(popleft);
            return NULL;
        }
        if (run_handle(calls, handle) < 0) {
            if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
                Py_DECREF(handle);
                Py_DECREF(popleft);
                return NULL;
            }
            /* ``except BaseException as exc: _report(self, handle, exc)`` */
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            PyErr_NormalizeException(&type, &value, &traceback);
            if (traceback != NULL) {
                PyException_SetTraceback(value, traceback);
            }
            PyObject *reported = PyObject_CallFunctionObjArgs(calls->report, loop, handle, value, NULL);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            if (reported == NULL) {
                Py_DECREF(handle);
                Py_DECREF(popleft);
                return NULL;
            }
            Py_DECREF(reported);
        }
        Py_DECREF(handle);
    }
    Py_DECREF(popleft);
    Py_RETURN_NONE;
}

static PyObject *
loop_get_debug(PyObject *calls, PyObject *loop)
{
    return PyObject_GetAttr(loop, str_debug);
}

static PyObject *
transport_is_closing(PyObject *module, PyObject *transport)
{
    PyObject *lifecycle = PyObject_GetAttr(transport, str_lifecycle_attr);
    if (lifecycle == NULL) {
        return NULL;
    }
    PyObject *closing = PyObject_GetAttr(lifecycle, str_closing);
    Py_DECREF(lifecycle);
    return closing;
}

static PyMethodDef loop_call_soon_def = {
    "call_soon", (PyCFunction)(void (*)(void))loop_call_soon, METH_FASTCALL | METH_KEYWORDS,
    PyDoc_STR("call_soon(self, callback, *args, context=None)\n--\n\n"
              "Arrange for callback(*args) to be called on the loop's next turn.")};

static PyMethodDef loop_run_ready_def = {
    "_run_ready", (PyCFunction)(void (*)(void))loop_run_ready, METH_FASTCALL,
    PyDoc_STR("_run_ready(self, count)\n--\n\n"
              "Run the first count ready handles, skipping the cancelled.")};

static PyMethodDef loop_get_debug_def = {
    "get_debug", (PyCFunction)loop_get_debug, METH_O,
    PyDoc_STR("get_debug(self)\n--\n\nWhether the loop is in debug mode.")};

static PyMethodDef transport_is_closing_def = {
    "is_closing", (PyCFunction)transport_is_closing, METH_O,
    PyDoc_STR("is_closing(self)\n--\n\n"
              "True once close() or abort() was called or the connection was lost.")};

/* A PyCFunction bound to ``self`` (NULL: the module's), made a method. */
static PyObject *
new_method(PyMethodDef *def, PyObject *self)
{
    PyObject *function = PyCFunction_New(def, self);
    PyObject *method = function == NULL ? NULL : PyInstanceMethod_New(function);
    Py_XDECREF(function);
    return method;
}

static PyObject *
loop_calls(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "loop_calls(handle_type, call_soon_slow, report)");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    LoopCalls *calls = PyObject_GC_New(LoopCalls, &LoopCallsType);
    if (calls == NULL) {
        return NULL;
    }
    calls->handle_type = (PyTypeObject *)Py_NewRef(type);
    calls->call_soon_slow = Py_NewRef(args[1]);
    calls->report = Py_NewRef(args[2]);
    PyObject_GC_Track(calls);
    int plain = (type->tp_flags & Py_TPFLAGS_HAVE_GC) != 0 && type->tp_dictoffset == 0
        && type->tp_alloc == PyType_GenericAlloc;
    for (int index = 0; plain && index < H_COUNT; index++) {
        PyObject *name = PyUnicode_InternFromString(handle_slot_names[index]);
        if (name == NULL) {
            Py_DECREF(calls);
            return NULL;
        }
        calls->offsets[index] = slot_offset(type, name);
        Py_DECREF(name);
        plain = calls->offsets[index] >= 0;
    }
    if (!plain) {
        Py_DECREF(calls);
        Py_RETURN_NONE;
    }
    PyObject *call_soon = new_method(&loop_call_soon_def, (PyObject *)calls);
    PyObject *run_ready = call_soon == NULL ? NULL : new_method(&loop_run_ready_def, (PyObject *)calls);
    PyObject *get_debug = run_ready == NULL ? NULL : new_method(&loop_get_debug_def, (PyObject *)calls);
    Py_DECREF(calls);
    if (get_debug == NULL) {
        Py_XDECREF(call_soon);
        Py_XDECREF(run_ready);
        return NULL;
    }
    return Py_BuildValue("(NNN)", call_soon, run_ready, get_debug);
}

/* ------------------------------------------------------ completion driver */

/* The completion driver's hot loop (drivers/completion), in C:
 *
 *   - RingCore: a ring's counters and its hot calls.  The Python Ring
 *     (drivers/completion/_uring.py, its AcceleratedRing) maps the queues
 *     and prepares the cold entries; the submission tail, the count handed
 *     over and the completion head live here, so that C and Python agree on
 *     them: push() and push_bytes() copy an entry into the shared array (and
 *     patch a send's or a receive's address and length); enter() is the
 *     io_uring_enter system call, made from C, with the GIL released only
 *     when it may wait.
 *   - RingTurn: RingPoller.poll's work after the polls are armed, as one
 *     call per turn: the quick sends sorted, the enter, the completions
 *     reaped straight from the mapped queue, the quick sends finished, and
 *     each completion handed out.  The common cases of a transport's
 *     receive and send are done here (_ring_poller.py has the same in
 *     Python: RingPoller._dispatch and _end_quick_sends); everything else
 *     goes to the same Python methods as on the pure path.
 *
 * Receiving into bytes: on this path a transport's receive goes straight
 * into a bytes object made for it, not zeroed (as os.read reads), which the
 * transport holds as _recv_buffer while the kernel owns it.  At the
 * completion the transport lets go of it, it is shrunk to what arrived, and
 * it is the bytes delivered: no copy out of a receive buffer.  A fresh one
 * is made for the next receive.  The kernel writes into such an object only
 * between the enter that hands its receive over and that receive's
 * completion, and nothing else can reach it meanwhile (the transport keeps
 * it private; a closed ring's transports are kept, buffers and all, for the
 * life of the process: RingPoller.close). */

#ifdef __linux__
#include <sys/syscall.h>
#include <stdint.h>
#include <string.h>

#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif

#define ENTER_GETEVENTS (1U << 0)
#define ENTER_EXT_ARG (1U << 3)
#define QUICK_BIT (1ULL << 62)

typedef struct {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
} Completion;

typedef struct {
    uint64_t sigmask;
    uint32_t sigmask_sz;
    uint32_t min_wait_usec;
    uint64_t ts;
} GeteventsArg;

typedef struct {
    int64_t tv_sec;
    int64_t tv_nsec;
} KernelTimespec;

typedef struct {
    PyObject_HEAD
    int fd;
    int closed;
    char *sqes;
    uint32_t *sq_head;
    uint32_t *sq_tail_word;
    uint32_t *cq_head_word;
    uint32_t *cq_tail_word;
    Completion *cqes;
    uint32_t sq_mask;
    uint32_t cq_mask;
    unsigned long long capacity;
    unsigned long long sq_tail;     /* prepared, free-running */
    unsigned long long submitted;   /* handed to the kernel */
    unsigned long long cq_head;     /* reaped (low 32 bits are the kernel's) */
    unsigned long long enters;
    double last_timeout;            /* of the last enter that could wait */
    PyObject *submit;               /* ring.submit: a full queue is handed over */
    PyObject *unavailable;          /* RingUnavailableError */
    GeteventsArg getevents;
    KernelTimespec timespec;
} RingCore;

static PyTypeObject RingCoreType;

static int
core_refuse_closed(RingCore *self)
{
    PyObject *exc = PyObject_CallFunction(self->unavailable, "is", EBADF, "the ring is closed");
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

/* io_uring_enter with what is prepared: how many entries the kernel took,
 * or -errno for a failure (an expired or interrupted wait and a full
 * completion queue are none: what was taken is read from the kernel's
 * head).  timeout < 0: no limit. */
static long
core_enter(RingCore *self, unsigned int min_complete, unsigned int flags, double timeout)
{
    unsigned int to_submit = (unsigned int)(self->sq_tail - self->submitted);
    __atomic_store_n(self->sq_tail_word, (uint32_t)self->sq_tail, __ATOMIC_RELEASE);
    void *arg = NULL;
    size_t size = 0;
    if (timeout >= 0 && (flags & ENTER_GETEVENTS)) {
        double whole = floor(timeout);
        self->timespec.tv_sec = (int64_t)whole;
        self->timespec.tv_nsec = (int64_t)((timeout - whole) * 1e9);
        arg = &self->getevents;
        size = sizeof(self->getevents);
        flags |= ENTER_EXT_ARG;
    }
    self->enters++;
    if (min_complete) {
        self->last_timeout = timeout;
    }
    long taken;
    if (min_complete && timeout != 0) {
        Py_BEGIN_ALLOW_THREADS
        taken = syscall(__NR_io_uring_enter, self->fd, to_submit, min_complete, flags, arg, size);
        Py_END_ALLOW_THREADS
    }
    else {
        taken = syscall(__NR_io_uring_enter, self->fd, to_submit, min_complete, flags, arg, size);
    }
    if (taken < 0) {
        int code = errno;
        if (code != ETIME && code != EINTR && code != EAGAIN && code != EBUSY) {
            return -code;
        }
        uint32_t head = __atomic_load_n(self->sq_head, __ATOMIC_ACQUIRE);
        taken = (long)(uint32_t)(head - (uint32_t)self->submitted);
    }
    self->submitted += (unsigned long long)taken;
    return taken;
}

/* Queue a copy of entry; with data, pointed at all of it.  Its sequence, or
 * -1 with an exception set. */
static long long
core_push(RingCore *self, PyObject *entry, PyObject *data)
{
    if (self->closed) {
        return core_refuse_closed(self);
    }
    if (!PyBytes_CheckExact(entry) || PyBytes_GET_SIZE(entry) != 64) {
        PyErr_SetString(PyExc_ValueError, "a submission entry is 64 bytes (Ring.entry makes them)");
        return -1;
    }
    if (data != NULL && !PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "push_bytes() sends bytes, not %.200s", Py_TYPE(data)->tp_name);
        return -1;
    }
    if (data != NULL && PyBytes_GET_SIZE(data) > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "one operation moves at most 4 GiB - 1");
        return -1;
    }
    if (self->sq_tail - self->submitted >= self->capacity) {
        /* Full: hand the batch over now, without waiting (Python claims the
         * ring first if no enter did yet). */
        PyObject *result = PyObject_CallNoArgs(self->submit);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
        if (self->closed) {
            return core_refuse_closed(self);
        }
    }
    char *slot = self->sqes + ((self->sq_tail & self->sq_mask) << 6);
    memcpy(slot, PyBytes_AS_STRING(entry), 64);
    if (data != NULL) {
        uint64_t address = (uint64_t)(uintptr_t)PyBytes_AS_STRING(data);
        uint32_t length = (uint32_t)PyBytes_GET_SIZE(data);
        memcpy(slot + 16, &address, 8);
        memcpy(slot + 24, &length, 4);
    }
    return (long long)self->sq_tail++;
}

static PyObject *
core_push_method(RingCore *self, PyObject *entry)
{
    long long sequence = core_push(self, entry, NULL);
    return sequence < 0 ? NULL : PyLong_FromLongLong(sequence);
}

static PyObject *
core_push_bytes_method(RingCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "push_bytes() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    long long sequence = core_push(self, args[0], args[1]);
    return sequence < 0 ? NULL : PyLong_FromLongLong(sequence);
}

static PyObject *
core_enter_method(RingCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "enter() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (self->closed) {
        core_refuse_closed(self);
        return NULL;
    }
    unsigned long min_complete = PyLong_AsUnsignedLong(args[0]);
    if (min_complete == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    unsigned long flags = PyLong_AsUnsignedLong(args[1]);
    if (flags == (unsigned long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    double timeout = PyFloat_AsDouble(args[2]);
    if (timeout == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    long taken = core_enter(self, (unsigned int)min_complete, (unsigned int)flags, timeout);
    if (taken < 0) {
        errno = (int)-taken;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(taken);
}

static PyObject *
core_close_method(RingCore *self, PyObject *Py_UNUSED(ignored))
{
    /* The mappings are about to go: nothing here touches them again. */
    self->closed = 1;
    self->sqes = NULL;
    Py_CLEAR(self->submit);
    Py_RETURN_NONE;
}

static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fd", "rings", "sqes", "sq_head", "sq_tail", "cq_head", "cq_tail", "cqes",
                               "sq_mask", "cq_mask", "capacity", "tail", "head", "submit", "unavailable",
                               NULL};
    int fd;
    unsigned long long rings, sqes, tail, head, capacity;
    Py_ssize_t sq_head, sq_tail, cq_head, cq_tail, cqes;
    unsigned int sq_mask, cq_mask;
    PyObject *submit, *unavailable;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iKKnnnnnIIKKKOO:RingCore", keywords, &fd, &rings, &sqes,
                                     &sq_head, &sq_tail, &cq_head, &cq_tail, &cqes, &sq_mask, &cq_mask,
                                     &capacity, &tail, &head, &submit, &unavailable)) {
        return NULL;
    }
    if (rings == 0 || sqes == 0) {
        PyErr_SetString(PyExc_ValueError, "RingCore needs the ring's mapped addresses");
        return NULL;
    }
    RingCore *self = (RingCore *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    char *base = (char *)(uintptr_t)rings;
    self->fd = fd;
    self->sqes = (char *)(uintptr_t)sqes;
    self->sq_head = (uint32_t *)(base + sq_head);
    self->sq_tail_word = (uint32_t *)(base + sq_tail);
    self->cq_head_word = (uint32_t *)(base + cq_head);
    self->cq_tail_word = (uint32_t *)(base + cq_tail);
    self->cqes = (Completion *)(base + cqes);
    self->sq_mask = sq_mask;
    self->cq_mask = cq_mask;
    self->capacity = capacity;
    self->sq_tail = tail;
    self->submitted = tail;
    self->cq_head = head;
    self->getevents.ts = (uint64_t)(uintptr_t)&self->timespec;
    self->submit = Py_NewRef(submit);
    self->unavailable = Py_NewRef(unavailable);
    return (PyObject *)self;
}

static int
core_traverse(RingCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->submit);
    Py_VISIT(self->unavailable);
    return 0;
}

static int
core_clear(RingCore *self)
{
    Py_CLEAR(self->submit);
    Py_CLEAR(self->unavailable);
    return 0;
}

static void
core_dealloc(RingCore *self)
{
    PyObject_GC_UnTrack(self);
    core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef core_members[] = {
    {"sq_tail", T_ULONGLONG, offsetof(RingCore, sq_tail), 0, "Entries prepared (free-running)."},
    {"submitted", T_ULONGLONG, offsetof(RingCore, submitted), 0, "Entries handed to the kernel."},
    {"cq_head", T_ULONGLONG, offsetof(RingCore, cq_head), 0, "Completions reaped (the low 32 bits are the kernel's head)."},
    {"enters", T_ULONGLONG, offsetof(RingCore, enters), 0, "io_uring_enter calls made."},
    {"closed", T_INT, offsetof(RingCore, closed), READONLY, "Whether close() was called."},
    {"last_timeout", T_DOUBLE, offsetof(RingCore, last_timeout), 0,
     "The timeout of the last enter that waited for a completion (-1: none; tests read it)."},
    {NULL},
};

static PyMethodDef core_methods[] = {
    {"push", (PyCFunction)core_push_method, METH_O,
     PyDoc_STR("push(entry)\n--\n\nQueue a copy of entry (64 bytes); its sequence.")},
    {"push_bytes", (PyCFunction)(void (*)(void))core_push_bytes_method, METH_FASTCALL,
     PyDoc_STR("push_bytes(entry, data)\n--\n\nQueue entry pointed at all of data (bytes); its sequence.")},
    {"enter", (PyCFunction)(void (*)(void))core_enter_method, METH_FASTCALL,
     PyDoc_STR("enter(min_complete, flags, timeout)\n--\n\n"
               "io_uring_enter with what is prepared (timeout < 0: none); how many\n"
               "entries the kernel took, OSError on a failure.")},
    {"close", (PyCFunction)core_close_method, METH_NOARGS,
     PyDoc_STR("close()\n--\n\nForget the mappings (before the ring unmaps them).")},
    {NULL},
};

static PyTypeObject RingCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weft._speedups.RingCore",
    .tp_doc = PyDoc_STR(
        "RingCore(fd, rings, sqes, sq_head, sq_tail, cq_head, cq_tail, cqes, sq_mask, cq_mask,\n"
        "         capacity, tail, head, submit, unavailable)\n--\n\n"
        "An io_uring's counters and hot calls, over the queues a Ring mapped."),
    .tp_basicsize = sizeof(RingCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = core_new,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_members = core_members,
    .tp_methods = core_methods,
};

/* ------------------------------------------------------------ RingTurn */

typedef struct {
    PyObject_HEAD
    PyObject *poller;
    RingCore *core;
    PyObject *streams;
    PyObject *quick_sends;
    PyObject *sent;
    PyObject *ending;
    Py_ssize_t read_size;
    Completion *run;
    uint32_t run_size;
} RingTurn;

static PyObject *str_recv_id, *str_in_flight, *str_lifecycle, *str_writable, *str_flow, *str_paused,
    *str_buffer, *str_file_queue, *str_buffer_size, *str_send_done, *str_wants_data,
    *str_held, *str_recv_pending, *str_recv_buffer, *str_recv_size, *str_recv_seq, *str_recv_entry,
    *str_recv_done, *str_quick, *str_cold_completion, *str_quick_failed, *str_requeue_unsubmitted,
    *str_driver_failed;

/* Direct access to the transports' __slots__ (and their lifecycle's and
 * flow control's): the hot paths read and write a few dozen attributes per
 * message, and PyObject_GetAttr finds each through the type's MRO.  Each
 * field keeps the type it was last resolved on (a strong reference, so the
 * address can never name another type) and the slot's offset in it; a type
 * whose attribute of that name is no plain writable slot, or a slot not
 * set, goes through PyObject_GetAttr/SetAttr as before. */
enum {
    F_RECV_ID, F_IN_FLIGHT, F_LIFECYCLE, F_WRITABLE, F_FLOW, F_PAUSED, F_BUFFER, F_FILE_QUEUE,
    F_BUFFER_SIZE, F_IDLE_WRITER, F_WANTS_DATA, F_HELD, F_RECV_PENDING, F_RECV_BUFFER, F_RECV_SIZE,
    F_RECV_SEQ, F_RECV_ENTRY, F_QUICK, F_PROTOCOL, F_COUNT
};

typedef struct {
    PyObject *name;
    PyTypeObject *type;     /* resolved on; NULL: not yet */
    Py_ssize_t offset;      /* -1: not a plain slot on that type */
} Field;

static Field fields[F_COUNT];

static PyObject **
field_slot(PyObject *obj, int index)
{
    Field *field = &fields[index];
    PyTypeObject *type = Py_TYPE(obj);
    if (field->type != type) {
        Py_ssize_t offset = slot_offset(type, field->name);
        Py_INCREF(type);
        Py_XSETREF(field->type, type);
        field->offset = offset;
    }
    return field->offset < 0 ? NULL : (PyObject **)((char *)obj + field->offset);
}

/* getattr(obj, name): a new reference, or NULL with an exception set. */
static PyObject *
get_field(PyObject *obj, int index)
{
    PyObject **slot = field_slot(obj, index);
    if (slot != NULL && *slot != NULL) {
        return Py_NewRef(*slot);
    }
    return PyObject_GetAttr(obj, fields[index].name);
}

/* setattr(obj, name, value) */
static int
set_field(PyObject *obj, int index, PyObject *value)
{
    PyObject **slot = field_slot(obj, index);
    if (slot == NULL) {
        return PyObject_SetAttr(obj, fields[index].name, value);
    }
    PyObject *old = *slot;
    *slot = Py_NewRef(value);
    Py_XDECREF(old);
    return 0;
}

/* getattr(obj, name) is true: 1, 0, or -1 with an exception set. */
static int
field_true(PyObject *obj, int index)
{
    PyObject **slot = field_slot(obj, index);
    PyObject *value = slot != NULL ? *slot : NULL;
    if (value == Py_True) {
        return 1;
    }
    if (value == Py_False || value == Py_None) {
        return 0;
    }
    value = get_field(obj, index);
    if (value == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* getattr(getattr(obj, outer), inner) is true. */
static int
field_field_true(PyObject *obj, int outer, int inner)
{
    PyObject *value = get_field(obj, outer);
    if (value == NULL) {
        return -1;
    }
    int truth = field_true(value, inner);
    Py_DECREF(value);
    return truth;
}

/* A transport whose send ends with work to do: a queue behind it, a file,
 * resume_writing due, or no longer writable (_end_quick_sends' sorting). */
static int
send_end_has_work(PyObject *stream)
{
    int truth;
    if ((truth = field_true(stream, F_BUFFER)) != 0) {
        return truth;
    }
    if ((truth = field_true(stream, F_FILE_QUEUE)) != 0) {
        return truth;
    }
    if ((truth = field_field_true(stream, F_FLOW, F_PAUSED)) != 0) {
        return truth;
    }
    truth = field_field_true(stream, F_LIFECYCLE, F_WRITABLE);
    return truth < 0 ? -1 : !truth;
}

/* stream._buffer_size -= count */
static int
subtract_buffered(PyObject *stream, Py_ssize_t count)
{
    PyObject *size = get_field(stream, F_BUFFER_SIZE);
    if (size == NULL) {
        return -1;
    }
    Py_ssize_t value = PyLong_AsSsize_t(size);
    Py_DECREF(size);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *left = PyLong_FromSsize_t(value - count);
    if (left == NULL) {
        return -1;
    }
    int done = set_field(stream, F_BUFFER_SIZE, left);
    Py_DECREF(left);
    return done;
}

/* The send in flight went whole and nothing waits behind it: idle again. */
static int
send_idle_again(PyObject *stream, Py_ssize_t sent)
{
    if (set_field(stream, F_IN_FLIGHT, Py_None) < 0 || subtract_buffered(stream, sent) < 0) {
        return -1;
    }
    return set_field(stream, F_IDLE_WRITER, Py_True);
}

/* An exception that is an Exception goes to poller._driver_failed(what, exc)
 * (logged: a driver bug never stops the loop); any other is kept raised. */
static int
driver_failed(RingTurn *self, PyObject *what)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    if (handle(self->poller, str_driver_failed, what) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return -1;
        }
        PyErr_WriteUnraisable(what);
    }
    return 0;
}

static PyObject *
call_method(PyObject *owner, PyObject *name, PyObject **args, size_t count)
{
    PyObject *all[5];  /* the owner and at most 4 arguments */
    all[0] = owner;
    for (size_t index = 0; index < count; index++) {
        all[index + 1] = args[index];
    }
    return PyObject_VectorcallMethod(name, all, (count + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* stream.<name>(res, flags) */
static PyObject *
call_res_flags(PyObject *stream, PyObject *name, int32_t res, uint32_t flags)
{
    PyObject *res_obj = PyLong_FromLong(res);
    PyObject *flags_obj = res_obj == NULL ? NULL : PyLong_FromUnsignedLong(flags);
    PyObject *result = NULL;
    if (flags_obj != NULL) {
        PyObject *args[2] = {res_obj, flags_obj};
        result = call_method(stream, name, args, 2);
    }
    Py_XDECREF(res_obj);
    Py_XDECREF(flags_obj);
    return result;
}

/* A send's completion: RingPoller._dispatch's hot path, or _send_done. */
static int
send_completed(PyObject *stream, int32_t res, uint32_t flags)
{
    PyObject *data = get_field(stream, F_IN_FLIGHT);
    if (data == NULL) {
        return -1;
    }
    int idle = 0;
    if (PyBytes_CheckExact(data) && PyBytes_GET_SIZE(data) > 0 && res == PyBytes_GET_SIZE(data)) {
        idle = field_field_true(stream, F_LIFECYCLE, F_WRITABLE);
        if (idle > 0) {
            int busy = send_end_has_work(stream);
            idle = busy < 0 ? -1 : !busy;
        }
    }
    Py_DECREF(data);
    if (idle < 0) {
        return -1;
    }
    if (idle) {
        return send_idle_again(stream, res);
    }
    PyObject *result = call_res_flags(stream, str_send_done, res, flags);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* Arm the transport's receive again, into a fresh bytes object. */
static int
arm_receive(RingTurn *self, PyObject *stream, int filled_small)
{
    PyObject *size_obj;
    if (filled_small) {
        /* A receive filled the first, small buffer: full size from now on. */
        size_obj = PyLong_FromSsize_t(self->read_size);
        if (size_obj == NULL || set_field(stream, F_RECV_SIZE, size_obj) < 0) {
            Py_XDECREF(size_obj);
            return -1;
        }
    }
    else if ((size_obj = get_field(stream, F_RECV_SIZE)) == NULL) {
        return -1;
    }
    Py_ssize_t size = PyLong_AsSsize_t(size_obj);
    Py_DECREF(size_obj);
    if (size == -1 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *buffer = PyBytes_FromStringAndSize(NULL, size);
    if (buffer == NULL) {
        return -1;
    }
    /* Held by the transport before the kernel can see its address. */
    int done = set_field(stream, F_RECV_BUFFER, buffer);
    PyObject *entry = done < 0 ? NULL : get_field(stream, F_RECV_ENTRY);
    Py_DECREF(buffer);
    if (entry == NULL) {
        return -1;
    }
    long long sequence = core_push(self->core, entry, buffer);
    Py_DECREF(entry);
    if (sequence < 0) {
        return -1;
    }
    PyObject *seq = PyLong_FromLongLong(sequence);
    if (seq == NULL) {
        return -1;
    }
    done = set_field(stream, F_RECV_SEQ, seq);
    Py_DECREF(seq);
    if (done < 0) {
        return -1;
    }
    return set_field(stream, F_RECV_PENDING, Py_True);
}

/* A receive's completion: RingPoller._dispatch's hot path (with the bytes
 * received into delivered as they are), or _recv_done. */
static int
receive_completed(RingTurn *self, PyObject *stream, int32_t res, uint32_t flags)
{
    PyObject *lifecycle = get_field(stream, F_LIFECYCLE);
    if (lifecycle == NULL) {
        return -1;
    }
    int hot = 0;
    PyObject *buffer = NULL;
    if (res > 0) {
        hot = field_true(lifecycle, F_WANTS_DATA);
        if (hot > 0) {
            int held = field_true(stream, F_HELD);
            hot = held < 0 ? -1 : !held;
        }
        if (hot > 0) {
            buffer = get_field(stream, F_RECV_BUFFER);
            if (buffer == NULL) {
                hot = -1;
            }
            else if (!PyBytes_CheckExact(buffer) || res > PyBytes_GET_SIZE(buffer)) {
                hot = 0;  /* not a receive into bytes: the Python path's */
                Py_CLEAR(buffer);
            }
        }
    }
    if (hot <= 0) {
        Py_DECREF(lifecycle);
        if (hot < 0) {
            return -1;
        }
        PyObject *result = call_res_flags(stream, str_recv_done, res, flags);
        Py_XDECREF(result);
        return result == NULL ? -1 : 0;
    }
    /* The kernel is done with the buffer: the transport lets go of it, and
     * it becomes the bytes delivered. */
    Py_ssize_t size = PyBytes_GET_SIZE(buffer);
    int filled_small = res == size && size < self->read_size;
    if (set_field(stream, F_RECV_PENDING, Py_False) < 0
        || set_field(stream, F_RECV_BUFFER, Py_None) < 0) {
        Py_DECREF(buffer);
        Py_DECREF(lifecycle);
        return -1;
    }
    PyObject *data;
    if (Py_REFCNT(buffer) == 1) {
        data = buffer;
        if (res != size && _PyBytes_Resize(&data, res) < 0) {
            Py_DECREF(lifecycle);
            return -1;
        }
    }
    else {
        /* Someone else holds it (never, from weft): a copy. */
        data = PyBytes_FromStringAndSize(PyBytes_AS_STRING(buffer), res);
        Py_DECREF(buffer);
        if (data == NULL) {
            Py_DECREF(lifecycle);
            return -1;
        }
    }
    PyObject *protocol = get_field(stream, F_PROTOCOL);
    PyObject *result = protocol == NULL ? NULL : PyObject_CallMethodOneArg(protocol, str_data_received, data);
    Py_XDECREF(protocol);
    Py_DECREF(data);
    if (result == NULL) {
        Py_DECREF(lifecycle);
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return -1;
        }
        return handle(stream, str_callback_failed, NULL);
    }
    Py_DECREF(result);
    int again = field_true(lifecycle, F_WANTS_DATA);
    Py_DECREF(lifecycle);
    if (again > 0) {
        int pending = field_true(stream, F_RECV_PENDING);
        again = pending < 0 ? -1 : !pending;
    }
    if (again <= 0) {
        return again;
    }
    return arm_receive(self, stream, filled_small);
}

/* One completion (RingPoller._dispatch's loop body). */
static int
dispatch_completion(RingTurn *self, const Completion *completion, PyObject *events)
{
    PyObject *key = PyLong_FromUnsignedLongLong(completion->user_data);
    if (key == NULL) {
        return -1;
    }
    PyObject *stream = PyDict_GetItemWithError(self->streams, key);
    int done;
    if (stream == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        /* Not a transport's: a handler, a poll, or nothing (Python). */
        PyObject *res = PyLong_FromLong(completion->res);
        PyObject *flags = res == NULL ? NULL : PyLong_FromUnsignedLong(completion->flags);
        PyObject *result = NULL;
        if (flags != NULL) {
            PyObject *args[4] = {key, res, flags, events};
            result = call_method(self->poller, str_cold_completion, args, 4);
        }
        Py_XDECREF(res);
        Py_XDECREF(flags);
        Py_XDECREF(result);
        done = result == NULL ? driver_failed(self, self->poller) : 0;
        Py_DECREF(key);
        return done;
    }
    Py_INCREF(stream);  /* its protocol may close it, and so release it */
    PyObject *recv_id = get_field(stream, F_RECV_ID);
    int is_receive = recv_id == NULL ? -1 : PyObject_RichCompareBool(recv_id, key, Py_EQ);
    Py_XDECREF(recv_id);
    Py_DECREF(key);
    if (is_receive < 0) {
        done = -1;
    }
    else if (is_receive) {
        done = receive_completed(self, stream, completion->res, completion->flags);
    }
    else {
        done = send_completed(stream, completion->res, completion->flags);
    }
    if (done < 0) {
        done = driver_failed(self, stream);
    }
    Py_DECREF(stream);
    return done;
}

/* The quick sends the enter handed over: RingPoller._end_quick_sends. */
static int
end_quick_sends(RingTurn *self, uint32_t count)
{
    for (uint32_t index = 0; index < count; index++) {
        const Completion *completion = &self->run[index];
        if (!(completion->user_data & QUICK_BIT)) {
            continue;
        }
        /* A quick send did not go whole: its transport sends the rest. */
        PyObject *key = PyLong_FromUnsignedLongLong(completion->user_data ^ QUICK_BIT);
        if (key == NULL) {
            return -1;
        }
        PyObject *stream = PyDict_GetItemWithError(self->streams, key);
        Py_DECREF(key);
        if (stream == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue;
        }
        Py_INCREF(stream);
        int quick = field_true(stream, F_QUICK);
        int done = 0;
        if (quick > 0) {
            PyObject *res = PyLong_FromLong(completion->res);
            PyObject *result = NULL;
            if (res != NULL) {
                PyObject *args[2] = {stream, res};
                result = call_method(self->poller, str_quick_failed, args, 2);
                Py_DECREF(res);
            }
            Py_XDECREF(result);
            done = result == NULL ? -1 : 0;
        }
        else {
            done = quick;
        }
        if (done < 0) {
            done = driver_failed(self, stream);
        }
        Py_DECREF(stream);
        if (done < 0) {
            return -1;
        }
    }
    if (self->core->sq_tail != self->core->submitted) {
        /* The kernel took fewer than it was given: those are not over. */
        PyObject *args[2] = {self->sent, self->ending};
        PyObject *result = call_method(self->poller, str_requeue_unsubmitted, args, 2);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
    }
    for (int group = 0; group < 2; group++) {
        PyObject *list = group == 0 ? self->sent : self->ending;
        for (Py_ssize_t index = 0; index < PyList_GET_SIZE(list); index++) {
            PyObject *stream = PyList_GET_ITEM(list, index);
            Py_INCREF(stream);
            int quick = field_true(stream, F_QUICK);
            int done = quick;
            if (quick > 0) {
                done = set_field(stream, F_QUICK, Py_False);
                PyObject *data = done < 0 ? NULL : get_field(stream, F_IN_FLIGHT);
                if (data == NULL) {
                    done = -1;
                }
                else {
                    Py_ssize_t sent = PyObject_Length(data);
                    Py_DECREF(data);
                    if (sent < 0) {
                        done = -1;
                    }
                    else if (group == 0) {
                        /* Sent, nothing queued behind it, still open, no
                         * resume_writing due: idle again. */
                        done = send_idle_again(stream, sent);
                    }
                    else {
                        PyObject *result = call_res_flags(stream, str_send_done, (int32_t)sent, 0);
                        Py_XDECREF(result);
                        done = result == NULL ? -1 : 0;
                    }
                }
            }
            if (done < 0) {
                done = driver_failed(self, stream);
            }
            Py_DECREF(stream);
            if (done < 0) {
                return -1;
            }
        }
    }
    return 0;
}

static int
clear_list(PyObject *list)
{
    return PyList_SetSlice(list, 0, PyList_GET_SIZE(list), NULL);
}

static PyObject *
turn_call(RingTurn *self, PyObject *timeout_arg)
{
    double timeout = PyFloat_AsDouble(timeout_arg);
    if (timeout == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    RingCore *core = self->core;
    if (core->closed) {
        core_refuse_closed(core);
        return NULL;
    }
    int quick = PyList_GET_SIZE(self->quick_sends) > 0;
    if (quick) {
        /* Sort the quick sends about to be handed over: those whose end has
         * work to do make this enter not wait. */
        if (clear_list(self->sent) < 0 || clear_list(self->ending) < 0) {
            return NULL;
        }
        PyObject *quick_sends = self->quick_sends;
        for (Py_ssize_t index = 0; index < PyList_GET_SIZE(quick_sends); index++) {
            PyObject *stream = PyList_GET_ITEM(quick_sends, index);
            int busy = send_end_has_work(stream);
            if (busy < 0 || PyList_Append(busy ? self->ending : self->sent, stream) < 0) {
                return NULL;
            }
        }
        if (clear_list(quick_sends) < 0) {
            return NULL;
        }
        if (PyList_GET_SIZE(self->ending)) {
            timeout = 0.0;
        }
    }
    uint32_t ready = __atomic_load_n(core->cq_tail_word, __ATOMIC_ACQUIRE) - (uint32_t)core->cq_head;
    long taken = 0;
    if (ready) {
        if (core->sq_tail != core->submitted) {
            taken = core_enter(core, 0, 0, -1.0);
        }
    }
    else {
        taken = core_enter(core, 1, ENTER_GETEVENTS, timeout);
    }
    if (taken < 0) {
        errno = (int)-taken;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    /* Reap every completion into our own run, then give the slots back
     * before any handler runs (one may enter the kernel again). */
    uint32_t head = (uint32_t)core->cq_head;
    uint32_t count = __atomic_load_n(core->cq_tail_word, __ATOMIC_ACQUIRE) - head;
    if (count > self->run_size) {
        count = self->run_size;  /* never more than the queue holds */
    }
    for (uint32_t index = 0; index < count; index++) {
        self->run[index] = core->cqes[(head + index) & core->cq_mask];
    }
    core->cq_head += count;
    __atomic_store_n(core->cq_head_word, (uint32_t)core->cq_head, __ATOMIC_RELEASE);
    if (quick && end_quick_sends(self, count) < 0) {
        return NULL;
    }
    PyObject *events = PyList_New(0);
    if (events == NULL) {
        return NULL;
    }
    for (uint32_t index = 0; index < count; index++) {
        if (dispatch_completion(self, &self->run[index], events) < 0) {
            Py_DECREF(events);
            return NULL;
        }
    }
    return events;
}

static PyObject *
turn_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (one_argument("RingTurn", nargsf, kwnames) < 0) {
        return NULL;
    }
    return turn_call((RingTurn *)self, args[0]);
}

typedef struct {
    RingTurn base;
    vectorcallfunc vectorcall;
} RingTurnObject;

static PyObject *
turn_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"poller", "core", "streams", "quick_sends", "read_size", NULL};
    PyObject *poller, *core, *streams, *quick_sends;
    Py_ssize_t read_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!O!O!n:RingTurn", keywords, &poller, &RingCoreType, &core,
                                     &PyDict_Type, &streams, &PyList_Type, &quick_sends, &read_size)) {
        return NULL;
    }
    RingTurnObject *self = (RingTurnObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    RingTurn *turn = &self->base;
    turn->run_size = ((RingCore *)core)->cq_mask + 1;
    turn->run = PyMem_New(Completion, turn->run_size);
    turn->sent = PyList_New(0);
    turn->ending = PyList_New(0);
    if (turn->run == NULL || turn->sent == NULL || turn->ending == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    turn->poller = Py_NewRef(poller);
    turn->core = (RingCore *)Py_NewRef(core);
    turn->streams = Py_NewRef(streams);
    turn->quick_sends = Py_NewRef(quick_sends);
    turn->read_size = read_size;
    self->vectorcall = turn_vectorcall;
    return (PyObject *)self;
}

static int
turn_traverse(RingTurnObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->base.poller);
    Py_VISIT(self->base.core);
    Py_VISIT(self->base.streams);
    Py_VISIT(self->base.quick_sends);
    Py_VISIT(self->base.sent);
    Py_VISIT(self->base.ending);
    return 0;
}

static int
turn_clear(RingTurnObject *self)
{
    Py_CLEAR(self->base.poller);
    Py_CLEAR(self->base.core);
    Py_CLEAR(self->base.streams);
    Py_CLEAR(self->base.quick_sends);
    Py_CLEAR(self->base.sent);
    Py_CLEAR(self->base.ending);
    return 0;
}

static void
turn_dealloc(RingTurnObject *self)
{
    PyObject_GC_UnTrack(self);
    turn_clear(self);
    PyMem_Free(self->base.run);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject RingTurnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "weft._speedups.RingTurn",
    .tp_doc = PyDoc_STR(
        "RingTurn(poller, core, streams, quick_sends, read_size)\n--\n\n"
        "turn(timeout) is RingPoller.poll after the polls are armed: the enter,\n"
        "the quick sends finished, every completion handed out; the readiness events."),
    .tp_basicsize = sizeof(RingTurnObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_new = turn_new,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(RingTurnObject, vectorcall),
    .tp_traverse = (traverseproc)turn_traverse,
    .tp_clear = (inquiry)turn_clear,
    .tp_dealloc = (destructor)turn_dealloc,
};

static PyObject *
unfilled_bytes(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 2) {
        /* 0 and 1 byte objects are CPython's shared singletons: never those. */
        PyErr_SetString(PyExc_ValueError, "unfilled_bytes() makes buffers of at least 2 bytes");
        return NULL;
    }
    return PyBytes_FromStringAndSize(NULL, size);
}

#define WEFT_HAS_URING 1
#endif /* __linux__ */

/* --------------------------------------------------------------- module */

static PyMethodDef speedups_functions[] = {
    {"loop_calls", (PyCFunction)(void (*)(void))loop_calls, METH_FASTCALL,
     PyDoc_STR("loop_calls(handle_type, call_soon_slow, report)\n--\n\n"
               "weft's asyncio loop's call_soon, _run_ready and get_debug methods in C,\n"
               "for handles of handle_type (asyncio.Handle); None where its slots are\n"
               "not plain slots.")},
#ifdef WEFT_HAS_URING
    {"unfilled_bytes", (PyCFunction)unfilled_bytes, METH_O,
     PyDoc_STR("unfilled_bytes(size)\n--\n\n"
               "A new bytes object of size bytes (at least 2), not zeroed: a receive\n"
               "buffer for the kernel to fill, never to be read before it has.")},
#endif
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "weft._speedups",
    .m_doc = PyDoc_STR(
        "weft's optional C accelerator: the reactor's read(2) and write(2) on one\n"
        "non-blocking descriptor, without releasing the GIL, its handing out of\n"
        "events, and the completion driver's turn.  weft runs the same without it\n"
        "(WEFT_PURE_PYTHON=1 forces that)."),
    .m_size = -1,
    .m_methods = speedups_functions,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&DescriptorReaderType) < 0 || PyType_Ready(&DescriptorWriterType) < 0
        || PyType_Ready(&DispatcherType) < 0 || PyType_Ready(&LoopCallsType) < 0) {
        return NULL;
    }
    /* First: the completion driver's field table below takes some of these. */
    if ((str_recv = PyUnicode_InternFromString("_recv")) == NULL
        || (str_protocol = PyUnicode_InternFromString("_protocol")) == NULL
        || (str_data_received = PyUnicode_InternFromString("data_received")) == NULL
        || (str_eof = PyUnicode_InternFromString("_eof")) == NULL
        || (str_recv_failed = PyUnicode_InternFromString("_recv_failed")) == NULL
        || (str_callback_failed = PyUnicode_InternFromString("_callback_failed")) == NULL
        || (str_fd_callback_failed = PyUnicode_InternFromString("_fd_callback_failed")) == NULL
        || (str_idle_writer = PyUnicode_InternFromString("_idle_writer")) == NULL
        || (str_send = PyUnicode_InternFromString("_send")) == NULL
        || (str_force_close = PyUnicode_InternFromString("_force_close")) == NULL
        || (str_queue_first = PyUnicode_InternFromString("_queue_first")) == NULL
        || (str_write_otherwise = PyUnicode_InternFromString("_write_otherwise")) == NULL
        || (str_debug = PyUnicode_InternFromString("_debug")) == NULL
        || (str_closed = PyUnicode_InternFromString("_closed")) == NULL
        || (str_ready = PyUnicode_InternFromString("_ready")) == NULL
        || (str_append = PyUnicode_InternFromString("append")) == NULL
        || (str_popleft = PyUnicode_InternFromString("popleft")) == NULL
        || (str_context = PyUnicode_InternFromString("context")) == NULL
        || (str_run_ready_in_debug = PyUnicode_InternFromString("_run_ready_in_debug")) == NULL
        || (str_lifecycle_attr = PyUnicode_InternFromString("_lifecycle")) == NULL
        || (str_closing = PyUnicode_InternFromString("closing")) == NULL) {
        return NULL;
    }
#ifdef WEFT_HAS_URING
    if (PyType_Ready(&RingCoreType) < 0 || PyType_Ready(&RingTurnType) < 0) {
        return NULL;
    }
    struct {
        PyObject **name;
        const char *text;
    } names[] = {
        {&str_recv_id, "_recv_id"}, {&str_in_flight, "_in_flight"}, {&str_lifecycle, "_lifecycle"},
        {&str_writable, "writable"}, {&str_flow, "_flow"}, {&str_paused, "paused"},
        {&str_buffer, "_buffer"}, {&str_file_queue, "_file_queue"}, {&str_buffer_size, "_buffer_size"},
        {&str_send_done, "_send_done"}, {&str_wants_data, "wants_data"},
        {&str_held, "_held"}, {&str_recv_pending, "_recv_pending"}, {&str_recv_buffer, "_recv_buffer"},
        {&str_recv_size, "_recv_size"}, {&str_recv_seq, "_recv_seq"}, {&str_recv_entry, "_recv_entry"},
        {&str_recv_done, "_recv_done"}, {&str_quick, "_quick"}, {&str_cold_completion, "_cold_completion"},
        {&str_quick_failed, "_quick_failed"}, {&str_requeue_unsubmitted, "_requeue_unsubmitted"},
        {&str_driver_failed, "_driver_failed"},
    };
    for (size_t index = 0; index < sizeof(names) / sizeof(names[0]); index++) {
        if ((*names[index].name = PyUnicode_InternFromString(names[index].text)) == NULL) {
            return NULL;
        }
    }
    PyObject *field_names[F_COUNT] = {
        [F_RECV_ID] = str_recv_id, [F_IN_FLIGHT] = str_in_flight, [F_LIFECYCLE] = str_lifecycle,
        [F_WRITABLE] = str_writable, [F_FLOW] = str_flow, [F_PAUSED] = str_paused, [F_BUFFER] = str_buffer,
        [F_FILE_QUEUE] = str_file_queue, [F_BUFFER_SIZE] = str_buffer_size, [F_IDLE_WRITER] = str_idle_writer,
        [F_WANTS_DATA] = str_wants_data, [F_HELD] = str_held, [F_RECV_PENDING] = str_recv_pending,
        [F_RECV_BUFFER] = str_recv_buffer, [F_RECV_SIZE] = str_recv_size, [F_RECV_SEQ] = str_recv_seq,
        [F_RECV_ENTRY] = str_recv_entry, [F_QUICK] = str_quick, [F_PROTOCOL] = str_protocol,
    };
    for (int index = 0; index < F_COUNT; index++) {
        fields[index].name = field_names[index];
        fields[index].offset = -1;
    }
#endif
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    /* transport_write as a method: bound to each instance it is looked up on. */
    PyObject *method = new_method(&transport_write_def, NULL);
    if (method == NULL || PyModule_AddObject(module, "transport_write", method) < 0) {
        Py_XDECREF(method);
        Py_DECREF(module);
        return NULL;
    }
    method = new_method(&transport_is_closing_def, NULL);
    if (method == NULL || PyModule_AddObject(module, "transport_is_closing", method) < 0) {
        Py_XDECREF(method);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "DescriptorReader", (PyObject *)&DescriptorReaderType) < 0
        || PyModule_AddObjectRef(module, "DescriptorWriter", (PyObject *)&DescriptorWriterType) < 0
        || PyModule_AddObjectRef(module, "Dispatcher", (PyObject *)&DispatcherType) < 0
        || PyModule_AddIntConstant(module, "SPARE_SIZE", SPARE_SIZE) < 0
        || PyModule_AddIntConstant(module, "COPY_LIMIT", COPY_LIMIT) < 0
#ifdef WEFT_HAS_URING
        || PyModule_AddObjectRef(module, "RingCore", (PyObject *)&RingCoreType) < 0
        || PyModule_AddObjectRef(module, "RingTurn", (PyObject *)&RingTurnType) < 0
#endif
        ) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
