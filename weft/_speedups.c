/* weft._speedups: the reactor's per-message work below the protocol, in C.
 *
 * Optional: weft runs the same without it, in pure Python (the selection is
 * drivers/_core/accelerator.py; WEFT_PURE_PYTHON=1 forces the pure path).
 * Two parts, each with the Python it replaces written out beside it:
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

/* --------------------------------------------------------------- module */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "weft._speedups",
    .m_doc = PyDoc_STR(
        "weft's optional C accelerator: the reactor's read(2) and write(2) on one\n"
        "non-blocking descriptor, without releasing the GIL.  weft runs the same\n"
        "without it (WEFT_PURE_PYTHON=1 forces that)."),
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&DescriptorReaderType) < 0 || PyType_Ready(&DescriptorWriterType) < 0
        || PyType_Ready(&DispatcherType) < 0) {
        return NULL;
    }
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
        || (str_write_otherwise = PyUnicode_InternFromString("_write_otherwise")) == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    /* transport_write as a method: bound to each instance it is looked up on. */
    PyObject *function = PyCFunction_New(&transport_write_def, NULL);
    PyObject *method = function == NULL ? NULL : PyInstanceMethod_New(function);
    Py_XDECREF(function);
    if (method == NULL || PyModule_AddObject(module, "transport_write", method) < 0) {
        Py_XDECREF(method);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "DescriptorReader", (PyObject *)&DescriptorReaderType) < 0
        || PyModule_AddObjectRef(module, "DescriptorWriter", (PyObject *)&DescriptorWriterType) < 0
        || PyModule_AddObjectRef(module, "Dispatcher", (PyObject *)&DispatcherType) < 0
        || PyModule_AddIntConstant(module, "SPARE_SIZE", SPARE_SIZE) < 0
        || PyModule_AddIntConstant(module, "COPY_LIMIT", COPY_LIMIT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
