/*
 * The accept path of the request header and ProduceRequest parsers, in C.
 *
 * At one record per request (librdkafka with linger.ms=0, the fleet
 * workload) parsing the header and the ProduceRequest took ~5 us of the
 * broker's ~35 us per request in Python, most of it method calls per field
 * (docs/benchmarks.md, "One-record requests"). These functions parse the
 * common, well-formed case in one call and build the same objects the
 * Python parsers build. On anything they do not accept (truncation, a bad
 * length, invalid UTF-8, a varint longer than 5 bytes) they return None
 * and the caller runs the Python parser, which raises the precise
 * InvalidRequestError: the error behaviour has one implementation, and the
 * tests compare both parsers on random and damaged frames
 * (tests/protocol/test_fast_produce_c.py).
 *
 * setup_header() and setup_produce() receive the classes to build
 * (RequestHeader; ProduceRequest, TopicProduceData, PartitionProduceData)
 * and a bytes -> uuid.UUID function, so this module imports nothing of strom.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyObject *header_cls, *request_cls, *topic_cls, *partition_cls, *uuid_from_bytes;

typedef struct {
    const uint8_t *data;
    Py_ssize_t len;
    Py_ssize_t pos;
    int flexible;
} reader;

/* As varint.read_uvarint: at most 5 bytes, the value not masked. */
static inline int
uvarint(reader *r, int64_t *out)
{
    uint64_t result = 0;
    for (int i = 0; i < 5; i++) {
        if (r->pos >= r->len) {
            return 0;
        }
        uint8_t byte = r->data[r->pos++];
        result |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (byte < 0x80) {
            *out = (int64_t)result;
            return 1;
        }
    }
    return 0;
}

static inline int
need(reader *r, int64_t n)
{
    return n >= 0 && r->pos + n <= r->len;
}

static inline int16_t
be16(const uint8_t *p)
{
    return (int16_t)(((uint16_t)p[0] << 8) | p[1]);
}

static inline int32_t
be32(const uint8_t *p)
{
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8)
                     | p[3]);
}

static inline int
int32(reader *r, int64_t *out)
{
    if (!need(r, 4)) {
        return 0;
    }
    *out = be32(r->data + r->pos);
    r->pos += 4;
    return 1;
}

/* A string, bytes or array length: uvarint - 1 when flexible, else int16 or int32. */
static inline int
length(reader *r, int wide, int64_t *out)
{
    if (r->flexible) {
        if (!uvarint(r, out)) {
            return 0;
        }
        *out -= 1;
        return 1;
    }
    if (!wide) {
        if (!need(r, 2)) {
            return 0;
        }
        *out = be16(r->data + r->pos);
        r->pos += 2;
        return 1;
    }
    return int32(r, out);
}

/* A nullable string: a new reference, Py_None for null, NULL if not accepted. */
static PyObject *
string(reader *r)
{
    int64_t n;
    if (!length(r, 0, &n) || n < -1) {
        return NULL;
    }
    if (n == -1) {
        Py_RETURN_NONE;
    }
    if (!need(r, n)) {
        return NULL;
    }
    PyObject *text = PyUnicode_DecodeUTF8((const char *)r->data + r->pos, n, NULL);
    if (text == NULL) {
        PyErr_Clear();  /* the Python parser names the error */
        return NULL;
    }
    r->pos += n;
    return text;
}

static int
skip_tagged_fields(reader *r)
{
    if (!r->flexible) {
        return 1;
    }
    int64_t count, tag, size;
    if (!uvarint(r, &count)) {
        return 0;
    }
    for (int64_t i = 0; i < count; i++) {
        if (!uvarint(r, &tag) || !uvarint(r, &size) || !need(r, size)) {
            return 0;
        }
        r->pos += size;
    }
    return 1;
}

static int
array_length(reader *r, int64_t *out)
{
    /* Each element takes at least one byte: a cheap bound against huge counts. */
    return length(r, 1, out) && *out >= 0 && *out <= r->len - r->pos;
}

