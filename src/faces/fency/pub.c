/* Fency face: placeholder for the pub routes (filled by their owner). */
#include "fency_int.h"

int eg__fy_pub_mount(eg_router_t *r)
{
    (void)r;
    return 0;
}
