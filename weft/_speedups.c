/* weft._speedups: the reactor's per-message system calls, made from C.
 *
 * One job: a reader and a writer bound to one non-blocking descriptor,
 * drop-in replacements for ``functools.partial(os.read, fd)`` and
 * ``functools.partial(os.write, fd)``, with the same results and the same
 * exceptions.  What they save per call (see docs/performance.md, "The C
 * accelerator"):
 *
 *   - the partial's call and os's argument parsing: the reader and the
 *     writer are vectorcall objects that take their one argument as it is;
 *   - releasing the GIL around the system call and taking it back (a few
 *     hundred instructions each way, on every read and every write);
 *   - for a small read, the 64 KiB bytes object that os.read allocates and
 *     then shrinks: the read goes into a spare buffer kept here, and only
 *     what arrived is copied out into a bytes object of its size.
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
#include <stddef.h>
#include <unistd.h>

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
    if (PyType_Ready(&DescriptorReaderType) < 0 || PyType_Ready(&DescriptorWriterType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "DescriptorReader", (PyObject *)&DescriptorReaderType) < 0
        || PyModule_AddObjectRef(module, "DescriptorWriter", (PyObject *)&DescriptorWriterType) < 0
        || PyModule_AddIntConstant(module, "SPARE_SIZE", SPARE_SIZE) < 0
        || PyModule_AddIntConstant(module, "COPY_LIMIT", COPY_LIMIT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
