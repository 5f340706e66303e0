/*
 * cleanup.h - scoped cleanup on top of __attribute__((cleanup)).
 *
 *   rs_autofree char *s = NULL;          freed with free() on scope exit
 *   rs_autoclose int fd = -1;            closed on scope exit
 *   RS_DEFINE_AUTOPTR(thing, thing_free) then RS_AUTOPTR(thing) t = NULL;
 *
 * Variables must always be initialised.  rs_steal_pointer() hands ownership
 * out of a scope.
 */
#ifndef RS_COMMON_CLEANUP_H
#define RS_COMMON_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

static inline void rs_freep(void *p) { free(*(void **)p); }
static inline void rs_closep(int *fd) { if (*fd >= 0) close(*fd); }

#define rs_autofree  __attribute__((cleanup(rs_freep)))
#define rs_autoclose __attribute__((cleanup(rs_closep)))

#define RS_DEFINE_AUTOPTR(type, freefn) \
    static inline void rs_autoptr_##type(type **p) { if (*p) freefn(*p); }
#define RS_AUTOPTR(type) __attribute__((cleanup(rs_autoptr_##type))) type *

static inline void *rs_steal_pointer_(void **pp)
{
    void *p = *pp;
    *pp = NULL;
    return p;
}
#define rs_steal_pointer(pp) rs_steal_pointer_((void **)(pp))

#endif
