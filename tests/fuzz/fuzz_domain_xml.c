/*
 * fuzz_domain_xml.c - libFuzzer target: libvirt domain XML -> disks
 * (virt/virt_xml.c), with both the root-disk-only and the all-disks mode.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "virt/virt-priv.h"
#include "virt/virt.h"

static void quiet(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    xmlInitParser();
    xmlSetGenericErrorFunc(NULL, quiet);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = malloc(size + 1);
    if (!xml)
        return 0;
    memcpy(xml, data, size);
    xml[size] = '\0';
    static const unsigned modes[] = { RS_VIRT_DISKS_ROOT, RS_VIRT_DISKS_ALL };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        rs_virt_disk_list *l = NULL;
        rs_error err = RS_ERROR_INIT;
        if (rs_virt_parse_disks(xml, modes[i], &l, &err) == 0)
            rs_virt_disk_list_free(l);
        else if (!rs_error_isset(&err))
            abort();
    }
    free(xml);
    return 0;
}
