/*
 * brk_sign: signing a JSON document (an AC, a denial receipt, an invoice, a credit note) the
 * one way every verifier expects: "key_id" is set to the current key, then the RFC 8785
 * canonical bytes of the document without "signature" and its CID field are hashed into the
 * CID field and signed with Ed25519; "signature" is "ed25519:" + base64url without padding.
 * Any thread (the key ring is read-only).
 */
#ifndef BRK_SIGN_H
#define BRK_SIGN_H

#include <jansson.h>

#include "brk_crypto.h"

/* brk_doc_sign: adds "key_id", cid_field and "signature" to doc (replacing old ones).
 * Returns 0 or BRK_EINVAL (cannot canonicalize) / BRK_ECRYPTO. */
int brk_doc_sign(const brk_keyring_t *kr, json_t *doc, const char *cid_field);

#endif
