/* Pupils in JSON, read and written in C: the steps of a big /predict batch that are a
 * Python line per pupil otherwise (app/tables/json.py, app/services/batches.py and
 * app/services/answers.py call them; tests/test_pupiljson.py checks them against the
 * standard library's json and against orjson).
 *
 * read_pupils: a JSON list of pupils in the usual shape only, objects of exactly the
 *   features as JSON numbers, with an id for every pupil or none, into a float64 matrix and
 *   the ids. Anything else (a mark, an escape, a missing or unknown or repeated key, a
 *   number out of float range...) gives None, and the service reads the body with its
 *   general reader, which says what is wrong. The text is scanned without the GIL.
 *
 * read_object: where the members of a JSON object lie in its text (a big body's envelope),
 *   its structure checked without the GIL; each member is then read, and checked in full,
 *   by its own reader (orjson, or read_pupils, read_column and read_ids for the pupils).
 *
 * write_pupils: the answer's pupils, each a template's texts with its figures between
 *   them. Numbers are written as orjson writes them: a number rounded to six decimals, in
 *   orjson's plain range, directly; any other one by the `dumps` given (orjson's). A big
 *   answer is written without the GIL up to the first pupil that takes Python (a number or
 *   an id for orjson), and from there with it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- growable buffers */

/* Raw memory (the readers, without the GIL), or the storage of a bytes object being
 * written (`owner`; resized with the GIL only): the answer is written where it is returned from, sized
 * by its upper bound up front, so its pages are touched once and never copied. */
typedef struct {
    char *data;
    size_t size, capacity;
    PyObject *owner;
    int frozen; /* `owner` is written without the GIL: it cannot grow (NEEDS_PYTHON) */
} Buffer;

/* What a step of the writer run without the GIL says when the step needs Python: a number
 * or an id for orjson, a str object, a bytes object resized. It is then done with the GIL. */
#define NEEDS_PYTHON 1

static int buffer_reserve(Buffer *b, size_t more) {
    if (b->size + more <= b->capacity) return 0;
    if (b->frozen) return NEEDS_PYTHON;
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->size + more) capacity *= 2;
    if (b->owner != NULL) {
        if (_PyBytes_Resize(&b->owner, (Py_ssize_t)capacity) < 0) return -1; /* owner freed */
        b->data = PyBytes_AS_STRING(b->owner);
    } else {
        char *data = PyMem_RawRealloc(b->data, capacity);
        if (data == NULL) return -1;
        b->data = data;
    }
    b->capacity = capacity;
    return 0;
}

/* A buffer writing into a new bytes object of `capacity` bytes; -1 with an exception. */
static int buffer_of_bytes(Buffer *b, size_t capacity) {
    b->owner = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)capacity);
    if (b->owner == NULL) return -1;
    b->data = PyBytes_AS_STRING(b->owner);
    b->size = 0;
    b->capacity = capacity;
    return 0;
}

static int buffer_add(Buffer *b, const void *data, size_t size) {
    if (size == 0) return 0; /* memcpy wants a buffer, even for nothing */
    int status = buffer_reserve(b, size);
    if (status) return status;
    memcpy(b->data + b->size, data, size);
    b->size += size;
    return 0;
}

/* ---------------------------------------------------------------------- reading */

#define MAX_FEATURES 64

typedef struct {
    const char *text;
    Py_ssize_t length;
} Name;

/* Where an id or a number that needs Python lies in the body. */
typedef struct {
    Py_ssize_t start, length;
    int kind; /* ID_TEXT, ID_INTEGER, or SLOW_NUMBER */
    Py_ssize_t cell; /* SLOW_NUMBER: index in values */
} Span;

enum { ID_TEXT, ID_INTEGER, SLOW_NUMBER };

typedef struct {
    const char *p, *end;
} Cursor;

static inline void skip_space(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static const double POWERS[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

typedef enum { NUMBER_BAD, NUMBER_DONE, NUMBER_SLOW } NumberResult;

/* A JSON number (RFC 8259's grammar, exactly). NUMBER_DONE: *value holds it, correctly
 * rounded (an exact mantissa and power of ten, one IEEE operation). NUMBER_SLOW: valid
 * but for Python's correctly rounded conversion. *integer: no fraction, no exponent. */
static NumberResult read_number(Cursor *c, double *value, int *integer) {
    const char *p = c->p, *end = c->end;
    int negative = 0, exact = 1;
    uint64_t mantissa = 0;
    int scale = 0; /* value = mantissa * 10^scale when exact */
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end) return NUMBER_BAD;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            if (mantissa < 100000000000000000ULL)
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            else
                exact = 0;
            p++;
        }
    } else {
        return NUMBER_BAD;
    }
    *integer = 1;
    if (p < end && *p == '.') {
        *integer = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') return NUMBER_BAD;
        while (p < end && *p >= '0' && *p <= '9') {
            if (mantissa < 100000000000000000ULL) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                scale--;
            } else {
                exact = 0;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;
        int exponent_negative = 0;
        long exponent = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            exponent_negative = *p == '-';
            p++;
        }
        if (p >= end || *p < '0' || *p > '9') return NUMBER_BAD;
        while (p < end && *p >= '0' && *p <= '9') {
            if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
            p++;
        }
        if (exponent >= 100000) exact = 0;
        scale += (int)(exponent_negative ? -exponent : exponent);
    }
    c->p = p;
    if (mantissa == 0 && exact) {
        /* "-0" is the integer 0 to the other readers (orjson, json): 0.0, not -0.0. */
        *value = (negative && !*integer) ? -0.0 : 0.0;
        return NUMBER_DONE;
    }
    if (!exact || mantissa > (1ULL << 53) || scale < -22 || scale > 22) return NUMBER_SLOW;
    double number = (double)mantissa;
    number = scale < 0 ? number / POWERS[-scale] : number * POWERS[scale];
    *value = negative ? -number : number;
    return NUMBER_DONE;
}

