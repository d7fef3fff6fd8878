/*
 * brk_keyring_int: the key ring's on-disk helpers (brk_keyfile.c), shared by brk_keyring.c
 * only; nothing outside broker/ includes this header. The file layout and its invariants are
 * described at the top of brk_keyfile.c. Every function is stateless and safe from any
 * thread, returns 0 or a negative enum brk_err, and logs its own failures through brk_log.
 */
#ifndef BRK_KEYRING_INT_H
#define BRK_KEYRING_INT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "brk_crypto.h"

/* brk__keydir_ensure: creates dir (0700) when missing; BRK_EIO if it is not a directory. */
int brk__keydir_ensure(const char *dir);

/* brk__key_path: "<dir>/<id>.pem" into buf (capacity cap). Returns 0 or BRK_EIO (too long). */
int brk__key_path(char *buf, size_t cap, const char *dir, const char *id);

/* brk__pkey_public: the raw public half of an Ed25519 key. Returns 0 or BRK_ECRYPTO. */
int brk__pkey_public(EVP_PKEY *pkey, uint8_t pub[BRK_ED25519_PUB_LEN]);

/* brk__key_load: reads "<dir>/<id>.pem". On success *out (when out is not NULL) owns the
 * private key and pub holds its public half. Refuses files that group or others can access
 * and keys whose id does not match their file name. Returns 0, BRK_EIO or BRK_ECRYPTO. */
int brk__key_load(const char *dir, const char *id, EVP_PKEY **out,
                  uint8_t pub[BRK_ED25519_PUB_LEN]);

/* brk__key_write: writes pkey to a new "<dir>/<id>.pem", mode 0600 from the first instant,
 * fsync'd; removes the file again on failure. pkey stays the caller's. */
int brk__key_write(const char *dir, const char *id, EVP_PKEY *pkey);

/* brk__current_write: atomically points "<dir>/current" at id (private temporary file,
 * fsync, rename, fsync of dir). */
int brk__current_write(const char *dir, const char *id);

/* brk__current_read: the id in "<dir>/current" into id. Returns 0, BRK_ENOTFOUND (no such
 * file) or BRK_EIO (unreadable, or not a key id). */
int brk__current_read(const char *dir, char id[BRK_KEY_ID_LEN + 1]);

/* brk__key_list_others: the key ids in dir other than skip, sorted. *ids is a malloc'd array
 * of *n ids (BRK_KEY_ID_LEN + 1 bytes each), owned by the caller (free). */
int brk__key_list_others(const char *dir, const char *skip, char (**ids)[BRK_KEY_ID_LEN + 1],
                         size_t *n);

#endif
