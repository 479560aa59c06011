/*
 * http_request.c - one HTTP/1.x request, parsed as its bytes arrive.
 *
 * libhttp-parser does the syntax (request line, header folding, chunked
 * bodies, Content-Length) and keeps its state in r->parser, so a request
 * may arrive in any number of pieces. This file keeps only what the broker
 * acts on: the URL, the Authorization value, how many Content-Length and
 * Transfer-Encoding headers came, and the body.
 *
 * Headers are tracked as the parser reports them: a field name may come in
 * pieces, and the first piece of its value marks the end of the name, when
 * the name is classified (case-insensitively). A name longer than
 * r->field is no header we act on.
 *
 * Smuggling: behind a proxy, a request whose length two parties read
 * differently lets one hide a second request in the first one's body.
 * libhttp-parser refuses some of these itself; the checks in
 * on_headers_complete refuse all of them here whatever its version does:
 * more than one Content-Length (equal or not), or Content-Length together
 * with Transfer-Encoding.
 *
 * Trailer fields (after a chunked body's last chunk) reach the same header
 * callbacks as the head's. They count against max_head but are otherwise
 * ignored: RFC 7230 4.1.2 forbids framing, routing and authentication
 * fields there, RFC 9112 7.1.2 a recipient to merge them into the head; by
 * then the head hook has judged the request and the body's length is
 * settled. Counting them as head fields let a chunked request end up with
 * Content-Length and Transfer-Encoding both counted (found by
 * fuzz_http_request), or a trailer's Authorization replace the one the
 * hook checked. Rejected: refusing them - the request's framing is already
 * decided, and a trailer cannot move where the next request starts.
 *
 * Framing: Debian's libhttp-parser is built without HTTP_PARSER_STRICT,
 * and then takes any byte after a chunk size's CR as its LF, any two bytes
 * after a chunk's data as its CRLF, and any byte after some of the head's
 * CRs (the blank line's, an empty value's) as LF; and it reads bytes
 * 0x80-0xff in a chunk size as the digit 0 (its hex table has 128
 * entries). A proxy that reads such a body strictly, or leniently in
 * another way, cuts the stream into other requests than we do (the fuzzer:
 * "\xff\xff /b1" was our last chunk). So every byte the parser consumes,
 * but a Content-Length body and chunk data, also goes through
 * frame_check, a small strict reader of the same bytes: in the head and
 * the trailer a CR is followed by LF (RFC 9112 2.2 lets a bare LF end a
 * line, never a bare CR); a chunk is 1*HEXDIG, an optional extension of
 * visible ASCII, CRLF, its data, CRLF (RFC 7230 4.1). It follows the
 * parser's choice of framing (r->chunked is its F_CHUNKED) and counts
 * chunk data itself, so the two must agree on where each chunk and the
 * request end, or the request is a 400. on_headers_complete pauses the
 * parser, so the head's bytes and the body's arrive in separate
 * http_parser_execute calls and the head hook runs once the head passed.
 * Rejected: HTTP_PARSER_STRICT (a build option of the system library, and
 * it leaves the hex table as it is), and llhttp (strict, but Debian 12
 * packages no C library of it).
 *
 * on_message_complete pauses the parser, so http_parser_execute stops
 * exactly at the end of a request and the connection answers it before
 * the next (pipelined) one is parsed; http_request_next unpauses.
 *
 * Rejected: evhttp (libevent): its request timeout restarts on every byte
 * (a client sending one byte a second holds a connection for ever), it
 * accepts two Content-Length headers, and it has no hook between a
 * request's head and its body, so a 1 MB body was read before a missing
 * password was noticed.
 */
#include "broker/http_request.h"

#include <string.h>
#include <strings.h>

#include "common/mem.h"

static struct http_request *req_of(http_parser *p)
{
    return p->data;
}