/* An integer id of at most 18 digits: one that every reader takes for an int (orjson
 * reads one beyond 64 bits as a float, which is no id); a longer one is left to them. */
static int small_integer(const char *start, const char *end) {
    return end - start - (*start == '-') <= 18;
}

/* A JSON string without escapes or control characters; 0 when it is anything else. */
static int read_plain_string(Cursor *c, const char **text, Py_ssize_t *length) {
    if (c->p >= c->end || *c->p != '"') return 0;
    const char *start = ++c->p;
    const char *quote = memchr(start, '"', (size_t)(c->end - start));
    if (quote == NULL) return 0;
    for (const char *q = start; q < quote; q++) {
        if (*q == '\\' || (unsigned char)*q < 0x20) return 0;
    }
    *text = start;
    *length = quote - start;
    c->p = quote + 1;
    return 1;
}

typedef struct {
    Buffer values; /* doubles */
    Buffer spans;  /* Span */
    Py_ssize_t pupils;
    int has_ids;
} Table;

/* The opening of a JSON list that holds something; 0 for anything else (an empty list). */
static int list_opens(Cursor *c) {
    skip_space(c);
    if (c->p >= c->end || *c->p != '[') return 0;
    c->p++;
    skip_space(c);
    return c->p < c->end && *c->p != ']';
}

typedef enum { LIST_BAD, LIST_MORE, LIST_DONE } ListStep;

/* After an item: another one comes (LIST_MORE), or the list ends and so does the text. */
static ListStep list_next(Cursor *c) {
    skip_space(c);
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return LIST_MORE;
    }
    if (c->p >= c->end || *c->p != ']') return LIST_BAD;
    c->p++;
    skip_space(c);
    return c->p == c->end ? LIST_DONE : LIST_BAD;
}

/* A member's key, a string without escapes, and its colon; 0 for anything else. */
static int member_key(Cursor *c, const char **key, Py_ssize_t *length) {
    skip_space(c);
    if (!read_plain_string(c, key, length)) return 0;
    skip_space(c);
    if (c->p >= c->end || *c->p != ':') return 0;
    c->p++;
    skip_space(c);
    return 1;
}

/* After a member's value: another member comes (LIST_MORE), or the object ends (LIST_DONE). */
static ListStep member_next(Cursor *c) {
    skip_space(c);
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return LIST_MORE;
    }
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return LIST_DONE;
    }
    return LIST_BAD;
}

/* An id: a string without escapes, or an integer of at most 18 digits; 0 for anything else. */
static int read_id(Cursor *c, const char *text, Span *id) {
    const char *start = c->p;
    if (c->p < c->end && *c->p == '"') {
        const char *value;
        Py_ssize_t length;
        if (!read_plain_string(c, &value, &length)) return 0;
        *id = (Span){value - text, length, ID_TEXT, 0};
        return 1;
    }
    double ignored;
    int integer;
    if (read_number(c, &ignored, &integer) == NUMBER_BAD || !integer) return 0;
    if (!small_integer(start, c->p)) return 0;
    *id = (Span){start - text, c->p - start, ID_INTEGER, 0};
    return 1;
}

/* The whole list; 0 when it is not in the usual shape. No Python object is touched. */
static int scan_pupils(const char *text, Py_ssize_t size, const Name *features, int count,
                       Name id_name, Table *table) {
    Cursor c = {text, text + size};
    double row[MAX_FEATURES];
    if (!list_opens(&c)) return 0;
    uint64_t all = count == 64 ? ~0ULL : ((1ULL << count) - 1);
    for (;;) {
        skip_space(&c);
        if (c.p >= c.end || *c.p != '{') return 0;
        c.p++;
        uint64_t seen = 0;
        int has_id = 0, next = 0;
        Span id = {0, 0, ID_TEXT, 0};
        Span slow[MAX_FEATURES];
        int slow_count = 0;
        skip_space(&c);
        if (c.p < c.end && *c.p == '}') return 0;
        for (;;) {
            const char *key;
            Py_ssize_t key_length;
            if (!member_key(&c, &key, &key_length)) return 0;
            if (key_length == id_name.length && memcmp(key, id_name.text, (size_t)key_length) == 0) {
                if (has_id || !read_id(&c, text, &id)) return 0;
                has_id = 1;
            } else {
                /* The features usually come in their order: try the next one first. */
                int j = -1;
                for (int k = 0; k < count; k++) {
                    int candidate = (next + k) % count;
                    if (features[candidate].length == key_length &&
                        memcmp(features[candidate].text, key, (size_t)key_length) == 0) {
                        j = candidate;
                        break;
                    }
                }
                if (j < 0 || (seen >> j) & 1) return 0;
                seen |= 1ULL << j;
                next = (j + 1) % count;
                const char *start = c.p;
                int integer;
                NumberResult result = read_number(&c, &row[j], &integer);
                if (result == NUMBER_BAD) return 0;
                if (result == NUMBER_SLOW) {
                    Py_ssize_t cell = table->pupils * count + j;
                    slow[slow_count++] = (Span){start - text, c.p - start, SLOW_NUMBER, cell};
                    row[j] = 0.0;
                }
            }
            ListStep step = member_next(&c);
            if (step == LIST_BAD) return 0;
            if (step == LIST_DONE) break;
        }
        if (seen != all) return 0;
        if (table->pupils == 0)
            table->has_ids = has_id;
        else if (has_id != table->has_ids)
            return 0;
        if (buffer_add(&table->values, row, sizeof(double) * (size_t)count) < 0) return -1;
        if (has_id && buffer_add(&table->spans, &id, sizeof(Span)) < 0) return -1;
        if (slow_count && buffer_add(&table->spans, slow, sizeof(Span) * (size_t)slow_count) < 0)
            return -1;
        table->pupils++;
        ListStep step = list_next(&c);
        if (step != LIST_MORE) return step == LIST_DONE;
    }
}

