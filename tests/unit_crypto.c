/*
 * unit_crypto: digests, encodings, Ed25519 and the key ring on disk.
 *
 * Known-answer tests pin SHA-256 (FIPS 180-2 "abc") and Ed25519 (RFC 8032 7.1 TEST 1, both
 * verification and, through a key ring holding that key, deterministic signing). The key
 * ring tests run in a fresh temporary directory each and check the file modes the header
 * promises, rotation, and the refusal of a key file others can read.
 */
#include "tst_check.h"
#include "brk_crypto.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_sign.h"
#include "banned.h"

/* RFC 8032 section 7.1, TEST 1 (empty message). */
static const char rfc8032_secret[] =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
static const char rfc8032_public[] =
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
static const char rfc8032_sig[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
    "b46bd25bf5f0595bbe24655141438e7a100b";

static void unhex_ok(const char *s, uint8_t *out, size_t n)
{
    ck_assert_int_eq(brk_unhex(s, strlen(s), out, n), 0);
}

/* A fresh private directory for one test; the key ring goes in "<tmp>/keys". */
static char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/unit_crypto.XXXXXX";
    char *d = mkdtemp(tmpl);

    ck_assert_ptr_nonnull(d);
    return strdup(d);
}

static void rm_rf(const char *dir)
{
    char path[4096];
    struct dirent *de;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path)
            continue;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            rm_rf(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void path_in(char *buf, size_t cap, const char *dir, const char *name)
{
    ck_assert_int_lt(snprintf(buf, cap, "%s/%s", dir, name), (int)cap);
}

START_TEST(test_sha256_abc)
{
    uint8_t d[BRK_SHA256_LEN];
    char hex[2 * BRK_SHA256_LEN + 1];

    brk_sha256("abc", 3, d);
    brk_hex(d, sizeof d, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    brk_sha256(NULL, 0, d);
    brk_hex(d, sizeof d, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

/* The streaming digest gives the one-shot answer however the input is cut, including not at
 * all (the empty input) and at every byte of a two-block message. */
START_TEST(test_sha256_stream)
{
    static const char msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    uint8_t d[BRK_SHA256_LEN], one[BRK_SHA256_LEN];
    char hex[2 * BRK_SHA256_LEN + 1];
    brk_sha256_ctx_t *c = brk_sha256_new();

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(brk_sha256_final(c, d), 0);
    brk_sha256_free(c);
    brk_hex(d, sizeof d, hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    brk_sha256(msg, strlen(msg), one);
    brk_hex(one, sizeof one, hex); /* FIPS 180-2 appendix B.2 */
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    for (size_t cut = 0; cut <= strlen(msg); cut++) {
        ck_assert_ptr_nonnull(c = brk_sha256_new());
        ck_assert_int_eq(brk_sha256_update(c, msg, cut), 0);
        ck_assert_int_eq(brk_sha256_update(c, msg + cut, strlen(msg) - cut), 0);
        ck_assert_int_eq(brk_sha256_final(c, d), 0);
        brk_sha256_free(c);
        ck_assert_msg(memcmp(d, one, sizeof d) == 0, "cut at %zu differs", cut);
    }
    brk_sha256_free(NULL);
}
END_TEST

START_TEST(test_hex)
{
    const uint8_t bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    uint8_t back[sizeof bytes];
    char hex[2 * sizeof bytes + 1];

    brk_hex(bytes, sizeof bytes, hex);
    ck_assert_str_eq(hex, "00017f80abff");
    ck_assert_int_eq(brk_unhex(hex, strlen(hex), back, sizeof back), 0);
    ck_assert_mem_eq(back, bytes, sizeof bytes);
    ck_assert_int_eq(brk_unhex("00017F80ABFF", 12, back, sizeof back), 0);
    ck_assert_mem_eq(back, bytes, sizeof bytes);
    ck_assert_int_eq(brk_unhex("00017f80abf", 11, back, sizeof back), BRK_EINVAL);
    ck_assert_int_eq(brk_unhex("00017f80abfff0", 14, back, sizeof back), BRK_EINVAL);
    ck_assert_int_eq(brk_unhex("00017f80abfg", 12, back, sizeof back), BRK_EINVAL);
    ck_assert_int_eq(brk_unhex(" 0017f80abff", 12, back, sizeof back), BRK_EINVAL);
    ck_assert_int_eq(brk_unhex("", 0, back, 0), 0);
    brk_hex(bytes, 0, hex);
    ck_assert_str_eq(hex, "");
}
END_TEST

/* brk_hex_digit, which brk_uri's percent-decoding shares: each range at and one past its ends. */
START_TEST(test_hex_digit)
{
    ck_assert_int_eq(brk_hex_digit('0'), 0);
    ck_assert_int_eq(brk_hex_digit('9'), 9);
    ck_assert_int_eq(brk_hex_digit('a'), 10);
    ck_assert_int_eq(brk_hex_digit('f'), 15);
    ck_assert_int_eq(brk_hex_digit('A'), 10);
    ck_assert_int_eq(brk_hex_digit('F'), 15);
    ck_assert_int_eq(brk_hex_digit('/'), -1);
    ck_assert_int_eq(brk_hex_digit(':'), -1);
    ck_assert_int_eq(brk_hex_digit('`'), -1);
    ck_assert_int_eq(brk_hex_digit('g'), -1);
    ck_assert_int_eq(brk_hex_digit('@'), -1);
    ck_assert_int_eq(brk_hex_digit('G'), -1);
    ck_assert_int_eq(brk_hex_digit('\0'), -1);
    ck_assert_int_eq(brk_hex_digit((char)0xe0), -1);
}
END_TEST

START_TEST(test_b64url_roundtrip)
{
    uint8_t in[256], out[256];
    char enc[400];
    size_t n;

    for (n = 0; n < sizeof in; n++)
        in[n] = (uint8_t)(n * 37 + 11);
    for (n = 0; n <= sizeof in; n++) {
        size_t len = brk_b64url_encode(in, n, enc);
        ck_assert_uint_eq(len, brk_b64url_len(n));
        ck_assert_uint_eq(strlen(enc), len);
        ck_assert_ptr_null(strchr(enc, '='));
        ck_assert_ptr_null(strchr(enc, '+'));
        ck_assert_ptr_null(strchr(enc, '/'));
        ck_assert_int_eq(brk_b64url_decode(enc, len, out, n), (int)n); /* exact capacity */
        ck_assert_mem_eq(out, in, n);
    }
    /* Known answers (RFC 4648 section 10, unpadded, URL alphabet). */
    ck_assert_uint_eq(brk_b64url_encode((const uint8_t *)"foobar", 6, enc), 8);
    ck_assert_str_eq(enc, "Zm9vYmFy");
    brk_b64url_encode((const uint8_t *)"fo", 2, enc);
    ck_assert_str_eq(enc, "Zm8");
    brk_b64url_encode((const uint8_t *)"f", 1, enc);
    ck_assert_str_eq(enc, "Zg");
    brk_b64url_encode((const uint8_t *)"\xfb\xff\xbf", 3, enc);
    ck_assert_str_eq(enc, "-_-_");
    ck_assert_uint_eq(brk_b64url_len(32), 43);
    ck_assert_uint_eq(brk_b64url_len(64), 86);
}
END_TEST

START_TEST(test_b64url_rejects)
{
    uint8_t out[64];

    ck_assert_int_eq(brk_b64url_decode("Zg==", 4, out, sizeof out), BRK_EINVAL); /* padding */
    ck_assert_int_eq(brk_b64url_decode("Zm8=", 4, out, sizeof out), BRK_EINVAL);
    ck_assert_int_eq(brk_b64url_decode("+_-_", 4, out, sizeof out), BRK_EINVAL); /* '+' */
    ck_assert_int_eq(brk_b64url_decode("-/-_", 4, out, sizeof out), BRK_EINVAL); /* '/' */
    ck_assert_int_eq(brk_b64url_decode("Zm9vY", 5, out, sizeof out), BRK_EINVAL); /* len%4==1 */
    ck_assert_int_eq(brk_b64url_decode("Z", 1, out, sizeof out), BRK_EINVAL);
    ck_assert_int_eq(brk_b64url_decode("Zm 9", 4, out, sizeof out), BRK_EINVAL);  /* space */
    ck_assert_int_eq(brk_b64url_decode("Zh", 2, out, sizeof out), BRK_EINVAL); /* stray bits */
    ck_assert_int_eq(brk_b64url_decode("Zm9", 3, out, sizeof out), BRK_EINVAL);
    /* over cap: 8 characters are 6 bytes */
    ck_assert_int_eq(brk_b64url_decode("Zm9vYmFy", 8, out, 5), BRK_EINVAL);
    ck_assert_int_eq(brk_b64url_decode("Zm9vYmFy", 8, out, 6), 6);
    ck_assert_int_eq(brk_b64url_decode("Zm8", 3, out, 1), BRK_EINVAL);
    ck_assert_int_eq(brk_b64url_decode("Zm8", 3, out, 2), 2);
    ck_assert_int_eq(brk_b64url_decode("", 0, out, 0), 0);
}
END_TEST

/* The lenient decoder takes both alphabets, padding and line breaks, and still refuses what
 * is not base64 at all. */
START_TEST(test_b64_lenient)
{
    uint8_t out[16];

    ck_assert_int_eq(brk_b64_decode_lenient("Zm9vYmFy", 8, out, sizeof out), 6);
    ck_assert_mem_eq(out, "foobar", 6);
    ck_assert_int_eq(brk_b64_decode_lenient("Zm8=", 4, out, sizeof out), 2); /* padded */
    ck_assert_mem_eq(out, "fo", 2);
    ck_assert_int_eq(brk_b64_decode_lenient("Zg==\r\n", 6, out, sizeof out), 1);
    ck_assert_mem_eq(out, "f", 1);
    ck_assert_int_eq(brk_b64_decode_lenient("+/+/", 4, out, sizeof out), 3); /* standard */
    ck_assert_mem_eq(out, "\xfb\xff\xbf", 3);
    ck_assert_int_eq(brk_b64_decode_lenient("-_+/", 4, out, sizeof out), 3); /* mixed */
    ck_assert_mem_eq(out, "\xfb\xff\xbf", 3);
    ck_assert_int_eq(brk_b64_decode_lenient(" Zm9v\n\tYmFy ", 12, out, sizeof out), 6);
    ck_assert_int_eq(brk_b64_decode_lenient("", 0, out, sizeof out), 0);
    ck_assert_int_eq(brk_b64_decode_lenient("Zm9v*mFy", 8, out, sizeof out), BRK_EINVAL);
    ck_assert_int_eq(brk_b64_decode_lenient("Z", 1, out, sizeof out), BRK_EINVAL);
    ck_assert_int_eq(brk_b64_decode_lenient("Zh==", 4, out, sizeof out), BRK_EINVAL);
    ck_assert_int_eq(brk_b64_decode_lenient("Zm9vYmFy", 8, out, 5), BRK_EINVAL); /* cap */
    ck_assert_int_eq(brk_b64_decode_lenient("{\"a\":1}", 7, out, sizeof out), BRK_EINVAL);
}
END_TEST

START_TEST(test_random_and_ct_equal)
{
    uint8_t a[32], b[32];

    ck_assert_int_eq(brk_random(a, sizeof a), 0);
    ck_assert_int_eq(brk_random(b, sizeof b), 0);
    ck_assert(!brk_ct_equal(a, b, sizeof a)); /* 2^-256 */
    memcpy(b, a, sizeof a);
    ck_assert(brk_ct_equal(a, b, sizeof a));
    b[31] ^= 1;
    ck_assert(!brk_ct_equal(a, b, sizeof a));
    ck_assert(brk_ct_equal(a, b, 0));
    ck_assert_int_eq(brk_random(a, 0), 0);
}
END_TEST

START_TEST(test_ed25519_rfc8032)
{
    uint8_t pub[BRK_ED25519_PUB_LEN], sig[BRK_ED25519_SIG_LEN];

    unhex_ok(rfc8032_public, pub, sizeof pub);
    unhex_ok(rfc8032_sig, sig, sizeof sig);
    ck_assert(brk_ed25519_verify(pub, "", 0, sig));
    ck_assert(brk_ed25519_verify(pub, NULL, 0, sig));
    ck_assert(!brk_ed25519_verify(pub, "x", 1, sig));
    sig[0] ^= 0x01;
    ck_assert(!brk_ed25519_verify(pub, "", 0, sig));
    sig[0] ^= 0x01;
    pub[5] ^= 0x80;
    ck_assert(!brk_ed25519_verify(pub, "", 0, sig));
}
END_TEST

START_TEST(test_key_id_of)
{
    uint8_t pub[BRK_ED25519_PUB_LEN], d[BRK_SHA256_LEN];
    char id[BRK_KEY_ID_LEN + 1], hex[2 * BRK_SHA256_LEN + 1];

    unhex_ok(rfc8032_public, pub, sizeof pub);
    brk_key_id_of(pub, id);
    brk_sha256(pub, sizeof pub, d);
    brk_hex(d, sizeof d, hex);
    ck_assert_uint_eq(strlen(id), BRK_KEY_ID_LEN);
    ck_assert_int_eq(strncmp(id, hex, BRK_KEY_ID_LEN), 0);
}
END_TEST

/* A document signed by brk_doc_sign verifies with brk_doc_verify under its key and no other;
 * each kind of damage is reported as its own error, and the document is never changed. */
START_TEST(test_doc_sign_verify)
{
    char *tmp = make_tmpdir(), dir[4096], cid[BRK_CID_LEN + 1];
    brk_keyring_t *kr = NULL;
    uint8_t other[BRK_ED25519_PUB_LEN];
    json_t *doc = json_pack("{s:i,s:s,s:{s:s}}", "a", 1, "status", "authorized", "operation",
                            "command_hash", "sha256:00");
    json_t *d2;
    char *before, *after;

    path_in(dir, sizeof dir, tmp, "keys");
    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    ck_assert_int_eq(brk_doc_sign(kr, doc, "ac_cid"), 0);
    before = json_dumps(doc, JSON_SORT_KEYS);
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), doc, "ac_cid", cid), 0);
    ck_assert_str_eq(cid, json_string_value(json_object_get(doc, "ac_cid")));
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), doc, "ac_cid", NULL), 0);
    after = json_dumps(doc, JSON_SORT_KEYS);
    ck_assert_str_eq(before, after);

    unhex_ok(rfc8032_public, other, sizeof other); /* another key */
    ck_assert_int_eq(brk_doc_verify(other, doc, "ac_cid", cid), BRK_ECRYPTO);

    d2 = json_deep_copy(doc); /* one member changed */
    json_object_set_new(json_object_get(d2, "operation"), "command_hash", json_string("sha256:01"));
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), d2, "ac_cid", cid), BRK_ECRYPTO);
    ck_assert(brk_cid_valid(cid)); /* the CID of what is there, for the message */
    json_decref(d2);

    d2 = json_deep_copy(doc); /* the CID field alone changed: the signature does not cover it */
    memset(cid, '0', sizeof cid - 1);
    memcpy(cid, "sha256:", 7);
    cid[BRK_CID_LEN] = '\0';
    json_object_set_new(d2, "ac_cid", json_string(cid));
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), d2, "ac_cid", cid), BRK_ECONFLICT);
    ck_assert_str_eq(cid, json_string_value(json_object_get(doc, "ac_cid")));
    json_object_del(d2, "ac_cid");
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), d2, "ac_cid", cid), BRK_ECONFLICT);

    json_object_set_new(d2, "signature", json_string("ed25519:AAAA"));
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), d2, "ac_cid", cid), BRK_EAUTH);
    ck_assert_str_eq(cid, "");
    json_object_set_new(d2, "signature", json_string("rsa:AAAA"));
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), d2, "ac_cid", cid), BRK_EAUTH);
    json_object_del(d2, "signature");
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), d2, "ac_cid", cid), BRK_EAUTH);
    json_decref(d2);

    d2 = json_deep_copy(doc); /* no canonical form: a string that is not UTF-8 */
    json_object_set_new(d2, "a", json_string_nocheck("\xff"));
    ck_assert_int_eq(brk_doc_verify(brk_keyring_public(kr, 0), d2, "ac_cid", cid), BRK_EINVAL);
    json_decref(d2);

    free(before);
    free(after);
    json_decref(doc);
    brk_keyring_free(kr);
    rm_rf(tmp);
    free(tmp);
}
END_TEST

