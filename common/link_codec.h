#ifndef HERALD_COMMON_LINK_CODEC_H
#define HERALD_COMMON_LINK_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

/*
 * The link protocol (broker <-> edge/CLI): a stream of msgpack arrays whose
 * first element is the frame type. Wire layout, one line per type:
 *
 *   HELLO   [1, version:uint, role:str, node:str, secret:str|nil]
 *   WELCOME [2, version:uint, node:str, epoch:uint, max_subscriptions:uint?,
 *            history_epoch:str?]
 *   SUB     [3, pattern:str]
 *   UNSUB   [4, pattern:str]
 *   PUB     [5, topic:str, payload:bin|str, req_id:uint|nil]
 *   PUBACK  [6, req_id:uint, receivers:uint, seq:uint]
 *   MSG     [7, topic:str, seq:uint, payload:bin|str]
 *   PING    [8, token:uint]
 *   PONG    [9, token:uint]
 *   ERR     [10, code:str, text:str, topic:str?]
 *   STATS   [11]                      (request; the broker answers STATSR)
 *   STATSR  [12, text:str]            ("name value\n" lines, like INFO)
 *   HISTORY [13, req_id:uint, topic:str, epoch:str|nil, after:uint|nil]
 *   HISTR   [14, req_id:uint, topic:str, epoch:str, head:uint, recovered:bool,
 *            count:uint]              (then count MSG frames of topic, seq ascending)
 *
 * A field marked ? is an optional trailing element, added after the frame
 * type's first release: a peer may end the frame before it, and a decoder
 * reads it as absent. WELCOME's max_subscriptions is the broker's per-link
 * pattern limit (so an edge never asks for more); ERR's topic names the
 * pattern or topic a refusal is about (a refused SUB refuses that pattern,
 * not the link). WELCOME's history_epoch is the broker's epoch string of
 * docs/protocol.md section 1.2 (the uint epoch stays for old peers).
 *
 * HISTORY asks for the retained events of one exact topic with seq > after
 * if epoch is the broker's (after nil: only the position). HISTR answers it
 * and is followed on the stream, with nothing in between, by exactly count
 * MSG frames of that topic (the broker's stored frames, seq ascending, each
 * seq <= head). This codec decodes them as ordinary MSGs; a receiver tells
 * them from live ones by position, and must bound count itself
 * (docs/protocol.md section 2).
 *
 * Element counts are otherwise exact; a wrong count, type or value, an unknown frame
 * type, a non-array top-level object, or a frame over the configured
 * maximum is malformed. Encoders never fail (msgpack_sbuffer grows through
 * mem.c semantics of msgpack); pure code, no sockets.
 */

#define LINK_VERSION 1

enum link_type {
    LINK_HELLO = 1,
    LINK_WELCOME = 2,
    LINK_SUB = 3,
    LINK_UNSUB = 4,
    LINK_PUB = 5,
    LINK_PUBACK = 6,
    LINK_MSG = 7,
    LINK_PING = 8,
    LINK_PONG = 9,
    LINK_ERR = 10,
    LINK_STATS = 11,
    LINK_STATSR = 12,
    LINK_HISTORY = 13,
    LINK_HISTR = 14,
};

/* A borrowed view into the decoder's memory. */
struct link_str {
    const char *ptr;
    size_t len;
};

/*
 * One decoded frame. Every link_str is a view borrowed until the next
 * link_decoder_next()/link_decoder_feed() call or link_decoder_free().
 * Fields not carried by the frame's type are zero.
 */
struct link_frame {
    enum link_type type;
    uint64_t version;       /* HELLO, WELCOME */
    struct link_str role;   /* HELLO */
    struct link_str node;   /* HELLO, WELCOME */
    struct link_str secret; /* HELLO; has_secret false when nil */
    bool has_secret;
    uint64_t epoch;             /* WELCOME */
    uint64_t max_subscriptions; /* WELCOME; has_max_subscriptions false when absent */
    bool has_max_subscriptions;
    struct link_str topic;   /* SUB/UNSUB: the pattern; PUB, MSG: the topic; ERR: optional */
    bool has_topic;          /* ERR: topic present */
    struct link_str payload; /* PUB, MSG */
    uint64_t req_id;         /* PUB (has_req_id false when nil), PUBACK */
    bool has_req_id;
    uint64_t receivers;   /* PUBACK */
    uint64_t seq;         /* PUBACK, MSG */
    uint64_t token;       /* PING, PONG */
    struct link_str code; /* ERR */
    struct link_str text; /* ERR, STATSR */
    /* WELCOME (optional), HISTORY (has_history_epoch false when nil), HISTR */
    struct link_str history_epoch;
    bool has_history_epoch;
    uint64_t after; /* HISTORY; has_after false when nil */
    bool has_after;
    uint64_t head;  /* HISTR: the topic's last seq, 0 if never published (or forgotten) */
    bool recovered; /* HISTR */
    uint64_t count; /* HISTR: MSG frames that follow */
};