/* parse_request_header(frame, header_version) -> (RequestHeader, offset) | None */
static PyObject *
parse_request_header(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || header_cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "parse_request_header(frame, header_version)");
        return NULL;
    }
    long header_version = PyLong_AsLong(args[1]);
    if (header_version == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    reader r = {view.buf, view.len, 8, 0};
    PyObject *client_id = NULL, *result = NULL;
    if (r.len < 8) {
        goto fallback;
    }
    if (header_version >= 1) {
        client_id = string(&r);  /* int16 length even in flexible versions */
        if (client_id == NULL) {
            goto fallback;
        }
    } else {
        client_id = Py_NewRef(Py_None);
    }
    if (header_version >= 2) {
        int64_t count, tag, size;
        if (!uvarint(&r, &count)) {
            goto fallback;
        }
        for (int64_t i = 0; i < count; i++) {
            if (!uvarint(&r, &tag) || !uvarint(&r, &size) || r.pos + size > r.len) {
                goto fallback;
            }
            r.pos += size;
        }
    }
    {
        const uint8_t *p = r.data;
        PyObject *header = PyObject_CallFunction(header_cls, "iiiO", (int)be16(p),
                                                 (int)be16(p + 2), (int)be32(p + 4), client_id);
        if (header != NULL) {
            result = Py_BuildValue("(Nn)", header, r.pos);
        }
    }
    Py_XDECREF(client_id);
    PyBuffer_Release(&view);
    return result;
fallback:
    Py_XDECREF(client_id);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* parse_produce_request(version, frame, offset) -> ProduceRequest | None */
static PyObject *
parse_produce_request(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || request_cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "parse_produce_request(version, frame, offset)");
        return NULL;
    }
    long version = PyLong_AsLong(args[0]);
    if (version == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t offset = PyLong_AsSsize_t(args[2]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    reader r = {view.buf, view.len, offset, version >= 9};
    PyObject *transactional_id = NULL, *topics = NULL, *frame_view = NULL, *result = NULL;
    PyObject *name = NULL, *topic_id = NULL, *partitions = NULL;
    int64_t topic_count, partition_count;
    if (offset < 0 || offset > r.len) {
        goto fallback;
    }
    transactional_id = string(&r);
    if (transactional_id == NULL || !need(&r, 6)) {
        goto fallback;
    }
    int acks = be16(r.data + r.pos);
    int timeout = be32(r.data + r.pos + 2);
    r.pos += 6;
    if (!array_length(&r, &topic_count)) {
        goto fallback;
    }
    topics = PyTuple_New(topic_count);
    if (topics == NULL) {
        goto error;
    }
    for (int64_t t = 0; t < topic_count; t++) {
        if (version >= 13) {
            if (!need(&r, 16)) {
                goto fallback;
            }
            PyObject *raw = PyBytes_FromStringAndSize((const char *)r.data + r.pos, 16);
            if (raw == NULL) {
                goto error;
            }
            topic_id = PyObject_CallOneArg(uuid_from_bytes, raw);
            Py_DECREF(raw);
            if (topic_id == NULL) {
                goto error;
            }
            r.pos += 16;
            name = Py_NewRef(Py_None);
        } else {
            name = string(&r);
            if (name == NULL || name == Py_None) {
                goto fallback;
            }
            topic_id = Py_NewRef(Py_None);
        }
        if (!array_length(&r, &partition_count)) {
            goto fallback;
        }
        partitions = PyTuple_New(partition_count);
        if (partitions == NULL) {
            goto error;
        }
        for (int64_t p = 0; p < partition_count; p++) {
            int64_t index, n;
            PyObject *records;
            if (!int32(&r, &index) || !length(&r, 1, &n) || n < -1) {
                goto fallback;
            }
            if (n == -1) {
                records = Py_NewRef(Py_None);
            } else {
                if (!need(&r, n)) {
                    goto fallback;
                }
                if (frame_view == NULL) {
                    frame_view = PyMemoryView_FromObject(args[1]);
                    if (frame_view == NULL) {
                        goto error;
                    }
                }
                records = PySequence_GetSlice(frame_view, r.pos, r.pos + n);
                if (records == NULL) {
                    goto error;
                }
                r.pos += n;
            }
            if (!skip_tagged_fields(&r)) {
                Py_DECREF(records);
                goto fallback;
            }
            PyObject *index_obj = PyLong_FromLongLong(index);
            if (index_obj == NULL) {
                Py_DECREF(records);
                goto error;
            }
            PyObject *partition = PyObject_CallFunctionObjArgs(partition_cls, index_obj, records,
                                                               NULL);
            Py_DECREF(index_obj);
            Py_DECREF(records);
            if (partition == NULL) {
                goto error;
            }
            PyTuple_SET_ITEM(partitions, p, partition);
        }
        if (!skip_tagged_fields(&r)) {
            goto fallback;
        }
        PyObject *topic = PyObject_CallFunctionObjArgs(topic_cls, name, topic_id, partitions,
                                                       NULL);
        Py_CLEAR(name);
        Py_CLEAR(topic_id);
        Py_CLEAR(partitions);
        if (topic == NULL) {
            goto error;
        }
        PyTuple_SET_ITEM(topics, t, topic);
    }
    if (!skip_tagged_fields(&r)) {
        goto fallback;
    }
    result = PyObject_CallFunction(request_cls, "OiiO", transactional_id, acks, timeout, topics);
    goto done;
fallback:
    result = Py_NewRef(Py_None);
    goto done;
error:
    result = NULL;
done:
    Py_XDECREF(name);
    Py_XDECREF(topic_id);
    Py_XDECREF(partitions);
    Py_XDECREF(topics);
    Py_XDECREF(transactional_id);
    if (frame_view != NULL) {
        /* Views handed out keep the buffer exported; this one is no longer needed. */
        Py_DECREF(frame_view);
    }
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
setup_header(PyObject *self, PyObject *cls)
{
    Py_XSETREF(header_cls, Py_NewRef(cls));
    Py_RETURN_NONE;
}

static PyObject *
setup_produce(PyObject *self, PyObject *args)
{
    PyObject *q, *t, *p, *u;
    if (!PyArg_ParseTuple(args, "OOOO", &q, &t, &p, &u)) {
        return NULL;
    }
    Py_XSETREF(request_cls, Py_NewRef(q));
    Py_XSETREF(topic_cls, Py_NewRef(t));
    Py_XSETREF(partition_cls, Py_NewRef(p));
    Py_XSETREF(uuid_from_bytes, Py_NewRef(u));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup_header", setup_header, METH_O, "setup_header(RequestHeader)"},
    {"setup_produce", setup_produce, METH_VARARGS,
     "setup_produce(ProduceRequest, TopicProduceData, PartitionProduceData, uuid_from_bytes)"},
    {"parse_request_header", (PyCFunction)(void (*)(void))parse_request_header, METH_FASTCALL,
     "parse_request_header(frame, header_version) -> (RequestHeader, body offset), or None"
     " where the Python parser must run (and raise)."},
    {"parse_produce_request", (PyCFunction)(void (*)(void))parse_produce_request, METH_FASTCALL,
     "parse_produce_request(version, frame, offset) -> ProduceRequest, or None where the"
     " Python parser must run (and raise)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "strom.protocol.fast._produce",
    "The accept path of the request header and ProduceRequest parsers, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__produce(void)
{
    return PyModule_Create(&module);
}
