/*
 * pickle.c — restricted state-dict unpickler and writer (see pickle.h).
 */
#include "io/pickle.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- values */

typedef enum { V_MARK, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_LIST, V_DICT, V_GLOBAL,
               V_STORAGE, V_TENSOR } vkind;

typedef enum { G_ODICT = 1, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE } gkind;

typedef struct val val;
struct val {
    vkind k;
    int g;            /* V_GLOBAL: gkind; V_DICT: 1 when it had a BUILD state */
    ddct_dtype dt;    /* V_GLOBAL G_STORAGE, V_STORAGE */
    int64_t i;        /* V_INT, V_BOOL */
    double f;         /* V_FLOAT */
    const char *s;    /* V_STR, V_BYTES (into the pickle), V_STORAGE: key */
    size_t slen;
    val **it;         /* V_TUPLE, V_LIST; V_DICT: key, value, key, value ... */
    size_t n, cap;
    val *state;       /* V_DICT: BUILD state */
    ddct_pkl_tensor *t; /* V_TENSOR */
    uint64_t numel;   /* V_STORAGE */
};

typedef struct {
    const uint8_t *p;
    size_t n, pos, op_at;
    const char *label;
    ddct_err *e;
    val **all; /* every value, to free */
    size_t nall, capall, limit;
    val **st;  /* the stack */
    size_t nst, capst;
    val **memo;
    size_t nmemo;
} unp;

