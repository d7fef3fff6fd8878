/*
 * brk_note: transparency-log checkpoints as C2SP signed notes (tlog-checkpoint), signed with
 * the broker's Ed25519 key so stock verifiers (golang.org/x/mod/sumdb/note) accept them.
 *
 * Checkpoint body: "<origin>\n<size decimal>\n<base64 root hash>\n".
 * Note: body, a blank line, then one signature line
 *   "\u2014 <key name> <base64(key hash (4 bytes, big-endian) || Ed25519 signature (64))>\n"
 * where the signature is over the body and key hash = the first 4 bytes of
 * SHA-256(<key name> || "\n" || 0x01 || the 32-byte public key) (0x01: the Ed25519 type).
 * Verifier key (what a client configures): "<key name>+<key hash, 8 hex>+<base64(0x01 || pub)>".
 *
 * The key name is the broker id (GSAP_BROKER_ID) with each '+' replaced by '-' (a note key
 * name has no '+' nor space; the broker id has no space); the origin is
 * "<key name>/<tenant>". Base64 is the standard alphabet with padding (RFC 4648 §4).
 * Pure functions: any thread.
 */
#ifndef BRK_NOTE_H
#define BRK_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "brk_crypto.h"
#include "brk_merkle.h"

#define BRK_NOTE_NAME_MAX 128    /* key name bytes (broker ids are shorter) */
#define BRK_NOTE_ORIGIN_MAX 256  /* origin bytes */
#define BRK_NOTE_MAX 1024        /* a whole signed checkpoint note */
#define BRK_NOTE_VKEY_MAX 256    /* a verifier key string */
#define BRK_NOTE_ED25519 0x01    /* the signature type byte of Ed25519 note keys */

/* brk_note_key_name: the note key name for broker_id into out (BRK_NOTE_NAME_MAX + 1).
 * Returns 0 or BRK_EINVAL (too long). */
int brk_note_key_name(const char *broker_id, char *out);

/* brk_note_key_hash: the 4-byte key hash of (name, Ed25519 public key) as a uint32. */
uint32_t brk_note_key_hash(const char *name, const uint8_t pub[BRK_ED25519_PUB_LEN]);

/* brk_note_verifier_key: "<name>+<hash hex>+<base64(0x01 || pub)>" into out
 * (BRK_NOTE_VKEY_MAX). Returns 0 or BRK_EINVAL (too long). */
int brk_note_verifier_key(const char *name, const uint8_t pub[BRK_ED25519_PUB_LEN], char *out);

/* brk_b64_std: standard padded base64 of (p, n) into out (4 * ((n + 2) / 3) + 1 bytes). */
void brk_b64_std(const uint8_t *p, size_t n, char *out);

/*
 * brk_note_checkpoint: the signed checkpoint note for (origin, size, root), signed with kr's
 * current key under the key name name, into out (BRK_NOTE_MAX). Returns 0, BRK_EINVAL
 * (origin or name unusable: empty, a newline, too long) or BRK_ECRYPTO.
 */
int brk_note_checkpoint(const brk_keyring_t *kr, const char *name, const char *origin,
                        uint64_t size, const brk_mhash_t root, char *out);

#endif
