/*
 * virt_xml.c - domain XML to rs_virt_disk_list.
 *
 * Only the parts of <disk> that a snapshot needs are read:
 *
 *   <disk type='network' device='disk'>
 *     <driver name='qemu' type='raw'/>
 *     <auth username='admin'><secret type='ceph' uuid='...'/></auth>
 *     <source protocol='rbd' name='vms/UUID_disk'>
 *       <host name='127.0.0.1' port='6789'/>
 *     </source>
 *     <target dev='vda' bus='virtio'/>
 *   </disk>
 *
 *   <disk type='file' device='disk'>
 *     <driver name='qemu' type='qcow2'/>
 *     <source file='/var/lib/nova/instances/UUID/disk'/>
 *     <backingStore type='file'>
 *       <format type='raw'/>
 *       <source file='/var/lib/nova/instances/_base/HASH'/>
 *       <backingStore/>
 *     </backingStore>
 *     <target dev='vda' bus='virtio'/>
 *   </disk>
 *
 * Skipped: device='cdrom'/'floppy', disks without a source, config drives
 * (a file or RBD image whose name ends in "disk.config"), network disks of
 * another protocol.  The root disk is the one with target "vda", else the
 * first disk kept.  libxml2 is used with no network access and no entity
 * expansion (the XML comes from libvirt, but still).
 */
#define RS_LOG_MODULE "virt"
#include "virt/virt-priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/log.h"
#include "common/util.h"

static bool is_elem(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE &&
           strcmp((const char *)n->name, name) == 0;
}

static xmlNode *child(const xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is_elem(c, name))
            return c;
    return NULL;
}

/* A strdup'ed attribute (malloc, not xmlMalloc), or NULL. */
static char *attr(const xmlNode *n, const char *name)
{
    xmlChar *v;
    char *s;

    if (!n)
        return NULL;
    v = xmlGetProp(n, (const xmlChar *)name);
    if (!v)
        return NULL;
    s = strdup((const char *)v);
    xmlFree(v);
    return s;
}

static bool attr_is(const xmlNode *n, const char *name, const char *want)
{
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    bool eq = v && strcmp((const char *)v, want) == 0;
    xmlFree(v);
    return eq;
}

void rs_virt_disk_clear(rs_virt_disk *d)
{
    if (!d)
        return;
    free(d->target);
    free(d->bus);
    free(d->format);
    free(d->pool);
    free(d->image);
    free(d->snap);
    for (size_t i = 0; i < d->n_hosts; i++)
        free(d->hosts[i]);
    free(d->hosts);
    free(d->auth_user);
    free(d->secret_uuid);
    free(d->path);
    for (size_t i = 0; i < d->n_backing; i++) {
        free(d->backing[i].path);
        free(d->backing[i].format);
    }
    free(d->backing);
    memset(d, 0, sizeof(*d));
}

void rs_virt_disk_list_free(rs_virt_disk_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        rs_virt_disk_clear(&l->disks[i]);
    free(l->disks);
    free(l);
}

const rs_virt_disk *rs_virt_disk_list_find(const rs_virt_disk_list *l,
                                           const char *target)
{
    if (!l || !target)
        return NULL;
    for (size_t i = 0; i < l->n; i++)
        if (l->disks[i].target && strcmp(l->disks[i].target, target) == 0)
            return &l->disks[i];
    return NULL;
}

static int parse_rbd(xmlNode *disk, xmlNode *src, rs_virt_disk *d,
                     const char *where, rs_error *err)
{
    char *name = attr(src, "name");
    char *slash, *at;
    xmlNode *auth;
    size_t nh = 0;

    if (!name || !*name || !(slash = strchr(name, '/')) || slash == name ||
        !slash[1]) {
        free(name);
        return rs_error_set(err, -EINVAL,
                            "%s: rbd source name is not 'pool/image'", where);
    }
    *slash = '\0';
    at = strchr(slash + 1, '@');
    if (at) {
        *at = '\0';
        d->snap = strdup(at + 1);
    }
    d->pool = strdup(name);
    d->image = strdup(slash + 1);
    free(name);
    if (!d->pool || !d->image || (at && !d->snap))
        return rs_error_set(err, -ENOMEM, "%s: out of memory", where);

    for (xmlNode *h = src->children; h; h = h->next)
        if (is_elem(h, "host"))
            nh++;
    if (nh) {
        d->hosts = calloc(nh, sizeof(char *));
        if (!d->hosts)
            return rs_error_set(err, -ENOMEM, "%s: out of memory", where);
    }
    for (xmlNode *h = src->children; h; h = h->next) {
        char *hn, *port;
        bool v6;
        if (!is_elem(h, "host"))
            continue;
        hn = attr(h, "name");
        port = attr(h, "port");
        if (!hn) {
            free(port);
            continue;
        }
        v6 = strchr(hn, ':') != NULL && hn[0] != '[';
        if (port)
            d->hosts[d->n_hosts] = rs_strdup_printf(v6 ? "[%s]:%s" : "%s:%s", hn, port);
        else
            d->hosts[d->n_hosts] = rs_strdup_printf(v6 ? "[%s]" : "%s", hn);
        free(hn);
        free(port);
        if (!d->hosts[d->n_hosts])
            return rs_error_set(err, -ENOMEM, "%s: out of memory", where);
        d->n_hosts++;
    }

    /* <auth> is a child of <disk> (classic) or of <source> (newer). */
    auth = child(disk, "auth");
    if (!auth)
        auth = child(src, "auth");
    if (auth) {
        d->auth_user = attr(auth, "username");
        d->secret_uuid = attr(child(auth, "secret"), "uuid");
    }
    return 0;
}

