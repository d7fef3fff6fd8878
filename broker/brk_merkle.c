/*
 * brk_merkle: RFC 6962 / RFC 9162 Merkle tree hashing and proofs.
 *
 * Generation (root, PATH, PROOF) follows the recursive definitions of RFC 9162 2.1.1, 2.1.3.1
 * and 2.1.4.1 directly: split at k, the largest power of two smaller than n, recurse into
 * one side and append the root of the other. The recursion depth is log2(n) (at most 64), so
 * stack use is bounded; the work is O(n) hashes per call because subtree roots are
 * recomputed from the leaf hashes the caller holds.
 *
 * Verification follows RFC 9162 2.1.3.2 and 2.1.4.2 step by step, with the RFC's variable
 * names (fn, sn, r, fr, sr), because these loops are where published implementations have
 * gone wrong and a reader should be able to check them against the text line by line.
 * Two cases the RFC's consistency algorithm leaves to the caller are decided here:
 *   - size1 == size2: consistent exactly when the proof is empty and the roots are equal
 *     (PROOF(m, D[m]) is empty, and the RFC's step 1 would refuse an empty path);
 *   - size1 == 0: refused, as brk_merkle_consistency_proof refuses to produce it; a verifier
 *     that has seen no tree head has nothing to check consistency against.
 * Hashes are compared with brk_ct_equal; none of them is secret, but it costs nothing.
 */
#include "brk_merkle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "banned.h"

void brk_merkle_leaf_hash(const void *leaf, size_t n, brk_mhash_t out)
{
    static const unsigned char prefix = 0x00;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;

    if (leaf == NULL)
        leaf = "";
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, &prefix, 1) != 1 || EVP_DigestUpdate(ctx, leaf, n) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != BRK_MERKLE_HASH_LEN) {
        /* Only a broken OpenSSL gets here; a wrong leaf hash would poison the log forever. */
        fprintf(stderr, "fatal: sha-256 leaf hash failed in OpenSSL\n");
        abort();
    }
    EVP_MD_CTX_free(ctx);
}

/* out may alias left or right: both are copied before hashing. */
void brk_merkle_node_hash(const brk_mhash_t left, const brk_mhash_t right, brk_mhash_t out)
{
    uint8_t buf[1 + 2 * BRK_MERKLE_HASH_LEN];

    buf[0] = 0x01;
    memcpy(buf + 1, left, BRK_MERKLE_HASH_LEN);
    memcpy(buf + 1 + BRK_MERKLE_HASH_LEN, right, BRK_MERKLE_HASH_LEN);
    brk_sha256(buf, sizeof buf, out);
}

/* The largest power of two strictly smaller than n (n >= 2), written so it cannot overflow. */
static size_t split_point(size_t n)
{
    size_t k = 1;

    while (k < n - k)
        k <<= 1;
    return k;
}

/* MTH(D[n]) of RFC 9162 2.1.1 over leaf hashes. */
static void mth(const brk_mhash_t *leaves, size_t n, brk_mhash_t out)
{
    brk_mhash_t left, right;
    size_t k;

    if (n == 0) {
        brk_sha256("", 0, out);
        return;
    }
    if (n == 1) {
        memcpy(out, leaves[0], BRK_MERKLE_HASH_LEN);
        return;
    }
    k = split_point(n);
    mth(leaves, k, left);
    mth(leaves + k, n - k, right);
    brk_merkle_node_hash(left, right, out);
}

void brk_merkle_root(const brk_mhash_t *leaves, size_t n, brk_mhash_t out)
{
    mth(leaves, n, out);
}

/* Appends the root of leaves[0..n) to the proof, refusing to pass its capacity. */
static int proof_append(const brk_mhash_t *leaves, size_t n, brk_mhash_t *proof, size_t *plen)
{
    if (*plen >= BRK_MERKLE_MAX_PROOF)
        return BRK_EINVAL;
    mth(leaves, n, proof[*plen]);
    (*plen)++;
    return 0;
}

/* PATH(m, D[n]) of RFC 9162 2.1.3.1: the sibling subtree roots, from the leaf up. */
static int path(const brk_mhash_t *leaves, size_t n, size_t m, brk_mhash_t *proof,
                size_t *plen)
{
    size_t k;
    int rc;

    if (n <= 1)
        return 0;
    k = split_point(n);
    if (m < k) {
        rc = path(leaves, k, m, proof, plen);
        if (rc == 0)
            rc = proof_append(leaves + k, n - k, proof, plen);
    } else {
        rc = path(leaves + k, n - k, m - k, proof, plen);
        if (rc == 0)
            rc = proof_append(leaves, k, proof, plen);
    }
    return rc;
}

int brk_merkle_inclusion_proof(const brk_mhash_t *leaves, size_t n, size_t m,
                               brk_mhash_t *proof, size_t *plen)
{
    *plen = 0;
    if (m >= n)
        return BRK_EINVAL;
    return path(leaves, n, m, proof, plen);
}

/* SUBPROOF(m, D[n], b) of RFC 9162 2.1.4.1. */
static int subproof(const brk_mhash_t *leaves, size_t n, size_t m, int b, brk_mhash_t *proof,
                    size_t *plen)
{
    size_t k;
    int rc;

    if (m == n)
        return b ? 0 : proof_append(leaves, n, proof, plen);
    k = split_point(n);
    if (m <= k) {
        rc = subproof(leaves, k, m, b, proof, plen);
        if (rc == 0)
            rc = proof_append(leaves + k, n - k, proof, plen);
    } else {
        rc = subproof(leaves + k, n - k, m - k, 0, proof, plen);
        if (rc == 0)
            rc = proof_append(leaves, k, proof, plen);
    }
    return rc;
}

