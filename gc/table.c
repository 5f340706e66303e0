/*
 * table.c - string arena and string hash table for gc/ (see table-priv.h).
 */
#include "gc/table-priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GC_ARENA_BLOCK 65536

struct gc_arena_block {
    gc_arena_block *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

void gc_arena_init(gc_arena *a) { a->head = NULL; }

void gc_arena_free(gc_arena *a)
{
    gc_arena_block *b = a->head;
    while (b) {
        gc_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

void *gc_arena_alloc(gc_arena *a, size_t len)
{
    size_t align = sizeof(max_align_t);
    len = (len + align - 1) / align * align;
    if (len == 0)
        len = align;
    gc_arena_block *b = a->head;
    if (!b || b->size - b->used < len) {
        size_t size = len > GC_ARENA_BLOCK ? len : GC_ARENA_BLOCK;
        b = malloc(sizeof(*b) + size);
        if (!b)
            return NULL;
        b->size = size;
        b->used = 0;
        /* A block made for one big object goes second so the current
         * block keeps being filled. */
        if (a->head && size > GC_ARENA_BLOCK) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += len;
    return p;
}

char *gc_arena_strdup(gc_arena *a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = gc_arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

char *gc_arena_printf(gc_arena *a, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = gc_arena_alloc(a, (size_t)n + 1);
    if (!p)
        return NULL;
    if ((size_t)n < sizeof(small)) {
        memcpy(p, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return p;
}

char *gc_key2(gc_arena *a, const char *x, const char *y)
{
    size_t lx = strlen(x), ly = strlen(y);
    char *p = gc_arena_alloc(a, lx + ly + 2);
    if (!p)
        return NULL;
    memcpy(p, x, lx);
    p[lx] = GC_KEY_SEP;
    memcpy(p + lx + 1, y, ly + 1);
    return p;
}

/* FNV-1a, 64 bit; @b may be NULL for a one-part key. */
static uint64_t hash_parts(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)a; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    if (b) {
        h ^= (unsigned char)GC_KEY_SEP;
        h *= 1099511628211ull;
        for (const unsigned char *p = (const unsigned char *)b; *p; p++) {
            h ^= *p;
            h *= 1099511628211ull;
        }
    }
    return h;
}

static bool key_equal(const char *key, const char *a, const char *b)
{
    if (!b)
        return strcmp(key, a) == 0;
    size_t la = strlen(a);
    return strncmp(key, a, la) == 0 && key[la] == GC_KEY_SEP &&
           strcmp(key + la + 1, b) == 0;
}

void gc_table_init(gc_table *t) { memset(t, 0, sizeof(*t)); }

void gc_table_free(gc_table *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

static int grow(gc_table *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 64;
    gc_table_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        gc_table_slot *s = &t->slots[i];
        if (!s->key)
            continue;
        size_t j = (size_t)s->hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

int gc_table_insert(gc_table *t, const char *key, size_t value)
{
    if ((t->used + 1) * 2 > t->cap) {
        int rc = grow(t);
        if (rc < 0)
            return rc;
    }
    uint64_t h = hash_parts(key, NULL);
    size_t j = (size_t)h & (t->cap - 1);
    while (t->slots[j].key) {
        if (t->slots[j].hash == h && strcmp(t->slots[j].key, key) == 0)
            return -EEXIST;
        j = (j + 1) & (t->cap - 1);
    }
    t->slots[j].key = key;
    t->slots[j].hash = h;
    t->slots[j].value = value;
    t->used++;
    return 0;
}

static bool lookup(const gc_table *t, const char *a, const char *b, size_t *value)
{
    if (t->cap == 0)
        return false;
    uint64_t h = hash_parts(a, b);
    size_t j = (size_t)h & (t->cap - 1);
    while (t->slots[j].key) {
        if (t->slots[j].hash == h && key_equal(t->slots[j].key, a, b)) {
            if (value)
                *value = t->slots[j].value;
            return true;
        }
        j = (j + 1) & (t->cap - 1);
    }
    return false;
}

bool gc_table_get(const gc_table *t, const char *key, size_t *value)
{
    return lookup(t, key, NULL, value);
}

bool gc_table_get2(const gc_table *t, const char *a, const char *b, size_t *value)
{
    return lookup(t, a, b, value);
}
