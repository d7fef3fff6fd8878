// aps_passport.mjs: Agent Passport System SDK (npm agent-passport-system) as the independent
// oracle of it_passport. Every passport and agent signature here is made by the SDK itself,
// so the broker is checked against what the SDK really signs, byte for byte.
//
//   node aps_passport.mjs issuer
//       -> {"privateKey", "publicKey"}                      a fresh issuer key pair (hex)
//   node aps_passport.mjs passport <issuerPrivHex> [optionsJson]
//       -> {"signed": <signed passport>, "agent": {"privateKey", "publicKey"}, "did"}
//          optionsJson may set expiresInDays, validityWindow, pad (bytes of metadata.pad)
//   node aps_passport.mjs sign-cr <agentPrivHex> <crFile>
//       -> the CR with "agent_signature": "ed25519:" + base64url(Ed25519 over JCS(CR))
//   node aps_passport.mjs verify <signedFile> <issuerPubHex>
//       -> {"valid", "errors"} from the SDK's verifyPassport with that trusted issuer
import { readFileSync } from 'node:fs';
import {
  createPassport, countersignPassport, generateKeyPair, sign, createDID, canonicalizeJCS,
  verifyPassport,
} from 'agent-passport-system';

const [cmd, a1, a2] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

if (cmd === 'issuer') {
  out(generateKeyPair());
} else if (cmd === 'passport') {
  const o = a2 ? JSON.parse(a2) : {};
  const { signedPassport, keyPair } = createPassport({
    agentId: o.agentId || 'agent-ci-runner',
    agentName: o.agentName || 'CI runner',
    ownerAlias: 'acme-platform',
    mission: 'run governed commands for the build',
    capabilities: ['code_execution', 'git_operations'],
    runtime: { platform: 'node', models: ['none'], toolsCount: 3, memoryType: 'none' },
    ...(o.expiresInDays !== undefined ? { expiresInDays: o.expiresInDays } : {}),
    ...(o.validityWindow ? { validityWindow: o.validityWindow } : {}),
    metadata: o.pad !== undefined ? { pad: 'x'.repeat(o.pad) } : {},
  });
  const signed = countersignPassport(signedPassport, a1, 'acme-ca');
  out({ signed, agent: keyPair, did: createDID(keyPair.publicKey) });
} else if (cmd === 'sign-cr') {
  const cr = JSON.parse(readFileSync(a2, 'utf8'));
  delete cr.agent_signature;
  const sigHex = sign(canonicalizeJCS(cr), a1);
  cr.agent_signature = 'ed25519:' + Buffer.from(sigHex, 'hex').toString('base64url');
  out(cr);
} else if (cmd === 'verify') {
  const r = verifyPassport(JSON.parse(readFileSync(a1, 'utf8')), { trustedIssuers: [a2] });
  out({ valid: r.valid, errors: r.errors });
} else if (cmd === 'canon-len') {
  // bytes of the RFC 8785 form of the signed passport's "passport" member
  const s = JSON.parse(readFileSync(a1, 'utf8'));
  out({ len: Buffer.byteLength(canonicalizeJCS(s.passport), 'utf8') });
} else {
  process.stderr.write('usage: aps_passport.mjs issuer | passport | sign-cr | verify\n');
  process.exit(2);
}
