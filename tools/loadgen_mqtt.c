/*
 * loadgen_mqtt.c - herald-loadgen's adapter for MQTT 3.1.1 (mosquitto,
 * bench/peers.sh): subscribers speak it over WebSocket (subprotocol mqtt):
 * CONNECT and SUBSCRIBE QoS 0 in one frame, then PUBLISH packets cut from
 * the joined frame payloads (a packet may straddle frames); the publisher
 * speaks it over plain TCP, QoS 0, and ends with PINGREQ, whose PINGRESP
 * follows every PUBLISH.
 */
#include "tools/loadgen.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "common/ws/ws_frame.h"

/* The --url path as is (mosquitto ignores it). */
static int path_target(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    (void)idx;
    return snprintf(buf, len, "%s", o->path) < (int)len ? (int)strlen(buf) : -1;
}

static size_t mqtt_varint(size_t v, uint8_t *out)
{
    size_t n = 0;

    do {
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        out[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

/* CONNECT: clean session, keepalive 0 (off: no PINGREQ needed while idle). */
static size_t mqtt_connect(const char *id, uint8_t *out)
{
    size_t idlen = strlen(id), n = 0;

    out[n++] = 0x10;
    n += mqtt_varint(12 + idlen, out + n);
    memcpy(out + n, "\0\4MQTT\4\2\0\0", 10); /* name, level 4, flags, keepalive */
    n += 10;
    out[n++] = (uint8_t)(idlen >> 8);
    out[n++] = (uint8_t)idlen;
    memcpy(out + n, id, idlen);
    return n + idlen;
}

/* SUBSCRIBE packet id 1, one filter, QoS 0. */
static size_t mqtt_subscribe(const char *topic, uint8_t *out)
{
    size_t tl = strlen(topic), n = 0;

    out[n++] = 0x82;
    n += mqtt_varint(2 + 2 + tl + 1, out + n);
    out[n++] = 0;
    out[n++] = 1;
    out[n++] = (uint8_t)(tl >> 8);
    out[n++] = (uint8_t)tl;
    memcpy(out + n, topic, tl);
    n += tl;
    out[n++] = 0;
    return n;
}

/* CONNECT and SUBSCRIBE in one binary frame; client ids unique per process and connection. */
static size_t mqtt_on_open(const struct opts *o, uint64_t idx, uint8_t *buf, size_t len)
{
    char id[64], topic[256];
    uint8_t pkt[600];
    size_t n;

    snprintf(id, sizeof(id), "lg%d-%" PRIu64, (int)getpid(), idx);
    if (loadgen_topic(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return 0;
    n = mqtt_connect(id, pkt);
    n += mqtt_subscribe(topic, pkt + n);
    return loadgen_ws_frame(WS_OP_BINARY, pkt, n, buf, len);
}

/*
 * The whole length of the packet starting at s (type byte, remaining length
 * in 1-4 bytes of 7 bits, least significant first, then that many bytes):
 * 0 when the length bytes are incomplete, -1 when invalid.
 */
static ssize_t mqtt_packet_len(const uint8_t *s, size_t len)
{
    size_t rem = 0, i;

    for (i = 1;; i++) {
        if (i == 5)
            return -1;
        if (i >= len)
            return 0;
        rem |= (size_t)(s[i] & 0x7f) << (7 * (i - 1));
        if (!(s[i] & 0x80))
            break;
    }
    return rem > MAX_FRAME ? -1 : (ssize_t)(i + 1 + rem);
}

static ssize_t mqtt_cut(const uint8_t *s, size_t len)
{
    ssize_t n = mqtt_packet_len(s, len);

    return n > 0 && (size_t)n > len ? 0 : n;
}

static enum unit_kind mqtt_classify(const struct opts *o, const uint8_t *m, size_t len,
                                    const uint8_t **payload, size_t *plen)
{
    size_t h = 1, off;

    (void)o;
    while (m[h] & 0x80) /* mqtt_cut() checked the varint */
        h++;
    h++;
    switch (m[0] >> 4) {
    case 3: /* PUBLISH: topic, a packet id only at QoS > 0, then the payload */
        if (len < h + 2)
            return UNIT_ERROR;
        off = h + 2 + ((size_t)m[h] << 8 | m[h + 1]) + ((m[0] >> 1) & 3 ? 2 : 0);
        if (off > len)
            return UNIT_ERROR;
        *payload = m + off;
        *plen = len - off;
        return UNIT_EVENT;
    case 2: /* CONNACK: return code 0 is accepted */
        return len >= h + 2 && m[h + 1] == 0 ? UNIT_OTHER : UNIT_ERROR;
    case 9: /* SUBACK: 0x80 is a refused filter */
        return len >= h + 3 && m[h + 2] != 0x80 ? UNIT_ACK : UNIT_ERROR;
    default:
        return UNIT_OTHER;
    }
}

static void mqtt_pub_hello(const struct opts *o, unsigned conn, struct evbuffer *out)
{
    char id[64];
    uint8_t pkt[128];

    snprintf(id, sizeof(id), "lgpub%d-%u-%08" PRIx32, (int)getpid(), conn, o->seed);
    evbuffer_add(out, pkt, mqtt_connect(id, pkt));
}

/* QoS 0: no reply; the run ends at the PINGRESP to pub_bye's PINGREQ, which comes in order. */
static void mqtt_pub_event(const char *topic, const char *body, struct evbuffer *out)
{
    uint8_t pkt[600];
    size_t tl = strlen(topic), n = 0;

    if (tl > 500)
        return;
    pkt[n++] = 0x30;
    n += mqtt_varint(2 + tl + PAYLOAD_LEN, pkt + n);
    pkt[n++] = (uint8_t)(tl >> 8);
    pkt[n++] = (uint8_t)tl;
    memcpy(pkt + n, topic, tl);
    n += tl;
    memcpy(pkt + n, body, PAYLOAD_LEN);
    evbuffer_add(out, pkt, n + PAYLOAD_LEN);
}

static void mqtt_pub_bye(struct evbuffer *out)
{
    evbuffer_add(out, "\xc0\x00", 2);
}

static int mqtt_pub_read(struct evbuffer *in, struct pub_tally *t)
{
    uint8_t head[5];

    for (;;) {
        ev_ssize_t got = evbuffer_copyout(in, head, sizeof(head));
        ssize_t n = got > 0 ? mqtt_packet_len(head, (size_t)got) : 0;

        if (n <= 0 || evbuffer_get_length(in) < (size_t)n)
            return n < 0 ? -1 : 0;
        if (head[0] == 0xd0)
            t->pongs++;
        else if (head[0] != 0x20 || n != 4 || head[3] != 0)
            t->errors++; /* a refused CONNACK, or nothing a QoS 0 publisher expects */
        evbuffer_drain(in, (size_t)n);
    }
}

const struct proto loadgen_mqtt = {
    .name = "mqtt",
    .websocket = true,
    .target = path_target,
    .headers = "Sec-WebSocket-Protocol: mqtt\r\n",
    .subprotocol = "mqtt",
    .on_open = mqtt_on_open,
    .acks = true,
    .cut = mqtt_cut,
    .classify = mqtt_classify,
    .pub_hello = mqtt_pub_hello,
    .pub_event = mqtt_pub_event,
    .pub_bye = mqtt_pub_bye,
    .pub_read = mqtt_pub_read,
};