/* Python's correctly rounded conversion of a number's text; 0 if not finite. */
static int slow_number(const char *text, Py_ssize_t length, double *value) {
    char small[128];
    char *copy = length < (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc((size_t)length + 1);
    if (copy == NULL) return -1;
    memcpy(copy, text, (size_t)length);
    copy[length] = '\0';
    char *stop;
    double number = PyOS_string_to_double(copy, &stop, NULL);
    int ok = !(number == -1.0 && PyErr_Occurred()) && stop == copy + length && isfinite(number);
    PyErr_Clear();
    if (copy != small) PyMem_Free(copy);
    *value = number;
    return ok;
}

/* What the scan left to Python, done with the GIL: the numbers of slow spans converted, the
 * ids joined by `separator` into one str and the int64 positions (in characters, as
 * PackedIds counts) where each starts. 1 done, 0 unusual, -1 an exception is set. */
static int settle(const char *body, Table *table, char separator, PyObject **ids,
                  PyObject **id_starts) {
    double *cells = (double *)table->values.data;
    const Span *spans = (const Span *)table->spans.data;
    Py_ssize_t span_count = (Py_ssize_t)(table->spans.size / sizeof(Span));
    Buffer joined = {0}, starts = {0};
    int64_t position = 0;
    int ascii = 1, status = -1;
    if (table->has_ids && buffer_add(&starts, &position, sizeof(position)) < 0) goto nomemory;
    for (Py_ssize_t s = 0; s < span_count; s++) {
        const Span *span = &spans[s];
        const char *text = body + span->start;
        if (span->kind == SLOW_NUMBER) {
            int ok = slow_number(text, span->length, &cells[span->cell]);
            if (ok < 0) goto nomemory;
            if (!ok) {
                status = 0;
                goto done;
            }
            continue;
        }
        /* An integer id is its digits, as str() writes the int ("-0" is 0). */
        if (span->kind == ID_INTEGER && span->length == 2 && text[0] == '-' && text[1] == '0') {
            text++;
            if (buffer_add(&joined, text, 1) < 0) goto nomemory;
            position += 1;
        } else {
            if (buffer_add(&joined, text, (size_t)span->length) < 0) goto nomemory;
            for (Py_ssize_t i = 0; i < span->length; i++) {
                unsigned char byte = (unsigned char)text[i];
                if (byte >= 0x80) ascii = 0;
                position += (byte & 0xC0) != 0x80; /* not a UTF-8 continuation byte */
            }
        }
        if (buffer_add(&joined, &separator, 1) < 0) goto nomemory;
        position += 1;
        if (buffer_add(&starts, &position, sizeof(position)) < 0) goto nomemory;
    }
    if (table->has_ids) {
        Py_ssize_t length = (Py_ssize_t)joined.size - 1; /* no separator after the last */
        if (ascii) {
            *ids = PyUnicode_New(length, 127);
            if (*ids != NULL) memcpy(PyUnicode_DATA(*ids), joined.data, (size_t)length);
        } else {
            *ids = PyUnicode_DecodeUTF8(joined.data, length, "strict");
            if (*ids == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                status = 0;
                goto done;
            }
        }
        if (*ids == NULL) goto done;
        *id_starts = PyBytes_FromStringAndSize(starts.data, (Py_ssize_t)starts.size);
        if (*id_starts == NULL) goto done;
    }
    status = 1;
    goto done;
nomemory:
    PyErr_NoMemory();
done:
    PyMem_RawFree(joined.data);
    PyMem_RawFree(starts.data);
    return status;
}

/* After a scan (1 done, 0 unusual, -1 out of memory): settle, as settle says. */
static int scanned_and_settled(int scanned, const char *body, Table *table, char separator,
                               PyObject **ids, PyObject **id_starts) {
    if (scanned < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return scanned ? settle(body, table, separator, ids, id_starts) : 0;
}

static PyObject *read_pupils(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer body;
    PyObject *names;
    Name id_name;
    char separator;
    if (!PyArg_ParseTuple(args, "y*O!s#c:read_pupils", &body, &PyTuple_Type, &names,
                          &id_name.text, &id_name.length, &separator))
        return NULL;
    PyObject *result = NULL, *values = NULL, *ids = NULL, *id_starts = NULL;
    Table table = {{0}, {0}, 0, 0};
    Name features[MAX_FEATURES];
    int count = (int)PyTuple_GET_SIZE(names);
    if (count < 1 || count > MAX_FEATURES) goto unusual;
    for (int j = 0; j < count; j++) {
        PyObject *name = PyTuple_GET_ITEM(names, j);
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "features must be str");
            goto done;
        }
        features[j].text = PyUnicode_AsUTF8AndSize(name, &features[j].length);
        if (features[j].text == NULL) goto done;
        if (features[j].length == id_name.length &&
            memcmp(features[j].text, id_name.text, (size_t)id_name.length) == 0)
            goto unusual;
    }
    int scanned;
    Py_BEGIN_ALLOW_THREADS;
    scanned = scan_pupils(body.buf, body.len, features, count, id_name, &table);
    Py_END_ALLOW_THREADS;
    int settled = scanned_and_settled(scanned, body.buf, &table, separator, &ids, &id_starts);
    if (settled < 0) goto done;
    if (settled == 0) goto unusual;
    values = PyByteArray_FromStringAndSize(table.values.data, (Py_ssize_t)table.values.size);
    if (values == NULL) goto done;
    result = Py_BuildValue("(nOOO)", table.pupils, values, ids ? ids : Py_None,
                           id_starts ? id_starts : Py_None);
    goto done;
unusual:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(values);
    Py_XDECREF(ids);
    Py_XDECREF(id_starts);
    PyMem_RawFree(table.values.data);
    PyMem_RawFree(table.spans.data);
    PyBuffer_Release(&body);
    return result;
}

