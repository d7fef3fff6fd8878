/*
 * brk_sign: signing a JSON document (an AC, a denial receipt, an invoice, a credit note) the
 * one way every verifier expects: "key_id" is set to the current key, then the RFC 8785
 * canonical bytes of the document without "signature" and its CID field are hashed into the
 * CID field and signed with Ed25519; "signature" is "ed25519:" + base64url without padding.
 * And checking a document so signed, the same way (gsap-broker exec checks ACs offline).
 * Any thread (the key ring is read-only).
 */
#ifndef BRK_SIGN_H
#define BRK_SIGN_H

#include <jansson.h>

#include "brk_crypto.h"
#include "brk_jcs.h"

/* brk_doc_sign: adds "key_id", cid_field and "signature" to doc (replacing old ones).
 * Returns 0 or BRK_EINVAL (cannot canonicalize) / BRK_ECRYPTO. */
int brk_doc_sign(const brk_keyring_t *kr, json_t *doc, const char *cid_field);

/*
 * brk_doc_verify: checks doc (an object, not changed) as brk_doc_sign made it, with the raw
 * public key pub (choosing it by "key_id" is the caller's business). Returns 0, or the first
 * check that fails: BRK_EAUTH ("signature" missing or not "ed25519:" + base64url of 64 bytes),
 * BRK_EINVAL (no canonical form: see brk_jcs_canonicalize), BRK_ECRYPTO (the signature does not
 * verify over the canonical bytes without "signature" and cid_field), BRK_ECONFLICT (cid_field
 * is not their CID). cid, when not NULL, receives that CID once it is known (else "").
 */
int brk_doc_verify(const uint8_t pub[BRK_ED25519_PUB_LEN], const json_t *doc, const char *cid_field,
                   char cid[BRK_CID_LEN + 1]);

#endif
