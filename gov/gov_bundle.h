/*
 * gov_bundle: the audit bundle format (GET /governance/session/{context_id}/bundle) and its
 * offline check (gsap-broker verify). A bundle is one JSON object:
 *
 *   {"format": GOV_BUNDLE_FORMAT, "kind": "session", "context_id",
 *    "broker": {"broker_id", "current_key_id", "keys": [{"key_id", "alg", "public_key",
 *               "current"}]},                 (as /.well-known/gsap-broker.json gives them)
 *    "acs": [{"ac": <the signed AC as issued>, "status", "elevation"}],
 *    "receipts": [{"sequence", "cr_cid", "chronicle_cid", "prev_lineage_cid", "lineage_cid",
 *                  "cr": <the CR as stored>, "inclusion": {"leaf_index", "tree_size",
 *                  "hashes"} or null}],      (in sequence order, every receipt)
 *                  "agent_passport_cid": the passport the CR's agent_signature was
 *                  verified with, or null},
 *    "denials": [<signed denial receipts>],
 *    "passports": [<agent passports as stored, gov_passport.h>],   (absent: none)
 *    "checkpoint": {"origin", "size", "root_hash", "key_name", "note"} or null}
 *
 * What the check covers: every AC's signature by the bundle key its key_id names and its
 * ac_cid (a self-authorized AC is unsigned: its ac_cid only); every denial's signature and
 * denial_cid; each receipt's cr_cid and chronicle_cid recomputed from "cr", its context and
 * its lineage step (gov_lineage_cid over the AC's ac_cid, prev link, sequence from 1 without
 * gap); each receipt's inclusion proof (RFC 9162) of its lineage CID against the checkpoint's
 * root; the checkpoint's fields against its note, and the note's Ed25519 signature by a
 * bundle key under the key name of broker_id; each key's id against its public key; each
 * agent passport's own signature and its issuer's countersignature (gov_passport_check, no
 * clock: the window is the broker's to apply when the receipt arrives), and each receipt that
 * names a passport: the passport is in the bundle, is the CR's agent_did, and the CR's
 * agent_signature verifies with its key.
 * Not covered (nobody signs them, they are the broker's current view): an AC's "status" and
 * "elevation" (its approvals), and a key's "current" flag; which issuers the tenant trusted,
 * and a receipt whose agent_passport_cid is null (the broker flagged it and it names no
 * passport to check).
 * The keys travel in the bundle, so whoever forges a bundle can bring their own: a verifier
 * that pins the broker's published key document (/.well-known/gsap-broker.json, kept apart)
 * also checks that broker_id is that document's and every bundle key is one of its keys.
 *
 * The invoice bundle ("kind": "invoice") is described in docs/protocol.md and checked by
 * gov_bundle_verify_stream (gov_invbundle.c), which reads either kind from a stream.
 *
 * Pure functions; any thread.
 */
#ifndef GOV_BUNDLE_H
#define GOV_BUNDLE_H

#include <jansson.h>
#include <stdio.h>

#define GOV_BUNDLE_FORMAT "gsap-audit-bundle/1"
#define GOV_BUNDLE_KIND_SESSION "session"
#define GOV_BUNDLE_KIND_INVOICE "invoice"

/* One check's outcome: ok 1 (holds) or 0, item names what was checked (e.g.
 * "receipts[2].lineage_cid"), detail says why it failed ("" when ok). */
typedef void (*gov_bundle_report_fn)(void *arg, int ok, const char *item, const char *detail);

/*
 * gov_bundle_verify: runs every check of bundle b (not changed), in document order, calling
 * report (may be NULL) once per check. pinned (may be NULL) is the broker's published key
 * document to hold the bundle's keys against. Returns the number of failed checks (0:
 * everything holds); a bundle that is not one (wrong format, members missing) fails a check
 * naming the member.
 */
int gov_bundle_verify(const json_t *b, const json_t *pinned, gov_bundle_report_fn report,
                      void *arg);

/* The invoice bundle (docs/protocol.md, "GET /billing/invoices/{invoice_id}/bundle"):
 * {"format", "kind": "invoice", "broker", "invoice", "rate_cards", "lines"} in this order,
 * lines last, read one at a time. */
#define GOV_INVBUNDLE_LINE_MAX (8u << 20) /* bytes of one line (a CR is at most 1 MiB) */
#define GOV_INVBUNDLE_CARDS_MAX 256       /* rate-card versions one bundle may carry */
#define GOV_INVBUNDLE_CTX_CACHE 4096      /* contexts whose last receipt the verifier recalls
                                           * to check the next one's link */

/*
 * gov_bundle_verify_stream: reads a bundle of either kind from f and checks it, reporting as
 * gov_bundle_verify. Everything but an invoice bundle's lines is held, at most head_max bytes
 * together; an invoice bundle's lines are read and checked one at a time (each at most
 * GOV_INVBUNDLE_LINE_MAX bytes), so its memory does not grow with the invoice. Input that is
 * not a bundle (not JSON, cut, a duplicate member, members out of order) fails a check.
 * Returns the number of failed checks, or BRK_ETOOBIG when the head passed head_max.
 */
int gov_bundle_verify_stream(FILE *f, size_t head_max, const json_t *pinned,
                             gov_bundle_report_fn report, void *arg);

#endif
