/*
 * The accept path of validate.py's _walk_records, in C (and of
 * validate_produced_batch for uncompressed batches: check_produced_batch).
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

/* The walk itself: 1 with *max_timestamp and *max_index set when the records are
 * valid with no per-record error, else 0 (the Python walk must run). */
static int
walk(const uint8_t *data, int64_t end, Py_ssize_t count, int64_t base_timestamp,
     int compacted, int check_create_time, int64_t earliest, int64_t latest,
     int64_t *max_timestamp_out, Py_ssize_t *max_index_out)
{
    int64_t position = 0;
    int64_t max_timestamp = NO_TIMESTAMP;
    Py_ssize_t max_index = -1;
    uint64_t raw;

    /* A negative count walks no record, as range(count) does. */
    if (count > end / MIN_RECORD_SIZE) {
        return 0;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        if (!read_varint(data, end, &position, 5, &raw)) {
            return 0;
        }
        int64_t length = zigzag(raw);
        int64_t record_end = position + length;
        if (length < MIN_RECORD_SIZE - 1 || record_end > end) {
            return 0;
        }
        position += 1; /* attributes, unused in v2 */
        if (!read_varint(data, end, &position, 10, &raw)) {
            return 0;
        }
        int64_t timestamp_delta = zigzag(raw);
        if (!read_varint(data, end, &position, 5, &raw) || raw != (uint64_t)index << 1) {
            return 0;
        }
        if (!read_varint(data, end, &position, 5, &raw)) {
            return 0;
        }
        int has_key = raw != 1;
        if ((raw & 1) && has_key) {
            return 0;
        }
        position += (int64_t)(raw >> 1);
        if (!read_varint(data, end, &position, 5, &raw) || ((raw & 1) && raw != 1)) {
            return 0;
        }
        position += (int64_t)(raw >> 1);
        if (!read_varint(data, end, &position, 5, &raw)) {
            return 0;
        }
        if (raw) {
            int64_t header_count = zigzag(raw);
            if (header_count < 0 || header_count > record_end - position) {
                return 0;
            }
            for (int64_t h = 0; h < header_count; h++) {
                if (!read_varint(data, end, &position, 5, &raw) || (raw & 1)) {
                    return 0;
                }
                position += (int64_t)(raw >> 1);
                if (!read_varint(data, end, &position, 5, &raw) || ((raw & 1) && raw != 1)) {
                    return 0;
                }
                position += (int64_t)(raw >> 1);
                if (position > record_end) {
                    return 0;
                }
            }
        }
        if (position != record_end) {
            return 0;
        }
        int64_t timestamp;
        if (__builtin_add_overflow(base_timestamp, timestamp_delta, &timestamp)) {
            return 0;
        }
        if (timestamp > max_timestamp) {
            max_timestamp = timestamp;
            max_index = index;
        }
        if (compacted && !has_key) {
            return 0;
        }
        if (check_create_time && timestamp != NO_TIMESTAMP
                && (timestamp < earliest || timestamp > latest)) {
            return 0;
        }
    }
    if (position != end) {
        return 0;
    }
    *max_timestamp_out = max_timestamp;
    *max_index_out = max_index;
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
    int64_t max_timestamp;
    Py_ssize_t max_index;
    int ok = walk((const uint8_t *)view.buf, (int64_t)view.len, count, (int64_t)base_timestamp,
                  compacted, check_create_time, earliest, latest, &max_timestamp, &max_index);
    PyBuffer_Release(&view);
    if (!ok) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(Ln)", (long long)max_timestamp, max_index);
}

/* Set by setup(): the classes and function check_produced_batch uses. */
static PyObject *batch_header_cls, *crc32c_fn;

static inline int64_t
be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return (int64_t)v;
}

static inline int32_t
be32(const uint8_t *p)
{
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8)
                     | p[3]);
}

static inline int16_t
be16(const uint8_t *p)
{
    return (int16_t)(((uint16_t)p[0] << 8) | p[1]);
}

#define LOG_OVERHEAD 12
#define BATCH_HEADER_SIZE 61
#define MIN_BATCH_LENGTH (BATCH_HEADER_SIZE - LOG_OVERHEAD)
#define ATTRIBUTES_OFFSET 21

/*
 * check_produced_batch(buf, max_message_bytes, compacted, check_create_time, earliest, latest)
 *   -> (BatchHeader, max_timestamp, max_index) | None
 *
 * The accept path of validate.py's validate_produced_batch for an
 * uncompressed batch without the LogAppendTime bit: framing (exactly one v2
 * batch, base offset 0, within max.message.bytes), the CRC, the batch checks
 * and the record walk, in one call. At one record per request these were ten
 * Python-level calls, ~2 us of a request. None wherever validate.py would
 * raise, or take another path (compressed, LogAppendTime): it then runs.
 */