START_TEST(test_keyring_create_sign_verify)
{
    char *tmp = make_tmpdir(), dir[4096], path[4096], current[64] = {0};
    uint8_t sig[BRK_ED25519_SIG_LEN], raw[BRK_ED25519_SIG_LEN];
    char sigstr[BRK_SIG_STR_MAX];
    brk_keyring_t *kr = NULL, *again = NULL;
    const char msg[] = "lineage sha256:00";
    struct stat st;
    FILE *f;

    path_in(dir, sizeof dir, tmp, "keys");
    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    ck_assert_ptr_nonnull(kr);
    ck_assert_uint_eq(brk_keyring_count(kr), 1);
    ck_assert_str_eq(brk_keyring_key_id(kr, 0), brk_keyring_current_id(kr));
    ck_assert_ptr_null(brk_keyring_key_id(kr, 1));

    /* Modes: directory 0700, key file 0600. */
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    {
        char name[64];
        snprintf(name, sizeof name, "%s.pem", brk_keyring_current_id(kr));
        path_in(path, sizeof path, dir, name);
    }
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);

    /* "current" names the key. */
    path_in(path, sizeof path, dir, "current");
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(current, sizeof current, f));
    fclose(f);
    ck_assert_uint_eq(strlen(current), BRK_KEY_ID_LEN + 1);
    ck_assert_int_eq(current[BRK_KEY_ID_LEN], '\n');
    ck_assert_int_eq(strncmp(current, brk_keyring_current_id(kr), BRK_KEY_ID_LEN), 0);

    /* The published key id is the hash of the published public key. */
    {
        char id[BRK_KEY_ID_LEN + 1];
        brk_key_id_of(brk_keyring_public(kr, 0), id);
        ck_assert_str_eq(id, brk_keyring_current_id(kr));
    }

    /* Sign, verify with the published public key, flip a bit, fail. */
    ck_assert_int_eq(brk_keyring_sign(kr, msg, strlen(msg), sig), 0);
    ck_assert(brk_ed25519_verify(brk_keyring_public(kr, 0), msg, strlen(msg), sig));
    sig[10] ^= 0x04;
    ck_assert(!brk_ed25519_verify(brk_keyring_public(kr, 0), msg, strlen(msg), sig));
    sig[10] ^= 0x04;
    ck_assert(!brk_ed25519_verify(brk_keyring_public(kr, 0), msg, strlen(msg) - 1, sig));

    /* The string form is "ed25519:" + unpadded base64url of the same signature. */
    ck_assert_int_eq(brk_keyring_sign_str(kr, msg, strlen(msg), sigstr, sizeof sigstr), 0);
    ck_assert_int_eq(strncmp(sigstr, "ed25519:", 8), 0);
    ck_assert_uint_eq(strlen(sigstr), 8 + 86);
    ck_assert_int_eq(brk_b64url_decode(sigstr + 8, strlen(sigstr + 8), raw, sizeof raw), 64);
    ck_assert(brk_ed25519_verify(brk_keyring_public(kr, 0), msg, strlen(msg), raw));
    ck_assert_int_eq(brk_keyring_sign_str(kr, msg, strlen(msg), sigstr, 94), BRK_EINVAL);

    /* Loading again finds the same key rather than making a new one. */
    ck_assert_int_eq(brk_keyring_load(dir, &again), 0);
    ck_assert_uint_eq(brk_keyring_count(again), 1);
    ck_assert_str_eq(brk_keyring_current_id(again), brk_keyring_current_id(kr));
    ck_assert_mem_eq(brk_keyring_public(again, 0), brk_keyring_public(kr, 0),
                     BRK_ED25519_PUB_LEN);

    brk_keyring_free(kr);
    brk_keyring_free(again);
    rm_rf(tmp);
    free(tmp);
}
END_TEST

