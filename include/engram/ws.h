/* WebSocket (RFC 6455) protocol codec, server side, sans I/O: handshake checks and the 101
 * response, a frame parser (bytes in, callbacks out) and a frame encoder (into an eg_buf_t).
 *
 * Nothing here touches a socket or a timer; the HTTP server owns the connection, feeds the bytes
 * it reads to eg_ws_parser_feed() and writes what the encoders append to its output queue. No
 * extension (permessage-deflate) is negotiated, so every RSV bit must be zero. */
#ifndef ENGRAM_WS_H
#define ENGRAM_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engram/buf.h"

#define EG_WS_GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define EG_WS_ACCEPT_LEN  28 /* base64 of a SHA-1 digest, without the NUL */
#define EG_WS_MAX_CONTROL 125

/* Frame opcodes (RFC 6455 §5.2). */
typedef enum {
    EG_WS_OP_CONT = 0x0,
    EG_WS_OP_TEXT = 0x1,
    EG_WS_OP_BINARY = 0x2,
    EG_WS_OP_CLOSE = 0x8,
    EG_WS_OP_PING = 0x9,
    EG_WS_OP_PONG = 0xA,
} eg_ws_opcode_t;

/* Close status codes (RFC 6455 §7.4.1; 1012-1014 from the IANA registry). */
enum {
    EG_WS_CLOSE_NORMAL = 1000,
    EG_WS_CLOSE_GOING_AWAY = 1001,
    EG_WS_CLOSE_PROTOCOL = 1002,
    EG_WS_CLOSE_UNSUPPORTED = 1003,
    EG_WS_CLOSE_NO_STATUS = 1005, /* reported for a close frame without a body; never sent */
    EG_WS_CLOSE_ABNORMAL = 1006,  /* connection lost without a close frame; never sent */
    EG_WS_CLOSE_INVALID_DATA = 1007,
    EG_WS_CLOSE_POLICY = 1008,
    EG_WS_CLOSE_TOO_BIG = 1009,
    EG_WS_CLOSE_MANDATORY_EXT = 1010,
    EG_WS_CLOSE_INTERNAL = 1011,
    EG_WS_CLOSE_RESTART = 1012,
    EG_WS_CLOSE_TRY_AGAIN = 1013,
    EG_WS_CLOSE_BAD_GATEWAY = 1014,
};

/* ---- handshake --------------------------------------------------------------------------- */

/* Why an upgrade request was refused: the HTTP status to answer with (400, or 426 with a
 * "Sec-WebSocket-Version: 13" / "Upgrade: websocket" header) and a static message. */
typedef struct eg_ws_hs_error_s {
    int status;
    const char *message;
} eg_ws_hs_error_t;

/* Header lookup (case-insensitive name; NULL when absent), e.g. a wrapper of eg_req_header. */
typedef const char *(*eg_ws_header_fn)(void *udata, const char *name);

/* Check the upgrade headers of a GET request (the method and HTTP/1.1 are the caller's check):
 * Upgrade has the token "websocket", Connection has the token "upgrade" (both
 * case-insensitive, in comma lists), Sec-WebSocket-Version is 13 and Sec-WebSocket-Key is the
 * base64 of 16 bytes. 0, or EG_EINVAL with *err filled (err may be NULL). */
int eg_ws_handshake_check(eg_ws_header_fn get, void *udata, eg_ws_hs_error_t *err);

/* The same check over the four header values (NULL for an absent header). */
int eg_ws_handshake_check_values(const char *upgrade, const char *connection, const char *version,
                                 const char *key, eg_ws_hs_error_t *err);

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)) plus NUL. 0 or EG_EINTERNAL. */
int eg_ws_accept_key(const char *key, char out[EG_WS_ACCEPT_LEN + 1]);

/* Append the "101 Switching Protocols" response head (ending with the blank line) for a client
 * key already checked; protocol, when not NULL, is echoed as Sec-WebSocket-Protocol. 0, or
 * EG_EINVAL when protocol is not a plain token (nothing is appended then). */
int eg_ws_handshake_response(eg_buf_t *out, const char *key, const char *protocol);

/* ---- parser ------------------------------------------------------------------------------ */

/* Callbacks of a parser; any may be NULL. Payloads are unmasked, NUL-terminated (the NUL is not
 * counted in len) and valid only during the call. A callback must not free the parser; to stop
 * parsing (the connection is going away) it calls eg_ws_parser_stop(). */
typedef struct eg_ws_callbacks_s {
    /* A complete message, reassembled from its fragments; op is TEXT (valid UTF-8) or BINARY. */
    void (*on_message)(void *udata, eg_ws_opcode_t op, const char *data, size_t len);
    /* A ping (answer with a pong carrying the same payload) or an unsolicited/answer pong. */
    void (*on_ping)(void *udata, const char *data, size_t len);
    void (*on_pong)(void *udata, const char *data, size_t len);
    /* A valid close frame: code is EG_WS_CLOSE_NO_STATUS when it had no body; reason is valid
     * UTF-8. The parser ignores every byte after it (answer with a close and shut down). */
    void (*on_close)(void *udata, int code, const char *reason, size_t len);
} eg_ws_callbacks_t;

/* Limits; 0 selects the default. A frame or message over its limit fails with 1009. */
typedef struct eg_ws_limits_s {
    size_t max_frame;   /* payload bytes of one frame, default 1 MiB */
    size_t max_message; /* bytes of a reassembled message, default 4 MiB */
} eg_ws_limits_t;