/* A HISTORY request; NULL-free views, borrowed during the encode. */
struct link_history_req {
    uint64_t req_id;
    struct link_str topic;
    struct link_str epoch; /* encoded as nil when !has_epoch */
    bool has_epoch;
    uint64_t after; /* encoded as nil when !has_after */
    bool has_after;
};

/* A HISTR reply header; views borrowed during the encode. */
struct link_history_reply {
    uint64_t req_id;
    struct link_str topic;
    struct link_str epoch;
    uint64_t head;
    bool recovered;
    uint64_t count;
};

struct link_decoder;

/* Returns a new decoder that rejects any frame larger than max_frame bytes. */
struct link_decoder *link_decoder_new(size_t max_frame);

/* Frees d (NULL is fine). */
void link_decoder_free(struct link_decoder *d);

/*
 * Copies len bytes into the decoder. Returns 0, or -1 with *err when the
 * buffered, still incomplete frame would exceed max_frame (the connection
 * must then be closed; the decoder is unusable).
 */
int link_decoder_feed(struct link_decoder *d, const void *data, size_t len, const char **err);

/*
 * Decodes the next complete frame into *out. Returns 1 with a frame, 0 when
 * more bytes are needed, -1 with *err (static string) when the stream is
 * malformed (the decoder is then unusable: send ERR and close).
 */
int link_decoder_next(struct link_decoder *d, struct link_frame *out, const char **err);

/*
 * Sets the frame limit for the frame being received and those after it
 * (the broker raises it once a link has authenticated). Raising it is
 * always safe; lowering it below a frame already buffered fails that frame.
 */
void link_decoder_set_max(struct link_decoder *d, size_t max_frame);

/* Bytes buffered and not yet returned as frames. */
size_t link_decoder_pending(const struct link_decoder *d);

/* Encoders: each appends one frame to sb. */
void link_encode_hello(msgpack_sbuffer *sb, const char *role, const char *node, const char *secret);
void link_encode_welcome(msgpack_sbuffer *sb, const char *node, uint64_t epoch,
                         uint64_t max_subscriptions);
/* WELCOME with the trailing history_epoch string (a C string). */
void link_encode_welcome_epoch(msgpack_sbuffer *sb, const char *node, uint64_t epoch,
                               uint64_t max_subscriptions, const char *history_epoch);
void link_encode_sub(msgpack_sbuffer *sb, const char *pattern, size_t len);
void link_encode_unsub(msgpack_sbuffer *sb, const char *pattern, size_t len);
/* has_req_id false encodes nil. */
void link_encode_pub(msgpack_sbuffer *sb, const char *topic, size_t tlen, const void *payload,
                     size_t plen, bool has_req_id, uint64_t req_id);
void link_encode_puback(msgpack_sbuffer *sb, uint64_t req_id, uint64_t receivers, uint64_t seq);
void link_encode_msg(msgpack_sbuffer *sb, const char *topic, size_t tlen, uint64_t seq,
                     const void *payload, size_t plen);
void link_encode_ping(msgpack_sbuffer *sb, uint64_t token);
void link_encode_pong(msgpack_sbuffer *sb, uint64_t token);
void link_encode_err(msgpack_sbuffer *sb, const char *code, const char *text);
/* ERR about one pattern or topic (a refused SUB, a bad topic): the link stays. */
void link_encode_err_topic(msgpack_sbuffer *sb, const char *code, const char *text,
                           const char *topic, size_t tlen);
void link_encode_stats(msgpack_sbuffer *sb);
void link_encode_statsr(msgpack_sbuffer *sb, const char *text, size_t len);
void link_encode_history(msgpack_sbuffer *sb, const struct link_history_req *r);
/* The HISTR header only: the caller appends the r->count MSG frames. */
void link_encode_histr(msgpack_sbuffer *sb, const struct link_history_reply *r);

/* Name of a frame type for logs ("HELLO"), or "UNKNOWN". */
const char *link_type_name(int type);

#endif
