/*
 * loadgen_herald.c - herald-loadgen's adapter for Herald's edge: WebSocket
 * /ws?topic=<t>[&format=raw], each message a JSON envelope
 * ({"op":"msg",...,"data":...}) or with --raw the payload alone; an
 * {"op":"error"} reply counts as an error. The publisher side is RESP
 * PUBLISH to the broker (loadgen_resp.c).
 */
#include "tools/loadgen.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Percent-encodes everything but RFC 3986 unreserved characters and '.'. */
static size_t url_escape(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (; *s && n + 4 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[n++] = (char)ch;
            continue;
        }
        out[n++] = '%';
        out[n++] = hex[ch >> 4];
        out[n++] = hex[ch & 15];
    }
    out[n] = '\0';
    return n;
}

static const uint8_t *find(const uint8_t *s, size_t len, const char *needle)
{
    const uint8_t *p = memmem(s, len, needle, strlen(needle));

    return p ? p + strlen(needle) : NULL;
}

/*
 * Topic mode both (bench/scale.sh): "?topic=<topic>&topic=user.<idx+offset>",
 * two subscriptions per connection, so one connection set serves a
 * broadcast phase and then a unicast phase (SIGUSR2 switches the counting).
 */
static int herald_target_both(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    char esc[1536];
    int n;

    url_escape(o->topic, esc, sizeof(esc));
    n = snprintf(buf, len, "%s?topic=%s&topic=user.%" PRIu64 "%s", o->path, esc, idx + o->offset,
                 o->raw ? "&format=raw" : "");
    return n < (int)len ? n : -1;
}

static int herald_target(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    char topic[512], esc[1536];
    int n;

    if (o->topic_mode == TOPIC_BOTH)
        return herald_target_both(o, idx, buf, len);
    if (loadgen_topic(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return -1;
    url_escape(topic, esc, sizeof(esc));
    n = snprintf(buf, len, "%s?topic=%s%s", o->path, esc, o->raw ? "&format=raw" : "");
    return n < (int)len ? n : -1;
}

static enum unit_kind herald_classify(const struct opts *o, const uint8_t *msg, size_t len,
                                      const uint8_t **payload, size_t *plen)
{
    const uint8_t *p;

    if (o->raw) {
        *payload = msg;
        *plen = len;
        return UNIT_EVENT;
    }
    if (!find(msg, len, "\"op\":\"msg\""))
        return find(msg, len, "\"op\":\"error\"") ? UNIT_ERROR : UNIT_OTHER;
    p = find(msg, len, "\"data\":");
    if (!p)
        return UNIT_OTHER;
    if (p < msg + len && *p == '"')
        p++; /* the payload is no JSON, so it came as a JSON string */
    *payload = p;
    *plen = (size_t)(msg + len - p);
    return UNIT_EVENT;
}

const struct proto loadgen_herald = {
    .name = "herald",
    .websocket = true,
    .target = herald_target,
    .headers = "",
    .classify = herald_classify,
    .pub_event = loadgen_resp_pub_event,
    .pub_read = loadgen_resp_pub_read,
};