/* A JSON list of numbers (ids: 0) or of ids (ids: 1), each as in a pupil; 0 when it is
 * anything else. No Python object is touched. */
static int scan_list(const char *text, Py_ssize_t size, int of_ids, Table *table) {
    Cursor c = {text, text + size};
    if (!list_opens(&c)) return 0;
    table->has_ids = of_ids;
    for (;;) {
        skip_space(&c);
        const char *start = c.p;
        Span span = {0, 0, ID_TEXT, 0};
        int has_span = 1;
        if (of_ids) {
            if (!read_id(&c, text, &span)) return 0;
        } else {
            double number = 0.0;
            int integer;
            NumberResult result = read_number(&c, &number, &integer);
            if (result == NUMBER_BAD) return 0;
            has_span = result == NUMBER_SLOW;
            span = (Span){start - text, c.p - start, SLOW_NUMBER, table->pupils};
            if (buffer_add(&table->values, &number, sizeof(number)) < 0) return -1;
        }
        if (has_span && buffer_add(&table->spans, &span, sizeof(span)) < 0) return -1;
        table->pupils++;
        ListStep step = list_next(&c);
        if (step != LIST_MORE) return step == LIST_DONE;
    }
}

static PyObject *read_list(PyObject *args, int of_ids) {
    Py_buffer body;
    char separator = '\n';
    if (of_ids ? !PyArg_ParseTuple(args, "y*c:read_ids", &body, &separator)
               : !PyArg_ParseTuple(args, "y*:read_column", &body))
        return NULL;
    PyObject *result = NULL, *ids = NULL, *id_starts = NULL;
    Table table = {{0}, {0}, 0, 0};
    int scanned;
    Py_BEGIN_ALLOW_THREADS;
    scanned = scan_list(body.buf, body.len, of_ids, &table);
    Py_END_ALLOW_THREADS;
    int settled = scanned_and_settled(scanned, body.buf, &table, separator, &ids, &id_starts);
    if (settled < 0) goto done;
    if (settled == 0) goto unusual;
    if (of_ids)
        result = PyTuple_Pack(2, ids, id_starts);
    else
        result = PyByteArray_FromStringAndSize(table.values.data, (Py_ssize_t)table.values.size);
    goto done;
unusual:
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(ids);
    Py_XDECREF(id_starts);
    PyMem_RawFree(table.values.data);
    PyMem_RawFree(table.spans.data);
    PyBuffer_Release(&body);
    return result;
}

static PyObject *read_column(PyObject *Py_UNUSED(module), PyObject *args) {
    return read_list(args, 0);
}

static PyObject *read_ids(PyObject *Py_UNUSED(module), PyObject *args) {
    return read_list(args, 1);
}

/* -------------------------------------------------------------------- envelopes */

/* A value whose end is found by its quotes and brackets alone: a string (an escaped
 * character skipped with its backslash), a list or an object (the strings inside skipped),
 * or anything else up to the next separator or space. What is inside is not checked here,
 * but by whoever reads the value; 0 when the value has no end. */
static int skip_value(Cursor *c) {
    if (c->p >= c->end) return 0;
    const char *start = c->p;
    if (*c->p == '"' || *c->p == '[' || *c->p == '{') {
        Py_ssize_t depth = 0;
        int in_string = 0;
        while (c->p < c->end) {
            char ch = *c->p++;
            if (in_string) {
                if (ch == '\\') {
                    if (c->p >= c->end) return 0;
                    c->p++;
                } else if (ch == '"') {
                    in_string = 0;
                    if (depth == 0) return 1; /* the value was this string */
                }
            } else if (ch == '"') {
                in_string = 1;
            } else if (ch == '[' || ch == '{') {
                depth++;
            } else if ((ch == ']' || ch == '}') && --depth == 0) {
                return 1;
            }
        }
        return 0;
    }
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ' &&
           *c->p != '\n' && *c->p != '\r' && *c->p != '\t')
        c->p++;
    return c->p > start;
}

