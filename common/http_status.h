#ifndef HERALD_COMMON_HTTP_STATUS_H
#define HERALD_COMMON_HTTP_STATUS_H

/*
 * The reason phrase of an HTTP status line, for the codes the broker's
 * HTTP endpoint and the edge's port answer with.
 */

/* "OK", "Not Found", ... for status; "Error" for a code neither process sends. */
const char *http_status_text(int status);

#endif