START_TEST(test_keyring_rotate)
{
    char *tmp = make_tmpdir(), dir[4096], path[4096], old_id[BRK_KEY_ID_LEN + 1];
    char new_id[BRK_KEY_ID_LEN + 1], name[64];
    uint8_t old_pub[BRK_ED25519_PUB_LEN], sig_old[BRK_ED25519_SIG_LEN];
    uint8_t sig_new[BRK_ED25519_SIG_LEN];
    brk_keyring_t *kr = NULL;
    const char msg[] = "checkpoint 8";
    struct stat st;
    size_t i, found_old = 0;

    path_in(dir, sizeof dir, tmp, "keys");
    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    memcpy(old_id, brk_keyring_current_id(kr), sizeof old_id);
    memcpy(old_pub, brk_keyring_public(kr, 0), sizeof old_pub);
    ck_assert_int_eq(brk_keyring_sign(kr, msg, strlen(msg), sig_old), 0);

    ck_assert_int_eq(brk_keyring_rotate(dir, new_id), 0);
    ck_assert_uint_eq(strlen(new_id), BRK_KEY_ID_LEN);
    ck_assert_str_ne(new_id, old_id);
    /* The ring in memory is unchanged until reloaded. */
    ck_assert_str_eq(brk_keyring_current_id(kr), old_id);
    brk_keyring_free(kr);
    kr = NULL;

    snprintf(name, sizeof name, "%s.pem", new_id);
    path_in(path, sizeof path, dir, name);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);

    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    ck_assert_uint_eq(brk_keyring_count(kr), 2);
    ck_assert_str_eq(brk_keyring_current_id(kr), new_id);
    ck_assert_str_eq(brk_keyring_key_id(kr, 0), new_id);
    for (i = 1; i < brk_keyring_count(kr); i++)
        if (strcmp(brk_keyring_key_id(kr, i), old_id) == 0) {
            found_old = i;
            ck_assert_mem_eq(brk_keyring_public(kr, i), old_pub, sizeof old_pub);
        }
    ck_assert_uint_eq(found_old, 1);

    /* Old signatures still verify with the old published key; new ones with the new key. */
    ck_assert(brk_ed25519_verify(brk_keyring_public(kr, found_old), msg, strlen(msg), sig_old));
    ck_assert_int_eq(brk_keyring_sign(kr, msg, strlen(msg), sig_new), 0);
    ck_assert(brk_ed25519_verify(brk_keyring_public(kr, 0), msg, strlen(msg), sig_new));
    ck_assert(!brk_ed25519_verify(brk_keyring_public(kr, found_old), msg, strlen(msg), sig_new));
    ck_assert(!brk_ed25519_verify(brk_keyring_public(kr, 0), msg, strlen(msg), sig_old));

    /* No temporary files are left behind. */
    {
        DIR *d = opendir(dir);
        struct dirent *de;
        int files = 0;
        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] != '.')
                files++;
        closedir(d);
        ck_assert_int_eq(files, 3); /* two keys and "current" */
    }

    brk_keyring_free(kr);
    rm_rf(tmp);
    free(tmp);
}
END_TEST