/* More members than this and the object is left to the general reader: the repeated-key
 * check compares every pair. */
#define MAX_MEMBERS 128

typedef struct {
    const char *key;
    Py_ssize_t key_length, start, end; /* the value: text[start:end] */
} Member;

/* A JSON object that is the whole text: each key a string without escapes, given once; the
 * place of each value. The count of members, or -1 for anything else. */
static int scan_object(const char *text, Py_ssize_t size, Member *members) {
    Cursor c = {text, text + size};
    int count = 0;
    skip_space(&c);
    if (c.p >= c.end || *c.p != '{') return -1;
    c.p++;
    skip_space(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            if (count == MAX_MEMBERS) return -1;
            Member *m = &members[count];
            if (!member_key(&c, &m->key, &m->key_length)) return -1;
            for (int k = 0; k < count; k++) {
                if (members[k].key_length == m->key_length &&
                    memcmp(members[k].key, m->key, (size_t)m->key_length) == 0)
                    return -1;
            }
            m->start = c.p - text;
            if (!skip_value(&c)) return -1;
            m->end = c.p - text;
            count++;
            ListStep step = member_next(&c);
            if (step == LIST_BAD) return -1;
            if (step == LIST_DONE) break;
        }
    }
    skip_space(&c);
    return c.p == c.end ? count : -1;
}

static PyObject *read_object(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer body;
    if (!PyArg_ParseTuple(args, "y*:read_object", &body)) return NULL;
    Member *members = PyMem_Malloc(sizeof(Member) * MAX_MEMBERS);
    if (members == NULL) {
        PyBuffer_Release(&body);
        return PyErr_NoMemory();
    }
    int count;
    Py_BEGIN_ALLOW_THREADS;
    count = scan_object(body.buf, body.len, members);
    Py_END_ALLOW_THREADS;
    PyObject *result = count < 0 ? Py_NewRef(Py_None) : PyDict_New();
    for (int k = 0; result != NULL && result != Py_None && k < count; k++) {
        PyObject *key = PyUnicode_DecodeUTF8(members[k].key, members[k].key_length, "strict");
        PyObject *place = key ? Py_BuildValue("(nn)", members[k].start, members[k].end) : NULL;
        if (place == NULL || PyDict_SetItem(result, key, place) < 0) {
            Py_CLEAR(result);
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                result = Py_NewRef(Py_None); /* a key not in UTF-8: the general reader says so */
            }
        }
        Py_XDECREF(key);
        Py_XDECREF(place);
    }
    PyMem_Free(members);
    PyBuffer_Release(&body);
    return result;
}

/* ---------------------------------------------------------------------- writing */

/* A number rounded to six decimals, as orjson writes it, in orjson's plain range: 0 when
 * it is not such a number (then `dumps` writes it). Such a number is the double nearest
 * to k/10^6 for an integer k; below 10^9 two of them are further apart than its rounding
 * interval is wide, so k/10^6, trailing zeros dropped, is its shortest decimal: the one
 * orjson writes. */
static int plain_number(double value, char *out) {
    if (!isfinite(value)) return 0;
    double magnitude = fabs(value);
    if (magnitude >= 1e9 || (magnitude != 0.0 && magnitude < 1e-5)) return 0;
    long long k = llrint(value * 1e6);
    if ((double)k / 1e6 != value) return 0;
    char *p = out;
    if (signbit(value)) *p++ = '-';
    unsigned long long u = (unsigned long long)(k < 0 ? -k : k);
    unsigned long long whole = u / 1000000, fraction = u % 1000000;
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    while (n) *p++ = digits[--n];
    *p++ = '.';
    if (fraction == 0) {
        *p++ = '0';
    } else {
        char six[6];
        for (int i = 5; i >= 0; i--) {
            six[i] = (char)('0' + fraction % 10);
            fraction /= 10;
        }
        int last = 5;
        while (six[last] == '0') last--;
        memcpy(p, six, (size_t)last + 1);
        p += last + 1;
    }
    return (int)(p - out);
}

typedef enum { FIGURE_TEXT, FIGURE_IDS, FIGURE_PACKED, FIGURE_NUMBERS, FIGURE_FLAGS } FigureKind;

/* A text of a bytes or ASCII str object the arguments hold: read without the GIL. */
typedef struct {
    const char *text;
    size_t size;
} Piece;

typedef struct {
    FigureKind kind;
    PyObject *object; /* borrowed; FIGURE_PACKED: the ids' text */
    Piece text;       /* FIGURE_TEXT: its bytes; FIGURE_PACKED: the ids' text if ASCII */
    Py_buffer view;   /* FIGURE_NUMBERS, FIGURE_FLAGS; FIGURE_PACKED: where ids start */
    int has_view;
} Figure;

/* A pupil written as a whole text (one that failed), by row. */
typedef struct {
    Py_ssize_t row;
    PyObject *owner; /* a strong reference: dumps, called back, could change the dict */
    Piece text;
} Replaced;

static int by_row(const void *a, const void *b) {
    Py_ssize_t left = ((const Replaced *)a)->row, right = ((const Replaced *)b)->row;
    return (left > right) - (left < right);
}

