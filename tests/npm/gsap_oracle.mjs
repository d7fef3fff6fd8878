// gsap_oracle: independent checks for the test suite, written against public libraries
// (canonicalize: RFC 8785; @noble/ed25519: RFC 8032) rather than the broker's own code.
//
//   node gsap_oracle.mjs cid FILE            -> the CID of the JSON in FILE
//   node gsap_oracle.mjs verify FILE PUBKEY  -> "ok <cid>" when FILE's document (an AC or a
//        denial receipt) carries a valid signature by PUBKEY (base64url, raw 32 bytes) over
//        its canonical form without "signature" and its CID field, and that CID matches
//   node gsap_oracle.mjs lineage AC_CID CHRONICLE_CID CR_CID PREV|null SEQ -> the lineage CID
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
    const cidField = 'ac_cid' in doc ? 'ac_cid' : 'denial_cid';
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
  } else {
    throw new Error('usage: gsap_oracle.mjs cid|verify|lineage ...');
  }
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
