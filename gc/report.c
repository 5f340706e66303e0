/*
 * report.c - plain-text and JSON rendering of a reaper plan.
 */
#include "gc/report.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int rs_gc_report_format_parse(const char *s, rs_gc_report_format *out)
{
    if (s && strcmp(s, "plain") == 0)
        *out = RS_GC_REPORT_PLAIN;
    else if (s && strcmp(s, "json") == 0)
        *out = RS_GC_REPORT_JSON;
    else
        return -EINVAL;
    return 0;
}

typedef struct counts {
    size_t done, failed, not_run;
} counts;

static counts count_states(const struct rs_gc_plan *p)
{
    counts c = { 0, 0, 0 };
    for (size_t i = 0; i < rs_gc_plan_action_count(p); i++) {
        switch (rs_gc_plan_action(p, i)->state) {
        case RS_GC_ACT_DONE: c.done++; break;
        case RS_GC_ACT_FAILED: c.failed++; break;
        case RS_GC_ACT_NOT_RUN: c.not_run++; break;
        case RS_GC_ACT_PLANNED: break;
        }
    }
    return c;
}

/* "pool/name@snap", "pool/name [trash id]", "glance:<id>" for an action. */
static void action_target(const rs_gc_action *a, char *buf, size_t len)
{
    if (a->type == RS_GC_ACT_GLANCE_DELETE) {
        snprintf(buf, len, "glance:%s", a->glance_id ? a->glance_id : "?");
        return;
    }
    int n = snprintf(buf, len, "%s/%s", a->pool ? a->pool : "?",
                     a->image_name ? a->image_name : "?");
    if (n < 0 || (size_t)n >= len)
        return;
    if (a->image_in_trash) {
        int m = snprintf(buf + n, len - (size_t)n, " [trash %s]", a->image_id ? a->image_id : "?");
        if (m < 0 || (size_t)(n + m) >= len)
            return;
        n += m;
    }
    if (a->type == RS_GC_ACT_UNPROTECT_SNAP || a->type == RS_GC_ACT_REMOVE_SNAP)
        snprintf(buf + n, len - (size_t)n, "@%s (snap id %" PRIu64 "%s)",
                 a->snap_name ? a->snap_name : "?", a->snap_id,
                 a->snap_in_trash_ns ? ", trash namespace" : "");
}

static int render_plain(const struct rs_gc_plan *p, bool dry_run, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -errno;
    char ts[32];
    rs_format_time(rs_gc_plan_time(p), ts, sizeof(ts));
    counts c = count_states(p);
    fprintf(f, "rbdsnap gc at %s%s\n", ts, dry_run ? " (dry run: nothing is changed)" : "");
    fprintf(f, "found %zu: %zu to delete (%zu actions), %zu skipped\n",
            rs_gc_plan_item_count(p), rs_gc_plan_delete_count(p), rs_gc_plan_action_count(p),
            rs_gc_plan_skip_count(p));
    if (c.done || c.failed || c.not_run)
        fprintf(f, "actions: %zu done, %zu failed, %zu not run\n", c.done, c.failed, c.not_run);
    size_t seq = 0;
    for (size_t i = 0; i < rs_gc_plan_item_count(p); i++) {
        const rs_gc_item *it = rs_gc_plan_item(p, i);
        if (it->skip != RS_GC_SKIP_NONE)
            continue;
        fprintf(f, "\nDELETE %s %s\n    why: %s\n", rs_gc_item_kind_name(it->kind), it->object,
                it->reason);
        for (size_t k = 0; k < it->n_actions; k++) {
            const rs_gc_action *a = rs_gc_plan_action(p, it->first_action + k);
            char target[1024];
            action_target(a, target, sizeof(target));
            fprintf(f, "    %3zu. %-14s %s", ++seq, rs_gc_action_type_name(a->type), target);
            if (a->state != RS_GC_ACT_PLANNED)
                fprintf(f, "  [%s%s%s]", rs_gc_action_state_name(a->state),
                        a->state == RS_GC_ACT_FAILED ? ": " : "",
                        a->state == RS_GC_ACT_FAILED ? rs_errno_name(a->rc) : "");
            fputc('\n', f);
        }
    }
    bool header = false;
    for (size_t i = 0; i < rs_gc_plan_item_count(p); i++) {
        const rs_gc_item *it = rs_gc_plan_item(p, i);
        if (it->skip == RS_GC_SKIP_NONE)
            continue;
        if (!header) {
            fputs("\nSKIPPED\n", f);
            header = true;
        }
        fprintf(f, "    %s %s [%s]: %s\n", rs_gc_item_kind_name(it->kind), it->object,
                rs_gc_skip_reason_name(it->skip), it->reason);
    }
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    return 0;
}