static int write_dumped(Buffer *out, PyObject *dumps, PyObject *value) {
    PyObject *text = PyObject_CallOneArg(dumps, value);
    if (text == NULL) return -1;
    if (!PyBytes_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "dumps must return bytes");
        return -1;
    }
    int status = buffer_add(out, PyBytes_AS_STRING(text), (size_t)PyBytes_GET_SIZE(text));
    Py_DECREF(text);
    return status;
}

/* An id as JSON: a text without what JSON escapes, between quotes (0, or NEEDS_PYTHON from
 * a frozen buffer); 2 when it has such a character. */
static int write_plain_id(Buffer *out, const char *text, size_t length) {
    for (size_t i = 0; i < length; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch < 0x20 || ch == '"' || ch == '\\') return 2;
    }
    int status = buffer_reserve(out, length + 2);
    if (status) return status;
    out->data[out->size++] = '"';
    if (length) memcpy(out->data + out->size, text, length);
    out->size += length;
    out->data[out->size++] = '"';
    return 0;
}

static int write_id(Buffer *out, PyObject *dumps, PyObject *id) {
    if (PyUnicode_Check(id) && PyUnicode_IS_ASCII(id)) {
        int status = write_plain_id(out, (const char *)PyUnicode_DATA(id),
                                    (size_t)PyUnicode_GET_LENGTH(id));
        if (status != 2) return status;
    }
    return write_dumped(out, dumps, id);
}

/* A pupil's figure: 0, or -1 with an error. Without `dumps` (no GIL), NEEDS_PYTHON for a
 * figure that takes Python. */
static int write_figure(Buffer *out, PyObject *dumps, const Figure *figure, Py_ssize_t row) {
    switch (figure->kind) {
    case FIGURE_TEXT:
        return buffer_add(out, figure->text.text, figure->text.size);
    case FIGURE_IDS: {
        if (dumps == NULL) return NEEDS_PYTHON;
        if (row >= PyList_GET_SIZE(figure->object)) { /* dumps, called back, changed the list */
            PyErr_SetString(PyExc_RuntimeError, "the ids changed while written");
            return -1;
        }
        PyObject *id = Py_NewRef(PyList_GET_ITEM(figure->object, row));
        int status = write_id(out, dumps, id);
        Py_DECREF(id);
        return status;
    }
    case FIGURE_PACKED: {
        const int64_t *starts = (const int64_t *)figure->view.buf;
        Py_ssize_t begin = (Py_ssize_t)starts[row], end = (Py_ssize_t)starts[row + 1] - 1;
        if (figure->text.text != NULL) {
            int status = write_plain_id(out, figure->text.text + begin, (size_t)(end - begin));
            if (status != 2) return status;
        }
        if (dumps == NULL) return NEEDS_PYTHON; /* JSON escapes it: orjson does */
        PyObject *id = PyUnicode_Substring(figure->object, begin, end);
        if (id == NULL) return -1;
        int status = write_id(out, dumps, id);
        Py_DECREF(id);
        return status;
    }
    case FIGURE_FLAGS:
        if (((const unsigned char *)figure->view.buf)[row]) return buffer_add(out, "true", 4);
        return buffer_add(out, "false", 5);
    case FIGURE_NUMBERS: {
        double value = ((const double *)figure->view.buf)[row];
        int status = buffer_reserve(out, 32);
        if (status) return status;
        int length = plain_number(value, out->data + out->size);
        if (length) {
            out->size += (size_t)length;
            return 0;
        }
        if (dumps == NULL) return NEEDS_PYTHON;
        PyObject *number = PyFloat_FromDouble(value);
        if (number == NULL) return -1;
        status = write_dumped(out, dumps, number);
        Py_DECREF(number);
        return status;
    }
    }
    return -1;
}

typedef struct {
    const Piece *pieces; /* the template: one more than the figures */
    const Figure *figures;
    Py_ssize_t count, n;
    const Replaced *replaced; /* by row */
    Py_ssize_t replaced_count;
} Pupils;

/* The pupils from *row on, a comma before each but the first: 0 when all are written, -1
 * with an error. Without `dumps` (no GIL), NEEDS_PYTHON as soon as a pupil takes Python:
 * it is taken back, and *row is where to go on with the GIL. */
static int write_rows(Buffer *out, const Pupils *pupils, Py_ssize_t *row, PyObject *dumps) {
    Py_ssize_t r = 0;
    while (r < pupils->replaced_count && pupils->replaced[r].row < *row) r++;
    for (Py_ssize_t i = *row; i < pupils->n; i++) {
        size_t start = out->size;
        int status = i ? buffer_add(out, ",", 1) : 0;
        if (status == 0 && r < pupils->replaced_count && pupils->replaced[r].row == i) {
            status = buffer_add(out, pupils->replaced[r].text.text, pupils->replaced[r].text.size);
            r++;
        } else {
            for (Py_ssize_t k = 0; status == 0 && k < pupils->count; k++) {
                status = buffer_add(out, pupils->pieces[k].text, pupils->pieces[k].size);
                if (status == 0) status = write_figure(out, dumps, &pupils->figures[k], i);
            }
            const Piece *last = &pupils->pieces[pupils->count];
            if (status == 0) status = buffer_add(out, last->text, last->size);
        }
        if (status) {
            if (status == NEEDS_PYTHON) {
                out->size = start;
                *row = i;
            }
            return status;
        }
    }
    *row = pupils->n;
    return 0;
}