/* Refuses the request: a callback returns the -1 this gives back. */
static int refuse(struct http_request *r, int status, const char *err)
{
    if (r->status == 0) {
        r->status = status;
        r->err = err;
    }
    return -1;
}

/* Counts head bytes; past the limit the request is refused with 431. */
static int count_head(struct http_request *r, size_t len)
{
    r->head_bytes += len;
    if (r->head_bytes > r->lim->max_head)
        return refuse(r, 431, "request header fields too large");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    req_of(p)->started = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_request *r = req_of(p);

    if (r->url_len + len > r->lim->max_head)
        return refuse(r, 414, "URI too long");
    if (count_head(r, len) < 0)
        return -1;
    if (r->url_len + len + 1 > r->url_cap) {
        r->url_cap = (r->url_len + len + 1) * 2;
        r->url = mem_realloc(r->url, r->url_cap);
    }
    memcpy(r->url + r->url_len, at, len);
    r->url_len += len;
    r->url[r->url_len] = '\0';
    return 0;
}

static enum http_request_header classify(const struct http_request *r)
{
    static const struct {
        const char *name;
        enum http_request_header h;
    } known[] = {
        {"authorization", HTTP_H_AUTHORIZATION},
        {"content-length", HTTP_H_CONTENT_LENGTH},
        {"transfer-encoding", HTTP_H_TRANSFER_ENCODING},
    };

    if (r->field_len >= sizeof(r->field))
        return HTTP_H_OTHER;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i].name) == r->field_len &&
            strncasecmp(known[i].name, r->field, r->field_len) == 0)
            return known[i].h;
    }
    return HTTP_H_OTHER;
}

/*
 * The name is complete: classify it, and count the headers that are counted.
 * A trailer field is none of them (see the top of the file).
 */
static void end_field(struct http_request *r)
{
    r->cur = r->in_trailer ? HTTP_H_OTHER : classify(r);
    r->field_len = 0;
    if (r->cur == HTTP_H_CONTENT_LENGTH)
        r->content_lengths++;
    else if (r->cur == HTTP_H_TRANSFER_ENCODING)
        r->transfer_encoding = true;
    else if (r->cur == HTTP_H_AUTHORIZATION) {
        /* A second Authorization matches no secret: the value is dropped. */
        if (r->has_auth)
            r->auth_overflow = true;
        r->has_auth = true;
        r->auth_len = 0;
        r->auth[0] = '\0';
    }
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_request *r = req_of(p);

    if (count_head(r, len) < 0)
        return -1;
    /* After a value, a field callback starts the next header; otherwise it
     * continues this name (a name split across reads). A name that fills
     * r->field is longer than any header classify() knows. */
    r->in_value = false;
    for (size_t i = 0; i < len && r->field_len < sizeof(r->field); i++)
        r->field[r->field_len++] = at[i];
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_request *r = req_of(p);

    if (count_head(r, len) < 0)
        return -1;
    if (!r->in_value) {
        r->in_value = true;
        end_field(r);
    }
    if (r->cur != HTTP_H_AUTHORIZATION || r->auth_overflow)
        return 0;
    if (r->auth_len + len > HTTP_AUTH_MAX) {
        /* Kept empty, however the value was split across reads. */
        r->auth_overflow = true;
        r->auth_len = 0;
        r->auth[0] = '\0';
        return 0;
    }
    memcpy(r->auth + r->auth_len, at, len);
    r->auth_len += len;
    r->auth[r->auth_len] = '\0';
    return 0;
}

/*
 * The head is complete. The smuggling checks run here; the hook and the
 * body limit wait for http_request_feed (head_done), after frame_check has
 * seen the head's bytes, so the hook sees no head that is refused later
 * however the reads cut it.
 */
