/*
 * addr_limit.c - per-address connection counts and handshake buckets.
 *
 * One table for the whole process: a client's connections land on any
 * worker (SO_REUSEPORT hashes them), so a per-worker count would let an
 * address hold `workers` times its limit. Workers touch it twice per
 * connection (accept, close) and one of them once a second (expire), each
 * time for well under a microsecond, so one mutex is enough.
 *
 * The table is open addressing over a power-of-two array of entries
 * (linear probing; deletion by backward shift, so no tombstones), keyed by
 * addr_limit_key(): 24 bytes an address. An entry lives while the address
 * has an open connection or a bucket still refilling; addr_limit_expire()
 * drops the others, so a burst of one-off addresses leaves nothing behind
 * a second later. max_entries bounds it whatever the peers do (an IPv6
 * attacker has many /64s): a new address past it is refused (503), and
 * addresses already known keep working.
 *
 * Each bucket holds milli-tokens: (now - last) * rate of them come back per
 * elapsed millisecond, up to rate * 1000 (a burst of `rate` handshakes);
 * a handshake takes 1000.
 *
 * Rejected: a table per worker (limits multiplied by the worker count);
 * a fixed-window counter (twice the rate across a window boundary).
 */
#include "edge/addr_limit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include "common/mem.h"

#define MIN_CAP   64u
#define MILLI     1000u
#define V4_PREFIX 0xff00000000000000ull

struct entry {
    uint64_t key;     /* ADDR_KEY_NONE: empty slot */
    uint32_t conns;   /* open connections */
    uint32_t milli;   /* bucket level, in thousandths of a handshake */
    uint64_t last_ms; /* when milli was last brought up to date */
};

struct addr_limit {
    pthread_mutex_t lock;
    uint32_t max_conns, rate, max_entries;
    uint32_t n, cap; /* entries held, slots */
    struct entry *slots;
};

/* ---------- keys ---------- */

static uint64_t be_bytes(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

uint64_t addr_limit_key(const struct sockaddr *sa, socklen_t len)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        return V4_PREFIX | be_bytes((const uint8_t *)&in->sin_addr, 4);
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

        if (memcmp(b, mapped, sizeof(mapped)) == 0)
            return V4_PREFIX | be_bytes(b + 12, 4);
        return be_bytes(b, 8);
    }
    return ADDR_KEY_NONE;
}

/* ---------- the table ---------- */

static uint32_t slot_of(uint64_t key, uint32_t cap)
{
    key ^= key >> 33; /* murmur3's fmix64: the low bits of a /64 prefix are often zero */
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ull;
    key ^= key >> 33;
    return (uint32_t)key & (cap - 1);
}

static struct entry *new_slots(uint32_t cap)
{
    struct entry *s = mem_alloc(cap * sizeof(*s));

    for (uint32_t i = 0; i < cap; i++)
        s[i].key = ADDR_KEY_NONE;
    return s;
}

static struct entry *find(struct addr_limit *a, uint64_t key)
{
    for (uint32_t i = slot_of(key, a->cap);; i = (i + 1) & (a->cap - 1)) {
        if (a->slots[i].key == key)
            return &a->slots[i];
        if (a->slots[i].key == ADDR_KEY_NONE)
            return NULL;
    }
}

/* Places e in a table known to have room and not to hold its key. */
static struct entry *place(struct entry *slots, uint32_t cap, const struct entry *e)
{
    uint32_t i = slot_of(e->key, cap);

    while (slots[i].key != ADDR_KEY_NONE)
        i = (i + 1) & (cap - 1);
    slots[i] = *e;
    return &slots[i];
}

static void resize(struct addr_limit *a, uint32_t cap)
{
    struct entry *old = a->slots;

    a->slots = new_slots(cap);
    for (uint32_t i = 0; i < a->cap; i++) {
        if (old[i].key != ADDR_KEY_NONE)
            place(a->slots, cap, &old[i]);
    }
    a->cap = cap;
    mem_free(old);
}

