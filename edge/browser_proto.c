/*
 * browser_proto.c - the browser-facing JSON protocol: ops in, replies and
 * event frames out.
 *
 * Ops are parsed with jansson (json_loadb): the message must be
 * an object with "op" sub/unsub/ping/auth, a string "topic" for sub/unsub,
 * a string "token" for auth, and an optional integer or string "id". The id is kept as its compact
 * JSON text so replies echo it byte for byte without knowing its type. Topic syntax is not checked
 * here: the subscribe path does that with its limits.
 *
 * Events are encoded once per event into one complete, unmasked WebSocket
 * frame shared by every subscriber (docs/architecture.md §4.2). The envelope
 *   {"op":"msg","topic":"<topic>","seq":<seq>,"data":<data>}
 * is measured first, then written straight into the frame after the header:
 * one allocation, no intermediate buffer. data is the ORIGINAL payload bytes
 * (trimmed of JSON whitespace) when jansson accepts them as any JSON value
 * (jansson also rejects invalid UTF-8, so the text frame stays valid), else
 * the payload as a JSON string with invalid UTF-8 replaced by U+FFFD.
 *
 * All output goes through struct json_out, a writer that counts every byte but
 * stores only what fits: the same code measures (cap 0) and writes, so the
 * two passes cannot disagree, and replies get snprintf semantics.
 *
 * Rejected: re-serialising the parsed payload with json_dumps (it
 * reformats numbers, spacing and escapes, so clients would not get what the
 * publisher sent, and it allocates again); building the envelope as a
 * jansson object (one more copy of the payload per event).
 */
#include "edge/browser_proto.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/frame.h"
#include "common/json_str.h"
#include "common/utf8.h"
#include "common/ws/ws_frame.h"
#include "common/ws/ws_out.h"

#define BAD_REQUEST "bad_request"

/* ------------------------------------------------------------ writer */

static void put_json_string(struct json_out *o, const void *s, size_t n)
{
    json_out_put(o, "\"", 1);
    json_out_escaped(o, s, n);
    json_out_put(o, "\"", 1);
}

/* --------------------------------------------------------------- ops */

/* Fills op->id_text / id from the optional "id"; -1 with *err when unusable. */
static int read_id(json_t *root, struct browser_op *op, const char **err)
{
    json_t *id = json_object_get(root, "id");
    size_t n;

    if (id == NULL)
        return 0;
    if (!json_is_integer(id) && !json_is_string(id)) {
        *err = "id must be an integer or a string";
        return -1;
    }
    n = json_dumpb(id, op->id_text, sizeof(op->id_text) - 1, JSON_ENCODE_ANY | JSON_COMPACT);
    if (n == 0 || n >= sizeof(op->id_text)) {
        op->id_text[0] = '\0';
        *err = "id too long";
        return -1;
    }
    op->id_text[n] = '\0';
    op->has_id = true;
    if (json_is_integer(id))
        op->id = (int64_t)json_integer_value(id);
    return 0;
}

/* Sets op->kind from "op"; -1 with *err when missing or unknown. */
static int read_kind(json_t *root, struct browser_op *op, const char **err)
{
    static const struct {
        const char *name;
        enum browser_op_kind kind;
    } kinds[] = {
        {"sub", BROWSER_OP_SUB},
        {"unsub", BROWSER_OP_UNSUB},
        {"ping", BROWSER_OP_PING},
        {"auth", BROWSER_OP_AUTH},
    };

    json_t *value = json_object_get(root, "op");
    const char *name = json_string_value(value);

    if (value == NULL) {
        *err = "missing op";
        return -1;
    }
    if (name == NULL) {
        *err = "unknown op";
        return -1;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(name, kinds[i].name) == 0) {
            op->kind = kinds[i].kind;
            return 0;
        }
    }
    *err = "unknown op";
    return -1;
}

static int read_topic(json_t *root, struct browser_op *op, const char **err)
{
    json_t *topic = json_object_get(root, "topic");

    if (topic == NULL) {
        *err = "missing topic";
        return -1;
    }
    if (!json_is_string(topic)) {
        *err = "topic must be a string";
        return -1;
    }
    /* Without JSON_ALLOW_NUL jansson refuses \u0000, so strlen agrees. */
    op->topic = json_string_value(topic);
    op->topic_len = json_string_length(topic);
    return 0;
}

static int read_token(json_t *root, struct browser_op *op, const char **err)
{
    json_t *token = json_object_get(root, "token");

    if (token == NULL) {
        *err = "missing token";
        return -1;
    }
    if (!json_is_string(token)) {
        *err = "token must be a string";
        return -1;
    }
    op->token = json_string_value(token);
    op->token_len = json_string_length(token);
    return 0;
}

int browser_op_parse(const char *msg, size_t len, struct browser_op *op, const char **code,
                     const char **err)
{
    json_error_t jerr;
    json_t *root;

    memset(op, 0, sizeof(*op));
    *code = BAD_REQUEST;
    /* JSON_DECODE_ANY so a scalar gets "not an object" rather than "malformed". */
    root = json_loadb(msg, len, JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        *err = "malformed JSON";
        return -1;
    }
    op->json = root;
    if (!json_is_object(root)) {
        *err = "message must be a JSON object";
        return -1;
    }
    if (read_id(root, op, err) < 0 || read_kind(root, op, err) < 0)
        return -1;
    if ((op->kind == BROWSER_OP_SUB || op->kind == BROWSER_OP_UNSUB) &&
        read_topic(root, op, err) < 0)
        return -1;
    if (op->kind == BROWSER_OP_AUTH && read_token(root, op, err) < 0)
        return -1;
    *code = NULL;
    *err = NULL;
    return 0;
}

