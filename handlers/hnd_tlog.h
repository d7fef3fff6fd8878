/*
 * hnd_tlog: the transparency-log routes (hnd_tlog.c), and the steps of them that the audit
 * bundle (hnd_bundle.c) shares: the log's names, the latest checkpoint (made when due) and
 * the stored leaf hashes. Request loop only.
 */
#ifndef HND_TLOG_H
#define HND_TLOG_H

#include "brk_http.h"
#include "brk_jcs.h"
#include "brk_merkle.h"
#include "brk_note.h"

#define HND_TLOG_PROOF_MAX_LEAVES (1u << 18) /* leaf hashes read for one proof (8 MiB) */

/* The state of a log request. A caller of hnd_tlog_latest keeps one as the first member of
 * its r->ctx (the step reads r->ctx as this struct). */
typedef struct hnd_tlog_req {
    char cid[BRK_CID_LEN + 1];
    int has_cid;
    unsigned long long size, from, to; /* 0: not given */
    /* the checkpoint the reply refers to */
    unsigned long long cp_size;
    brk_mhash_t cp_root;
    const char *cp_note; /* request memory */
    char key_name[BRK_NOTE_NAME_MAX + 1];
    char origin[BRK_NOTE_ORIGIN_MAX + 1];
    void (*then)(brk_req_t *r);
} hnd_tlog_req_t;

/* hnd_tlog_names: fills x's key name and origin for r's tenant. 0, or -1 after answering 500
 * (the broker id cannot name a log). */
int hnd_tlog_names(brk_req_t *r, hnd_tlog_req_t *x);

/* hnd_tlog_latest: finds the tenant's latest checkpoint, signing and storing one first when
 * it is due (docs/protocol.md), fills x->cp_* and calls then(r); answers 404 log_empty (and
 * does not call then) when the log is empty, or the database error. r->ctx must start with
 * x. */
void hnd_tlog_latest(brk_req_t *r, hnd_tlog_req_t *x, void (*then)(brk_req_t *r));

/* hnd_tlog_leaves_of: the concatenated hex leaf hashes hex as an array of want hashes
 * (malloc'd, caller frees), or NULL when malformed or out of memory. */
brk_mhash_t *hnd_tlog_leaves_of(const char *hex, unsigned long long want);

#endif
