/* Fency face: placeholder for the events routes (filled by their owner). */
#include "fency_int.h"

int eg__fy_events_mount(eg_router_t *r)
{
    (void)r;
    return 0;
}
