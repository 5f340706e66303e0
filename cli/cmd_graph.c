/*
 * cmd_graph.c - `rbdsnap graph [POOL/IMAGE | --pool P] [--svg FILE]`: the
 * dependency tree of `rbdsnap tree` as Graphviz DOT.
 *
 * One cluster per pool; images are boxes, snapshots ellipses (two outlines
 * when protected); edges image -> snapshot -> clone.  Made by rbdsnap: blue
 * and bold; in the RBD trash or the trash snapshot namespace: dashed, grey;
 * *_to_be_deleted_by_glance: red; unreadable: dotted.  --svg FILE pipes the
 * DOT through `dot -Tsvg` (package graphviz).
 */
#define RS_LOG_MODULE "cli.graph"
#include "cli/cli.h"

#include "cli/deptree.h"
#include "common/util.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

static const char help[] =
    "Usage: rbdsnap graph [POOL/IMAGE | --pool POOL] [--svg FILE] [options]\n"
    "Print the dependency graph of `rbdsnap tree` as Graphviz DOT.\n"
    "  --pool POOL   start from the images of POOL only\n"
    "  --svg FILE    render it to FILE with `dot -Tsvg` (package graphviz)\n"
    RS_CLI_COMMON_HELP;

enum { OPT_POOL = 1100, OPT_SVG };

typedef struct dotbuf {
    char *s;
    size_t len, cap;
    size_t nodes, edges;
    bool oom;
} dotbuf;

