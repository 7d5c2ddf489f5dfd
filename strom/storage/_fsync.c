/*
 * fsync threads that never take the GIL.
 *
 * At one record per acks=all request (the fleet workload: 10,000 requests/s
 * over 6 partitions) a group commit covers one to three requests, so the
 * broker runs thousands of fdatasyncs a second. With Python threads each one
 * needed the GIL back after the syscall and again to hand its result to the
 * event loop (call_soon_threadsafe): perf counted 67,000 futex calls a second
 * for 3,400 fdatasyncs, and the loop, which holds the GIL nearly all the
 * time, was forced to drop it for every one (docs/benchmarks.md, issue 19).
 *
 * Here the threads run plain C: a job is a list of fds to fdatasync and then
 * fds to fsync (directories), copied out of Python when submitted. A
 * finished job goes on a done list and the pool's eventfd is written when
 * that list goes from empty to non-empty, so the loop wakes once for any
 * number of finished jobs and collects them with completed(). Only the
 * owner thread (the event loop) calls into the pool object.
 *
 * A syncfs job (submit_syncfs) syncs a whole file system for a round of
 * partitions instead (broker/flusher.py says why and how errors are found),
 * unless /proc/meminfo shows more dirty data than the caller allows: then it
 * syncs nothing and reports -1, and the caller flushes each file itself.
 */
#define _GNU_SOURCE  /* syncfs */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct job {
    struct job *next;
    long long token;
    int syncfs;     /* 1: syncfs(fds[0]) instead of the fd list */
    long long max_dirty;  /* syncfs: skip (error -1) above this many dirty bytes; <0: never */
    int error;      /* errno of the first failing sync, 0 if none */
    int failed_at;  /* index of the fd that failed, -1 if none */
    int ndata;      /* fds[0:ndata] are fdatasync'd, the rest fsync'd */
    int nfds;
    int fds[];
} job;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *pending_head, *pending_tail;
    job *done_head, *done_tail;
    int stopping;
    int efd;
    int nthreads;
    pthread_t *threads;
} Pool;

/* Dirty + Writeback of /proc/meminfo in bytes: what a syncfs would have to
 * write first (of every file system: the kernel does not count per file
 * system); -1 if it cannot be read. */
static long long
dirty_bytes(void)
{
    char buf[8192];
    int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    long long total = 0;
    int found = 0;
    for (char *line = buf; line != NULL && *line != '\0';) {
        long long kib;
        if (sscanf(line, "Dirty: %lld kB", &kib) == 1 ||
                sscanf(line, "Writeback: %lld kB", &kib) == 1) {
            total += kib * 1024;
            found++;
        }
        line = strchr(line, '\n');
        if (line != NULL) {
            line++;
        }
    }
    return found == 2 ? total : -1;
}

static void
run_syncfs(job *j)
{
    if (j->max_dirty >= 0) {
        long long dirty = dirty_bytes();
        if (dirty < 0 || dirty > j->max_dirty) {
            j->error = -1;  /* the caller syncs each file instead */
            return;
        }
    }
    int rc;
    do {
        rc = syncfs(j->fds[0]);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        j->error = errno;
        j->failed_at = 0;
    }
}

static void
run_job(job *j)
{
    if (j->syncfs) {
        run_syncfs(j);
        return;
    }
    for (int i = 0; i < j->nfds; i++) {
        int rc;
        do {
            rc = i < j->ndata ? fdatasync(j->fds[i]) : fsync(j->fds[i]);
        } while (rc != 0 && errno == EINTR);
        if (rc != 0) {
            j->error = errno;
            j->failed_at = i;
            return;
        }
    }
}

