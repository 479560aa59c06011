/*
 * loadgen_nchan.c - herald-loadgen's adapter for nginx + nchan (bench/peers.sh):
 * WebSocket /sub/<chan>, each frame the body of one POST /pub/<chan>;
 * the publisher pipelines the POSTs over HTTP/1.1 and reads nchan's
 * 201/202 answers.
 */
#include "tools/loadgen.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

/* nchan channel ids are \w+ (nginx-nchan.conf): any other character becomes '_'. */
static void nchan_channel(const char *topic, char *out, size_t len)
{
    size_t n = 0;

    for (; *topic && n + 1 < len; topic++) {
        unsigned char ch = (unsigned char)*topic;
        out[n++] = isalnum(ch) || ch == '_' ? (char)ch : '_';
    }
    out[n] = '\0';
}

static int nchan_target(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    char topic[512], chan[512];
    size_t plen = strlen(o->path);
    int n;

    if (loadgen_topic(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return -1;
    nchan_channel(topic, chan, sizeof(chan));
    n = snprintf(buf, len, "%s%s%s", o->path, plen && o->path[plen - 1] == '/' ? "" : "/", chan);
    return n < (int)len ? n : -1;
}

static enum unit_kind nchan_classify(const struct opts *o, const uint8_t *msg, size_t len,
                                     const uint8_t **payload, size_t *plen)
{
    (void)o;
    *payload = msg; /* text or binary by the POST's Content-Type: the body as is */
    *plen = len;
    return UNIT_EVENT;
}

/* No Content-Type: nchan then sends a text frame (the payload is ASCII). */
static void nchan_pub_event(const char *topic, const char *body, struct evbuffer *out)
{
    char chan[512];

    nchan_channel(topic, chan, sizeof(chan));
    evbuffer_add_printf(out,
                        "POST /pub/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n",
                        chan, PAYLOAD_LEN);
    evbuffer_add(out, body, PAYLOAD_LEN);
}

/* One HTTP response in s (NUL-terminated copy); returns its length, 0 if incomplete, -1. */
static long http_response(const char *s, size_t len, struct pub_tally *t)
{
    const char *end = strstr(s, "\r\n\r\n"), *v;
    unsigned long clen = 0;
    size_t head;

    if (!end)
        return len >= 2048 ? -1 : 0;
    head = (size_t)(end - s) + 4;
    v = strcasestr(s, "\r\nContent-Length:");
    if (v && v < end)
        clen = strtoul(v + strlen("\r\nContent-Length:"), NULL, 10);
    if (head + clen > 2048)
        return -1;
    if (head + clen > len)
        return 0;
    t->replies++;
    /* 201: at least one subscriber; 202: none (stored for nchan_message_timeout) */
    if (strncmp(s, "HTTP/1.1 201", 12) != 0 && strncmp(s, "HTTP/1.1 202", 12) != 0)
        t->errors++;
    v = strstr(end, "active subscribers: ");
    if (v && v < s + head + clen)
        t->receivers += strtoull(v + strlen("active subscribers: "), NULL, 10);
    return (long)(head + clen);
}

static int nchan_pub_read(struct evbuffer *in, struct pub_tally *t)
{
    char buf[2049];
    long n;

    for (;;) {
        ev_ssize_t got = evbuffer_copyout(in, buf, sizeof(buf) - 1);
        if (got <= 0)
            return 0;
        buf[got] = '\0';
        n = http_response(buf, (size_t)got, t);
        if (n <= 0)
            return (int)n;
        evbuffer_drain(in, (size_t)n);
    }
}

const struct proto loadgen_nchan = {
    .name = "nchan",
    .websocket = true,
    .target = nchan_target,
    .headers = "",
    .classify = nchan_classify,
    .pub_event = nchan_pub_event,
    .pub_read = nchan_pub_read,
};
