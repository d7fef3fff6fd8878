/*
 * brk_merkle: RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.
 *
 * Leaves are byte strings (for the transparency log: the 71 ASCII bytes of a CID).
 * leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right), the root of
 * an empty tree is SHA-256(""). Proof generation works over an array of leaf hashes the
 * caller holds; verification needs only the proof. Pure functions: any thread.
 */
#ifndef BRK_MERKLE_H
#define BRK_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define BRK_MERKLE_HASH_LEN 32
#define BRK_MERKLE_MAX_PROOF 64 /* hashes in a proof, enough for 2^64 leaves */

typedef uint8_t brk_mhash_t[BRK_MERKLE_HASH_LEN];

void brk_merkle_leaf_hash(const void *leaf, size_t n, brk_mhash_t out);
void brk_merkle_node_hash(const brk_mhash_t left, const brk_mhash_t right, brk_mhash_t out);

/* brk_merkle_root: MTH of the n leaf hashes. n may be 0. Returns 0 or BRK_ENOMEM-free
 * (never fails: uses O(log n) stack). */
void brk_merkle_root(const brk_mhash_t *leaves, size_t n, brk_mhash_t out);

/* brk_merkle_inclusion_proof: RFC 9162 2.1.3.1 PATH(m, D[n]) into proof (capacity
 * BRK_MERKLE_MAX_PROOF), *plen the number of hashes. Returns 0 or BRK_EINVAL (m >= n). */
int brk_merkle_inclusion_proof(const brk_mhash_t *leaves, size_t n, size_t m,
                               brk_mhash_t *proof, size_t *plen);

/* brk_merkle_consistency_proof: RFC 9162 2.1.4.1 PROOF(m, D[n]). Returns 0 or BRK_EINVAL
 * (m == 0 or m > n). For m == n the proof is empty. */
int brk_merkle_consistency_proof(const brk_mhash_t *leaves, size_t n, size_t m,
                                 brk_mhash_t *proof, size_t *plen);

/* brk_merkle_verify_inclusion: RFC 9162 2.1.3.2. 1 when valid, else 0. */
int brk_merkle_verify_inclusion(const brk_mhash_t leaf_hash, size_t index, size_t tree_size,
                                const brk_mhash_t *proof, size_t plen, const brk_mhash_t root);

/* brk_merkle_verify_consistency: RFC 9162 2.1.4.2. 1 when valid, else 0. */
int brk_merkle_verify_consistency(size_t size1, size_t size2, const brk_mhash_t root1,
                                  const brk_mhash_t root2, const brk_mhash_t *proof, size_t plen);

#endif