int brk_merkle_consistency_proof(const brk_mhash_t *leaves, size_t n, size_t m,
                                 brk_mhash_t *proof, size_t *plen)
{
    *plen = 0;
    if (m == 0 || m > n)
        return BRK_EINVAL;
    return subproof(leaves, n, m, 1, proof, plen);
}

/* RFC 9162 2.1.3.2, step by step. */
int brk_merkle_verify_inclusion(const brk_mhash_t leaf_hash, size_t index, size_t tree_size,
                                const brk_mhash_t *proof, size_t plen, const brk_mhash_t root)
{
    brk_mhash_t r;
    size_t fn, sn, i;

    /* 1. If leaf_index is greater than or equal to tree_size, then stop and fail. */
    if (index >= tree_size)
        return 0;
    /* 2. Set fn to leaf_index and sn to tree_size - 1. */
    fn = index;
    sn = tree_size - 1;
    /* 3. Set r to hash. */
    memcpy(r, leaf_hash, BRK_MERKLE_HASH_LEN);
    /* 4. For each value p in the inclusion_path array: */
    for (i = 0; i < plen; i++) {
        /* a. If sn is 0, then stop the iteration and fail the proof verification. */
        if (sn == 0)
            return 0;
        /* b. If LSB(fn) is set, or if fn is equal to sn, then: */
        if ((fn & 1) || fn == sn) {
            /* i. Set r to HASH(0x01 || p || r). */
            brk_merkle_node_hash(proof[i], r, r);
            /* ii. If LSB(fn) is not set, then right-shift both fn and sn equally until
             *     either LSB(fn) is set or fn is 0. */
            if (!(fn & 1))
                while (!((fn & 1) || fn == 0)) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            /* Otherwise: set r to HASH(0x01 || r || p). */
            brk_merkle_node_hash(r, proof[i], r);
        }
        /* c. Finally, right-shift both fn and sn one time. */
        fn >>= 1;
        sn >>= 1;
    }
    /* 5. Compare sn to 0. Compare r against the root_hash. If sn is equal to 0 and r and the
     *    root_hash are equal, then the log has proven the inclusion of hash. */
    return sn == 0 && brk_ct_equal(r, root, BRK_MERKLE_HASH_LEN);
}

/* RFC 9162 2.1.4.2, step by step (the cases it leaves open: see the file comment). */
int brk_merkle_verify_consistency(size_t size1, size_t size2, const brk_mhash_t root1,
                                  const brk_mhash_t root2, const brk_mhash_t *proof, size_t plen)
{
    const uint8_t *c;
    brk_mhash_t fr, sr;
    size_t fn, sn, i, total, shift;

    if (size1 == 0 || size1 > size2)
        return 0;
    if (size1 == size2)
        return plen == 0 && brk_ct_equal(root1, root2, BRK_MERKLE_HASH_LEN);
    /* 1. If consistency_path is an empty array, stop and fail the proof verification. */
    if (plen == 0)
        return 0;
    /* 2. If first is an exact power of 2, then prepend first_hash to the consistency_path
     *    array. (Done virtually: element i of the path is root1 at i == 0 when shift is 1,
     *    else proof[i - shift].) */
    shift = (size1 & (size1 - 1)) == 0 ? 1 : 0;
    total = plen + shift;
    /* 3. Set fn to first - 1 and sn to second - 1. */
    fn = size1 - 1;
    sn = size2 - 1;
    /* 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set. */
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    /* 5. Set both fr and sr to the first value in the consistency_path array. */
    c = shift ? root1 : proof[0];
    memcpy(fr, c, BRK_MERKLE_HASH_LEN);
    memcpy(sr, c, BRK_MERKLE_HASH_LEN);
    /* 6. For each subsequent value c in the consistency_path array: */
    for (i = 1; i < total; i++) {
        c = proof[i - shift];
        /* a. If sn is 0, then stop the iteration and fail the proof verification. */
        if (sn == 0)
            return 0;
        /* b. If LSB(fn) is set, or if fn is equal to sn, then: */
        if ((fn & 1) || fn == sn) {
            /* i. Set fr to HASH(0x01 || c || fr). ii. Set sr to HASH(0x01 || c || sr). */
            brk_merkle_node_hash(c, fr, fr);
            brk_merkle_node_hash(c, sr, sr);
            /* iii. If LSB(fn) is not set, then right-shift both fn and sn equally until
             *      either LSB(fn) is set or fn is 0. */
            if (!(fn & 1))
                while (!((fn & 1) || fn == 0)) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            /* Otherwise: set sr to HASH(0x01 || sr || c). */
            brk_merkle_node_hash(sr, c, sr);
        }
        /* c. Finally, right-shift both fn and sn one time. */
        fn >>= 1;
        sn >>= 1;
    }
    /* 7. Verify that fr equals first_hash, sr equals second_hash, and sn is 0. */
    return brk_ct_equal(fr, root1, BRK_MERKLE_HASH_LEN) &&
           brk_ct_equal(sr, root2, BRK_MERKLE_HASH_LEN) && sn == 0;
}