#define EG_WS_DEFAULT_MAX_FRAME   ((size_t)1 << 20)
#define EG_WS_DEFAULT_MAX_MESSAGE ((size_t)4 << 20)

/* Parser state, embedded in its owner (fields are private). */
typedef struct eg_ws_parser_s {
    eg_ws_callbacks_t cb;
    void *udata;
    size_t max_frame, max_message;

    int state;
    uint8_t hdr[14]; /* header bytes gathered so far */
    uint8_t hdr_len, hdr_need;
    uint8_t opcode; /* of the current frame */
    uint8_t fin;
    uint8_t mask[4];
    uint64_t remaining; /* payload bytes of the current frame still to come */
    uint64_t mask_pos;  /* payload bytes of the current frame seen so far */

    uint8_t msg_op; /* TEXT/BINARY of the message being reassembled, 0 when none */
    eg_buf_t msg;
    uint32_t utf8_state; /* incremental validation of the text message in msg */
    uint32_t ctl_len;
    char ctl[EG_WS_MAX_CONTROL + 1];

    int error_code; /* close code of the protocol error, 0 when none */
    const char *error_reason;
    unsigned stopped : 1;
} eg_ws_parser_t;

/* Initialise a parser for frames sent by a client (masked); limits may be NULL. */
void eg_ws_parser_init(eg_ws_parser_t *p, const eg_ws_limits_t *limits, const eg_ws_callbacks_t *cb,
                       void *udata);

/* Release the parser's buffers (the struct itself belongs to its owner). */
void eg_ws_parser_free(eg_ws_parser_t *p);

/* Feed bytes as they arrive, split anywhere. 0 when they were consumed (or ignored after a
 * close or a stop); on a protocol violation EG_EINVAL (or EG_ETOOBIG for a limit), with the close
 * code to send and its reason in eg_ws_parser_error(). After an error every call fails again. */
int eg_ws_parser_feed(eg_ws_parser_t *p, const void *data, size_t len);

/* The close code (1002, 1007 or 1009) of the error that stopped the parser, 0 if none; *reason
 * (when reason is not NULL) gets a static human-readable message. */
int eg_ws_parser_error(const eg_ws_parser_t *p, const char **reason);

/* True once a close frame was received. */
bool eg_ws_parser_closed(const eg_ws_parser_t *p);

/* Make eg_ws_parser_feed return after the current callback and ignore later input. */
void eg_ws_parser_stop(eg_ws_parser_t *p);

/* ---- encoder (server to client: unmasked) ----------------------------------------------- */

/* Append one frame header for a payload of len bytes (for writing a large payload separately). */
void eg_ws_encode_header(eg_buf_t *out, eg_ws_opcode_t op, bool fin, uint64_t len);

/* Append one complete unfragmented frame. */
void eg_ws_encode_frame(eg_buf_t *out, eg_ws_opcode_t op, const void *data, size_t len);

/* Text (data should be UTF-8: it is not checked here) and binary messages. */
void eg_ws_encode_text(eg_buf_t *out, const char *data, size_t len);
void eg_ws_encode_binary(eg_buf_t *out, const void *data, size_t len);

/* Ping and pong; EG_EINVAL when len > 125. */
int eg_ws_encode_ping(eg_buf_t *out, const void *data, size_t len);
int eg_ws_encode_pong(eg_buf_t *out, const void *data, size_t len);

/* Close frame. code 0 sends an empty body; otherwise a code that may be sent (1000-1003,
 * 1007-1014, 3000-4999) and a reason (may be NULL) cut to 123 bytes at a UTF-8 character
 * boundary. EG_EINVAL for a code that must not be sent. */
int eg_ws_encode_close(eg_buf_t *out, int code, const char *reason);

/* A frame encoded once and sent to many connections (event fan-out): reference counted, never
 * modified after eg_ws_frame_new. eg_ws_send_frame (engram/http.h) queues it without a copy. */
typedef struct eg_ws_frame_s {
    size_t refs;
    size_t len;  /* bytes of data: header and payload */
    char data[]; /* the whole unmasked frame */
} eg_ws_frame_t;

/* One complete unfragmented frame with one reference (aborts on out-of-memory). */
eg_ws_frame_t *eg_ws_frame_new(eg_ws_opcode_t op, const void *data, size_t len);

/* Take a reference (returns f), and drop one (f is freed with the last; NULL is a no-op). */
eg_ws_frame_t *eg_ws_frame_ref(eg_ws_frame_t *f);
void eg_ws_frame_unref(eg_ws_frame_t *f);

/* A masked frame as a client sends it (tests, fuzz seeds, a future WebSocket client). */
void eg_ws_encode_masked(eg_buf_t *out, eg_ws_opcode_t op, bool fin, const void *data, size_t len,
                         const uint8_t mask[4]);

/* ---- helpers ----------------------------------------------------------------------------- */

/* True for a close code a peer may put in a close frame (RFC 6455 §7.4). */
bool eg_ws_close_code_valid(int code);

/* True if the bytes are well-formed UTF-8: no overlong forms, surrogates or code points above
 * U+10FFFF. ASCII runs are checked eight bytes at a time. */
bool eg_ws_utf8_valid(const void *data, size_t len);

#endif
