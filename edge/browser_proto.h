#ifndef HERALD_EDGE_BROWSER_PROTO_H
#define HERALD_EDGE_BROWSER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The browser-facing JSON protocol (docs/protocol.md §3), pure
 * code over jansson: parse client ops, format replies, and encode an event
 * once into complete, unmasked WebSocket frames (the JSON envelope and the
 * raw payload) ready to be shared by every subscriber.
 */

struct frame;

enum browser_op_kind {
    BROWSER_OP_SUB,
    BROWSER_OP_UNSUB,
    BROWSER_OP_PING,
    BROWSER_OP_AUTH, /* docs/protocol.md §3.10 */
};

/* A parsed op. topic is a view into the parser's own copy, valid until browser_op_release. */
struct browser_op {
    enum browser_op_kind kind;
    const char *topic; /* sub/unsub; NUL-terminated */
    size_t topic_len;
    const char *token; /* auth; NUL-terminated */
    size_t token_len;
    bool has_id;
    int64_t id;       /* the client's "id" when it is an integer */
    char id_text[48]; /* the "id" as JSON text (number or quoted string), "" when absent */
    void *json;       /* owned jansson object; released by browser_op_release */
};

/*
 * Parses one text message. Returns 0 with *op filled, or -1 with *code
 * ("bad_request") and *err (static message) when the message is not a JSON
 * object, lacks a known "op", a sub/unsub lacks a string "topic" or an auth
 * a string "token". On -1
 * op->id_text is still filled when an id could be read, so the error reply
 * can carry it.
 */
int browser_op_parse(const char *msg, size_t len, struct browser_op *op, const char **code,
                     const char **err);

/* Releases what browser_op_parse allocated (safe after -1 too). */
void browser_op_release(struct browser_op *op);

/* Formats {"op":"ok","id":<id>} (id omitted when id_text is ""); returns its length. */
size_t browser_reply_ok(char *out, size_t cap, const char *id_text);

/* Formats {"op":"ok","id":<id>,"exp":<exp>}: the answer to a good auth op. */
size_t browser_reply_auth_ok(char *out, size_t cap, const char *id_text, int64_t exp);

/* Formats {"op":"pong","id":<id>}. */
size_t browser_reply_pong(char *out, size_t cap, const char *id_text);

/* Formats {"op":"error","id":<id>,"code":"<code>","message":"<message>"} (message JSON-escaped). */
size_t browser_reply_error(char *out, size_t cap, const char *id_text, const char *code,
                           const char *message);

/*
 * Formats {"op":"error","code":"<code>","topic":"<pattern>","message":"<message>"}: a
 * subscription the broker refused after it was accepted (no id: it answers
 * no request of the moment). pattern[0..len) is JSON-escaped.
 */
size_t browser_reply_refused(char *out, size_t cap, const char *code, const char *pattern,
                             size_t len, const char *message);

/*
 * Returns a new reference to one complete server WebSocket text frame
 * (header + payload) carrying
 *   {"op":"msg","topic":"<topic>","seq":<seq>,"data":<payload>}
 * where data is the payload itself when it is valid JSON (any JSON value),
 * else the payload as a JSON string (invalid UTF-8 replaced by U+FFFD).
 */
struct frame *browser_encode_event(const char *topic, size_t tlen, uint64_t seq,
                                   const void *payload, size_t plen);

/*
 * Returns a new reference to one complete server frame carrying the payload
 * alone: a text frame when it is valid UTF-8, else a binary frame.
 */
struct frame *browser_encode_raw(const void *payload, size_t plen);

/*
 * Returns a new reference to one complete server text frame holding s[0..len)
 * (for ok/error replies).
 */
struct frame *browser_encode_text(const char *s, size_t len);

/*
 * Returns a new reference to a close frame with code and reason (reason
 * <= 123 bytes, cut otherwise).
 */
struct frame *browser_encode_close(uint16_t code, const char *reason);

#endif
