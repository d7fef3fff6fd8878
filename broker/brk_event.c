/* brk_event: the GSAP_CR_RECEIVED payload; see brk_event.h. */
#include "brk_event.h"

#include "banned.h"

const char *const brk_cr_received_names[] = {
#define BRK_EVENT_NAME_(m) #m,
    BRK_CR_RECEIVED_MEMBERS(BRK_EVENT_NAME_)
#undef BRK_EVENT_NAME_
    NULL};

void brk_cr_received_read(const json_t *payload, brk_cr_received_t *out)
{
#define BRK_EVENT_GET_(m) out->m = json_object_get(payload, #m);
    BRK_CR_RECEIVED_MEMBERS(BRK_EVENT_GET_)
#undef BRK_EVENT_GET_
}