static int on_headers_complete(http_parser *p)
{
    struct http_request *r = req_of(p);

    /* Header callbacks after this one report trailer fields. */
    r->in_trailer = true;
    if (r->content_lengths > 1)
        return refuse(r, 400, "more than one Content-Length header");
    if (r->content_lengths && r->transfer_encoding)
        return refuse(r, 400, "Content-Length together with Transfer-Encoding");
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->head_paused = true;
    http_parser_pause(p, 1);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_request *r = req_of(p);

    if (len > r->lim->max_body - r->body_len)
        return refuse(r, 413, "payload too large");
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap * 2 : 4096;

        if (cap < r->body_len + len)
            cap = r->body_len + len;
        if (cap > r->lim->max_body)
            cap = r->lim->max_body;
        r->body = mem_realloc(r->body, cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_request *r = req_of(p);

    r->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- framing check -------------------------------------------------------- */

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A byte of a chunk size line: 1*HEXDIG, then an extension or CR. */
static bool size_byte(struct http_request *r, unsigned char c)
{
    int d = hex_digit(c);

    if (d >= 0) {
        /* libhttp-parser refuses sizes past 2^60 too (a 400 either way). */
        if (r->chunk_left > UINT64_MAX >> 4)
            return false;
        r->chunk_left = r->chunk_left << 4 | (uint64_t)d;
        r->framing = HTTP_FR_SIZE_MORE;
        return true;
    }
    if (r->framing == HTTP_FR_SIZE)
        return false;
    if (c == ';' || c == ' ')
        r->framing = HTTP_FR_EXT;
    else if (c == '\r')
        r->framing = HTTP_FR_SIZE_LF;
    else
        return false;
    return true;
}

/*
 * One byte outside a Content-Length body and chunk data. Returns NULL, or
 * why it is refused.
 */
static const char *frame_byte(struct http_request *r, unsigned char c)
{
    static const char *const bad_chunk = "invalid chunk framing";

    switch (r->framing) {
    case HTTP_FR_LINES:
        if (r->cr && c != '\n')
            return "CR without LF";
        r->cr = c == '\r';
        return NULL;
    case HTTP_FR_HEAD_END:
        r->framing = r->chunked ? HTTP_FR_SIZE : HTTP_FR_BODY;
        return c == '\n' ? NULL : "CR without LF";
    case HTTP_FR_SIZE:
    case HTTP_FR_SIZE_MORE:
        return size_byte(r, c) ? NULL : bad_chunk;
    case HTTP_FR_EXT:
        if (c == '\r')
            r->framing = HTTP_FR_SIZE_LF;
        return c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f) ? NULL : bad_chunk;
    case HTTP_FR_SIZE_LF:
        /* The last chunk (size 0) is followed by the trailer. */
        r->framing = r->chunk_left ? HTTP_FR_DATA : HTTP_FR_LINES;
        r->cr = false;
        return c == '\n' ? NULL : bad_chunk;
    case HTTP_FR_DATA_CR:
        r->framing = HTTP_FR_DATA_LF;
        return c == '\r' ? NULL : bad_chunk;
    case HTTP_FR_DATA_LF:
        r->framing = HTTP_FR_SIZE;
        return c == '\n' ? NULL : bad_chunk;
    default:
        return bad_chunk;
    }
}

/* Checks data[0..n), the bytes the parser just consumed; -1 when refused. */
static int frame_check(struct http_request *r, const unsigned char *data, size_t n)
{
    const char *err;
    size_t i = 0;

    while (i < n && r->framing != HTTP_FR_BODY) {
        if (r->framing == HTTP_FR_DATA) {
            size_t take = r->chunk_left < n - i ? (size_t)r->chunk_left : n - i;

            r->chunk_left -= take;
            i += take;
            if (r->chunk_left == 0)
                r->framing = HTTP_FR_DATA_CR;
            continue;
        }
        if ((err = frame_byte(r, data[i++])) != NULL)
            return refuse(r, 400, err);
    }
    return 0;
}

/* Forgets the current request, keeping allocations for the next one. */
static void reset(struct http_request *r)
{
    r->url_len = 0;
    if (r->url)
        r->url[0] = '\0';
    r->auth_len = 0;
    r->auth[0] = '\0';
    r->has_auth = false;
    r->auth_overflow = false;
    r->content_lengths = 0;
    r->transfer_encoding = false;
    r->body_len = 0;
    r->head_bytes = 0;
    r->started = false;
    r->complete = false;
    r->status = 0;
    r->err = NULL;
    r->field_len = 0;
    r->cur = HTTP_H_OTHER;
    r->in_value = false;
    r->in_trailer = false;
    r->framing = HTTP_FR_LINES;
    r->cr = false;
    r->chunked = false;
    r->head_paused = false;
    r->chunk_left = 0;
}

void http_request_init(struct http_request *r, const struct http_request_limits *lim,
                       http_request_head_fn *on_head, void *arg)
{
    memset(r, 0, sizeof(*r));
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->lim = lim;
    r->on_head = on_head;
    r->arg = arg;
    reset(r);
}

void http_request_free(struct http_request *r)
{
    mem_free(r->url);
    mem_free(r->body);
    r->url = r->body = NULL;
    r->url_cap = r->body_cap = 0;
}

/*
 * Runs the parser over data[0..len), and frame_check over what it consumed
 * but the first `checked` bytes, which frame_check has seen.
 */
static size_t execute(struct http_request *r, const char *data, size_t len, size_t checked)
{
    size_t n = http_parser_execute(&r->parser, &settings, data, len);

    if (!r->status && n > checked)
        frame_check(r, (const unsigned char *)data + checked, n - checked);
    return n;
}

/* After the head's bytes passed frame_check: the hook, the body limit. */
static void head_done(struct http_request *r)
{
    const char *err = "refused";
    int status;

    if (r->on_head && (status = r->on_head(r, r->arg, &err)) != 0) {
        refuse(r, status, err);
        return;
    }
    if (r->content_lengths && r->parser.content_length > r->lim->max_body) {
        refuse(r, 413, "payload too large");
        return;
    }
    if (r->content_lengths && r->parser.content_length > 0) {
        r->body_cap = (size_t)r->parser.content_length;
        r->body = mem_realloc(r->body, r->body_cap);
    }
}

size_t http_request_feed(struct http_request *r, const char *data, size_t len)
{
    enum http_errno e;
    size_t n;

    if (r->complete || r->status || len == 0)
        return 0;
    n = execute(r, data, len, 0);
    if (r->head_paused && !r->status) {
        /* The parser paused on the head's last byte, data[n]: checked
         * before the hook sees the head; the parser takes it next. */
        r->head_paused = false;
        r->framing = HTTP_FR_HEAD_END;
        if (frame_check(r, (const unsigned char *)data + n, 1) == 0)
            head_done(r);
        if (r->status)
            return n;
        http_parser_pause(&r->parser, 0);
        n += execute(r, data + n, len - n, 1);
    }
    if (r->status) {
        r->complete = false;
        return n;
    }
    if (r->complete) {
        /* The parser's end of the request must be frame_check's too. */
        if (r->framing != HTTP_FR_BODY && (r->framing != HTTP_FR_LINES || r->cr)) {
            r->complete = false;
            refuse(r, 400, "invalid chunk framing");
        }
        return n;
    }
    e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_HEADER_OVERFLOW)
        refuse(r, 431, "request header fields too large");
    else if (e != HPE_OK)
        refuse(r, 400, http_errno_description(e));
    return n;
}

void http_request_next(struct http_request *r)
{
    /* A large body's buffer is not kept for the next request. */
    if (r->body_cap > 64 * 1024) {
        mem_free(r->body);
        r->body = NULL;
        r->body_cap = 0;
    }
    reset(r);
    http_parser_pause(&r->parser, 0);
}

int http_request_method(const struct http_request *r)
{
    return (int)r->parser.method;
}

bool http_request_keep_alive(const struct http_request *r)
{
    return http_should_keep_alive(&r->parser) != 0;
}
