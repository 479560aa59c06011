/*
 * Tests for common/utf8.c: Markus Kuhn's UTF-8 decoder stress cases
 * (boundaries, overlongs, surrogates, impossible bytes), Autobahn 6.x style
 * text payloads, incremental feeding (one byte at a time and split at every
 * point must agree with the one-shot answer), and an exhaustive comparison
 * with a reference decoder written differently (decode the code point,
 * then check range, minimality and surrogates).
 */
#include "common/utf8.h"
#include "tests/support/check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len;
    bool valid;
};

#define CASE(name, lit, valid)                                                                     \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, valid                                                          \
    }

static const struct utf8_case cases[] = {
    /* Valid: Kuhn section 1-2 boundaries and Autobahn 6.2/6.5. */
    CASE("empty", "", true),
    CASE("ascii", "Hello-\x7F", true),
    CASE("nul", "\x00", true),
    CASE("kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", true),
    CASE("hello world mixed",
         "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!", true),
    CASE("U+0080", "\xC2\x80", true),
    CASE("U+07FF", "\xDF\xBF", true),
    CASE("U+0800", "\xE0\xA0\x80", true),
    CASE("U+D7FF", "\xED\x9F\xBF", true),
    CASE("U+E000", "\xEE\x80\x80", true),
    CASE("U+FFFD", "\xEF\xBF\xBD", true),
    CASE("U+FFFE noncharacter", "\xEF\xBF\xBE", true),
    CASE("U+FFFF", "\xEF\xBF\xBF", true),
    CASE("U+10000", "\xF0\x90\x80\x80", true),
    CASE("U+10FFFF", "\xF4\x8F\xBF\xBF", true),
    CASE("U+1F600 emoji", "\xF0\x9F\x98\x80", true),
    CASE("long ascii then 2-byte", "abcdefghijklmnopqrstuvwxyz0123\xC3\xA9", true),
    /* Invalid: Kuhn 3.1 unexpected continuation bytes. */
    CASE("lone 80", "\x80", false),
    CASE("lone BF", "\xBF", false),
    CASE("80 BF 80", "\x80\xBF\x80", false),
    /* Kuhn 3.2/3.3: lone leads and incomplete sequences. */
    CASE("C0 space", "\xC0 ", false),
    CASE("truncated 2-byte", "\xC2", false),
    CASE("truncated 3-byte", "\xE0\xA0", false),
    CASE("truncated 4-byte", "\xF0\x90\x80", false),
    CASE("truncated then ascii", "\xC2\x41", false),
    CASE("truncated 3 then ascii", "\xE1\x80\x41", false),
    CASE("kosme then truncated", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x8F\xBF", false),
    /* Kuhn 3.5: impossible bytes. */
    CASE("FE", "\xFE", false),
    CASE("FF", "\xFF", false),
    CASE("FE FE FF FF", "\xFE\xFE\xFF\xFF", false),
    /* Kuhn 4: overlongs. */
    CASE("overlong / 2", "\xC0\xAF", false),
    CASE("overlong / 3", "\xE0\x80\xAF", false),
    CASE("overlong / 4", "\xF0\x80\x80\xAF", false),
    CASE("overlong / 5", "\xF8\x80\x80\x80\xAF", false),
    CASE("overlong max 2", "\xC1\xBF", false),
    CASE("overlong max 3", "\xE0\x9F\xBF", false),
    CASE("overlong max 4", "\xF0\x8F\xBF\xBF", false),
    CASE("overlong NUL 2", "\xC0\x80", false),
    CASE("overlong NUL 3", "\xE0\x80\x80", false),
    /* Kuhn 5: surrogates. */
    CASE("U+D800", "\xED\xA0\x80", false),
    CASE("U+DB7F", "\xED\xAD\xBF", false),
    CASE("U+DC00", "\xED\xB0\x80", false),
    CASE("U+DFFF", "\xED\xBF\xBF", false),
    CASE("surrogate pair", "\xED\xA0\x80\xED\xB0\x80", false),
    /* Above U+10FFFF, 5- and 6-byte forms. */
    CASE("U+110000", "\xF4\x90\x80\x80", false),
    CASE("F5 lead", "\xF5\x80\x80\x80", false),
    CASE("F7 BF BF BF", "\xF7\xBF\xBF\xBF", false),
    CASE("5-byte", "\xF8\x88\x80\x80\x80", false),
    CASE("6-byte", "\xFC\x84\x80\x80\x80\x80", false),
    /* Autobahn 6.3: valid prefix, then a surrogate, then valid text. */
    CASE("autobahn 6.3.1",
         "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64", false),
    CASE("valid after long ascii then bad", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xC0\xAF", false),
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

START_TEST(test_one_shot)
{
    const struct utf8_case *c = &cases[_i];
    ck_assert_msg(utf8_valid((const uint8_t *)c->bytes, c->len) == c->valid, "case %s", c->name);
}

END_TEST

START_TEST(test_byte_at_a_time)
{
    const struct utf8_case *c = &cases[_i];
    uint32_t st = UTF8_ACCEPT;
    bool ok = true;
    for (size_t i = 0; i < c->len && ok; i++) {
        ok = utf8_feed(&st, (const uint8_t *)c->bytes + i, 1);
    }
    ck_assert_msg((ok && utf8_complete(st)) == c->valid, "case %s", c->name);
    if (!ok) {
        ck_assert_uint_eq(st, UTF8_REJECT);
    }
}

END_TEST

START_TEST(test_every_split)
{
    const struct utf8_case *c = &cases[_i];
    const uint8_t *b = (const uint8_t *)c->bytes;
    for (size_t s = 0; s <= c->len; s++) {
        uint32_t st = UTF8_ACCEPT;
        bool ok = utf8_feed(&st, b, s);
        if (ok) {
            ok = utf8_feed(&st, b + s, c->len - s);
        }
        ck_assert_msg((ok && utf8_complete(st)) == c->valid, "case %s split %zu", c->name, s);
    }
}

END_TEST

START_TEST(test_reject_is_sticky)
{
    uint32_t st = UTF8_ACCEPT;
    ck_assert(!utf8_feed(&st, (const uint8_t *)"\xFF", 1));
    ck_assert_uint_eq(st, UTF8_REJECT);
    ck_assert(!utf8_feed(&st, (const uint8_t *)"abc", 3));
    ck_assert(!utf8_feed(&st, NULL, 0));
    ck_assert(!utf8_complete(st));
}

END_TEST

START_TEST(test_incomplete_state)
{
    uint32_t st = UTF8_ACCEPT;
    ck_assert(utf8_complete(st));
    ck_assert(utf8_feed(&st, (const uint8_t *)"\xF0\x9F", 2));
    ck_assert(!utf8_complete(st));
    ck_assert(utf8_feed(&st, (const uint8_t *)"\x98", 1));
    ck_assert(!utf8_complete(st));
    ck_assert(utf8_feed(&st, (const uint8_t *)"\x80", 1));
    ck_assert(utf8_complete(st));
}

END_TEST

/* Reference: decode each sequence to a code point, then judge it. */
static bool ref_valid(const uint8_t *s, size_t len)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        size_t n = b < 0x80             ? 1
                   : (b & 0xE0) == 0xC0 ? 2
                   : (b & 0xF0) == 0xE0 ? 3
                   : (b & 0xF8) == 0xF0 ? 4
                                        : 0;
        if (n == 0 || i + n > len) {
            return false;
        }
        uint32_t cp = n == 1 ? b : (uint32_t)(b & (0x7F >> n));
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n;
    }
    return true;
}

START_TEST(test_exhaustive_two_bytes)
{
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            uint8_t s[2] = {(uint8_t)a, (uint8_t)b};
            ck_assert_msg(utf8_valid(s, 1) == ref_valid(s, 1), "%02x", a);
            ck_assert_msg(utf8_valid(s, 2) == ref_valid(s, 2), "%02x %02x", a, b);
        }
    }
}

