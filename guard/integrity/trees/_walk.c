/* The optional accelerator of the working-tree scan (see work.py, `_walk_pure`, which
 * this does exactly, and which tests hold it to on the same trees).
 *
 * walk(root, keys, actions, owns_root, previous) -> (records, leftovers)
 *
 * `keys` are sorted relative paths (bytes); `actions[i]` says what to do with key i:
 * 0 nothing, 1 enter its folder and claim its name, 2 the same and hash it when it is a
 * regular file. Folders are opened relative to their parent with O_NOFOLLOW (so no
 * path goes through a symlinked folder), files with O_NOFOLLOW|O_NONBLOCK|O_NOCTTY.
 * `records` holds 33 bytes per key: a status (0 not hashed, 1 regular file, 2 regular
 * executable file, 3 anything else or any error: Python looks at it; plus 4 when the
 * file holds a CRLF and is not binary, so that git's line-end rules decide its hash)
 * and the SHA-256 of its bytes.
 * A folder the walk is the first to enter (all of them, except the ones the first key's
 * folder lies in when `previous`, the last path before this run, lies in them too; the
 * root only with `owns_root`) is listed once; its names no key claims are `leftovers`:
 * (final, folder, name, kind) with kind b'd' folder, b'f' file or symlink, b'o' other,
 * final false for the folders still open at the end of the run. `.git` is never listed.
 *
 * Linux only (getdents64); the GIL is released while the walk runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/evp.h>

#define RECORD 33
#define READ_SIZE (1 << 20)
#define NAME_LIMIT 255

enum { ST_NONE = 0, ST_FILE = 1, ST_EXEC = 2, ST_PYTHON = 3, ST_CRLF = 4 };

typedef struct {
    size_t off; /* of the NUL-terminated name in the folder's arena */
    size_t len;
    unsigned char kind; /* 'd', 'f', 'o' */
    unsigned char claimed;
} Name;

typedef struct {
    size_t rel_len; /* the folder's path is key[0:rel_len] of the key that opened it */
    char *rel;      /* a copy of that path */
    int fd;         /* -1: missing, not a folder, a symlink or unreadable */
    int listed;
    Name *names;
    size_t count, cap;
    char *arena;
    size_t arena_len, arena_cap;
} Folder;

typedef struct {
    int final;
    char *rel;
    size_t rel_len;
    char *name;
    size_t name_len;
    unsigned char kind;
} Leftover;

typedef struct {
    Folder *stack;
    size_t depth, cap;
    Leftover *left;
    size_t left_count, left_cap;
    int failed; /* out of memory */
    EVP_MD_CTX *ctx;
    const EVP_MD *md;
    EVP_MD *owned_md;
    unsigned char *buffer;
} Walk;

static int bytes_cmp(const char *x, size_t xn, const char *y, size_t yn) {
    int c = memcmp(x, y, xn < yn ? xn : yn);
    if (c) return c;
    return xn < yn ? -1 : xn > yn;
}

static int name_cmp(const void *a, const void *b, void *arena) {
    const Name *x = a, *y = b;
    return bytes_cmp((char *)arena + x->off, x->len, (char *)arena + y->off, y->len);
}

static void *grow(void *p, size_t *cap, size_t need, size_t size, int *failed) {
    if (need <= *cap) return p;
    size_t n = *cap ? *cap : 8;
    while (n < need) n *= 2;
    void *q = realloc(p, n * size);
    if (!q) {
        *failed = 1;
        return p;
    }
    *cap = n;
    return q;
}