static void add(dotbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(dotbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A DOT double-quoted string body: escape quotes and backslashes. */
static void esc(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (; *in && o + 3 < len; in++) {
        if (*in == '"' || *in == '\\')
            out[o++] = '\\';
        out[o++] = (*in == '\n') ? ' ' : *in;
    }
    out[o] = '\0';
}

static void image_id(const rs_dep_image *im, char *buf, size_t len)
{
    char e1[512], e2[512];
    esc(im->pool, e1, sizeof(e1));
    esc(*im->id ? im->id : im->name, e2, sizeof(e2));
    snprintf(buf, len, "img:%s/%s", e1, e2);
}

static void emit_image(dotbuf *b, const rs_dep_image *im, int64_t now)
{
    char id[1100], name[512], extra[1024] = "", size[32], age[32], style[256];

    image_id(im, id, sizeof(id));
    esc(im->name, name, sizeof(name));
    if (im->error) {
        add(b, "    \"%s\" [shape=box, style=dotted, label=\"%s\\n(unreadable)\"];\n", id, name);
        b->nodes++;
        return;
    }
    rs_dep_fmt_size(im->d->size, size, sizeof(size));
    rs_dep_fmt_age(im->d->created_at, now, age, sizeof(age));
    if (im->glance_checked) {
        char gn[512], gs[64];
        esc(im->glance_name ? im->glance_name : "", gn, sizeof(gn));
        esc(im->glance_status ? im->glance_status : (im->glance_found ? "?" : "no record"), gs,
            sizeof(gs));
        snprintf(extra, sizeof(extra), "\\nglance: %s (%s)", gn, gs);
    }
    snprintf(style, sizeof(style), "%s%s", im->trash ? "dashed" : "solid",
             im->rbdsnap ? ",bold" : "");
    add(b, "    \"%s\" [shape=box, style=\"%s\", color=%s, label=\"%s\\n%s, %s%s%s%s%s\"];\n", id,
        style, im->tbd ? "red" : im->trash ? "grey" : im->rbdsnap ? "blue" : "black", name, size,
        age, im->rbdsnap ? "\\n[rbdsnap]" : "", im->trash ? "\\n[trash]" : "",
        im->tbd ? "\\n[to-be-deleted-by-glance]" : "", extra);
    b->nodes++;
    for (size_t i = 0; i < im->nsnaps; i++) {
        const rs_dep_snap *s = &im->snaps[i];
        bool trash = s->s->ns == RS_RBD_SNAP_NS_TRASH;
        char sn[512];
        esc(s->display, sn, sizeof(sn));
        add(b, "    \"%s@%llu\" [shape=ellipse, peripheries=%d, style=\"%s%s\", color=%s, "
               "label=\"@%s%s%s\"];\n",
            id, (unsigned long long)s->s->id, s->s->is_protected ? 2 : 1,
            trash ? "dashed" : "solid", s->rbdsnap ? ",bold" : "",
            trash ? "grey" : s->rbdsnap ? "blue" : "black", sn, s->rbdsnap ? "\\n[rbdsnap]" : "",
            trash ? "\\n[trash]" : "");
        b->nodes++;
    }
}

static void emit_edges(dotbuf *b, const rs_dep_image *im)
{
    char id[1100], cid[1100];

    image_id(im, id, sizeof(id));
    for (size_t i = 0; i < im->nsnaps; i++) {
        const rs_dep_snap *s = &im->snaps[i];
        add(b, "  \"%s\" -> \"%s@%llu\";\n", id, id, (unsigned long long)s->s->id);
        b->edges++;
        for (size_t c = 0; c < s->nchildren; c++) {
            image_id(s->children[c], cid, sizeof(cid));
            add(b, "  \"%s@%llu\" -> \"%s\";\n", id, (unsigned long long)s->s->id, cid);
            b->edges++;
        }
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void build_dot(dotbuf *b, const rs_deptree *t)
{
    int64_t now = rs_wall_time();
    const char **pools = calloc(t->nimages + 1, sizeof(char *));
    size_t np = 0;

    add(b, "digraph rbdsnap {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n");
    for (size_t i = 0; pools && i < t->nimages; i++) {
        bool seen = false;
        for (size_t j = 0; j < np && !seen; j++)
            seen = strcmp(pools[j], t->images[i]->pool) == 0;
        if (!seen)
            pools[np++] = t->images[i]->pool;
    }
    if (np > 1)
        qsort(pools, np, sizeof(*pools), cmp_str);
    for (size_t p = 0; p < np; p++) {
        char pe[512];
        esc(pools[p], pe, sizeof(pe));
        add(b, "  subgraph \"cluster_%s\" {\n    label=\"pool %s\";\n    style=rounded;\n", pe, pe);
        for (size_t i = 0; i < t->nimages; i++)
            if (strcmp(t->images[i]->pool, pools[p]) == 0)
                emit_image(b, t->images[i], now);
        add(b, "  }\n");
    }
    for (size_t i = 0; i < t->nimages; i++)
        emit_edges(b, t->images[i]);
    add(b, "}\n");
    free(pools);
}

/* Look for an executable @name in $PATH. */
static bool in_path(const char *name)
{
    const char *path = getenv("PATH");
    char buf[4096];

    if (!path || !*path)
        path = "/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
        if (n && access(buf, X_OK) == 0)
            return true;
        path += n + (end ? 1 : 0);
    }
    return false;
}

static int render_svg(rs_cli *cli, const dotbuf *b, const char *file)
{
    int fds[2], status = 0;
    pid_t pid;

    if (!in_path("dot")) {
        rs_cli_error(cli, "--svg %s: Graphviz is not installed (no `dot` in PATH; install the "
                          "package graphviz)", file);
        return -ENOENT;
    }
    if (pipe(fds) < 0)
        return -errno;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -errno;
    }
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        execlp("dot", "dot", "-Tsvg", "-o", file, (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    for (size_t off = 0; off < b->len;) {
        ssize_t w = write(fds[1], b->s + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fds[1]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        rs_cli_error(cli, "--svg %s: `dot -Tsvg` failed (exit status %d)", file,
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -EIO;
    }
    return 0;
}

int rs_cli_cmd_graph(rs_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        RS_CLI_COMMON_OPTIONS,
        { "pool", required_argument, NULL, OPT_POOL },
        { "svg", required_argument, NULL, OPT_SVG },
        { NULL, 0, NULL, 0 },
    };
    const char *pool = NULL, *spec = NULL, *svg = NULL;
    rs_deptree *t = NULL;
    dotbuf b = { 0 };
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, RS_CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_POOL: pool = optarg; break;
        case OPT_SVG: svg = optarg; break;
        default:
            if (rs_cli_other_option(cli, c, optarg, argv) < 0)
                return RS_EXIT_USAGE;
        }
    }
    int done = rs_cli_options_end(cli, help, 1, argc, argv);
    if (done >= 0)
        return done;
    if (optind == argc - 1)
        spec = argv[optind];
    if (spec && pool)
        return rs_cli_usage_error(cli, "give either POOL/IMAGE or --pool, not both");
    if (svg && !in_path("dot")) {
        rs_cli_error(cli, "--svg %s: Graphviz is not installed (no `dot` in PATH; install the "
                          "package graphviz)", svg);
        return RS_EXIT_ERROR;
    }
    rc = rs_dep_cli_build(cli, spec, pool, &t);
    if (rc != 0)
        return rc;
    build_dot(&b, t);
    rs_deptree_free(t);
    if (b.oom) {
        free(b.s);
        rs_cli_error(cli, "out of memory");
        return RS_EXIT_ERROR;
    }
    if (svg && render_svg(cli, &b, svg) < 0) {
        free(b.s);
        return RS_EXIT_ERROR;
    }
    if (cli->format == RS_CLI_JSON) {
        json_t *o = json_pack("{s:s#,s:I,s:I}", "dot", b.s, b.len, "nodes", (json_int_t)b.nodes,
                              "edges", (json_int_t)b.edges);
        json_object_set_new(o, "svg", svg ? json_string(svg) : json_null());
        rs_cli_print_json(o);
    } else if (svg) {
        printf("wrote %s (%zu nodes, %zu edges)\n", svg, b.nodes, b.edges);
    } else {
        fwrite(b.s, 1, b.len, stdout);
    }
    free(b.s);
    return RS_EXIT_OK;
}
