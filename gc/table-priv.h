/*
 * table-priv.h - internal to gc/: a string arena and a string-keyed hash
 * table, the two containers the graph and the policy are built on.
 *
 * The arena hands out strings that live until the arena is freed, so the
 * graph and the plan own all their strings in a handful of large blocks and
 * free them in one go.  The table maps a string key (owned by the caller,
 * normally an arena string) to a size_t value; open addressing with linear
 * probing, power-of-two capacity, load factor <= 1/2.  Both are O(1)
 * amortised per operation, which keeps graph construction and planning O(n)
 * for tens of thousands of images.
 */
#ifndef RS_GC_TABLE_PRIV_H
#define RS_GC_TABLE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gc_arena_block gc_arena_block;
typedef struct gc_arena {
    gc_arena_block *head;
} gc_arena;

void gc_arena_init(gc_arena *a);
void gc_arena_free(gc_arena *a);
/* NULL on ENOMEM.  gc_arena_strdup(a, NULL) returns NULL as well: callers
 * check the source first. */
void *gc_arena_alloc(gc_arena *a, size_t len);
char *gc_arena_strdup(gc_arena *a, const char *s);
char *gc_arena_printf(gc_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

typedef struct gc_table_slot {
    const char *key;  /* NULL: empty */
    uint64_t hash;
    size_t value;
} gc_table_slot;

typedef struct gc_table {
    gc_table_slot *slots;
    size_t cap;   /* 0 or a power of two */
    size_t used;
} gc_table;

void gc_table_init(gc_table *t);
void gc_table_free(gc_table *t);
/* Insert @key -> @value.  @key must outlive the table.  Returns 0,
 * -EEXIST (value left unchanged) or -ENOMEM. */
int gc_table_insert(gc_table *t, const char *key, size_t value);
bool gc_table_get(const gc_table *t, const char *key, size_t *value);
/* Lookup of the two-part key "a<US>b" without building it. */
bool gc_table_get2(const gc_table *t, const char *a, const char *b, size_t *value);

/* Two-part keys (pool + image id, pool + name) are joined with the ASCII
 * unit separator, which no pool or image name contains. */
#define GC_KEY_SEP '\x1f'
char *gc_key2(gc_arena *a, const char *x, const char *y);

#endif