static PyObject *
check_produced_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || batch_header_cls == NULL) {
        PyErr_SetString(PyExc_TypeError, "check_produced_batch(buf, max_message_bytes, "
                        "compacted, check_create_time, earliest, latest) after setup()");
        return NULL;
    }
    int64_t max_message_bytes, earliest, latest;
    if (!clamped_int64(args[1], &max_message_bytes) || !clamped_int64(args[4], &earliest)
            || !clamped_int64(args[5], &latest)) {
        return NULL;
    }
    int compacted = PyObject_IsTrue(args[2]);
    int check_create_time = PyObject_IsTrue(args[3]);
    if (compacted < 0 || check_create_time < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const uint8_t *p = (const uint8_t *)view.buf;
    const int64_t available = (int64_t)view.len;
    PyObject *result = NULL;
    if (available < BATCH_HEADER_SIZE) {
        goto fallback;
    }
    int64_t base_offset = be64(p);
    int32_t batch_length = be32(p + 8);
    int32_t partition_leader_epoch = be32(p + 12);
    int8_t magic = (int8_t)p[16];
    uint32_t crc = (uint32_t)be32(p + 17);
    int16_t attributes = be16(p + 21);
    int32_t last_offset_delta = be32(p + 23);
    int64_t base_timestamp = be64(p + 27);
    int64_t max_timestamp = be64(p + 35);
    int64_t producer_id = be64(p + 43);
    int16_t producer_epoch = be16(p + 51);
    int32_t base_sequence = be32(p + 53);
    int32_t records_count = be32(p + 57);
    if (magic != 2 || batch_length < MIN_BATCH_LENGTH
            || (int64_t)batch_length + LOG_OVERHEAD != available || base_offset != 0
            || available > max_message_bytes) {
        goto fallback;
    }
    if ((int64_t)last_offset_delta + 1 <= 0 || records_count <= 0
            || (int64_t)last_offset_delta + 1 != records_count
            || (attributes & 0x20)                       /* control */
            || (producer_id > -1 && base_sequence < 0)
            || (attributes & 0x07) != 0                  /* compressed: Python decompresses */
            || (attributes & 0x08)) {                    /* LogAppendTime set by the producer */
        goto fallback;
    }
    int64_t walked_max;
    Py_ssize_t max_index;
    if (!walk(p + BATCH_HEADER_SIZE, available - BATCH_HEADER_SIZE, records_count,
              base_timestamp, compacted, check_create_time, earliest, latest, &walked_max,
              &max_index)) {
        goto fallback;
    }
    PyObject *covered = PyMemoryView_FromMemory((char *)p + ATTRIBUTES_OFFSET,
                                                available - ATTRIBUTES_OFFSET, PyBUF_READ);
    if (covered == NULL) {
        goto done;
    }
    PyObject *computed = PyObject_CallOneArg(crc32c_fn, covered);
    Py_DECREF(covered);
    if (computed == NULL) {
        goto done;
    }
    unsigned long value = PyLong_AsUnsignedLong(computed);
    Py_DECREF(computed);
    if (value == (unsigned long)-1 && PyErr_Occurred()) {
        goto done;
    }
    if (value != crc) {
        goto fallback;
    }
    PyObject *header = PyObject_CallFunction(
        batch_header_cls, "iLiiiIiiLLLiii", 0, (long long)base_offset, (int)batch_length,
        (int)partition_leader_epoch, (int)magic, (unsigned int)crc, (int)attributes,
        (int)last_offset_delta, (long long)base_timestamp, (long long)max_timestamp,
        (long long)producer_id, (int)producer_epoch, (int)base_sequence, (int)records_count);
    if (header != NULL) {
        result = Py_BuildValue("(NLn)", header, (long long)walked_max, max_index);
    }
    goto done;
fallback:
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
setup(PyObject *module, PyObject *args)
{
    PyObject *cls, *fn;
    if (!PyArg_ParseTuple(args, "OO", &cls, &fn)) {
        return NULL;
    }
    Py_XSETREF(batch_header_cls, Py_NewRef(cls));
    Py_XSETREF(crc32c_fn, Py_NewRef(fn));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"walk_records", walk_records, METH_VARARGS,
     "walk_records(data, count, base_timestamp, compacted, check_create_time, earliest, latest)"
     " -> (max_timestamp, max_index) if the records are valid with no per-record error,"
     " else None."},
    {"check_produced_batch", (PyCFunction)(void (*)(void))check_produced_batch, METH_FASTCALL,
     "check_produced_batch(buf, max_message_bytes, compacted, check_create_time, earliest,"
     " latest) -> (BatchHeader, max_timestamp, max_index) if validate_produced_batch would"
     " accept the uncompressed batch with these, else None."},
    {"setup", setup, METH_VARARGS, "setup(BatchHeader, crc32c)"},
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