static int fail(unp *u, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(unp *u, int code, const char *fmt, ...)
{
    char msg[DDCT_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ddct_seterr(u->e, code, "%s: data.pkl at byte %zu: %s", u->label, u->op_at, msg);
}

static int grow(void **v, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap * 2 : 16;
    if (c < need) c = need;
    void *q = realloc(*v, c * sz);
    if (!q) return -1;
    *v = q;
    *cap = c;
    return 0;
}

static val *mk(unp *u, vkind k)
{
    if (u->nall >= u->limit) {
        fail(u, DDCT_ERR_FORMAT, "more values than the pickle's length allows");
        return NULL;
    }
    val *v = calloc(1, sizeof *v);
    if (!v || grow((void **)&u->all, &u->capall, u->nall + 1, sizeof *u->all)) {
        free(v);
        fail(u, DDCT_ERR_NOMEM, "out of memory");
        return NULL;
    }
    v->k = k;
    u->all[u->nall++] = v;
    return v;
}

static int push(unp *u, val *v)
{
    if (!v) return -1;
    if (grow((void **)&u->st, &u->capst, u->nst + 1, sizeof *u->st))
        return fail(u, DDCT_ERR_NOMEM, "out of memory");
    u->st[u->nst++] = v;
    return 0;
}

static val *pop(unp *u)
{
    if (!u->nst || u->st[u->nst - 1]->k == V_MARK) {
        fail(u, DDCT_ERR_FORMAT, "stack underflow");
        return NULL;
    }
    return u->st[--u->nst];
}

static val *top(unp *u)
{
    if (!u->nst || u->st[u->nst - 1]->k == V_MARK) {
        fail(u, DDCT_ERR_FORMAT, "stack underflow");
        return NULL;
    }
    return u->st[u->nst - 1];
}

/* The values above the topmost mark (removed with it): *first, count. */
static int pop_mark(unp *u, size_t *first, size_t *count)
{
    size_t k = u->nst;
    while (k && u->st[k - 1]->k != V_MARK) k--;
    if (!k) return fail(u, DDCT_ERR_FORMAT, "no MARK on the stack");
    *first = k;
    *count = u->nst - k;
    return 0;
}

static int add_items(unp *u, val *to, val **src, size_t n)
{
    if (!n) return 0;
    if (grow((void **)&to->it, &to->cap, to->n + n, sizeof *to->it)) return fail(u, DDCT_ERR_NOMEM, "out of memory");
    memcpy(to->it + to->n, src, n * sizeof *src);
    to->n += n;
    return 0;
}

static const uint8_t *take(unp *u, size_t n)
{
    if (u->n - u->pos < n) {
        fail(u, DDCT_ERR_FORMAT, "truncated (%zu bytes needed, %zu left)", n, u->n - u->pos);
        return NULL;
    }
    const uint8_t *q = u->p + u->pos;
    u->pos += n;
    return q;
}

/* ---------------------------------------------------------------- globals */

static const struct {
    const char *name;
    ddct_dtype dt;
} STORAGES[] = {
    {"DoubleStorage", DDCT_DT_F64}, {"FloatStorage", DDCT_DT_F32}, {"HalfStorage", DDCT_DT_F16},
    {"BFloat16Storage", DDCT_DT_BF16}, {"LongStorage", DDCT_DT_I64}, {"IntStorage", DDCT_DT_I32},
    {"ShortStorage", DDCT_DT_I16}, {"CharStorage", DDCT_DT_I8}, {"ByteStorage", DDCT_DT_U8},
    {"BoolStorage", DDCT_DT_BOOL}, {"UInt16Storage", DDCT_DT_U16}, {"UInt32Storage", DDCT_DT_U32},
    {"UInt64Storage", DDCT_DT_U64}, {"Float8_e4m3fnStorage", DDCT_DT_F8_E4M3}, {"Float8_e5m2Storage", DDCT_DT_F8_E5M2},
};

const char *ddct_pkl_storage_name(ddct_dtype t)
{
    for (size_t i = 0; i < sizeof STORAGES / sizeof *STORAGES; i++)
        if (STORAGES[i].dt == t) return STORAGES[i].name;
    return NULL;
}

/* Globals torch.load(weights_only=True) accepts that deltadct does not read. */
static const char *const KNOWN_UNSUPPORTED[] = {
    "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass", "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_device_tensor_from_numpy", "torch._tensor._rebuild_from_type_v2",
    "torch.nn.parameter.Parameter", "torch.Size", "torch.device", "torch.Tensor", "torch.UntypedStorage",
    "torch.storage.UntypedStorage", "torch.serialization._get_layout", "collections.Counter", "builtins.set",
    "builtins.frozenset", "builtins.bytearray", "builtins.slice", "builtins.complex",
    "torch.ComplexFloatStorage", "torch.ComplexDoubleStorage", "torch.QUInt8Storage", "torch.QInt8Storage",
    "torch.QInt32Storage", "torch.QUInt4x2Storage", "torch.QUInt2x4Storage", "torch.Float8_e4m3fnuzStorage",
    "torch.Float8_e5m2fnuzStorage",
};

static int global(unp *u, const char *mod, size_t ml, const char *name, size_t nl)
{
    char full[256], esc[4 * 256 + 8];
    snprintf(full, sizeof full, "%.*s.%.*s", (int)(ml > 120 ? 120 : ml), mod, (int)(nl > 120 ? 120 : nl), name);
    val *v = mk(u, V_GLOBAL);
    if (!v) return -1;
#define IS(m, nm) (ml == strlen(m) && nl == strlen(nm) && !memcmp(mod, m, ml) && !memcmp(name, nm, nl))
    if (IS("collections", "OrderedDict")) v->g = G_ODICT;
    else if (IS("torch._utils", "_rebuild_tensor_v2")) v->g = G_REBUILD_V2;
    else if (IS("torch._utils", "_rebuild_parameter")) v->g = G_REBUILD_PARAM;
    else if (ml == 5 && !memcmp(mod, "torch", 5))
        for (size_t i = 0; i < sizeof STORAGES / sizeof *STORAGES; i++)
            if (nl == strlen(STORAGES[i].name) && !memcmp(name, STORAGES[i].name, nl)) {
                v->g = G_STORAGE;
                v->dt = STORAGES[i].dt;
            }
#undef IS
    if (v->g) return push(u, v);
    for (size_t i = 0; i < sizeof KNOWN_UNSUPPORTED / sizeof *KNOWN_UNSUPPORTED; i++)
        if (!strcmp(full, KNOWN_UNSUPPORTED[i]))
            return fail(u, DDCT_ERR_UNSUPPORTED,
                        "global '%s' (a weights-only type, but not a plain dense tensor of a state dict): not "
                        "supported",
                        full);
    return fail(u, DDCT_ERR_FORMAT,
                "global '%s' refused: not allowed in a weights-only checkpoint (torch.load(weights_only=True) refuses "
                "it too); nothing was run",
                ddct_escape(full, esc, sizeof esc));
}

/* GLOBAL: "module\nname\n". */
static int op_global(unp *u)
{
    const uint8_t *a = u->p + u->pos, *end = u->p + u->n;
    const uint8_t *nl1 = memchr(a, '\n', (size_t)(end - a));
    const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    if (!nl2) return fail(u, DDCT_ERR_FORMAT, "GLOBAL without its two lines");
    u->pos = (size_t)(nl2 + 1 - u->p);
    return global(u, (const char *)a, (size_t)(nl1 - a), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
}

/* ---------------------------------------------------------------- reduce */

static int as_int(const val *v, int64_t *out)
{
    if (!v || (v->k != V_INT && v->k != V_BOOL)) return -1;
    *out = v->i;
    return 0;
}

static int int_tuple(unp *u, const val *v, const char *what, int64_t *out, int *n)
{
    if (!v || (v->k != V_TUPLE && v->k != V_LIST))
        return fail(u, DDCT_ERR_FORMAT, "_rebuild_tensor_v2: %s is not a tuple", what);
    if (v->n > DDCT_MAX_DIMS)
        return fail(u, DDCT_ERR_UNSUPPORTED, "_rebuild_tensor_v2: %zu dimensions (at most %d)", v->n, DDCT_MAX_DIMS);
    for (size_t i = 0; i < v->n; i++)
        if (as_int(v->it[i], &out[i])) return fail(u, DDCT_ERR_FORMAT, "_rebuild_tensor_v2: %s[%zu] is not an int", what, i);
    *n = (int)v->n;
    return 0;
}

static int rebuild_v2(unp *u, const val *args, val **out)
{
    if (args->n < 6 || args->n > 7) return fail(u, DDCT_ERR_FORMAT, "_rebuild_tensor_v2 with %zu arguments", args->n);
    const val *s = args->it[0];
    if (s->k != V_STORAGE) return fail(u, DDCT_ERR_FORMAT, "_rebuild_tensor_v2: first argument is not a storage");
    int64_t off, shape[DDCT_MAX_DIMS], stride[DDCT_MAX_DIMS];
    int nd, ns;
    if (as_int(args->it[1], &off) || off < 0)
        return fail(u, DDCT_ERR_FORMAT, "_rebuild_tensor_v2: storage offset is not a non-negative int");
    FORWARD_IF_ERROR(int_tuple(u, args->it[2], "size", shape, &nd));
    FORWARD_IF_ERROR(int_tuple(u, args->it[3], "stride", stride, &ns));
    if (nd != ns) return fail(u, DDCT_ERR_FORMAT, "_rebuild_tensor_v2: %d sizes but %d strides", nd, ns);
    const val *hooks = args->it[5];
    if (hooks->k != V_DICT || hooks->n)
        return fail(u, DDCT_ERR_UNSUPPORTED, "_rebuild_tensor_v2: backward hooks: not supported");
    val *v = mk(u, V_TENSOR);
    if (!v) return -1;
    v->t = calloc(1, sizeof *v->t);
    if (!v->t) return fail(u, DDCT_ERR_NOMEM, "out of memory");
    ddct_pkl_tensor *t = v->t;
    t->storage = s->s; /* a NUL-terminated copy is made at the end */
    t->dtype = s->dt;
    t->storage_numel = s->numel;
    t->offset = (uint64_t)off;
    t->ndim = nd;
    for (int i = 0; i < nd; i++) {
        if (shape[i] < 0) return fail(u, DDCT_ERR_FORMAT, "_rebuild_tensor_v2: negative size");
        t->shape[i] = (uint64_t)shape[i];
        t->stride[i] = stride[i];
    }
    v->slen = s->slen;
    *out = v;
    return 0;
}

static int op_reduce(unp *u)
{
    val *args = pop(u), *fn = args ? pop(u) : NULL;
    if (!fn) return -1;
    if (fn->k != V_GLOBAL) return fail(u, DDCT_ERR_FORMAT, "REDUCE of something that is not a global");
    if (args->k != V_TUPLE) return fail(u, DDCT_ERR_FORMAT, "REDUCE with arguments that are not a tuple");
    val *r = NULL;
    switch ((gkind)fn->g) {
    case G_ODICT:
        if (args->n) return fail(u, DDCT_ERR_UNSUPPORTED, "OrderedDict built from arguments: not supported");
        r = mk(u, V_DICT);
        break;
    case G_REBUILD_V2:
        FORWARD_IF_ERROR(rebuild_v2(u, args, &r));
        break;
    case G_REBUILD_PARAM:
        if (args->n < 1 || args->it[0]->k != V_TENSOR)
            return fail(u, DDCT_ERR_FORMAT, "_rebuild_parameter without a tensor");
        r = args->it[0];
        break;
    case G_STORAGE:
        return fail(u, DDCT_ERR_FORMAT, "a storage type called as a function");
    }
    return push(u, r);
}

/* BINPERSID: ('storage', torch.<T>Storage, key, location, numel). */
static int op_persid(unp *u)
{
    val *pid = pop(u);
    if (!pid) return -1;
    if (pid->k != V_TUPLE || pid->n != 5 || pid->it[0]->k != V_STR || pid->it[0]->slen != 7 ||
        memcmp(pid->it[0]->s, "storage", 7))
        return fail(u, DDCT_ERR_FORMAT, "persistent id is not ('storage', type, key, location, size)");
    const val *ty = pid->it[1], *key = pid->it[2], *loc = pid->it[3];
    int64_t numel;
    if (ty->k != V_GLOBAL || ty->g != G_STORAGE) return fail(u, DDCT_ERR_FORMAT, "persistent id: not a storage type");
    if (key->k != V_STR || key->slen == 0 || key->slen > 64 || memchr(key->s, 0, key->slen) ||
        memchr(key->s, '/', key->slen))
        return fail(u, DDCT_ERR_FORMAT, "persistent id: storage key is not a short name");
    if (loc->k != V_STR) return fail(u, DDCT_ERR_FORMAT, "persistent id: location is not a string");
    if (as_int(pid->it[4], &numel) || numel < 0)
        return fail(u, DDCT_ERR_FORMAT, "persistent id: storage size is not a non-negative int");
    val *v = mk(u, V_STORAGE);
    if (!v) return -1;
    v->dt = ty->dt;
    v->s = key->s;
    v->slen = key->slen;
    v->numel = (uint64_t)numel;
    return push(u, v);
}

/* ---------------------------------------------------------------- the machine */

static int push_int(unp *u, int64_t i)
{
    val *v = mk(u, V_INT);
    if (v) v->i = i;
    return push(u, v);
}

static int push_str(unp *u, vkind k, size_t n)
{
    const uint8_t *s = take(u, n);
    if (!s) return -1;
    val *v = mk(u, k);
    if (v) {
        v->s = (const char *)s;
        v->slen = n;
    }
    return push(u, v);
}

static int op_tuple(unp *u, size_t n, int from_mark)
{
    if (!from_mark && u->nst < n) return fail(u, DDCT_ERR_FORMAT, "stack underflow");
    size_t first = u->nst - n, count = n;
    if (from_mark) FORWARD_IF_ERROR(pop_mark(u, &first, &count));
    for (size_t i = first; i < first + count; i++)
        if (u->st[i]->k == V_MARK) return fail(u, DDCT_ERR_FORMAT, "MARK inside a tuple");
    val *v = mk(u, V_TUPLE);
    if (!v || (count && add_items(u, v, u->st + first, count))) return -1; /* st is NULL while empty */
    u->nst = from_mark ? first - 1 : first;
    return push(u, v);
}

/* SETITEM(S) (into a dict, values in pairs) and APPEND(S) (into a list): the values above the
 * mark, or the last `one` values, added to the container below them. */
static int op_add(unp *u, int from_mark, vkind into, size_t one)
{
    const char *what = into == V_DICT ? "SETITEM(S) on something not a dict" : "APPEND(S) on something not a list";
    size_t first = 0, count = 0;
    if (from_mark) FORWARD_IF_ERROR(pop_mark(u, &first, &count));
    else {
        if (u->nst < one + 1) return fail(u, DDCT_ERR_FORMAT, "stack underflow");
        first = u->nst - one;
        count = one;
    }
    if (count % one) return fail(u, DDCT_ERR_FORMAT, "SETITEMS with an odd number of values");
    size_t below = from_mark ? first - 1 : first;
    if (!below || u->st[below - 1]->k != into) return fail(u, DDCT_ERR_FORMAT, "%s", what);
    FORWARD_IF_ERROR(add_items(u, u->st[below - 1], u->st + first, count));
    u->nst = below;
    return 0;
}

static int memo_put(unp *u, uint64_t idx)
{
    val *v = top(u);
    if (!v) return -1;
    if (idx > u->nall) return fail(u, DDCT_ERR_FORMAT, "memo index %llu out of range", (unsigned long long)idx);
    if (idx >= u->nmemo) {
        val **m = realloc(u->memo, ((size_t)idx + 1) * sizeof *m);
        if (!m) return fail(u, DDCT_ERR_NOMEM, "out of memory");
        memset(m + u->nmemo, 0, ((size_t)idx + 1 - u->nmemo) * sizeof *m);
        u->memo = m;
        u->nmemo = (size_t)idx + 1;
    }
    u->memo[idx] = v;
    return 0;
}

static int memo_get(unp *u, uint64_t idx)
{
    if (idx >= u->nmemo || !u->memo[idx])
        return fail(u, DDCT_ERR_FORMAT, "memo index %llu was never set", (unsigned long long)idx);
    return push(u, u->memo[idx]);
}

static int op_long1(unp *u)
{
    const uint8_t *q = take(u, 1);
    if (!q) return -1;
    size_t n = *q;
    const uint8_t *b = take(u, n);
    if (!b) return -1;
    if (n > 8) return fail(u, DDCT_ERR_UNSUPPORTED, "integer of %zu bytes", n);
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x |= (uint64_t)b[i] << (8 * i);
    if (n && n < 8 && (b[n - 1] & 0x80)) x |= ~0ull << (8 * n); /* sign-extend */
    return push_int(u, (int64_t)x);
}

static int step(unp *u, int *stop)
{
    u->op_at = u->pos;
    const uint8_t *q = take(u, 1);
    if (!q) return -1;
    uint8_t op = *q;
    switch (op) {
    case 0x80: /* PROTO */
        if (!(q = take(u, 1))) return -1;
        if (*q < 2 || *q > 5) return fail(u, DDCT_ERR_UNSUPPORTED, "pickle protocol %u (2 to 5 are read)", *q);
        return 0;
    case 0x95: /* FRAME: a length hint */
        return take(u, 8) ? 0 : -1;
    case '.':
        *stop = 1;
        return 0;
    case '(': return push(u, mk(u, V_MARK));
    case '0': return pop(u) ? 0 : -1;
    case '1': {
        size_t first = 0, count = 0;
        FORWARD_IF_ERROR(pop_mark(u, &first, &count));
        u->nst = first - 1;
        return 0;
    }
    case '2': {
        val *v = top(u);
        return v ? push(u, v) : -1;
    }
    case 'N': return push(u, mk(u, V_NONE));
    case 0x88:
    case 0x89: {
        val *v = mk(u, V_BOOL);
        if (v) v->i = op == 0x88;
        return push(u, v);
    }
    case 'J': return (q = take(u, 4)) ? push_int(u, (int32_t)ddct_le32(q)) : -1;
    case 'K': return (q = take(u, 1)) ? push_int(u, *q) : -1;
    case 'M': return (q = take(u, 2)) ? push_int(u, ddct_le16(q)) : -1;
    case 0x8a: return op_long1(u);
    case 'G': {
        if (!(q = take(u, 8))) return -1;
        uint64_t b = 0;
        for (int i = 0; i < 8; i++) b = b << 8 | q[i]; /* big-endian */
        val *v = mk(u, V_FLOAT);
        if (v) memcpy(&v->f, &b, 8);
        return push(u, v);
    }
    case 'X': return (q = take(u, 4)) ? push_str(u, V_STR, ddct_le32(q)) : -1;
    case 0x8c: return (q = take(u, 1)) ? push_str(u, V_STR, *q) : -1;
    case 0x8d: {
        if (!(q = take(u, 8))) return -1;
        uint64_t n = ddct_le64(q);
        if (n > u->n - u->pos) return fail(u, DDCT_ERR_FORMAT, "string of %llu bytes past the end", (unsigned long long)n);
        return push_str(u, V_STR, (size_t)n);
    }
    case 'U': return (q = take(u, 1)) ? push_str(u, V_STR, *q) : -1;
    case 'T': return (q = take(u, 4)) ? push_str(u, V_STR, ddct_le32(q)) : -1;
    case 'C': return (q = take(u, 1)) ? push_str(u, V_BYTES, *q) : -1;
    case 'B': return (q = take(u, 4)) ? push_str(u, V_BYTES, ddct_le32(q)) : -1;
    case ')': return op_tuple(u, 0, 0);
    case 't': return op_tuple(u, 0, 1);
    case 0x85: return op_tuple(u, 1, 0);
    case 0x86: return op_tuple(u, 2, 0);
    case 0x87: return op_tuple(u, 3, 0);
    case ']': return push(u, mk(u, V_LIST));
    case 'l': {
        size_t first = 0, count = 0;
        FORWARD_IF_ERROR(pop_mark(u, &first, &count));
        val *v = mk(u, V_LIST);
        if (!v || add_items(u, v, u->st + first, count)) return -1;
        u->nst = first - 1;
        return push(u, v);
    }
    case 'a': return op_add(u, 0, V_LIST, 1);
    case 'e': return op_add(u, 1, V_LIST, 1);
    case '}': return push(u, mk(u, V_DICT));
    case 'd': {
        size_t first = 0, count = 0;
        FORWARD_IF_ERROR(pop_mark(u, &first, &count));
        if (count % 2) return fail(u, DDCT_ERR_FORMAT, "DICT with an odd number of values");
        val *v = mk(u, V_DICT);
        if (!v || add_items(u, v, u->st + first, count)) return -1;
        u->nst = first - 1;
        return push(u, v);
    }
    case 's': return op_add(u, 0, V_DICT, 2);
    case 'u': return op_add(u, 1, V_DICT, 2);
    case 'c': return op_global(u);
    case 0x93: {
        val *name = pop(u), *mod = name ? pop(u) : NULL;
        if (!mod) return -1;
        if (mod->k != V_STR || name->k != V_STR) return fail(u, DDCT_ERR_FORMAT, "STACK_GLOBAL of non-strings");
        return global(u, mod->s, mod->slen, name->s, name->slen);
    }
    case 'R': return op_reduce(u);
    case 'b': {
        val *state = pop(u), *obj = state ? top(u) : NULL;
        if (!obj) return -1;
        if (obj->k != V_DICT || state->k != V_DICT || obj->state)
            return fail(u, DDCT_ERR_UNSUPPORTED, "BUILD of something other than a dict's attributes: not supported");
        obj->state = state;
        return 0;
    }
    case 'Q': return op_persid(u);
    case 'q': return (q = take(u, 1)) ? memo_put(u, *q) : -1;
    case 'r': return (q = take(u, 4)) ? memo_put(u, ddct_le32(q)) : -1;
    case 0x94: return memo_put(u, u->nmemo);
    case 'h': return (q = take(u, 1)) ? memo_get(u, *q) : -1;
    case 'j': return (q = take(u, 4)) ? memo_get(u, ddct_le32(q)) : -1;
    default: return fail(u, DDCT_ERR_UNSUPPORTED, "opcode 0x%02x: not one a state dict uses", op);
    }
}

/* ---------------------------------------------------------------- result */

/* A JSON value of a plain pickled value (dicts with string keys, lists, tuples, scalars). */
static json_t *to_json(const val *v, int depth)
{
    if (depth > 64) return NULL;
    switch (v->k) {
    case V_NONE: return json_null();
    case V_BOOL: return json_boolean(v->i);
    case V_INT: return json_integer(v->i);
    case V_FLOAT: return isfinite(v->f) ? json_real(v->f) : NULL;
    case V_STR: return json_stringn(v->s, v->slen);
    case V_TUPLE:
    case V_LIST: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < v->n; i++) {
            json_t *x = to_json(v->it[i], depth + 1);
            if (!x || json_array_append_new(a, x)) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case V_DICT: {
        json_t *o = json_object();
        for (size_t i = 0; o && i + 1 < v->n; i += 2) {
            const val *k = v->it[i];
            json_t *x = k->k == V_STR ? to_json(v->it[i + 1], depth + 1) : NULL;
            char *key = x ? strndup(k->s, k->slen) : NULL;
            int bad = !key || strlen(key) != k->slen;
            if (bad) json_decref(x);
            else bad = json_object_set_new(o, key, x);
            free(key);
            if (bad) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    default: return NULL;
    }
}

static int result(unp *u, ddct_pkl_dict *d)
{
    u->op_at = u->pos;
    if (u->nst != 1) return fail(u, DDCT_ERR_FORMAT, "%zu values left on the stack at STOP", u->nst);
    const val *root = u->st[0];
    if (root->k != V_DICT)
        return fail(u, DDCT_ERR_UNSUPPORTED, "the checkpoint is not a dict of tensors (a state dict)");
    size_t n = root->n / 2, bytes = 0;
    char esc[DDCT_ESC_NAME];
    for (size_t i = 0; i < n; i++) {
        const val *k = root->it[2 * i], *v = root->it[2 * i + 1];
        if (k->k != V_STR || !k->slen || memchr(k->s, 0, k->slen))
            return fail(u, DDCT_ERR_UNSUPPORTED, "key %zu of the state dict is not a non-empty string", i);
        if (v->k != V_TENSOR) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(k->slen > 200 ? 200 : k->slen), k->s);
            return fail(u, DDCT_ERR_UNSUPPORTED, "key '%s' holds %s, not a tensor: not a flat state dict%s",
                        ddct_escape(key, esc, sizeof esc), v->k == V_DICT ? "a dict" : "another value",
                        v->k == V_DICT ? " (save the model's state_dict() itself)" : "");
        }
        bytes += k->slen + 1 + v->slen + 1;
    }
    d->t = calloc(n + 1, sizeof *d->t);
    d->strings = malloc(bytes + 1);
    if (!d->t || !d->strings) return fail(u, DDCT_ERR_NOMEM, "out of memory");
    char *s = d->strings;
    for (size_t i = 0; i < n; i++) {
        const val *k = root->it[2 * i], *v = root->it[2 * i + 1];
        d->t[i] = *v->t;
        memcpy(s, k->s, k->slen);
        s[k->slen] = 0;
        d->t[i].name = s;
        s += k->slen + 1;
        memcpy(s, v->t->storage, v->slen);
        s[v->slen] = 0;
        d->t[i].storage = s;
        s += v->slen + 1;
    }
    d->n = n;
    if (root->state) {
        json_t *j = to_json(root->state, 0);
        d->state_json = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        if (!d->state_json)
            return fail(u, DDCT_ERR_UNSUPPORTED, "the state dict's attributes (BUILD state) are not plain values");
    }
    return 0;
}

int ddct_pkl_read(ddct_pkl_dict *d, const uint8_t *p, size_t n, const char *label, ddct_err *e)
{
    memset(d, 0, sizeof *d);
    ddct_err local;
    if (!e) e = &local;
    ddct_err_clear(e);
    unp u = {.p = p, .n = n, .label = label, .e = e, .limit = n + 16};
    int rc = 0, stop = 0;
    while (!rc && !stop) rc = step(&u, &stop);
    if (!rc) rc = result(&u, d);
    if (rc < 0) rc = e->code ? e->code : ddct_seterr(e, DDCT_ERR_FORMAT, "%s: data.pkl: invalid", label); /* -1: set by fail() */
    for (size_t i = 0; i < u.nall; i++) {
        free(u.all[i]->it);
        free(u.all[i]->t);
        free(u.all[i]);
    }
    free(u.all);
    free(u.st);
    free(u.memo);
    if (rc) ddct_pkl_free(d);
    return rc;
}

void ddct_pkl_free(ddct_pkl_dict *d)
{
    free(d->t);
    free(d->strings);
    free(d->state_json);
    memset(d, 0, sizeof *d);
}

/* ---------------------------------------------------------------- writer */

static void w_str(ddct_buf *b, const char *s, size_t n)
{
    ddct_buf_u8(b, 'X');
    ddct_buf_u32(b, (uint32_t)n);
    ddct_buf_put(b, s, n);
}

static void w_int(ddct_buf *b, int64_t v)
{
    if (v >= 0 && v < 256) {
        ddct_buf_u8(b, 'K');
        ddct_buf_u8(b, (uint8_t)v);
    } else if (v >= 0 && v < 65536) {
        ddct_buf_u8(b, 'M');
        ddct_buf_u16(b, (uint16_t)v);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        ddct_buf_u8(b, 'J');
        ddct_buf_u32(b, (uint32_t)(int32_t)v);
    } else {
        ddct_buf_u8(b, 0x8a);
        ddct_buf_u8(b, 8);
        ddct_buf_u64(b, (uint64_t)v);
    }
}

static void w_global(ddct_buf *b, const char *mod, const char *name)
{
    ddct_buf_u8(b, 'c');
    ddct_buf_put(b, mod, strlen(mod));
    ddct_buf_u8(b, '\n');
    ddct_buf_put(b, name, strlen(name));
    ddct_buf_u8(b, '\n');
}

static void w_odict(ddct_buf *b)
{
    w_global(b, "collections", "OrderedDict");
    ddct_buf_u8(b, ')');
    ddct_buf_u8(b, 'R');
}

static int w_json(ddct_buf *b, const json_t *j, int top_level, int depth)
{
    if (depth > 64) return -1;
    switch (json_typeof(j)) {
    case JSON_NULL: ddct_buf_u8(b, 'N'); return 0;
    case JSON_TRUE: ddct_buf_u8(b, 0x88); return 0;
    case JSON_FALSE: ddct_buf_u8(b, 0x89); return 0;
    case JSON_INTEGER: w_int(b, json_integer_value(j)); return 0;
    case JSON_REAL: {
        double f = json_real_value(j);
        uint64_t x;
        memcpy(&x, &f, 8);
        ddct_buf_u8(b, 'G');
        for (int i = 7; i >= 0; i--) ddct_buf_u8(b, (uint8_t)(x >> (8 * i)));
        return 0;
    }
    case JSON_STRING: w_str(b, json_string_value(j), json_string_length(j)); return 0;
    case JSON_ARRAY: {
        ddct_buf_u8(b, ']');
        size_t i;
        json_t *x;
        if (json_array_size(j)) ddct_buf_u8(b, '(');
        json_array_foreach(j, i, x) if (w_json(b, x, 0, depth + 1)) return -1;
        if (json_array_size(j)) ddct_buf_u8(b, 'e');
        return 0;
    }
    case JSON_OBJECT: {
        if (top_level) w_odict(b); /* torch's _metadata is an OrderedDict of dicts */
        else ddct_buf_u8(b, '}');
        const char *k;
        json_t *x;
        if (json_object_size(j)) ddct_buf_u8(b, '(');
        json_object_foreach((json_t *)j, k, x) {
            w_str(b, k, strlen(k));
            if (w_json(b, x, 0, depth + 1)) return -1;
        }
        if (json_object_size(j)) ddct_buf_u8(b, 'u');
        return 0;
    }
    }
    return -1;
}

int ddct_pkl_write(ddct_buf *b, const ddct_pkl_tensor *t, size_t n, const char *state_json, ddct_err *e)
{
    ddct_buf_u8(b, 0x80);
    ddct_buf_u8(b, 2);
    w_odict(b);
    for (size_t i = 0; i < n; i++) {
        const ddct_pkl_tensor *x = &t[i];
        const char *sn = ddct_pkl_storage_name(x->dtype);
        RETURN_ERROR_IF(!sn, e, DDCT_ERR_UNSUPPORTED, "tensor '%s': %s has no PyTorch storage type", x->name,
                        ddct_dtype_name(x->dtype));
        if (i % 1000 == 0) ddct_buf_u8(b, '(');
        w_str(b, x->name, strlen(x->name));
        w_global(b, "torch._utils", "_rebuild_tensor_v2");
        ddct_buf_u8(b, '(');
        ddct_buf_u8(b, '(');
        w_str(b, "storage", 7);
        w_global(b, "torch", sn);
        w_str(b, x->storage, strlen(x->storage));
        w_str(b, "cpu", 3);
        w_int(b, (int64_t)x->storage_numel);
        ddct_buf_u8(b, 't');
        ddct_buf_u8(b, 'Q');
        w_int(b, (int64_t)x->offset);
        ddct_buf_u8(b, '(');
        for (int k = 0; k < x->ndim; k++) w_int(b, (int64_t)x->shape[k]);
        ddct_buf_u8(b, 't');
        ddct_buf_u8(b, '(');
        for (int k = 0; k < x->ndim; k++) w_int(b, x->stride[k]);
        ddct_buf_u8(b, 't');
        ddct_buf_u8(b, 0x89); /* requires_grad */
        w_odict(b);           /* backward hooks */
        ddct_buf_u8(b, 't');
        ddct_buf_u8(b, 'R');
        if (i % 1000 == 999 || i + 1 == n) ddct_buf_u8(b, 'u');
    }
    if (state_json) {
        json_error_t je;
        json_t *j = json_loads(state_json, JSON_REJECT_DUPLICATES, &je);
        RETURN_ERROR_IF(!json_is_object(j), e, DDCT_ERR_FORMAT, "state dict attributes: not a JSON object");
        ddct_buf_u8(b, '}');
        const char *k;
        json_t *x;
        int bad = 0;
        if (json_object_size(j)) ddct_buf_u8(b, '(');
        json_object_foreach(j, k, x) {
            w_str(b, k, strlen(k));
            bad |= w_json(b, x, 1, 0);
        }
        if (json_object_size(j)) ddct_buf_u8(b, 'u');
        json_decref(j);
        RETURN_ERROR_IF(bad, e, DDCT_ERR_FORMAT, "state dict attributes: nested too deeply");
        ddct_buf_u8(b, 'b');
    }
    ddct_buf_u8(b, '.');
    return ddct_buf_check(b, e);
}
