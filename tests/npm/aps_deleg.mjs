// aps_deleg: delegations made by the Agent Passport System SDK (npm agent-passport-system),
// for it_deleg: the broker must accept what the SDK signs, byte for byte.
//
//   node aps_deleg.mjs keygen                       -> {"publicKey","privateKey"} (hex)
//   node aps_deleg.mjs proof PRIV DID               -> hex signature over
//        "gsap-delegation-signing-key:" + DID (the signing-key registration proof)
//   node aps_deleg.mjs create PRIV PUB TO SCOPE SPEND MAXDEPTH HOURS
//        -> createDelegation({delegatedBy: PUB, delegatedTo: TO, scope: JSON SCOPE,
//           spendLimit: SPEND (or "none"), maxDepth, expiresInHours}) as JSON
//   node aps_deleg.mjs sub PARENT_FILE PRIV TO SCOPE SPEND
//        -> subDelegate({parentDelegation, delegatedTo: TO, scope, spendLimit, privateKey})
import { readFileSync } from 'node:fs';
import { createDelegation, subDelegate, generateKeyPair, sign } from 'agent-passport-system';

const [cmd, ...a] = process.argv.slice(2);
const spend = (s) => (s === 'none' ? undefined : Number(s));
try {
  if (cmd === 'keygen') {
    console.log(JSON.stringify(generateKeyPair()));
  } else if (cmd === 'proof') {
    console.log(sign('gsap-delegation-signing-key:' + a[1], a[0]));
  } else if (cmd === 'create') {
    console.log(JSON.stringify(createDelegation({
      privateKey: a[0], delegatedBy: a[1], delegatedTo: a[2], scope: JSON.parse(a[3]),
      spendLimit: spend(a[4]), maxDepth: Number(a[5]), expiresInHours: Number(a[6]),
    })));
  } else if (cmd === 'sub') {
    const parent = JSON.parse(readFileSync(a[0], 'utf8'));
    console.log(JSON.stringify(subDelegate({
      parentDelegation: parent, privateKey: a[1], delegatedTo: a[2], scope: JSON.parse(a[3]),
      spendLimit: spend(a[4]),
    })));
  } else {
    throw new Error('unknown command ' + cmd);
  }
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
