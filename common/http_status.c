/*
 * http_status.c - reason phrases (RFC 9110 section 15) of the statuses
 * Herald sends: the broker's HTTP API (publish, /healthz, /metrics) and
 * the edge's port (upgrade refusals, /healthz, /metrics). One table, so
 * both processes write the same status line for the same code.
 */
#include "common/http_status.h"

const char *http_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}
