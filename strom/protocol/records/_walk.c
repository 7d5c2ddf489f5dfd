/*
 * The accept path of validate.py's _walk_records, in C.
 *
 * Walking every record of a produced batch was half of the broker's CPU time
 * producing 1 KiB records with librdkafka (py-spy, docs/benchmarks.md). This
 * module answers one question fast: does the Python walk accept these records
 * with no per-record error, and if so, what are the batch's max timestamp and
 * the index of its first record with that timestamp?
 *
 * It returns (max_timestamp, max_index) only when _walk_records would return
 * those values and no error; in every other case (a structural fault, a
 * per-record error, an arithmetic overflow Python would handle with big
 * integers) it returns None and the caller runs the Python walk, which raises
 * or reports exactly as before. So the error behaviour has one
 * implementation, and the tests compare both walks on random and corrupted
 * batches (tests/protocol/test_records_fast_walk.py).
 *
 * The decoding mirrors _walk_records: varints of at most 5 bytes are masked to
 * 32 bits and of at most 10 bytes to 64 bits, then zigzag-decoded where the
 * Python code decodes them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define MIN_RECORD_SIZE 7
#define NO_TIMESTAMP (-1)

/* Decode a varint of at most max_bytes at *pos; 0 when it runs off the end or is too long. */
static inline int
read_varint(const uint8_t *data, int64_t end, int64_t *pos, int max_bytes, uint64_t *out)
{
    uint64_t raw = 0;
    int shift = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (*pos >= end) {
            return 0;
        }
        uint8_t byte = data[(*pos)++];
        if (shift < 64) {
            raw |= (uint64_t)(byte & 0x7F) << shift;
        }
        if (byte < 0x80) {
            *out = max_bytes == 5 ? (raw & 0xFFFFFFFFu) : raw;
            return 1;
        }
        shift += 7;
    }
    return 0;
}

static inline int64_t
zigzag(uint64_t raw)
{
    return (int64_t)(raw >> 1) ^ -(int64_t)(raw & 1);
}

/* A Python int clamped to int64: timestamps are int64, so a bound beyond it compares the same. */
static int
clamped_int64(PyObject *value, int64_t *out)
{
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return 0;
    }
    *out = overflow > 0 ? INT64_MAX : overflow < 0 ? INT64_MIN : (int64_t)v;
    return 1;
}

static PyObject *
walk_records(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t count;
    long long base_timestamp;
    int compacted, check_create_time;
    PyObject *earliest_obj, *latest_obj;
    if (!PyArg_ParseTuple(args, "y*nLppOO", &view, &count, &base_timestamp, &compacted,
                          &check_create_time, &earliest_obj, &latest_obj)) {
        return NULL;
    }
    int64_t earliest, latest;
    if (!clamped_int64(earliest_obj, &earliest) || !clamped_int64(latest_obj, &latest)) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const uint8_t *data = (const uint8_t *)view.buf;
    const int64_t end = (int64_t)view.len;
    int64_t position = 0;
    int64_t max_timestamp = NO_TIMESTAMP;
    Py_ssize_t max_index = -1;
    uint64_t raw;

    /* A negative count walks no record, as range(count) does. */
    if (count > end / MIN_RECORD_SIZE) {
        goto fallback;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        if (!read_varint(data, end, &position, 5, &raw)) {
            goto fallback;
        }
        int64_t length = zigzag(raw);
        int64_t record_end = position + length;
        if (length < MIN_RECORD_SIZE - 1 || record_end > end) {
            goto fallback;
        }
        position += 1; /* attributes, unused in v2 */
        if (!read_varint(data, end, &position, 10, &raw)) {
            goto fallback;
        }
        int64_t timestamp_delta = zigzag(raw);
        if (!read_varint(data, end, &position, 5, &raw) || raw != (uint64_t)index << 1) {
            goto fallback;
        }
        if (!read_varint(data, end, &position, 5, &raw)) {
            goto fallback;
        }
        int has_key = raw != 1;
        if ((raw & 1) && has_key) {
            goto fallback;
        }
        position += (int64_t)(raw >> 1);
        if (!read_varint(data, end, &position, 5, &raw) || ((raw & 1) && raw != 1)) {
            goto fallback;
        }
        position += (int64_t)(raw >> 1);
        if (!read_varint(data, end, &position, 5, &raw)) {
            goto fallback;
        }
        if (raw) {
            int64_t header_count = zigzag(raw);
            if (header_count < 0 || header_count > record_end - position) {
                goto fallback;
            }
            for (int64_t h = 0; h < header_count; h++) {
                if (!read_varint(data, end, &position, 5, &raw) || (raw & 1)) {
                    goto fallback;
                }
                position += (int64_t)(raw >> 1);
                if (!read_varint(data, end, &position, 5, &raw) || ((raw & 1) && raw != 1)) {
                    goto fallback;
                }
                position += (int64_t)(raw >> 1);
                if (position > record_end) {
                    goto fallback;
                }
            }
        }
        if (position != record_end) {
            goto fallback;
        }
        int64_t timestamp;
        if (__builtin_add_overflow((int64_t)base_timestamp, timestamp_delta, &timestamp)) {
            goto fallback;
        }
        if (timestamp > max_timestamp) {
            max_timestamp = timestamp;
            max_index = index;
        }
        if (compacted && !has_key) {
            goto fallback;
        }
        if (check_create_time && timestamp != NO_TIMESTAMP
                && (timestamp < earliest || timestamp > latest)) {
            goto fallback;
        }
    }
    if (position != end) {
        goto fallback;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Ln)", (long long)max_timestamp, max_index);

fallback:
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"walk_records", walk_records, METH_VARARGS,
     "walk_records(data, count, base_timestamp, compacted, check_create_time, earliest, latest)"
     " -> (max_timestamp, max_index) if the records are valid with no per-record error,"
     " else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "strom.protocol.records._walk",
    "The accept path of validate.py's record walk, in C.", -1, methods,
};

PyMODINIT_FUNC
PyInit__walk(void)
{
    return PyModule_Create(&module);
}