START_TEST(test_keyring_max)
{
    char *tmp = make_tmpdir(), dir[4096], id[BRK_KEY_ID_LEN + 1];
    brk_keyring_t *kr = NULL;
    size_t i;

    path_in(dir, sizeof dir, tmp, "keys");
    for (i = 0; i < BRK_KEYRING_MAX + 2; i++)
        ck_assert_int_eq(brk_keyring_rotate(dir, id), 0);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    ck_assert_uint_eq(brk_keyring_count(kr), BRK_KEYRING_MAX);
    ck_assert_str_eq(brk_keyring_current_id(kr), id);
    for (i = 2; i < BRK_KEYRING_MAX; i++) /* the others in id order */
        ck_assert_int_lt(strcmp(brk_keyring_key_id(kr, i - 1), brk_keyring_key_id(kr, i)), 0);
    brk_keyring_free(kr);
    rm_rf(tmp);
    free(tmp);
}
END_TEST

START_TEST(test_keyring_refuses_readable_key)
{
    char *tmp = make_tmpdir(), dir[4096], path[4096], name[64];
    brk_keyring_t *kr = NULL;

    path_in(dir, sizeof dir, tmp, "keys");
    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    snprintf(name, sizeof name, "%s.pem", brk_keyring_current_id(kr));
    brk_keyring_free(kr);
    kr = NULL;
    path_in(path, sizeof path, dir, name);

    ck_assert_int_eq(chmod(path, 0644), 0);
    {
        /* The refusal is reported as one brk_log JSON line naming the file and its mode. */
        char logf[4096], line[8192];
        int saved = dup(2), fd;
        FILE *f;
        json_t *j;

        path_in(logf, sizeof logf, tmp, "stderr.log");
        fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(dup2(fd, 2), 2);
        close(fd);
        ck_assert_int_eq(brk_keyring_load(dir, &kr), BRK_EIO);
        ck_assert_int_eq(dup2(saved, 2), 2);
        close(saved);
        f = fopen(logf, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
        fclose(f);
        j = json_loads(line, 0, NULL);
        ck_assert_msg(j != NULL, "not a JSON log line: %s", line);
        ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "error");
        ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "msg")),
                                     "accessible by group or others"));
        ck_assert_str_eq(json_string_value(json_object_get(j, "path")), path);
        ck_assert_str_eq(json_string_value(json_object_get(j, "mode")), "644");
        json_decref(j);
    }
    ck_assert_ptr_null(kr);
    ck_assert_int_eq(chmod(path, 0640), 0);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), BRK_EIO);
    ck_assert_int_eq(chmod(path, 0602), 0);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), BRK_EIO);
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    brk_keyring_free(kr);
    kr = NULL;

    /* An old (not current) key file with a loose mode is refused just the same. */
    {
        char id[BRK_KEY_ID_LEN + 1];
        ck_assert_int_eq(brk_keyring_rotate(dir, id), 0);
        ck_assert_int_eq(chmod(path, 0644), 0);
        ck_assert_int_eq(brk_keyring_load(dir, &kr), BRK_EIO);
        ck_assert_ptr_null(kr);
    }
    rm_rf(tmp);
    free(tmp);
}
END_TEST