static int jset(json_t *o, const char *k, json_t *v)
{
    /* json_object_set_new steals @v even on failure */
    return v && json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

static int jstr(json_t *o, const char *k, const char *v)
{
    if (!v)
        return 0;
    return jset(o, k, json_string(v));
}

static json_t *action_json(const rs_gc_action *a, size_t seq)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = 0;
    rc |= jset(o, "seq", json_integer((json_int_t)seq));
    rc |= jstr(o, "type", rs_gc_action_type_name(a->type));
    if (a->type == RS_GC_ACT_GLANCE_DELETE) {
        rc |= jstr(o, "glance_id", a->glance_id);
    } else {
        rc |= jstr(o, "pool", a->pool);
        rc |= jstr(o, "image", a->image_name);
        rc |= jstr(o, "image_id", a->image_id);
        rc |= jset(o, "in_trash", json_boolean(a->image_in_trash));
        if (a->type == RS_GC_ACT_UNPROTECT_SNAP || a->type == RS_GC_ACT_REMOVE_SNAP) {
            rc |= jstr(o, "snap", a->snap_name);
            rc |= jset(o, "snap_id", json_integer((json_int_t)a->snap_id));
            rc |= jset(o, "snap_trash_namespace", json_boolean(a->snap_in_trash_ns));
        }
    }
    rc |= jstr(o, "reason", a->reason);
    rc |= jstr(o, "state", rs_gc_action_state_name(a->state));
    if (a->state == RS_GC_ACT_FAILED) {
        rc |= jset(o, "rc", json_integer(a->rc));
        rc |= jstr(o, "error", rs_errno_name(a->rc));
    }
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *plan_json(const struct rs_gc_plan *p, bool dry_run)
{
    json_t *root = json_object();
    json_t *summary = json_object();
    json_t *del = json_array();
    json_t *skipped = json_array();
    char ts[32];
    rs_format_time(rs_gc_plan_time(p), ts, sizeof(ts));
    counts c = count_states(p);
    int rc = (!root || !summary || !del || !skipped) ? -ENOMEM : 0;
    if (rc == 0) {
        rc |= jset(summary, "found", json_integer((json_int_t)rs_gc_plan_item_count(p)));
        rc |= jset(summary, "delete", json_integer((json_int_t)rs_gc_plan_delete_count(p)));
        rc |= jset(summary, "skipped", json_integer((json_int_t)rs_gc_plan_skip_count(p)));
        rc |= jset(summary, "actions", json_integer((json_int_t)rs_gc_plan_action_count(p)));
        rc |= jset(summary, "done", json_integer((json_int_t)c.done));
        rc |= jset(summary, "failed", json_integer((json_int_t)c.failed));
        rc |= jset(summary, "not_run", json_integer((json_int_t)c.not_run));
    }
    size_t seq = 0;
    for (size_t i = 0; rc == 0 && i < rs_gc_plan_item_count(p); i++) {
        const rs_gc_item *it = rs_gc_plan_item(p, i);
        json_t *o = json_object();
        if (!o) {
            rc = -ENOMEM;
            break;
        }
        rc |= jstr(o, "kind", rs_gc_item_kind_name(it->kind));
        rc |= jstr(o, "object", it->object);
        if (it->skip != RS_GC_SKIP_NONE) {
            rc |= jstr(o, "skip", rs_gc_skip_reason_name(it->skip));
            rc |= jstr(o, "reason", it->reason);
            rc |= json_array_append_new(skipped, o) ? -ENOMEM : 0;
            continue;
        }
        rc |= jstr(o, "reason", it->reason);
        json_t *acts = json_array();
        rc |= jset(o, "actions", acts);
        for (size_t k = 0; rc == 0 && k < it->n_actions; k++) {
            json_t *a = action_json(rs_gc_plan_action(p, it->first_action + k), ++seq);
            rc |= a && json_array_append_new(acts, a) == 0 ? 0 : -ENOMEM;
        }
        rc |= json_array_append_new(del, o) ? -ENOMEM : 0;
    }
    if (rc == 0) {
        rc |= jstr(root, "time", ts);
        rc |= jset(root, "dry_run", json_boolean(dry_run));
        rc |= jset(root, "summary", summary);
        summary = NULL;
        rc |= jset(root, "delete", del);
        del = NULL;
        rc |= jset(root, "skipped", skipped);
        skipped = NULL;
    }
    json_decref(summary);
    json_decref(del);
    json_decref(skipped);
    if (rc) {
        json_decref(root);
        return NULL;
    }
    return root;
}

int rs_gc_report_render(const struct rs_gc_plan *plan, rs_gc_report_format fmt,
                        bool dry_run, char **out, rs_error *err)
{
    if (!plan || !out)
        return rs_error_set(err, -EINVAL, "gc report: no plan");
    *out = NULL;
    if (fmt == RS_GC_REPORT_PLAIN) {
        int rc = render_plain(plan, dry_run, out);
        if (rc < 0)
            return rs_error_set(err, rc, "gc report: rendering plain text failed");
        return 0;
    }
    if (fmt != RS_GC_REPORT_JSON)
        return rs_error_set(err, -EINVAL, "gc report: unknown format %d", (int)fmt);
    json_t *j = plan_json(plan, dry_run);
    if (!j)
        return rs_error_set(err, -ENOMEM, "gc report: building JSON failed");
    *out = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!*out)
        return rs_error_set(err, -ENOMEM, "gc report: serialising JSON failed");
    return 0;
}
