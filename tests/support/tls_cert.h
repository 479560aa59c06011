#ifndef HERALD_TESTS_SUPPORT_TLS_CERT_H
#define HERALD_TESTS_SUPPORT_TLS_CERT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/*
 * Self-signed test certificates made with the OpenSSL API (no files
 * shipped, no `openssl` command): an EC P-256 key and a certificate for
 * "localhost" and 127.0.0.1 valid for a day, written as PEM files into a
 * temporary directory the suite removes. Each call makes a new key and a
 * new serial, so a reload can be told from the old certificate.
 */

struct test_cert {
    char dir[64];
    char cert[96]; /* dir/cert.pem */
    char key[96];  /* dir/key.pem */
    long serial;
};

static inline bool test_cert_write(X509 *x, EVP_PKEY *k, const char *cert, const char *key)
{
    FILE *f = fopen(cert, "w");
    bool ok = f && PEM_write_X509(f, x) == 1;

    if (f)
        fclose(f);
    f = fopen(key, "w");
    ok = ok && f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    if (f)
        fclose(f);
    return ok;
}

static inline bool test_cert_add_san(X509 *x)
{
    X509V3_CTX v3;
    X509_EXTENSION *e;
    bool ok;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    ok = e && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok;
}

/*
 * (Re)writes t->cert and t->key with a new key and a certificate whose
 * serial is serial (and subject CN=localhost). Returns true on success.
 */
static inline bool test_cert_make(struct test_cert *t, long serial)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    bool ok = k && x;

    if (ok) {
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
        X509_set_version(x, 2);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        X509_set_pubkey(x, k);
        name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        ok = test_cert_add_san(x) && X509_sign(x, k, EVP_sha256()) > 0 &&
             test_cert_write(x, k, t->cert, t->key);
    }
    t->serial = serial;
    X509_free(x);
    EVP_PKEY_free(k);
    return ok;
}

/* A fresh directory with cert.pem and key.pem (serial 1). Returns true on success. */
static inline bool test_cert_init(struct test_cert *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/herald-tls-XXXXXX");
    if (!mkdtemp(t->dir))
        return false;
    snprintf(t->cert, sizeof(t->cert), "%s/cert.pem", t->dir);
    snprintf(t->key, sizeof(t->key), "%s/key.pem", t->dir);
    return test_cert_make(t, 1);
}

/* Writes text into path (a broken file for the error cases). */
static inline bool test_file_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(text, f) >= 0;

    if (f)
        fclose(f);
    return ok;
}

/* The serial of the certificate a TLS peer presented (-1 when none). */
static inline long test_cert_serial_of(X509 *x)
{
    return x ? ASN1_INTEGER_get(X509_get0_serialNumber(x)) : -1;
}

/* Removes the files and the directory. */
static inline void test_cert_remove(struct test_cert *t)
{
    char other[128];

    unlink(t->cert);
    unlink(t->key);
    snprintf(other, sizeof(other), "%s/other.pem", t->dir);
    unlink(other);
    rmdir(t->dir);
}

#endif
