/*
 * topic_cover.c - is every topic a pattern can match allowed by a token?
 * (common/topic_cover.h, docs/protocol.md §3.10)
 *
 * The question is language inclusion, L(P) within the union of L(A1..An),
 * for patterns that are a line of tokens with an optional trailing '>'.
 * Every pattern reads a topic one token per step, in lockstep, so after k
 * tokens each allowed pattern is simply alive or not: the state of the
 * whole search is (k, the set of allowed patterns still alive), a bit mask
 * of at most TOPIC_COVER_MAX_ALLOWED bits. From a state, P's next token
 * offers one class of topic tokens per distinct literal the alive patterns
 * name at position k, plus one class for every token none of them names
 * (which only a '*' or a '>' accepts); a literal in P offers just its own
 * class. P is covered when, along every path, whenever P can end an alive
 * pattern ends too, and no path leaves P with nothing alive (P can always
 * still end, so an empty set is a topic of P nobody allows). Past the
 * longest pattern every step is the same (only '>' patterns are alive,
 * and they accept), so the search stops there: the answer is exact for
 * topics of any length, with no depth cut-off.
 *
 * Literal tokens are named once, up front, by small numbers per position
 * (sym[i][k]: the index of the first pattern with the same token at k), so
 * the search compares bytes, not strings. Every state explored counts
 * against TOPIC_COVER_BUDGET and a state found covered is remembered in a
 * small open-addressed table (a state found uncovered ends the search);
 * a union of many overlapping patterns can still reach 2^k states, so past
 * the budget the answer is "not covered". Everything lives in one struct
 * on the stack (about 28 KiB); the recursion is at most
 * TOPIC_MAX_TOKENS + 1 deep.
 *
 * Rejected: testing P against each allowed pattern alone (misses unions:
 * {a.*, a.*.>} covers a.> though neither does alone), and enumerating
 * topics over the alphabet to a depth (exponential, and a depth cut-off is
 * wrong for '>'); the unit tests and the fuzz target do that, as the
 * reference this code is checked against.
 */
#include "common/topic_cover.h"

#include <stdint.h>
#include <string.h>

#include "common/topic.h"

#define SYM_WILD   0xfe /* '*' here, or past the end of a '>' pattern */
#define SYM_OTHER  0xfd /* P's literal, named by no allowed pattern here */
#define SYM_DEAD   0xff /* past the end of a pattern without '>' */
#define MEMO_SLOTS 1024 /* a power of two */
#define MEMO_PROBE 8

struct pat {
    const char *s;
    size_t n;
    size_t len; /* tokens before a trailing '>' */
    bool gt;    /* ends with '>' */
};

struct cover {
    struct pat p;
    struct pat a[TOPIC_COVER_MAX_ALLOWED];
    size_t n;
    size_t depth; /* positions 0..depth-1 carry symbols; beyond, every step is the same */
    size_t steps;
    uint8_t psym[TOPIC_MAX_TOKENS];
    uint8_t sym[TOPIC_COVER_MAX_ALLOWED][TOPIC_MAX_TOKENS];
    uint64_t memo_mask[MEMO_SLOTS];
    uint16_t memo_k[MEMO_SLOTS]; /* k + 1; 0: empty slot */
};

/* Counts s's tokens into *p. False when there are none or more than TOPIC_MAX_TOKENS. */
static bool parse(const char *s, size_t n, struct pat *p)
{
    size_t tokens = 1;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        tokens += s[i] == '.';
    if (tokens > TOPIC_MAX_TOKENS)
        return false;
    p->s = s;
    p->n = n;
    p->gt = s[n - 1] == '>' && (n == 1 || s[n - 2] == '.');
    p->len = tokens - p->gt;
    return true;
}

struct view {
    const char *s;
    size_t n;
};

/* The token at *cur in p; moves *cur past it and its dot. */
static struct view next_token(const struct pat *p, size_t *cur)
{
    const char *s = p->s + *cur;
    const char *dot = memchr(s, '.', p->n - *cur);
    size_t n = dot ? (size_t)(dot - s) : p->n - *cur;

    *cur += n + 1;
    return (struct view){s, n};
}

static bool is_star(struct view v)
{
    return v.n == 1 && v.s[0] == '*';
}

static bool same(struct view a, struct view b)
{
    return a.n == b.n && memcmp(a.s, b.s, a.n) == 0;
}

/* Names every token at positions below depth (sym, psym). */
static void name_tokens(struct cover *c)
{
    size_t cur[TOPIC_COVER_MAX_ALLOWED] = {0};
    struct view tv[TOPIC_COVER_MAX_ALLOWED];
    size_t pcur = 0;

    for (size_t k = 0; k < c->depth; k++) {
        for (size_t i = 0; i < c->n; i++) {
            if (k >= c->a[i].len)
                continue;
            tv[i] = next_token(&c->a[i], &cur[i]);
            c->sym[i][k] = is_star(tv[i]) ? SYM_WILD : (uint8_t)i;
            for (size_t j = 0; j < i && c->sym[i][k] == i; j++) {
                if (k < c->a[j].len && c->sym[j][k] == j && same(tv[i], tv[j]))
                    c->sym[i][k] = (uint8_t)j;
            }
        }
        if (k >= c->p.len)
            continue;
        struct view pv = next_token(&c->p, &pcur);
        c->psym[k] = is_star(pv) ? SYM_WILD : SYM_OTHER;
        for (size_t j = 0; j < c->n && c->psym[k] == SYM_OTHER; j++) {
            if (k < c->a[j].len && c->sym[j][k] == j && same(pv, tv[j]))
                c->psym[k] = (uint8_t)j;
        }
    }
}