/* Read a folder's names (not ".", "..", ".git"), sorted. */
static void list_folder(Walk *w, Folder *f) {
    char dents[32768];
    f->listed = 1;
    for (;;) {
        long got = syscall(SYS_getdents64, f->fd, dents, sizeof dents);
        if (got < 0) {
            f->count = 0; /* unreadable: nothing is known to be there */
            f->listed = 0;
            return;
        }
        if (got == 0) break;
        for (long at = 0; at < got;) {
            struct {
                unsigned long long ino;
                long long off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(dents + at);
            at += d->reclen;
            size_t len = strlen(d->name);
            if ((len == 1 && d->name[0] == '.') || (len == 2 && !memcmp(d->name, "..", 2)) ||
                (len == 4 && !memcmp(d->name, ".git", 4)))
                continue;
            unsigned char kind = 'o';
            unsigned char type = d->type;
            if (type == DT_UNKNOWN) {
                struct stat st;
                if (fstatat(f->fd, d->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                    type = S_ISDIR(st.st_mode) ? DT_DIR
                           : S_ISREG(st.st_mode) ? DT_REG
                           : S_ISLNK(st.st_mode) ? DT_LNK
                                                  : DT_FIFO;
            }
            if (type == DT_DIR) kind = 'd';
            else if (type == DT_REG || type == DT_LNK) kind = 'f';
            if (f->arena_len + len + 1 > f->arena_cap) {
                size_t cap = f->arena_cap ? f->arena_cap : 4096;
                while (cap < f->arena_len + len + 1) cap *= 2;
                char *q = realloc(f->arena, cap);
                if (!q) {
                    w->failed = 1;
                    return;
                }
                f->arena = q;
                f->arena_cap = cap;
            }
            f->names = grow(f->names, &f->cap, f->count + 1, sizeof(Name), &w->failed);
            if (w->failed) return;
            memcpy(f->arena + f->arena_len, d->name, len + 1);
            f->names[f->count++] = (Name){f->arena_len, len, kind, 0};
            f->arena_len += len + 1;
        }
    }
    qsort_r(f->names, f->count, sizeof(Name), name_cmp, f->arena);
}

static void claim(Folder *f, const char *name, size_t len) {
    if (!f->listed || f->count == 0) return;
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = bytes_cmp(f->arena + f->names[mid].off, f->names[mid].len, name, len);
        if (c == 0) {
            f->names[mid].claimed = 1;
            return;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
}

static void leave(Walk *w, int final) {
    Folder *f = &w->stack[w->depth];
    if (f->listed) {
        for (size_t i = 0; i < f->count; i++) {
            if (f->names[i].claimed) continue;
            w->left = grow(w->left, &w->left_cap, w->left_count + 1, sizeof(Leftover), &w->failed);
            if (w->failed) break;
            Leftover *l = &w->left[w->left_count];
            l->final = final;
            l->rel = malloc(f->rel_len + 1);
            l->name = malloc(f->names[i].len + 1);
            if (!l->rel || !l->name) {
                free(l->rel);
                free(l->name);
                w->failed = 1;
                break;
            }
            memcpy(l->rel, f->rel, f->rel_len);
            l->rel_len = f->rel_len;
            memcpy(l->name, f->arena + f->names[i].off, f->names[i].len);
            l->name_len = f->names[i].len;
            l->kind = f->names[i].kind;
            w->left_count++;
        }
    }
    if (f->fd >= 0) close(f->fd);
    free(f->names);
    free(f->arena);
    free(f->rel);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static int push(Walk *w, const char *key, size_t rel_len, size_t start, int owned) {
    Folder *top = &w->stack[w->depth];
    char name[NAME_LIMIT + 1];
    size_t len = rel_len - start;
    int fd = -1;
    if (len <= NAME_LIMIT && top->fd >= 0) {
        memcpy(name, key + start, len);
        name[len] = 0;
        fd = openat(top->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) claim(top, name, len); /* a folder on the way is no leftover */
    }
    w->stack = grow(w->stack, &w->cap, w->depth + 2, sizeof(Folder), &w->failed);
    if (w->failed) {
        if (fd >= 0) close(fd);
        return -1;
    }
    Folder *f = &w->stack[++w->depth];
    memset(f, 0, sizeof *f);
    f->fd = fd;
    f->rel_len = rel_len;
    f->rel = malloc(rel_len + 1);
    if (!f->rel) {
        w->failed = 1;
        return -1;
    }
    memcpy(f->rel, key, rel_len);
    if (owned && fd >= 0) list_folder(w, f);
    return 0;
}

/* git's test (convert.c), as `trees.base.looks_binary`: a NUL, or a CR not followed by
 * LF, in the first 8000 bytes. Line ends of such a file are never converted. */
static int looks_binary(const unsigned char *data, size_t n) {
    size_t head = n < 8000 ? n : 8000;
    if (memchr(data, 0, head)) return 1;
    for (const unsigned char *cr = memchr(data, '\r', head); cr;
         cr = memchr(cr + 1, '\r', head - (size_t)(cr + 1 - data))) {
        if ((size_t)(cr + 1 - data) >= head || cr[1] != '\n') return 1;
    }
    return 0;
}

/* Whether `data` holds a CRLF: CRs are rare in text, so memchr goes fast. */
static int has_crlf(const unsigned char *data, size_t n) {
    for (const unsigned char *cr = memchr(data, '\r', n); cr;
         cr = memchr(cr + 1, '\r', n - (size_t)(cr + 1 - data))) {
        if ((size_t)(cr + 1 - data) < n && cr[1] == '\n') return 1;
    }
    return 0;
}

/* Hash a regular file; ST_PYTHON for anything else or any error. A file holding a CRLF
 * that git could convert (not binary) is flagged ST_CRLF: git's rules decide its hash. */
static int hash_file(Walk *w, int folder, const char *name, unsigned char *digest) {
    int fd = openat(folder, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return ST_PYTHON;
    struct stat st;
    int status = ST_PYTHON;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        EVP_DigestInit_ex(w->ctx, w->md, NULL) == 1) {
        int ok = 1, crlf = 0, last_cr = 0, binary = -1;
        /* One byte more than the size proves the end of a small file in one read. */
        size_t want = st.st_size < READ_SIZE ? (size_t)st.st_size + 1 : READ_SIZE;
        for (;;) {
            ssize_t got = read(fd, w->buffer, want);
            if (got < 0) {
                if (errno == EINTR) continue;
                ok = 0;
                break;
            }
            if (got == 0) break;
            if (EVP_DigestUpdate(w->ctx, w->buffer, (size_t)got) != 1) {
                ok = 0;
                break;
            }
            if (binary < 0) binary = looks_binary(w->buffer, (size_t)got);
            if (!binary && !crlf) /* a CRLF, perhaps across two reads */
                crlf = (last_cr && w->buffer[0] == '\n') || has_crlf(w->buffer, (size_t)got);
            last_cr = w->buffer[got - 1] == '\r';
            if ((size_t)got < want) break; /* short: the end of a regular file */
            want = READ_SIZE;
        }
        unsigned int n = 0;
        if (ok && EVP_DigestFinal_ex(w->ctx, digest, &n) == 1 && n == 32)
            status = ((st.st_mode & S_IXUSR) ? ST_EXEC : ST_FILE) | (crlf ? ST_CRLF : 0);
    }
    close(fd);
    return status;
}

typedef struct {
    const char *data;
    size_t len;
} Bytes;

static int safe_components(const char *key, size_t len) {
    if (len == 0 || key[0] == '/' || memchr(key, 0, len)) return 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || key[i] == '/') {
            size_t n = i - start;
            if (n == 0 || (n == 1 && key[start] == '.') ||
                (n == 2 && key[start] == '.' && key[start + 1] == '.'))
                return 0;
            start = i + 1;
        }
    }
    return 1;
}

static void run_walk(Walk *w, const Bytes *keys, Py_ssize_t n, const char *actions,
                     const Bytes *previous, unsigned char *records) {
    int first = 1;
    for (Py_ssize_t i = 0; i < n && !w->failed; i++) {
        unsigned char *rec = records + i * RECORD;
        const char *key = keys[i].data;
        size_t len = keys[i].len;
        rec[0] = ST_NONE;
        if (actions[i] == 0 || !safe_components(key, len)) continue;
        const char *slash = memrchr(key, '/', len);
        size_t parent = slash ? (size_t)(slash - key) : 0;
        /* Leave the folders that are not on the way to `parent`. */
        while (w->depth > 0) {
            Folder *f = &w->stack[w->depth];
            if (f->rel_len <= parent && !memcmp(f->rel, key, f->rel_len) &&
                (f->rel_len == parent || key[f->rel_len] == '/'))
                break;
            leave(w, 1);
            w->depth--;
        }
        /* Enter the new ones, listing those no earlier key could have entered. */
        while (w->stack[w->depth].rel_len < parent && !w->failed) {
            size_t start = w->depth ? w->stack[w->depth].rel_len + 1 : 0;
            const char *end = memchr(key + start, '/', parent - start);
            size_t rel_len = end ? (size_t)(end - key) : parent;
            int owned = !first || previous == NULL ||
                        !(previous->len > rel_len && !memcmp(previous->data, key, rel_len) &&
                          previous->data[rel_len] == '/');
            if (push(w, key, rel_len, start, owned) < 0) break;
        }
        first = 0;
        if (w->failed) break;
        Folder *f = &w->stack[w->depth];
        const char *name = slash ? slash + 1 : key;
        size_t name_len = len - (size_t)(name - key);
        claim(f, name, name_len);
        if (actions[i] != 2) continue;
        if (f->fd < 0 || name_len > NAME_LIMIT) {
            rec[0] = ST_PYTHON;
            continue;
        }
        char cname[NAME_LIMIT + 1];
        memcpy(cname, name, name_len);
        cname[name_len] = 0;
        rec[0] = (unsigned char)hash_file(w, f->fd, cname, rec + 1);
        if (rec[0] == ST_PYTHON) memset(rec + 1, 0, RECORD - 1);
    }
    while (1) { /* the run ends inside these */
        leave(w, 0);
        if (w->depth == 0) break;
        w->depth--;
    }
}

static PyObject *walk(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *root_obj, *keys_obj, *previous_obj;
    Py_buffer actions;
    int owns_root;
    if (!PyArg_ParseTuple(args, "O&O!y*pO", PyUnicode_FSConverter, &root_obj, &PyList_Type,
                          &keys_obj, &actions, &owns_root, &previous_obj))
        return NULL;
    PyObject *result = NULL, *records = NULL, *leftovers = NULL, *held = NULL;
    Bytes *keys = NULL;
    Bytes previous = {NULL, 0};
    Walk w;
    memset(&w, 0, sizeof w);
    Py_ssize_t n = PyList_GET_SIZE(keys_obj);
    if (actions.len != n) {
        PyErr_SetString(PyExc_ValueError, "one action per key");
        goto done;
    }
    if (previous_obj != Py_None) {
        if (!PyBytes_Check(previous_obj)) {
            PyErr_SetString(PyExc_TypeError, "previous must be bytes or None");
            goto done;
        }
        previous.data = PyBytes_AS_STRING(previous_obj);
        previous.len = (size_t)PyBytes_GET_SIZE(previous_obj);
    }
    keys = PyMem_Malloc(sizeof(Bytes) * (size_t)(n ? n : 1));
    records = PyBytes_FromStringAndSize(NULL, n * RECORD);
    if (!keys || !records) {
        PyErr_NoMemory();
        goto done;
    }
    held = PyList_AsTuple(keys_obj); /* keeps every key alive while the GIL is released */
    if (!held) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyTuple_GET_ITEM(held, i);
        if (!PyBytes_Check(k)) {
            PyErr_SetString(PyExc_TypeError, "keys must be bytes");
            goto done;
        }
        keys[i] = (Bytes){PyBytes_AS_STRING(k), (size_t)PyBytes_GET_SIZE(k)};
    }
    w.buffer = malloc(READ_SIZE);
    w.ctx = EVP_MD_CTX_new();
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    w.md = w.owned_md = EVP_MD_fetch(NULL, "SHA256", NULL); /* fetched once, not per file */
#else
    w.md = EVP_sha256();
#endif
    w.stack = grow(NULL, &w.cap, 2, sizeof(Folder), &w.failed);
    if (!w.buffer || !w.ctx || !w.md || w.failed) {
        PyErr_NoMemory();
        goto done;
    }
    memset(&w.stack[0], 0, sizeof(Folder));
    w.stack[0].rel = malloc(1);
    const char *root = PyBytes_AS_STRING(root_obj);
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(records);
    memset(out, 0, (size_t)n * RECORD);
    const char *acts = actions.buf;
    Py_BEGIN_ALLOW_THREADS
    w.stack[0].fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (owns_root && w.stack[0].fd >= 0) list_folder(&w, &w.stack[0]);
    run_walk(&w, keys, n, acts, previous_obj == Py_None ? NULL : &previous, out);
    Py_END_ALLOW_THREADS
    if (w.failed) {
        PyErr_NoMemory();
        goto done;
    }
    leftovers = PyList_New(0);
    if (!leftovers) goto done;
    for (size_t i = 0; i < w.left_count; i++) {
        Leftover *l = &w.left[i];
        PyObject *item = Py_BuildValue("(Oy#y#c)", l->final ? Py_True : Py_False, l->rel,
                                       (Py_ssize_t)l->rel_len, l->name, (Py_ssize_t)l->name_len,
                                       (char)l->kind);
        if (!item || PyList_Append(leftovers, item) < 0) {
            Py_XDECREF(item);
            goto done;
        }
        Py_DECREF(item);
    }
    result = PyTuple_Pack(2, records, leftovers);
done:
    for (size_t i = 0; i < w.left_count; i++) {
        free(w.left[i].rel);
        free(w.left[i].name);
    }
    free(w.left);
    if (w.stack) {
        for (size_t d = 0; d <= w.depth && d < w.cap; d++) {
            free(w.stack[d].names);
            free(w.stack[d].arena);
            free(w.stack[d].rel);
        }
        free(w.stack);
    }
    if (w.ctx) EVP_MD_CTX_free(w.ctx);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    if (w.owned_md) EVP_MD_free(w.owned_md);
#endif
    free(w.buffer);
    PyMem_Free(keys);
    PyBuffer_Release(&actions);
    Py_DECREF(root_obj);
    Py_XDECREF(records);
    Py_XDECREF(leftovers);
    Py_XDECREF(held);
    return result;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, "walk(root, keys, actions, owns_root, previous)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__walk(void) { return PyModule_Create(&module); }