START_TEST(test_keyring_bad_files)
{
    char *tmp = make_tmpdir(), dir[4096], path[4096], name[64], id[BRK_KEY_ID_LEN + 1];
    brk_keyring_t *kr = NULL;
    FILE *f;
    int fd;

    path_in(dir, sizeof dir, tmp, "keys");
    ck_assert_int_eq(brk_keyring_rotate(dir, id), 0);

    /* A key file whose content does not match its name. */
    snprintf(name, sizeof name, "%s.pem", id);
    path_in(path, sizeof path, dir, name);
    {
        char other[4096];
        path_in(other, sizeof other, dir, "0000000000000000.pem");
        ck_assert_int_eq(link(path, other), 0);
        ck_assert_int_eq(brk_keyring_load(dir, &kr), BRK_ECRYPTO);
        ck_assert_ptr_null(kr);
        unlink(other);
    }

    /* A key file that is not PEM. */
    path_in(path, sizeof path, dir, "1111111111111111.pem");
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "junk\n", 5), 5);
    close(fd);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), BRK_ECRYPTO);
    unlink(path);

    /* "current" naming a key that is not there. */
    path_in(path, sizeof path, dir, "current");
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("2222222222222222\n", f);
    fclose(f);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), BRK_EIO);

    /* "current" holding garbage. */
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("../../etc/passwd\n", f);
    fclose(f);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), BRK_EIO);

    /* No "current" at all: a fresh key becomes current, the stray one stays as an old key. */
    unlink(path);
    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    ck_assert_uint_eq(brk_keyring_count(kr), 2);
    ck_assert_str_ne(brk_keyring_current_id(kr), id);
    ck_assert_str_eq(brk_keyring_key_id(kr, 1), id);
    brk_keyring_free(kr);

    rm_rf(tmp);
    free(tmp);
}
END_TEST