/* What allowed pattern i accepts as its token k. */
static uint8_t a_sym(const struct cover *c, size_t i, size_t k)
{
    if (k < c->a[i].len)
        return c->sym[i][k];
    return c->a[i].gt ? SYM_WILD : SYM_DEAD;
}

/* True when a topic of exactly k tokens can end P here. */
static bool p_accepts(const struct cover *c, size_t k)
{
    return c->p.gt ? k > c->p.len : k == c->p.len;
}

/* True when some pattern in mask matches topics of exactly k tokens. */
static bool any_accepts(const struct cover *c, size_t k, uint64_t mask)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct pat *a = &c->a[i];

        if ((mask >> i & 1) && (a->gt ? k > a->len : k == a->len))
            return true;
    }
    return false;
}

static size_t memo_slot(size_t k, uint64_t mask)
{
    uint64_t h = (mask ^ ((uint64_t)k << 56)) * 0x9e3779b97f4a7c15ULL;

    return (size_t)(h >> 54) & (MEMO_SLOTS - 1);
}

static bool memo_has(const struct cover *c, size_t k, uint64_t mask)
{
    size_t s = memo_slot(k, mask);

    for (size_t i = 0; i < MEMO_PROBE; i++, s = (s + 1) & (MEMO_SLOTS - 1)) {
        if (c->memo_k[s] == 0)
            return false;
        if (c->memo_k[s] == k + 1 && c->memo_mask[s] == mask)
            return true;
    }
    return false;
}

/* Remembers a covered state; when its neighbourhood is full it is simply not remembered. */
static void memo_put(struct cover *c, size_t k, uint64_t mask)
{
    size_t s = memo_slot(k, mask);

    for (size_t i = 0; i < MEMO_PROBE; i++, s = (s + 1) & (MEMO_SLOTS - 1)) {
        if (c->memo_k[s] == 0) {
            c->memo_k[s] = (uint16_t)(k + 1);
            c->memo_mask[s] = mask;
            return;
        }
    }
}

static bool covered_from(struct cover *c, size_t k, uint64_t mask);

/* Steps P's '*' (or its '>' tail): every class of token the alive patterns tell apart. */
static bool step_any(struct cover *c, size_t k, uint64_t wild, uint64_t lits)
{
    /* The class no alive pattern names first: the smallest set, the likeliest to fail. */
    if (!covered_from(c, k + 1, wild))
        return false;
    while (lits != 0) {
        uint8_t s = c->sym[__builtin_ctzll(lits)][k];
        uint64_t same_sym = 0;

        for (uint64_t m = lits; m != 0; m &= m - 1) {
            size_t i = (size_t)__builtin_ctzll(m);
            if (c->sym[i][k] == s)
                same_sym |= 1ULL << i;
        }
        lits &= ~same_sym;
        if (!covered_from(c, k + 1, wild | same_sym))
            return false;
    }
    return true;
}

/* Is every topic of P that starts with the k tokens leading here matched by a pattern in mask? */
static bool covered_from(struct cover *c, size_t k, uint64_t mask)
{
    uint64_t wild = 0, lits = 0, match;
    uint8_t ps;
    bool ok;

    if (mask == 0 || ++c->steps > TOPIC_COVER_BUDGET)
        return false;
    if (p_accepts(c, k) && !any_accepts(c, k, mask))
        return false;
    if ((!c->p.gt && k == c->p.len) || k > c->depth)
        return true;
    if (memo_has(c, k, mask))
        return true;
    for (uint64_t m = mask; m != 0; m &= m - 1) {
        size_t i = (size_t)__builtin_ctzll(m);
        uint8_t s = a_sym(c, i, k);
        if (s == SYM_WILD)
            wild |= 1ULL << i;
        else if (s != SYM_DEAD)
            lits |= 1ULL << i;
    }
    ps = k < c->p.len ? c->psym[k] : SYM_WILD;
    if (ps == SYM_WILD) {
        ok = step_any(c, k, wild, lits);
    } else {
        match = 0;
        for (uint64_t m = lits; m != 0 && ps != SYM_OTHER; m &= m - 1) {
            size_t i = (size_t)__builtin_ctzll(m);
            if (c->sym[i][k] == ps)
                match |= 1ULL << i;
        }
        ok = covered_from(c, k + 1, wild | match);
    }
    if (ok)
        memo_put(c, k, mask);
    return ok;
}

bool topic_covered(const char *pattern, size_t plen, const char *const *allowed,
                   const size_t *allowed_lens, size_t n)
{
    struct cover c;

    if (n == 0 || n > TOPIC_COVER_MAX_ALLOWED || !parse(pattern, plen, &c.p))
        return false;
    c.n = n;
    c.depth = c.p.len;
    for (size_t i = 0; i < n; i++) {
        if (!parse(allowed[i], allowed_lens[i], &c.a[i]))
            return false;
        /* Without '>' P ends by its own length: longer patterns never matter. */
        if (c.p.gt && c.a[i].len > c.depth)
            c.depth = c.a[i].len;
    }
    c.steps = 0;
    memset(c.memo_k, 0, sizeof(c.memo_k));
    name_tokens(&c);
    return covered_from(&c, 0, n == 64 ? ~0ULL : (1ULL << n) - 1);
}