static void *
worker(void *arg)
{
    Pool *p = (Pool *)arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->pending_head == NULL && !p->stopping) {
            pthread_cond_wait(&p->wake, &p->lock);
        }
        job *j = p->pending_head;
        if (j == NULL) { /* stopping and nothing left to run */
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        p->pending_head = j->next;
        if (p->pending_head == NULL) {
            p->pending_tail = NULL;
        }
        pthread_mutex_unlock(&p->lock);

        run_job(j);

        pthread_mutex_lock(&p->lock);
        j->next = NULL;
        int was_empty = p->done_head == NULL;
        if (was_empty) {
            p->done_head = j;
        } else {
            p->done_tail->next = j;
        }
        p->done_tail = j;
        pthread_mutex_unlock(&p->lock);
        if (was_empty) {
            uint64_t one = 1;
            ssize_t w;
            do {
                w = write(p->efd, &one, sizeof one);
            } while (w < 0 && errno == EINTR);
            /* EAGAIN means the counter is already non-zero: the loop wakes. */
        }
    }
}

static void
free_list(job *j)
{
    while (j != NULL) {
        job *next = j->next;
        PyMem_RawFree(j);
        j = next;
    }
}

/* Stop the threads once the jobs queued before this have run. */
static void
pool_stop(Pool *p)
{
    if (p->threads == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < p->nthreads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(p->threads);
    p->threads = NULL;
}

static PyObject *
pool_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    int nthreads;
    static char *kwlist[] = {"threads", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", kwlist, &nthreads)) {
        return NULL;
    }
    if (nthreads < 1 || nthreads > 256) {
        PyErr_SetString(PyExc_ValueError, "threads must be in 1..256");
        return NULL;
    }
    Pool *p = (Pool *)type->tp_alloc(type, 0);
    if (p == NULL) {
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(p);
        return NULL;
    }
    p->threads = PyMem_RawCalloc((size_t)nthreads, sizeof(pthread_t));
    if (p->threads == NULL) {
        Py_DECREF(p);
        return PyErr_NoMemory();
    }
    for (int i = 0; i < nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker, p);
        if (rc != 0) {
            p->nthreads = i;
            pool_stop(p);
            Py_DECREF(p);
            errno = rc;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        p->nthreads = i + 1;
    }
    return (PyObject *)p;
}

static void
pool_dealloc(Pool *p)
{
    pool_stop(p);
    free_list(p->pending_head);
    free_list(p->done_head);
    if (p->efd >= 0) {
        close(p->efd);
    }
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static int
copy_fds(PyObject *seq, int *out, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (fd == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (fd < 0 || fd > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "not a file descriptor");
            return -1;
        }
        out[i] = (int)fd;
    }
    return 0;
}

static void
enqueue(Pool *p, job *j)
{
    pthread_mutex_lock(&p->lock);
    if (p->pending_tail == NULL) {
        p->pending_head = j;
    } else {
        p->pending_tail->next = j;
    }
    p->pending_tail = j;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

static PyObject *
pool_submit_syncfs(Pool *p, PyObject *args)
{
    long long token, max_dirty;
    int fd;
    if (!PyArg_ParseTuple(args, "LiL:submit_syncfs", &token, &fd, &max_dirty)) {
        return NULL;
    }
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "not a file descriptor");
        return NULL;
    }
    if (p->threads == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the fsync pool is shut down");
        return NULL;
    }
    job *j = PyMem_RawMalloc(sizeof(job) + sizeof(int));
    if (j == NULL) {
        return PyErr_NoMemory();
    }
    j->next = NULL;
    j->token = token;
    j->syncfs = 1;
    j->max_dirty = max_dirty;
    j->error = 0;
    j->failed_at = -1;
    j->ndata = 0;
    j->nfds = 1;
    j->fds[0] = fd;
    enqueue(p, j);
    Py_RETURN_NONE;
}

