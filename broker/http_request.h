#ifndef HERALD_BROKER_HTTP_REQUEST_H
#define HERALD_BROKER_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

/*
 * One HTTP/1.x request at a time, parsed incrementally from a connection's
 * bytes (libhttp-parser underneath), with the broker's limits and the
 * checks a proxy-fronted server needs: two Content-Length headers, or
 * Content-Length with Transfer-Encoding, are a 400 (request smuggling);
 * the head is limited (431, 414), and so is the body (413) - announced
 * sizes are refused before a byte of the body is read. A hook sees the
 * head before the body is read, so a request can be answered (401, 404,
 * 405) without waiting for, or buffering, a body. A chunked body's trailer
 * fields count against max_head and are otherwise ignored: none of them is
 * counted, kept or seen by the hook. Line ends and chunked framing are
 * checked more strictly than libhttp-parser does (a CR is followed by LF;
 * chunk sizes are hex digits; chunk data ends with CRLF): 400 otherwise.
 * Pure code: no sockets.
 */

#define HTTP_AUTH_MAX 512 /* longest Authorization value kept; longer ones never match */

struct http_request;

struct http_request_limits {
    size_t max_head; /* request line plus headers (and a chunked body's trailer fields) */
    size_t max_body; /* body bytes (decoded, when chunked) */
};

/*
 * Called once the head is complete. Returns 0 to go on with the body, or an
 * HTTP status (with *err, a static reason) to answer at once without
 * reading the body.
 */
typedef int http_request_head_fn(struct http_request *r, void *arg, const char **err);

enum http_request_header {
    HTTP_H_OTHER,
    HTTP_H_AUTHORIZATION,
    HTTP_H_CONTENT_LENGTH,
    HTTP_H_TRANSFER_ENCODING,
};

/* Where the framing check (http_request.c) is in a request's bytes. */
enum http_request_framing {
    HTTP_FR_LINES,     /* the head, or a chunked body's trailer: a CR is followed by LF */
    HTTP_FR_HEAD_END,  /* the head's last byte, its blank line's LF */
    HTTP_FR_BODY,      /* a Content-Length body (or none): not checked */
    HTTP_FR_SIZE,      /* a chunk's size: its first hex digit */
    HTTP_FR_SIZE_MORE, /* more digits, an extension, or CR */
    HTTP_FR_EXT,       /* a chunk extension, up to CR */
    HTTP_FR_SIZE_LF,   /* the size line's LF */
    HTTP_FR_DATA,      /* chunk_left data bytes */
    HTTP_FR_DATA_CR,   /* the CRLF after a chunk's data */
    HTTP_FR_DATA_LF,
};

struct http_request {
    http_parser parser;
    const struct http_request_limits *lim;
    http_request_head_fn *on_head;
    void *arg;
    /* The request so far. */
    char *url; /* owned, NUL-terminated */
    size_t url_len, url_cap;
    char auth[HTTP_AUTH_MAX + 1]; /* Authorization value, NUL-terminated ("" on overflow) */
    size_t auth_len;
    bool has_auth;
    bool auth_overflow;       /* the value was too long, or came twice: it matches nothing */
    unsigned content_lengths; /* Content-Length headers seen */
    bool transfer_encoding;
    char *body; /* owned; body_len bytes */
    size_t body_len, body_cap;
    size_t head_bytes;
    bool started;  /* a request line has begun */
    bool complete; /* a whole request is ready */
    int status;    /* != 0: refuse with this status and close */
    const char *err;
    /* The header being received. */
    char field[24];
    size_t field_len;
    enum http_request_header cur;
    bool in_value;
    bool in_trailer; /* the head is complete: fields now are trailer fields */
    /* The framing check. */
    enum http_request_framing framing;
    bool cr;             /* HTTP_FR_LINES: the last byte was a CR */
    bool chunked;        /* libhttp-parser reads the body as chunked */
    bool head_paused;    /* the parser is paused at the head's end */
    uint64_t chunk_left; /* the size being read, then its data bytes still to come */
};

/*
 * Initialises r for a connection's first request. lim is borrowed for r's
 * life; on_head (may be NULL) is called with arg.
 */
void http_request_init(struct http_request *r, const struct http_request_limits *lim,
                       http_request_head_fn *on_head, void *arg);

/* Frees what r owns. */
void http_request_free(struct http_request *r);

/*
 * Parses data[0..len) (borrowed). Returns the bytes consumed. Afterwards:
 * r->complete: a whole request is ready (bytes after it were not consumed;
 * call http_request_next before feeding them); r->status != 0: the request
 * is refused (the hook's status, a limit, or malformed input: 400, 413,
 * 414, 431) and the connection must answer and close; otherwise every byte
 * was consumed and more are needed. Feeding a complete or refused request
 * consumes nothing.
 */
size_t http_request_feed(struct http_request *r, const char *data, size_t len);

/* Makes r ready for the connection's next request (keep-alive). */
void http_request_next(struct http_request *r);

/* The method (enum http_method), valid from the head on. */
int http_request_method(const struct http_request *r);

/* True when the client asked to keep the connection open after this request. */
bool http_request_keep_alive(const struct http_request *r);

#endif
