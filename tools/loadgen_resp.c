/*
 * loadgen_resp.c - herald-loadgen's adapter for redis-server (bench/peers.sh),
 * and the RESP PUBLISH that Herald's broker takes too: subscribers speak
 * RESP over plain TCP (SUBSCRIBE <topic>, then "message" arrays cut from
 * the stream), the publisher pipelines PUBLISH and counts the integer
 * replies.
 */
#include "tools/loadgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* RESP: Herald's broker and redis-server take the same PUBLISH. */
void loadgen_resp_pub_event(const char *topic, const char *body, struct evbuffer *out)
{
    evbuffer_add_printf(out, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%d\r\n", strlen(topic), topic,
                        PAYLOAD_LEN);
    evbuffer_add(out, body, PAYLOAD_LEN);
    evbuffer_add(out, "\r\n", 2);
}

/* Replies to PUBLISH: ":<receivers>" lines; anything else is an error. */
int loadgen_resp_pub_read(struct evbuffer *in, struct pub_tally *t)
{
    char *line;
    size_t n;

    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
        t->replies++;
        if (line[0] == ':')
            t->receivers += strtoull(line + 1, NULL, 10);
        else
            t->errors++;
        free(line); /* allocated by libevent */
    }
    return evbuffer_get_length(in) > MAX_HEAD ? -1 : 0;
}

static size_t resp_on_open(const struct opts *o, uint64_t idx, uint8_t *buf, size_t len)
{
    char topic[256];
    int n;

    if (loadgen_topic(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return 0;
    n = snprintf((char *)buf, len, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(topic), topic);
    return n > 0 && n < (int)len ? (size_t)n : 0;
}

/* One RESP value (arrays nest at most 4 deep): consumed bytes, 0 incomplete, -1. */
static ssize_t resp_value(const uint8_t *s, size_t len, unsigned depth)
{
    const uint8_t *e = len ? memmem(s, len, "\r\n", 2) : NULL;
    size_t h, used;
    uint64_t n;

    if (!e)
        return len > MAX_HEAD ? -1 : 0;
    h = (size_t)(e - s) + 2;
    if (s[0] == '+' || s[0] == '-' || s[0] == ':' || ((s[0] == '$' || s[0] == '*') && s[1] == '-'))
        return (ssize_t)h;
    if ((s[0] != '$' && s[0] != '*') || !loadgen_parse_digits(s + 1, h - 3, 10, &n) ||
        n > MAX_FRAME)
        return -1;
    if (s[0] == '$')
        return len >= h + n + 2 ? (ssize_t)(h + n + 2) : 0;
    if (depth == 4)
        return -1;
    for (used = h; n; n--) {
        ssize_t k = resp_value(s + used, len - used, depth + 1);
        if (k <= 0)
            return k;
        used += (size_t)k;
    }
    return (ssize_t)used;
}

static ssize_t resp_cut(const uint8_t *s, size_t len)
{
    return resp_value(s, len, 0);
}

/* The bulk string at *off of a complete value; moves *off past it. NULL: none there. */
static const uint8_t *resp_bulk(const uint8_t *s, size_t len, size_t *off, size_t *n)
{
    const uint8_t *e;
    uint64_t v;

    if (*off >= len || s[*off] != '$')
        return NULL;
    e = memmem(s + *off, len - *off, "\r\n", 2);
    if (!e || !loadgen_parse_digits(s + *off + 1, (size_t)(e - s) - *off - 1, 10, &v) ||
        (size_t)(e - s) + 2 + v + 2 > len)
        return NULL;
    *n = (size_t)v;
    *off = (size_t)(e - s) + 2 + v + 2;
    return e + 2;
}

static enum unit_kind resp_classify(const struct opts *o, const uint8_t *m, size_t len,
                                    const uint8_t **payload, size_t *plen)
{
    size_t off = 4, n;
    const uint8_t *kind;

    (void)o;
    if (m[0] == '-')
        return UNIT_ERROR;
    if (len < 4 || memcmp(m, "*3\r\n", 4) != 0)
        return UNIT_OTHER;
    kind = resp_bulk(m, len, &off, &n);
    if (kind && n == 9 && memcmp(kind, "subscribe", 9) == 0)
        return UNIT_ACK;
    if (!kind || n != 7 || memcmp(kind, "message", 7) != 0)
        return UNIT_OTHER;
    if (!resp_bulk(m, len, &off, &n)) /* the channel */
        return UNIT_ERROR;
    *payload = resp_bulk(m, len, &off, plen);
    return *payload ? UNIT_EVENT : UNIT_ERROR;
}

const struct proto loadgen_resp = {
    .name = "resp",
    .websocket = false,
    .headers = "",
    .on_open = resp_on_open,
    .acks = true,
    .cut = resp_cut,
    .classify = resp_classify,
    .pub_event = loadgen_resp_pub_event,
    .pub_read = loadgen_resp_pub_read,
};