/* Ids as PackedIds hold them, (text, starts): each id is text[starts[i]:starts[i+1]-1]. */
static int packed_figure(Figure *figure, PyObject *pair, Py_ssize_t n) {
    PyObject *text;
    if (PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(text = PyTuple_GET_ITEM(pair, 0))) {
        PyErr_SetString(PyExc_TypeError, "packed ids are (text, starts)");
        return -1;
    }
    figure->kind = FIGURE_PACKED;
    figure->object = text;
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(pair, 1), &figure->view,
                           PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    figure->has_view = 1;
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    const int64_t *starts = (const int64_t *)figure->view.buf;
    if (figure->view.itemsize != 8 || figure->view.len / 8 != n + 1 || starts[0] != 0 ||
        starts[n] != length + 1) {
        PyErr_SetString(PyExc_ValueError, "packed ids: n + 1 int64 starts over the text");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (starts[i + 1] <= starts[i]) {
            PyErr_SetString(PyExc_ValueError, "packed ids: starts must increase");
            return -1;
        }
    }
    if (PyUnicode_IS_ASCII(text))
        figure->text = (Piece){(const char *)PyUnicode_DATA(text), (size_t)length};
    return 0;
}

/* The answer's length at most, so that it is written without growing: a double is at most
 * 24 characters as orjson writes it (a sign, 17 digits, a point, e-308), an id at most 6
 * bytes a character (\\uXXXX), 2 quotes; dumps' texts beyond it only make it grow. */
static size_t upper_bound(PyObject *head, const Pupils *pupils, PyObject *tail) {
    size_t pupil = 1; /* the comma */
    for (Py_ssize_t k = 0; k <= pupils->count; k++) pupil += pupils->pieces[k].size;
    size_t total = (size_t)PyBytes_GET_SIZE(head) + (size_t)PyBytes_GET_SIZE(tail);
    for (Py_ssize_t k = 0; k < pupils->count; k++) {
        const Figure *figure = &pupils->figures[k];
        switch (figure->kind) {
        case FIGURE_TEXT:
            pupil += figure->text.size;
            break;
        case FIGURE_NUMBERS:
            pupil += 24;
            break;
        case FIGURE_FLAGS:
            pupil += 5;
            break;
        case FIGURE_PACKED:
            total += 6 * (size_t)PyUnicode_GET_LENGTH(figure->object) + 2 * (size_t)pupils->n;
            break;
        case FIGURE_IDS:
            for (Py_ssize_t i = 0; i < pupils->n; i++) {
                PyObject *id = PyList_GET_ITEM(figure->object, i);
                total += PyUnicode_Check(id) ? 6 * (size_t)PyUnicode_GET_LENGTH(id) + 2 : 32;
            }
            break;
        }
    }
    for (Py_ssize_t r = 0; r < pupils->replaced_count; r++) total += pupils->replaced[r].text.size;
    return total + pupil * (size_t)pupils->n;
}

