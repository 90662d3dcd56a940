/* Fency face: placeholder for the library routes (filled by their owner). */
#include "fency_int.h"

int eg__fy_library_mount(eg_router_t *r)
{
    (void)r;
    return 0;
}
