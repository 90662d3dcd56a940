/* Fency face: placeholder for the uploads routes (filled by their owner). */
#include "fency_int.h"

int eg__fy_uploads_mount(eg_router_t *r)
{
    (void)r;
    return 0;
}