/* Empties slot i; later entries of its probe run move back (no tombstones). */
static void delete_at(struct addr_limit *a, uint32_t i)
{
    uint32_t mask = a->cap - 1, j = i;

    for (;;) {
        uint32_t home;

        j = (j + 1) & mask;
        if (a->slots[j].key == ADDR_KEY_NONE)
            break;
        home = slot_of(a->slots[j].key, a->cap);
        /* j stays unless its home lies cyclically outside (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            a->slots[i] = a->slots[j];
            i = j;
        }
    }
    a->slots[i].key = ADDR_KEY_NONE;
    a->n--;
}

static void maybe_shrink(struct addr_limit *a)
{
    uint32_t cap = a->cap;

    while (cap > MIN_CAP && a->n < cap / 8)
        cap /= 2;
    if (cap != a->cap)
        resize(a, cap);
}

/* ---------- buckets ---------- */

static void refill(const struct addr_limit *a, struct entry *e, uint64_t now_ms)
{
    uint64_t full = (uint64_t)a->rate * MILLI, level;

    if (now_ms <= e->last_ms)
        return;
    level = e->milli + (now_ms - e->last_ms) * a->rate;
    e->milli = (uint32_t)(level < full ? level : full);
    e->last_ms = now_ms;
}

static bool idle(const struct addr_limit *a, const struct entry *e)
{
    return e->conns == 0 && (a->rate == 0 || e->milli >= a->rate * MILLI);
}

/* ---------- API ---------- */

struct addr_limit *addr_limit_new(uint32_t max_conns, uint32_t rate, uint32_t max_entries)
{
    struct addr_limit *a = mem_calloc(1, sizeof(*a));

    pthread_mutex_init(&a->lock, NULL);
    a->max_conns = max_conns;
    a->rate = rate;
    a->max_entries = max_entries;
    a->cap = MIN_CAP;
    a->slots = new_slots(a->cap);
    return a;
}

void addr_limit_free(struct addr_limit *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    mem_free(a->slots);
    mem_free(a);
}

/* The entry for key, made when there is room. Under the lock. */
static struct entry *get_or_add(struct addr_limit *a, uint64_t key, uint64_t now_ms)
{
    struct entry *e = find(a, key), fresh;

    if (e)
        return e;
    if (a->n >= a->max_entries)
        return NULL;
    if ((a->n + 1) * 4 > a->cap * 3)
        resize(a, a->cap * 2);
    fresh = (struct entry){key, 0, a->rate * MILLI, now_ms};
    a->n++;
    return place(a->slots, a->cap, &fresh);
}

static enum addr_verdict admit(struct addr_limit *a, uint64_t key, uint64_t now_ms)
{
    struct entry *e = get_or_add(a, key, now_ms);

    if (!e)
        return ADDR_TABLE_FULL;
    if (a->max_conns && e->conns >= a->max_conns)
        return ADDR_TOO_MANY;
    if (a->rate) {
        refill(a, e, now_ms);
        if (e->milli < MILLI)
            return ADDR_TOO_FAST;
        e->milli -= MILLI;
    }
    e->conns++;
    return ADDR_OK;
}

enum addr_verdict addr_limit_acquire(struct addr_limit *a, uint64_t key, uint64_t now_ms)
{
    enum addr_verdict v;

    if (key == ADDR_KEY_NONE)
        return ADDR_OK;
    pthread_mutex_lock(&a->lock);
    v = admit(a, key, now_ms);
    pthread_mutex_unlock(&a->lock);
    return v;
}

void addr_limit_release(struct addr_limit *a, uint64_t key, uint64_t now_ms)
{
    struct entry *e;

    if (key == ADDR_KEY_NONE)
        return;
    pthread_mutex_lock(&a->lock);
    e = find(a, key);
    if (e && e->conns > 0) {
        e->conns--;
        refill(a, e, now_ms);
        if (idle(a, e)) {
            delete_at(a, (uint32_t)(e - a->slots));
            maybe_shrink(a);
        }
    }
    pthread_mutex_unlock(&a->lock);
}

size_t addr_limit_expire(struct addr_limit *a, uint64_t now_ms)
{
    size_t dropped = 0;

    pthread_mutex_lock(&a->lock);
    for (uint32_t i = 0; i < a->cap;) {
        struct entry *e = &a->slots[i];

        if (e->key == ADDR_KEY_NONE || e->conns > 0) {
            i++;
            continue;
        }
        refill(a, e, now_ms);
        if (!idle(a, e)) {
            i++;
            continue;
        }
        delete_at(a, i); /* a later entry may move into i: look at it again */
        dropped++;
    }
    maybe_shrink(a);
    pthread_mutex_unlock(&a->lock);
    return dropped;
}

size_t addr_limit_entries(struct addr_limit *a)
{
    size_t n;

    pthread_mutex_lock(&a->lock);
    n = a->n;
    pthread_mutex_unlock(&a->lock);
    return n;
}

size_t addr_limit_bytes(struct addr_limit *a)
{
    size_t n;

    pthread_mutex_lock(&a->lock);
    n = sizeof(*a) + (size_t)a->cap * sizeof(struct entry);
    pthread_mutex_unlock(&a->lock);
    return n;
}
