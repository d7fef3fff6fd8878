/*
 * unit_merkle: RFC 6962 / 9162 hashing and proofs against the Certificate Transparency
 * reference vectors (the 8-leaf tree every CT implementation tests against), then every
 * inclusion and consistency proof of trees up to 8 leaves (and, more briefly, up to 70)
 * generated, verified, and tampered with in each way a proof can be wrong.
 */
#include "tst_check.h"
#include "brk_merkle.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "banned.h"

#define NLEAVES 8

static const char *const ct_leaves[NLEAVES] = {
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};

/* MTH of the first n reference leaves, n = 0..8. */
static const char *const ct_roots[NLEAVES + 1] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

/* Reference proofs (certificate-transparency / transparency-dev test data). */
struct ref_proof {
    size_t a, b; /* inclusion: leaf index, tree size; consistency: size1, size2 */
    size_t len;
    const char *hashes[3];
};

static const struct ref_proof ref_inclusion[] = {
    {0, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5, 8, 3, {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
               "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, 1, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1, 5, 3, {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static const struct ref_proof ref_consistency[] = {
    {1, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6, 8, 3, {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
               "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 5, 2, {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

static brk_mhash_t leaves[NLEAVES];
static brk_mhash_t roots[NLEAVES + 1];

static void from_hex(const char *s, uint8_t *out, size_t n)
{
    ck_assert_int_eq(brk_unhex(s, strlen(s), out, n), 0);
}

static void setup(void)
{
    size_t i;

    for (i = 0; i < NLEAVES; i++) {
        uint8_t data[16];
        size_t n = strlen(ct_leaves[i]) / 2;
        from_hex(ct_leaves[i], data, n);
        brk_merkle_leaf_hash(data, n, leaves[i]);
    }
    for (i = 0; i <= NLEAVES; i++)
        brk_merkle_root(leaves, i, roots[i]);
}

START_TEST(test_reference_roots)
{
    char hex[2 * BRK_MERKLE_HASH_LEN + 1];
    size_t n;

    for (n = 0; n <= NLEAVES; n++) {
        brk_hex(roots[n], BRK_MERKLE_HASH_LEN, hex);
        ck_assert_msg(strcmp(hex, ct_roots[n]) == 0, "size %zu: root %s, want %s", n, hex,
                      ct_roots[n]);
    }
    /* The empty leaf's hash is the size-1 root; a node is 0x01 || left || right. */
    {
        brk_mhash_t h;
        brk_merkle_leaf_hash(NULL, 0, h);
        ck_assert_mem_eq(h, roots[1], BRK_MERKLE_HASH_LEN);
        brk_merkle_node_hash(leaves[0], leaves[1], h);
        ck_assert_mem_eq(h, roots[2], BRK_MERKLE_HASH_LEN);
    }
}
END_TEST

static void check_ref(const struct ref_proof *r, const brk_mhash_t *proof, size_t plen)
{
    size_t i;

    ck_assert_uint_eq(plen, r->len);
    for (i = 0; i < plen; i++) {
        brk_mhash_t want;
        from_hex(r->hashes[i], want, sizeof want);
        ck_assert_mem_eq(proof[i], want, sizeof want);
    }
}

START_TEST(test_reference_proofs)
{
    brk_mhash_t proof[BRK_MERKLE_MAX_PROOF];
    size_t i, plen;

    for (i = 0; i < sizeof ref_inclusion / sizeof ref_inclusion[0]; i++) {
        const struct ref_proof *r = &ref_inclusion[i];
        ck_assert_int_eq(brk_merkle_inclusion_proof(leaves, r->b, r->a, proof, &plen), 0);
        check_ref(r, proof, plen);
        ck_assert(brk_merkle_verify_inclusion(leaves[r->a], r->a, r->b, proof, plen,
                                              roots[r->b]));
    }
    for (i = 0; i < sizeof ref_consistency / sizeof ref_consistency[0]; i++) {
        const struct ref_proof *r = &ref_consistency[i];
        ck_assert_int_eq(brk_merkle_consistency_proof(leaves, r->b, r->a, proof, &plen), 0);
        check_ref(r, proof, plen);
        ck_assert(brk_merkle_verify_consistency(r->a, r->b, roots[r->a], roots[r->b], proof,
                                                plen));
    }
}
END_TEST

/* Every way an inclusion proof for (m, n) can be wrong must fail. */
static void inclusion_tampered(const brk_mhash_t *tree, size_t m, size_t n,
                               const brk_mhash_t *proof, size_t plen, const brk_mhash_t root)
{
    brk_mhash_t bad[BRK_MERKLE_MAX_PROOF + 1], leaf;
    size_t i;

    memcpy(leaf, tree[m], sizeof leaf);
    /* wrong index */
    if (m > 0)
        ck_assert(!brk_merkle_verify_inclusion(leaf, m - 1, n, proof, plen, root));
    ck_assert(!brk_merkle_verify_inclusion(leaf, m + 1, n, proof, plen, root));
    if ((m ^ 2) != m && n > 2)
        ck_assert(!brk_merkle_verify_inclusion(leaf, m ^ 2, n, proof, plen, root));
    /* wrong tree size (not n + 1: where the path has the same shape in both sizes, the
     * proof cannot tell them apart; the signed checkpoint binds the size to the root) */
    ck_assert(!brk_merkle_verify_inclusion(leaf, m, n * 2, proof, plen, root));
    if (n / 2 > 0)
        ck_assert(!brk_merkle_verify_inclusion(leaf, m, n / 2, proof, plen, root));
    /* index out of range */
    ck_assert(!brk_merkle_verify_inclusion(leaf, n, n, proof, plen, root));
    /* wrong leaf, wrong root */
    leaf[0] ^= 1;
    ck_assert(!brk_merkle_verify_inclusion(leaf, m, n, proof, plen, root));
    leaf[0] ^= 1;
    {
        brk_mhash_t r2;
        memcpy(r2, root, sizeof r2);
        r2[31] ^= 0x80;
        ck_assert(!brk_merkle_verify_inclusion(leaf, m, n, proof, plen, r2));
    }
    /* one bit flipped in each proof element */
    for (i = 0; i < plen; i++) {
        memcpy(bad, proof, plen * sizeof *proof);
        bad[i][i % BRK_MERKLE_HASH_LEN] ^= 8;
        ck_assert(!brk_merkle_verify_inclusion(leaf, m, n, bad, plen, root));
    }
    /* truncated, extended at the end, extended at the front */
    if (plen > 0)
        ck_assert(!brk_merkle_verify_inclusion(leaf, m, n, proof, plen - 1, root));
    memcpy(bad, proof, plen * sizeof *proof);
    memcpy(bad[plen], root, sizeof bad[plen]);
    ck_assert(!brk_merkle_verify_inclusion(leaf, m, n, bad, plen + 1, root));
    memcpy(bad[0], root, sizeof bad[0]);
    memcpy(bad + 1, proof, plen * sizeof *proof);
    ck_assert(!brk_merkle_verify_inclusion(leaf, m, n, bad, plen + 1, root));
}

START_TEST(test_all_inclusion_proofs)
{
    brk_mhash_t proof[BRK_MERKLE_MAX_PROOF];
    size_t n, m, plen, checked = 0;

    for (n = 1; n <= NLEAVES; n++) {
        for (m = 0; m < n; m++) {
            ck_assert_int_eq(brk_merkle_inclusion_proof(leaves, n, m, proof, &plen), 0);
            ck_assert_msg(brk_merkle_verify_inclusion(leaves[m], m, n, proof, plen, roots[n]),
                          "inclusion of %zu in %zu does not verify", m, n);
            inclusion_tampered(leaves, m, n, proof, plen, roots[n]);
            checked++;
        }
        ck_assert_int_eq(brk_merkle_inclusion_proof(leaves, n, n, proof, &plen), BRK_EINVAL);
    }
    ck_assert_uint_eq(checked, NLEAVES * (NLEAVES + 1) / 2);
    ck_assert_int_eq(brk_merkle_inclusion_proof(leaves, 0, 0, proof, &plen), BRK_EINVAL);
    /* A one-leaf tree: empty proof, the leaf is the root. */
    ck_assert_int_eq(brk_merkle_inclusion_proof(leaves, 1, 0, proof, &plen), 0);
    ck_assert_uint_eq(plen, 0);
    ck_assert(!brk_merkle_verify_inclusion(leaves[0], 0, 0, proof, 0, roots[0]));
}
END_TEST

/* Every way a consistency proof for (m, n), m < n, can be wrong must fail. */
static void consistency_tampered(size_t m, size_t n, const brk_mhash_t *proof, size_t plen,
                                 const brk_mhash_t r1, const brk_mhash_t r2)
{
    brk_mhash_t bad[BRK_MERKLE_MAX_PROOF + 1], wrong;
    size_t i;

    /* wrong sizes */
    ck_assert(!brk_merkle_verify_consistency(m - 1, n, r1, r2, proof, plen));
    ck_assert(!brk_merkle_verify_consistency(m + 1, n, r1, r2, proof, plen));
    if ((m ^ 2) != m)
        ck_assert(!brk_merkle_verify_consistency(m ^ 2, n, r1, r2, proof, plen));
    ck_assert(!brk_merkle_verify_consistency(m, n * 2, r1, r2, proof, plen));
    ck_assert(!brk_merkle_verify_consistency(m, n / 2, r1, r2, proof, plen));
    /* wrong and swapped roots */
    memcpy(wrong, r1, sizeof wrong);
    wrong[0] ^= 1;
    ck_assert(!brk_merkle_verify_consistency(m, n, wrong, r2, proof, plen));
    memcpy(wrong, r2, sizeof wrong);
    wrong[0] ^= 1;
    ck_assert(!brk_merkle_verify_consistency(m, n, r1, wrong, proof, plen));
    ck_assert(!brk_merkle_verify_consistency(m, n, r2, r1, proof, plen));
    /* empty, truncated, extended */
    ck_assert(!brk_merkle_verify_consistency(m, n, r1, r2, proof, 0));
    ck_assert(!brk_merkle_verify_consistency(m, n, r1, r2, proof, plen - 1));
    memcpy(bad, proof, plen * sizeof *proof);
    memcpy(bad[plen], r1, sizeof bad[plen]);
    ck_assert(!brk_merkle_verify_consistency(m, n, r1, r2, bad, plen + 1));
    memcpy(bad[plen], r2, sizeof bad[plen]);
    ck_assert(!brk_merkle_verify_consistency(m, n, r1, r2, bad, plen + 1));
    memcpy(bad[0], r1, sizeof bad[0]);
    memcpy(bad + 1, proof, plen * sizeof *proof);
    ck_assert(!brk_merkle_verify_consistency(m, n, r1, r2, bad, plen + 1));
    memcpy(bad[0], proof[0], sizeof bad[0]);
    ck_assert(!brk_merkle_verify_consistency(m, n, r1, r2, bad, plen + 1));
    /* one bit flipped in each element */
    for (i = 0; i < plen; i++) {
        memcpy(bad, proof, plen * sizeof *proof);
        bad[i][(i * 7) % BRK_MERKLE_HASH_LEN] ^= 16;
        ck_assert_msg(!brk_merkle_verify_consistency(m, n, r1, r2, bad, plen),
                      "consistency %zu->%zu verified with proof[%zu] altered", m, n, i);
    }
}

START_TEST(test_all_consistency_proofs)
{
    brk_mhash_t proof[BRK_MERKLE_MAX_PROOF];
    size_t n, m, plen, checked = 0;

    for (n = 1; n <= NLEAVES; n++) {
        for (m = 1; m <= n; m++) {
            ck_assert_int_eq(brk_merkle_consistency_proof(leaves, n, m, proof, &plen), 0);
            ck_assert_msg(brk_merkle_verify_consistency(m, n, roots[m], roots[n], proof, plen),
                          "consistency %zu->%zu does not verify", m, n);
            if (m == n) {
                ck_assert_uint_eq(plen, 0);
                /* same size: the roots must match and the proof be empty */
                if (n > 1)
                    ck_assert(!brk_merkle_verify_consistency(m, n, roots[m - 1], roots[n],
                                                             proof, 0));
                ck_assert(!brk_merkle_verify_consistency(m, n, roots[m], roots[n], leaves, 1));
            } else {
                consistency_tampered(m, n, proof, plen, roots[m], roots[n]);
            }
            checked++;
        }
        ck_assert_int_eq(brk_merkle_consistency_proof(leaves, n, 0, proof, &plen), BRK_EINVAL);
        ck_assert_int_eq(brk_merkle_consistency_proof(leaves, n, n + 1, proof, &plen),
                         BRK_EINVAL);
    }
    ck_assert_uint_eq(checked, NLEAVES * (NLEAVES + 1) / 2);
    /* Size 0 and shrinking trees are never consistent here. */
    ck_assert(!brk_merkle_verify_consistency(0, 3, roots[0], roots[3], proof, 0));
    ck_assert(!brk_merkle_verify_consistency(0, 0, roots[0], roots[0], proof, 0));
    ck_assert(!brk_merkle_verify_consistency(4, 3, roots[4], roots[3], proof, 0));
}
END_TEST

/* Larger trees exercise more shapes of the recursion than the 8-leaf one. */
START_TEST(test_generated_up_to_70)
{
    enum { N = 70 };
    static brk_mhash_t tree[N];
    static brk_mhash_t r[N + 1];
    brk_mhash_t proof[BRK_MERKLE_MAX_PROOF];
    size_t n, m, plen;

    for (n = 0; n < N; n++) {
        uint8_t data[2] = {(uint8_t)n, (uint8_t)(n * 7)};
        brk_merkle_leaf_hash(data, sizeof data, tree[n]);
    }
    for (n = 0; n <= N; n++)
        brk_merkle_root(tree, n, r[n]);
    for (n = 1; n <= N; n++) {
        for (m = 0; m < n; m++) {
            ck_assert_int_eq(brk_merkle_inclusion_proof(tree, n, m, proof, &plen), 0);
            ck_assert(brk_merkle_verify_inclusion(tree[m], m, n, proof, plen, r[n]));
            ck_assert(!brk_merkle_verify_inclusion(tree[m], m, n * 2, proof, plen, r[n]));
            if (n > 1)
                ck_assert(!brk_merkle_verify_inclusion(tree[m], (m + 1) % n, n, proof, plen,
                                                       r[n]));
        }
        for (m = 1; m <= n; m++) {
            ck_assert_int_eq(brk_merkle_consistency_proof(tree, n, m, proof, &plen), 0);
            ck_assert(brk_merkle_verify_consistency(m, n, r[m], r[n], proof, plen));
            if (m < n) {
                ck_assert(!brk_merkle_verify_consistency(m, n, r[m - 1], r[n], proof, plen));
                ck_assert(!brk_merkle_verify_consistency(m, n - 1, r[m], r[n - 1], proof,
                                                         plen));
            }
        }
    }
}
END_TEST

static Suite *merkle_suite(void)
{
    Suite *s = suite_create("merkle");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_reference_roots);
    tcase_add_test(tc, test_reference_proofs);
    tcase_add_test(tc, test_all_inclusion_proofs);
    tcase_add_test(tc, test_all_consistency_proofs);
    tcase_add_test(tc, test_generated_up_to_70);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(merkle_suite());
}
