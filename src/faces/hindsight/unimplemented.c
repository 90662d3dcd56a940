/* Hindsight routes this server does not implement: knowledge-base pages, bank import/export,
 * document transfer, audit logs and LLM-request logs. Each answers 501 in Hindsight's error shape
 * ({"detail":"... is not implemented by this server"}) rather than 404, so a client can tell a
 * missing feature from a missing bank. GET B/document-transfer answers 410 as Hindsight itself
 * does (its synchronous export was removed). */
#include "engram/error.h"
#include "engram/util.h"
#include "hindsight_int.h"

#define B "/v1/default/banks/{bank_id}"

#define NOT_IMPLEMENTED(fn, what)                                                                  \
    static void fn(eg_req_t *req)                                                                  \
    {                                                                                              \
        eg_res_error_status(req, 501, EG_ENOTIMPL, "%s is not implemented by this server", what);  \
    }

NOT_IMPLEMENTED(h_kb, "The knowledge base")
NOT_IMPLEMENTED(h_bank_transfer, "Bank import and export")
NOT_IMPLEMENTED(h_doc_transfer, "Document transfer")
NOT_IMPLEMENTED(h_audit, "The audit log")
NOT_IMPLEMENTED(h_llm_requests, "The LLM request log")

static void h_transfer_gone(eg_req_t *req)
{
    eg_res_error_status(req, 410, EG_ENOTIMPL,
                        "Synchronous document export was removed: use POST "
                        "/v1/default/banks/{bank_id}/document-transfer/export");
}

int eg__hs_unimplemented_mount(eg_router_t *r)
{
    static const eg__hs_route_t routes[] = {
        {"GET", B "/knowledge-base/tree", h_kb},
        {"POST", B "/knowledge-base/folders", h_kb},
        {"POST", B "/knowledge-base/pages", h_kb},
        {"GET", B "/knowledge-base/export", h_kb},
        {"GET", B "/knowledge-base/search", h_kb},
        {"GET", B "/knowledge-base/pages/{page_id}", h_kb},
        {"PATCH", B "/knowledge-base/nodes/{node_id}", h_kb},
        {"DELETE", B "/knowledge-base/nodes/{node_id}", h_kb},
        {"POST", B "/import", h_bank_transfer},
        {"GET", B "/export", h_bank_transfer},
        {"GET", B "/document-transfer", h_transfer_gone},
        {"POST", B "/document-transfer", h_doc_transfer},
        {"POST", B "/document-transfer/export", h_doc_transfer},
        {"GET", "/v1/default/files/download/{key}", h_doc_transfer},
        {"GET", B "/audit-logs", h_audit},
        {"GET", B "/audit-logs/stats", h_audit},
        {"GET", B "/llm-requests", h_llm_requests},
        {"GET", B "/llm-requests/stats", h_llm_requests},
    };

    return eg__hs_add_routes(r, routes, EG_ARRAY_SIZE(routes), EG_ROUTE_AUTH);
}