static int parse_backing(xmlNode *disk, rs_virt_disk *d, const char *where,
                         rs_error *err)
{
    size_t n = 0;
    xmlNode *b;

    for (b = child(disk, "backingStore"); b && child(b, "source");
         b = child(b, "backingStore"))
        n++;
    if (!n)
        return 0;
    d->backing = calloc(n, sizeof(*d->backing));
    if (!d->backing)
        return rs_error_set(err, -ENOMEM, "%s: out of memory", where);
    for (b = child(disk, "backingStore"); b && child(b, "source");
         b = child(b, "backingStore")) {
        xmlNode *s = child(b, "source");
        rs_virt_backing *bk = &d->backing[d->n_backing++];
        bk->path = attr(s, "file");
        if (!bk->path)
            bk->path = attr(s, "dev");
        bk->format = attr(child(b, "format"), "type");
        if (!bk->format)
            bk->format = strdup("raw");
        if (!bk->format)
            return rs_error_set(err, -ENOMEM, "%s: out of memory", where);
    }
    return 0;
}

/* 1: disk kept in @d; 0: skipped; <0 error. */
static int parse_disk(xmlNode *disk, size_t idx, rs_virt_disk *d, rs_error *err)
{
    char where[64];
    xmlNode *src = child(disk, "source");
    xmlNode *tgt = child(disk, "target");
    int rc;

    snprintf(where, sizeof(where), "disk #%zu", idx);
    if (attr_is(disk, "device", "cdrom") || attr_is(disk, "device", "floppy"))
        return 0;
    if (!src || !tgt)
        return 0;

    d->target = attr(tgt, "dev");
    if (!d->target)
        return 0;
    snprintf(where, sizeof(where), "disk %s", d->target);
    d->bus = attr(tgt, "bus");
    d->format = attr(child(disk, "driver"), "type");

    if (attr_is(disk, "type", "network")) {
        if (!attr_is(src, "protocol", "rbd")) {
            rs_debug("msg=\"skipping non-rbd network disk\" disk=%s", d->target);
            return 0;
        }
        d->kind = RS_VIRT_DISK_RBD;
        rc = parse_rbd(disk, src, d, where, err);
        if (rc < 0)
            return rc;
        if (rs_str_has_suffix(d->image, "disk.config"))
            return 0;
        return 1;
    }
    if (attr_is(disk, "type", "file") || attr_is(disk, "type", "block")) {
        d->kind = RS_VIRT_DISK_FILE;
        d->path = attr(src, attr_is(disk, "type", "file") ? "file" : "dev");
        if (!d->path || !*d->path)
            return 0;
        if (rs_str_has_suffix(d->path, "disk.config"))
            return 0;
        rc = parse_backing(disk, d, where, err);
        return rc < 0 ? rc : 1;
    }
    rs_debug("msg=\"skipping disk of unsupported type\" disk=%s", d->target);
    return 0;
}

int rs_virt_parse_disks(const char *xml, unsigned flags,
                        rs_virt_disk_list **out, rs_error *err)
{
    xmlDoc *doc = NULL;
    xmlNode *root, *devices;
    rs_virt_disk_list *l = NULL;
    size_t ndisk = 0, idx = 0;
    int rc = 0;

    *out = NULL;
    if (!xml)
        return rs_error_set(err, -EINVAL, "domain XML: none given");
    doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return rs_error_set(err, -EINVAL, "domain XML: not well-formed");
    root = xmlDocGetRootElement(doc);
    if (!is_elem(root, "domain")) {
        rc = rs_error_set(err, -EINVAL, "domain XML: root element is not <domain>");
        goto out;
    }
    devices = child(root, "devices");
    for (xmlNode *n = devices ? devices->children : NULL; n; n = n->next)
        if (is_elem(n, "disk"))
            ndisk++;

    l = calloc(1, sizeof(*l));
    if (!l || (ndisk && !(l->disks = calloc(ndisk, sizeof(rs_virt_disk))))) {
        rc = rs_error_set(err, -ENOMEM, "domain XML: out of memory");
        goto out;
    }
    for (xmlNode *n = devices ? devices->children : NULL; n; n = n->next) {
        rs_virt_disk *d;
        if (!is_elem(n, "disk"))
            continue;
        d = &l->disks[l->n];
        rc = parse_disk(n, idx++, d, err);
        if (rc <= 0)
            rs_virt_disk_clear(d);
        if (rc < 0)
            goto out;
        if (rc == 0) {
            rs_virt_disk_clear(d);
            continue;
        }
        rc = 0;
        l->n++;
    }
    if (l->n == 0) {
        rc = rs_error_set(err, -ENOENT, "domain XML: no snapshot-able disk");
        goto out;
    }
    if (!(flags & RS_VIRT_DISKS_ALL)) {
        size_t root_idx = 0;
        for (size_t i = 0; i < l->n; i++)
            if (strcmp(l->disks[i].target, "vda") == 0) {
                root_idx = i;
                break;
            }
        if (root_idx != 0) {
            rs_virt_disk tmp = l->disks[0];
            l->disks[0] = l->disks[root_idx];
            l->disks[root_idx] = tmp;
        }
        for (size_t i = 1; i < l->n; i++)
            rs_virt_disk_clear(&l->disks[i]);
        l->n = 1;
    }
    *out = l;
    l = NULL;
out:
    rs_virt_disk_list_free(l);
    xmlFreeDoc(doc);
    return rc;
}