/* A key ring holding the RFC 8032 key signs deterministically to the RFC's signature. */
START_TEST(test_keyring_signs_rfc8032)
{
    char *tmp = make_tmpdir(), dir[4096], path[4096], name[64], id[BRK_KEY_ID_LEN + 1];
    uint8_t secret[32], pub[BRK_ED25519_PUB_LEN], want[BRK_ED25519_SIG_LEN];
    uint8_t sig[BRK_ED25519_SIG_LEN];
    brk_keyring_t *kr = NULL;
    EVP_PKEY *pkey;
    FILE *f;
    int fd;

    unhex_ok(rfc8032_secret, secret, sizeof secret);
    unhex_ok(rfc8032_public, pub, sizeof pub);
    unhex_ok(rfc8032_sig, want, sizeof want);
    brk_key_id_of(pub, id);

    path_in(dir, sizeof dir, tmp, "keys");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, secret, sizeof secret);
    ck_assert_ptr_nonnull(pkey);
    snprintf(name, sizeof name, "%s.pem", id);
    path_in(path, sizeof path, dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(pkey);
    path_in(path, sizeof path, dir, "current");
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n", id);
    fclose(f);

    ck_assert_int_eq(brk_keyring_load(dir, &kr), 0);
    ck_assert_str_eq(brk_keyring_current_id(kr), id);
    ck_assert_mem_eq(brk_keyring_public(kr, 0), pub, sizeof pub);
    ck_assert_int_eq(brk_keyring_sign(kr, "", 0, sig), 0);
    ck_assert_mem_eq(sig, want, sizeof want);
    brk_keyring_free(kr);
    rm_rf(tmp);
    free(tmp);
}
END_TEST

static Suite *crypto_suite(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("core");
    TCase *ring = tcase_create("keyring");

    tcase_add_test(tc, test_sha256_abc);
    tcase_add_test(tc, test_sha256_stream);
    tcase_add_test(tc, test_hex);
    tcase_add_test(tc, test_hex_digit);
    tcase_add_test(tc, test_b64url_roundtrip);
    tcase_add_test(tc, test_b64url_rejects);
    tcase_add_test(tc, test_b64_lenient);
    tcase_add_test(tc, test_random_and_ct_equal);
    tcase_add_test(tc, test_ed25519_rfc8032);
    tcase_add_test(tc, test_key_id_of);
    suite_add_tcase(s, tc);

    tcase_add_test(ring, test_keyring_create_sign_verify);
    tcase_add_test(ring, test_doc_sign_verify);
    tcase_add_test(ring, test_keyring_rotate);
    tcase_add_test(ring, test_keyring_max);
    tcase_add_test(ring, test_keyring_refuses_readable_key);
    tcase_add_test(ring, test_keyring_bad_files);
    tcase_add_test(ring, test_keyring_signs_rfc8032);
    suite_add_tcase(s, ring);
    return s;
}

int main(void)
{
    return tst_run(crypto_suite());
}