void browser_op_release(struct browser_op *op)
{
    json_decref(op->json);
    op->json = NULL;
    op->topic = NULL;
    op->topic_len = 0;
    op->token = NULL;
    op->token_len = 0;
}

/* ----------------------------------------------------------- replies */

/* Starts {"op":"<op>" plus ,"id":<id> when there is one. */
static void put_reply_head(struct json_out *o, const char *op, const char *id_text)
{
    json_out_str(o, "{\"op\":\"");
    json_out_str(o, op);
    json_out_str(o, "\"");
    if (id_text != NULL && id_text[0] != '\0') {
        json_out_str(o, ",\"id\":");
        json_out_str(o, id_text);
    }
}

/* NUL-terminates a reply writer; returns the full length (snprintf-like). */
static size_t reply_end(struct json_out *o, char *buf, size_t cap)
{
    if (cap > 0)
        buf[o->len < cap ? o->len : cap - 1] = '\0';
    return o->len;
}

size_t browser_reply_ok(char *out, size_t cap, const char *id_text)
{
    struct json_out o = {out, cap > 0 ? cap - 1 : 0, 0};

    put_reply_head(&o, "ok", id_text);
    json_out_put(&o, "}", 1);
    return reply_end(&o, out, cap);
}

size_t browser_reply_auth_ok(char *out, size_t cap, const char *id_text, int64_t exp)
{
    struct json_out o = {out, cap > 0 ? cap - 1 : 0, 0};
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, exp);

    put_reply_head(&o, "ok", id_text);
    json_out_str(&o, ",\"exp\":");
    json_out_put(&o, num, (size_t)n);
    json_out_put(&o, "}", 1);
    return reply_end(&o, out, cap);
}

size_t browser_reply_pong(char *out, size_t cap, const char *id_text)
{
    struct json_out o = {out, cap > 0 ? cap - 1 : 0, 0};

    put_reply_head(&o, "pong", id_text);
    json_out_put(&o, "}", 1);
    return reply_end(&o, out, cap);
}

size_t browser_reply_error(char *out, size_t cap, const char *id_text, const char *code,
                           const char *message)
{
    struct json_out o = {out, cap > 0 ? cap - 1 : 0, 0};

    put_reply_head(&o, "error", id_text);
    json_out_str(&o, ",\"code\":");
    put_json_string(&o, code, strlen(code));
    json_out_str(&o, ",\"message\":");
    put_json_string(&o, message, strlen(message));
    json_out_put(&o, "}", 1);
    return reply_end(&o, out, cap);
}

size_t browser_reply_refused(char *out, size_t cap, const char *code, const char *pattern,
                             size_t len, const char *message)
{
    struct json_out o = {out, cap > 0 ? cap - 1 : 0, 0};

    put_reply_head(&o, "error", NULL);
    json_out_str(&o, ",\"code\":");
    put_json_string(&o, code, strlen(code));
    json_out_str(&o, ",\"topic\":");
    put_json_string(&o, pattern, len);
    json_out_str(&o, ",\"message\":");
    put_json_string(&o, message, strlen(message));
    json_out_put(&o, "}", 1);
    return reply_end(&o, out, cap);
}

/* ------------------------------------------------------------ frames */

static bool is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One event envelope; data is trimmed JSON text when as_json, else any bytes. */
struct envelope {
    const char *topic;
    size_t tlen;
    uint64_t seq;
    const char *data;
    size_t dlen;
    bool as_json;
};

static void put_envelope(struct json_out *o, const struct envelope *e)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, e->seq);

    json_out_str(o, "{\"op\":\"msg\",\"topic\":");
    put_json_string(o, e->topic, e->tlen);
    json_out_str(o, ",\"seq\":");
    json_out_put(o, num, (size_t)n);
    json_out_str(o, ",\"data\":");
    if (e->as_json)
        json_out_put(o, e->data, e->dlen);
    else
        put_json_string(o, e->data, e->dlen);
    json_out_put(o, "}", 1);
}

static bool payload_is_json(const char *p, size_t plen)
{
    json_error_t jerr;
    json_t *v = json_loadb(p, plen, JSON_DECODE_ANY, &jerr);

    if (v == NULL)
        return false;
    json_decref(v);
    return true;
}

struct frame *browser_encode_event(const char *topic, size_t tlen, uint64_t seq,
                                   const void *payload, size_t plen)
{
    struct envelope e = {topic, tlen, seq, payload, plen, false};
    struct json_out measure = {NULL, 0, 0};
    struct json_out o;
    struct frame *f;
    char *json;

    e.as_json = plen > 0 && payload_is_json(payload, plen);
    if (e.as_json) {
        while (e.dlen > 0 && is_json_space(e.data[0])) {
            e.data++;
            e.dlen--;
        }
        while (e.dlen > 0 && is_json_space(e.data[e.dlen - 1]))
            e.dlen--;
    }
    put_envelope(&measure, &e);
    f = ws_frame_alloc(WS_OP_TEXT, measure.len, &json);
    o = (struct json_out){json, measure.len, 0};
    put_envelope(&o, &e);
    return f;
}

struct frame *browser_encode_raw(const void *payload, size_t plen)
{
    return ws_frame_new(utf8_valid(payload, plen) ? WS_OP_TEXT : WS_OP_BINARY, payload, plen);
}

struct frame *browser_encode_text(const char *s, size_t len)
{
    return ws_frame_new(WS_OP_TEXT, s, len);
}

struct frame *browser_encode_close(uint16_t code, const char *reason)
{
    return ws_close_frame_new(code, reason);
}