static PyObject *
pool_submit(Pool *p, PyObject *args)
{
    long long token;
    PyObject *data_arg, *dirs_arg;
    if (!PyArg_ParseTuple(args, "LOO:submit", &token, &data_arg, &dirs_arg)) {
        return NULL;
    }
    if (p->threads == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the fsync pool is shut down");
        return NULL;
    }
    PyObject *data = PySequence_Fast(data_arg, "data fds must be a sequence");
    if (data == NULL) {
        return NULL;
    }
    PyObject *dirs = PySequence_Fast(dirs_arg, "directory fds must be a sequence");
    if (dirs == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    Py_ssize_t nd = PySequence_Fast_GET_SIZE(data), nr = PySequence_Fast_GET_SIZE(dirs);
    job *j = NULL;
    if (nd + nr > 65536) {
        PyErr_SetString(PyExc_ValueError, "too many fds in one job");
        goto fail;
    }
    j = PyMem_RawMalloc(sizeof(job) + (size_t)(nd + nr) * sizeof(int));
    if (j == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    j->next = NULL;
    j->token = token;
    j->syncfs = 0;
    j->max_dirty = -1;
    j->error = 0;
    j->failed_at = -1;
    j->ndata = (int)nd;
    j->nfds = (int)(nd + nr);
    if (copy_fds(data, j->fds, nd) < 0 || copy_fds(dirs, j->fds + nd, nr) < 0) {
        goto fail;
    }
    Py_DECREF(data);
    Py_DECREF(dirs);
    enqueue(p, j);
    Py_RETURN_NONE;
fail:
    PyMem_RawFree(j);
    Py_DECREF(data);
    Py_DECREF(dirs);
    return NULL;
}

static PyObject *
pool_completed(Pool *p, PyObject *Py_UNUSED(ignored))
{
    uint64_t count;
    ssize_t r;
    do {
        r = read(p->efd, &count, sizeof count);
    } while (r < 0 && errno == EINTR);
    /* Reset before taking the list: a job finished after this read writes
     * the eventfd again, so none is left without a wake-up. */
    pthread_mutex_lock(&p->lock);
    job *j = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);

    PyObject *out = PyList_New(0);
    if (out == NULL) {
        free_list(j);
        return NULL;
    }
    while (j != NULL) {
        job *next = j->next;
        PyObject *item = Py_BuildValue("(Lii)", j->token, j->error, j->failed_at);
        PyMem_RawFree(j);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            free_list(next);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
        j = next;
    }
    return out;
}

static PyObject *
pool_fileno(Pool *p, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(p->efd);
}

static PyObject *
pool_shutdown(Pool *p, PyObject *Py_UNUSED(ignored))
{
    pool_stop(p);
    Py_RETURN_NONE;
}

static PyMethodDef pool_methods[] = {
    {"submit", (PyCFunction)pool_submit, METH_VARARGS,
     "submit(token, data_fds, dir_fds): fdatasync data_fds, then fsync dir_fds, "
     "on a pool thread; stops at the first failure."},
    {"submit_syncfs", (PyCFunction)pool_submit_syncfs, METH_VARARGS,
     "submit_syncfs(token, fd, max_dirty): syncfs(fd) on a pool thread, unless "
     "the machine has more than max_dirty bytes dirty or under writeback "
     "(max_dirty < 0: always); then the job reports errno -1."},
    {"completed", (PyCFunction)pool_completed, METH_NOARGS,
     "completed() -> [(token, errno, failed_at)] of the jobs finished since the last call."},
    {"fileno", (PyCFunction)pool_fileno, METH_NOARGS,
     "The eventfd that becomes readable when jobs have finished."},
    {"shutdown", (PyCFunction)pool_shutdown, METH_NOARGS,
     "Run the jobs already submitted, then stop the threads."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PoolType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "strom.storage._fsync.Pool",
    .tp_basicsize = sizeof(Pool),
    .tp_dealloc = (destructor)pool_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Threads that fdatasync lists of fds without the GIL.",
    .tp_methods = pool_methods,
    .tp_new = pool_new,
};

static struct PyModuleDef fsync_module = {
    PyModuleDef_HEAD_INIT, "_fsync",
    "fsync threads that never take the GIL (strom/broker/flusher.py).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__fsync(void)
{
    if (PyType_Ready(&PoolType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&fsync_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&PoolType);
    if (PyModule_AddObject(m, "Pool", (PyObject *)&PoolType) < 0) {
        Py_DECREF(&PoolType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