/* A figure from its argument: a text (bytes), packed ids, a list of ids, or a column. */
static int figure_of(Figure *figure, PyObject *object, Py_ssize_t n) {
    figure->object = object;
    if (PyBytes_Check(object)) {
        figure->kind = FIGURE_TEXT;
        figure->text = (Piece){PyBytes_AS_STRING(object), (size_t)PyBytes_GET_SIZE(object)};
        return 0;
    }
    if (PyTuple_Check(object)) return packed_figure(figure, object, n);
    if (PyList_Check(object)) {
        figure->kind = FIGURE_IDS;
        if (PyList_GET_SIZE(object) != n) {
            PyErr_SetString(PyExc_ValueError, "one id per pupil");
            return -1;
        }
        return 0;
    }
    if (PyObject_GetBuffer(object, &figure->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    figure->has_view = 1;
    const char *format = figure->view.format ? figure->view.format : "B";
    if (*format == '<' || *format == '=' || *format == '@') format++;
    if (strcmp(format, "d") == 0 && figure->view.itemsize == 8) {
        figure->kind = FIGURE_NUMBERS;
    } else if (strcmp(format, "?") == 0 && figure->view.itemsize == 1) {
        figure->kind = FIGURE_FLAGS;
    } else {
        PyErr_SetString(PyExc_TypeError, "a column of figures is float64 or bool");
        return -1;
    }
    if (figure->view.len / figure->view.itemsize != n) {
        PyErr_SetString(PyExc_ValueError, "one figure per pupil");
        return -1;
    }
    return 0;
}

/* From this many pupils on, the answer is written without the GIL (up to the first pupil
 * that takes Python): the other threads (the event loop reading requests, another batch)
 * run meanwhile. Below it, releasing and taking the GIL back costs more than it frees. */
#define UNLOCKED_PUPILS 1024

static PyObject *write_pupils(PyObject *Py_UNUSED(module), PyObject *args) {
    PyObject *head, *template, *figure_list, *replaced, *tail, *dumps;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "O!O!O!nO!O!O:write_pupils", &PyBytes_Type, &head,
                          &PyTuple_Type, &template, &PyTuple_Type, &figure_list, &n,
                          &PyDict_Type, &replaced, &PyBytes_Type, &tail, &dumps))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(figure_list);
    if (PyTuple_GET_SIZE(template) != count + 1) {
        PyErr_SetString(PyExc_ValueError, "a template has one text more than figures");
        return NULL;
    }
    PyObject *result = NULL;
    Buffer out = {0};
    Py_ssize_t held = 0; /* replaced pupils referenced */
    Piece *pieces = PyMem_Calloc((size_t)count + 1, sizeof(Piece));
    Figure *figures = PyMem_Calloc((size_t)count + 1, sizeof(Figure));
    Replaced *rows = PyMem_Calloc((size_t)PyDict_GET_SIZE(replaced) + 1, sizeof(Replaced));
    if (pieces == NULL || figures == NULL || rows == NULL) goto nomemory;
    for (Py_ssize_t k = 0; k <= count; k++) {
        PyObject *piece = PyTuple_GET_ITEM(template, k);
        if (!PyBytes_Check(piece)) {
            PyErr_SetString(PyExc_TypeError, "a template is texts (bytes)");
            goto done;
        }
        pieces[k] = (Piece){PyBytes_AS_STRING(piece), (size_t)PyBytes_GET_SIZE(piece)};
    }
    int any_ids_list = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (figure_of(&figures[k], PyTuple_GET_ITEM(figure_list, k), n) < 0) goto done;
        any_ids_list |= figures[k].kind == FIGURE_IDS;
    }
    Py_ssize_t position = 0;
    PyObject *key, *text;
    while (PyDict_Next(replaced, &position, &key, &text)) {
        if (!PyLong_Check(key) || !PyBytes_Check(text)) {
            PyErr_SetString(PyExc_TypeError, "replaced pupils are {row (int): text (bytes)}");
            goto done;
        }
        Py_ssize_t row = PyLong_AsSsize_t(key);
        if (row == -1 && PyErr_Occurred()) goto done;
        rows[held++] = (Replaced){row, Py_NewRef(text),
                                  {PyBytes_AS_STRING(text), (size_t)PyBytes_GET_SIZE(text)}};
    }
    qsort(rows, (size_t)held, sizeof(Replaced), by_row);
    Pupils pupils = {pieces, figures, count, n, rows, held};
    if (buffer_of_bytes(&out, upper_bound(head, &pupils, tail)) < 0) goto done;
    if (buffer_add(&out, PyBytes_AS_STRING(head), (size_t)PyBytes_GET_SIZE(head)) < 0) goto done;
    Py_ssize_t row = 0;
    if (n >= UNLOCKED_PUPILS && !any_ids_list) {
        out.frozen = 1;
        Py_BEGIN_ALLOW_THREADS;
        write_rows(&out, &pupils, &row, NULL); /* to the first pupil that takes Python */
        Py_END_ALLOW_THREADS;
        out.frozen = 0;
    }
    if (write_rows(&out, &pupils, &row, dumps) < 0) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    if (buffer_add(&out, PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail)) < 0) goto done;
    if (_PyBytes_Resize(&out.owner, (Py_ssize_t)out.size) < 0) goto done; /* shrinks */
    result = out.owner;
    out.owner = NULL;
    goto done;
nomemory:
    PyErr_NoMemory();
done:
    for (Py_ssize_t k = 0; figures != NULL && k < count; k++) {
        if (figures[k].has_view) PyBuffer_Release(&figures[k].view);
    }
    for (Py_ssize_t r = 0; r < held; r++) Py_DECREF(rows[r].owner);
    PyMem_Free(pieces);
    PyMem_Free(figures);
    PyMem_Free(rows);
    Py_XDECREF(out.owner);
    return result;
}

static PyMethodDef methods[] = {
    {"read_pupils", read_pupils, METH_VARARGS,
     "read_pupils(body, features, id_name, separator) -> (n, values, ids, starts) | None: a "
     "JSON list of pupils in the usual shape (objects of exactly the features and, for every pupil or "
     "none, id_name) as n rows of float64 values (row-major, in features' order), and "
     "their ids as PackedIds hold them: one text, the ids separated by separator (a byte "
     "no id in the body holds: the readers refuse a control character in a string), and "
     "the int64 positions where each starts, one more past the end (both None without "
     "ids); None for any other text."},
    {"read_column", read_column, METH_VARARGS,
     "read_column(body) -> bytearray | None: a JSON list of numbers, each read as in "
     "read_pupils, as float64 values; None for any other text (an empty list included)."},
    {"read_ids", read_ids, METH_VARARGS,
     "read_ids(body, separator) -> (ids, starts) | None: a JSON list of ids, each a string "
     "without escapes or an integer, packed as read_pupils packs them; None for any other "
     "text (an empty list included)."},
    {"read_object", read_object, METH_VARARGS,
     "read_object(body) -> {key: (start, end)} | None: a JSON object that is the whole text, "
     "each key a string without escapes given once, as where each value lies "
     "(body[start:end]), found by its quotes and brackets only: what a value holds is for its "
     "reader to check. None for anything else."},
    {"write_pupils", write_pupils, METH_VARARGS,
     "write_pupils(head, template, figures, n, replaced, tail, dumps) -> bytes: head, the n "
     "pupils comma-separated, tail. Pupil i is template's texts with figure i of each "
     "figure between them (a bytes: that text for all; a list: ids as JSON strings; a "
     "(text, starts) tuple: PackedIds' ids as JSON strings; a "
     "float64 buffer: numbers as orjson writes them; a bool buffer: true/false), or "
     "replaced[i] in full. dumps writes what is not written here (orjson.dumps)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_pupiljson",
    .m_doc = "Pupils in JSON, read and written in C.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__pupiljson(void) { return PyModule_Create(&module); }
