// gsap_oracle: independent checks for the test suite, written against public libraries
// (canonicalize: RFC 8785; @noble/ed25519: RFC 8032) rather than the broker's own code.
//
//   node gsap_oracle.mjs cid FILE            -> the CID of the JSON in FILE
//   node gsap_oracle.mjs verify FILE PUBKEY  -> "ok <cid>" when FILE's document (an AC or a
//        denial receipt) carries a valid signature by PUBKEY (base64url, raw 32 bytes) over
//        its canonical form without "signature" and its CID field, and that CID matches
//   node gsap_oracle.mjs lineage AC_CID CHRONICLE_CID CR_CID PREV|null SEQ -> the lineage CID
//   node gsap_oracle.mjs merkle FILE         -> "sha256:<hex>", the RFC 6962 tree head over the
//        CIDs in FILE (one per line, in order), each leaf the CID's ASCII bytes (invoice lines_root)
//   (verify also takes credit notes, invoices and delegations: their CID fields are credit_cid
//        (a credit note also names its invoice's invoice_cid), invoice_cid and delegation_cid)
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import canonicalize from 'canonicalize';
import * as ed from '@noble/ed25519';

ed.etc.sha512Sync = (...m) => createHash('sha512').update(ed.etc.concatBytes(...m)).digest();

const cid = (v) => 'sha256:' + createHash('sha256').update(canonicalize(v), 'utf8').digest('hex');
const b64url = (s) => Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === 'cid') {
    console.log(cid(JSON.parse(readFileSync(args[0], 'utf8'))));
  } else if (cmd === 'verify') {
    const doc = JSON.parse(readFileSync(args[0], 'utf8'));
    const cidField = ['credit_cid', 'invoice_cid', 'delegation_cid'].find((f) => f in doc) ??
      ('ac_cid' in doc ? 'ac_cid' : 'denial_cid');
    const { signature, [cidField]: claimed, ...rest } = doc;
    if (!signature.startsWith('ed25519:')) throw new Error('signature is not ed25519:');
    const msg = Buffer.from(canonicalize(rest), 'utf8');
    const ok = ed.verify(b64url(signature.slice(8)), msg, b64url(args[1]));
    const computed = cid(rest);
    if (!ok) throw new Error('signature does not verify');
    if (computed !== claimed) throw new Error(`cid ${claimed} != ${computed}`);
    console.log('ok ' + computed);
  } else if (cmd === 'lineage') {
    const [ac_cid, chronicle_cid, cr_cid, prev, seq] = args;
    console.log(cid({ ac_cid, cr_cid, chronicle_cid,
                      prev_lineage_cid: prev === 'null' ? null : prev, sequence: Number(seq) }));
  } else if (cmd === 'merkle') {
    // RFC 6962 2.1: MTH({}) = SHA-256(), MTH({d0}) = SHA-256(0x00 || d0),
    // MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])), k the largest power of 2 < n.
    const sha = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();
    const mth = (d) => {
      if (d.length === 0) return sha(Buffer.alloc(0));
      if (d.length === 1) return sha(Buffer.from([0]), Buffer.from(d[0], 'ascii'));
      let k = 1;
      while (k * 2 < d.length) k *= 2;
      return sha(Buffer.from([1]), mth(d.slice(0, k)), mth(d.slice(k)));
    };
    const cids = readFileSync(args[0], 'utf8').split('\n').filter((l) => l.length > 0);
    console.log('sha256:' + mth(cids).toString('hex'));
  } else {
    throw new Error('usage: gsap_oracle.mjs cid|verify|lineage|merkle ...');
  }
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
