/*
 * main.c - rbdsnapd entry point (everything is in daemon.c).
 */
#include "service/service.h"

int main(int argc, char **argv)
{
    return rs_daemon_main(argc, argv);
}