END_TEST

START_TEST(test_exhaustive_three_four_bytes)
{
    static const uint8_t tails[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (unsigned a = 0xC0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b++) {
            for (size_t t = 0; t < sizeof(tails); t++) {
                uint8_t s[4] = {(uint8_t)a, (uint8_t)b, tails[t], 0x80};
                ck_assert_msg(utf8_valid(s, 3) == ref_valid(s, 3), "%02x %02x %02x", a, b,
                              tails[t]);
                ck_assert_msg(utf8_valid(s, 4) == ref_valid(s, 4), "%02x %02x %02x 80", a, b,
                              tails[t]);
            }
        }
    }
}

END_TEST

/* Random mixes of valid and invalid sequences agree with the reference. */
START_TEST(test_random_against_reference)
{
    static const char *const atoms[] = {
        "a",        "\xC3\xA9",         "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xED\xA0\x80",
        "\xC0\x80", "\xF4\x90\x80\x80", "\x80",         "\xE2\x82",         "0123456789abcdef"};
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        uint8_t buf[256];
        size_t len = 0;
        int n = rand_r(&seed) % 12;
        for (int k = 0; k < n; k++) {
            const char *a = atoms[rand_r(&seed) % (sizeof(atoms) / sizeof(atoms[0]))];
            memcpy(buf + len, a, strlen(a));
            len += strlen(a);
        }
        bool want = ref_valid(buf, len);
        ck_assert_int_eq(utf8_valid(buf, len), want);
        size_t split = len ? (size_t)rand_r(&seed) % len : 0;
        uint32_t st = UTF8_ACCEPT;
        bool ok = utf8_feed(&st, buf, split) && utf8_feed(&st, buf + split, len - split);
        ck_assert_int_eq(ok && utf8_complete(st), want);
    }
}

END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("table");
    tcase_add_loop_test(tc, test_one_shot, 0, NCASES);
    tcase_add_loop_test(tc, test_byte_at_a_time, 0, NCASES);
    tcase_add_loop_test(tc, test_every_split, 0, NCASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("state");
    tcase_add_test(tc, test_reject_is_sticky);
    tcase_add_test(tc, test_incomplete_state);
    suite_add_tcase(s, tc);
    tc = tcase_create("reference");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exhaustive_two_bytes);
    tcase_add_test(tc, test_exhaustive_three_four_bytes);
    tcase_add_test(tc, test_random_against_reference);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(utf8_suite());
}
