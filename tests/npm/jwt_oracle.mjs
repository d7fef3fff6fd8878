// jwt_oracle: keys, JWKS documents and JWTs for it_jwt, made with npm `jose` (an independent
// JOSE implementation), and a tiny JWKS server on 127.0.0.1.
//
//   node jwt_oracle.mjs keys DIR
//        -> DIR/keys.json (private JWKs by kid: rsa1, ec1, ed1, rsa2, beta1, gamma1, small1) and
//           public JWKS files DIR/jwks_<name>.json for: acme (rsa1, ec1, ed1), rsa2, beta
//           (beta1), gamma (gamma1), small (small1: an RSA-1024 key)
//   node jwt_oracle.mjs tokens DIR SPEC.json
//        -> one JSON object on stdout, name -> compact token, for SPEC = {name: {kid, alg,
//           claims, header?, mode?, length?, signer?}} (signer: the kid of the key that
//           signs, when it is not the header's kid). mode: "sign" (default), "none" (alg none,
//           no signature), "hs256-pem" (HS256 with the PEM of kid's public key as the HMAC
//           secret), "badsig" (a valid token with its signature's first byte changed).
//           length: pad the claims ("pad") and the header ("hp") so the token has exactly
//           this many bytes. claims_bytes: pad the claims so their JSON has exactly this
//           many bytes.
//   node jwt_oracle.mjs serve FILE PORTFILE
//        -> serves FILE (re-read on every request) at any path on 127.0.0.1, writes its port
//           to PORTFILE; runs until killed.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createServer } from 'node:http';
import * as jose from 'jose';

const [cmd, ...args] = process.argv.slice(2);
const b64 = (s) => Buffer.from(s).toString('base64url');

async function keys(dir) {
  const specs = { rsa1: 'RS256', ec1: 'ES256', ed1: 'EdDSA', rsa2: 'RS256', beta1: 'ES256',
                  gamma1: 'EdDSA', small1: 'RS256' };
  const priv = {}, pub = {};
  for (const [kid, alg] of Object.entries(specs)) {
    const opts = { extractable: true };
    if (alg === 'EdDSA') opts.crv = 'Ed25519';
    // jose refuses to make RSA keys under 2048 bits; node:crypto makes the small one
    const { publicKey, privateKey } = kid === 'small1'
      ? generateKeyPairSync('rsa', { modulusLength: 1024 })
      : await jose.generateKeyPair(alg, opts);
    priv[kid] = { alg, jwk: await jose.exportJWK(privateKey) };
    pub[kid] = { ...(await jose.exportJWK(publicKey)), kid, use: 'sig' };
  }
  writeFileSync(`${dir}/keys.json`, JSON.stringify(priv));
  const set = (name, kids) =>
    writeFileSync(`${dir}/jwks_${name}.json`, JSON.stringify({ keys: kids.map((k) => pub[k]) }));
  set('acme', ['rsa1', 'ec1', 'ed1']);
  set('rsa1', ['rsa1']);
  set('rsa2', ['rsa2']);
  set('beta', ['beta1']);
  set('gamma', ['gamma1']);
  set('small', ['small1']);
}

async function token(priv, s) {
  const k = priv[s.signer ?? s.kid] ?? priv.rsa1;
  const alg = s.alg ?? k.alg;
  const header = { alg, kid: s.kid, typ: 'JWT', ...(s.header ?? {}) };
  const claims = { ...s.claims };
  const compact = async () => {
    if (s.mode === 'none') return `${b64(JSON.stringify({ ...header, alg: 'none' }))}.${b64(JSON.stringify(claims))}.`;
    if (s.mode === 'hs256-pem') {
      const pem = createPublicKey({ key: { ...k.jwk, d: undefined, p: undefined, q: undefined,
        dp: undefined, dq: undefined, qi: undefined }, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      return new jose.SignJWT(claims).setProtectedHeader({ ...header, alg: 'HS256' })
        .sign(new TextEncoder().encode(pem));
    }
    const key = await jose.importJWK(k.jwk, k.alg);
    const t = await new jose.SignJWT(claims).setProtectedHeader(header).sign(key);
    if (s.mode === 'badsig') {
      const [h, p, sig] = t.split('.');
      const raw = Buffer.from(sig, 'base64url');
      raw[0] ^= 0x01;
      return `${h}.${p}.${raw.toString('base64url')}`;
    }
    return t;
  };
  if (s.claims_bytes) {
    // the claims' JSON text gets exactly s.claims_bytes bytes (ASCII padding)
    claims.pad = '';
    claims.pad = 'x'.repeat(s.claims_bytes - JSON.stringify(claims).length);
    return compact();
  }
  if (!s.length) return compact();
  // Pad until the token is exactly s.length bytes: the claims grow in steps of 4 base64 chars
  // per 3 bytes, the header's extra member shifts the remainder.
  for (let hp = 0; hp < 4; hp++) {
    header.hp = 'x'.repeat(hp);
    claims.pad = '';
    const base = (await compact()).length;
    let lo = 0, hi = s.length;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      claims.pad = 'x'.repeat(mid);
      const n = (await compact()).length;
      if (n === s.length) return compact();
      if (n < s.length) lo = mid + 1; else hi = mid - 1;
    }
    void base;
  }
  throw new Error(`cannot reach length ${s.length}`);
}

try {
  if (cmd === 'keys') {
    await keys(args[0]);
  } else if (cmd === 'tokens') {
    const priv = JSON.parse(readFileSync(`${args[0]}/keys.json`, 'utf8'));
    const spec = JSON.parse(readFileSync(args[1], 'utf8'));
    const out = {};
    for (const [name, s] of Object.entries(spec)) out[name] = await token(priv, s);
    process.stdout.write(JSON.stringify(out) + '\n');
  } else if (cmd === 'serve') {
    const srv = createServer((req, res) => {
      const body = readFileSync(args[0]);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
    srv.listen(0, '127.0.0.1', () => {
      writeFileSync(`${args[1]}.tmp`, String(srv.address().port));
      renameSync(`${args[1]}.tmp`, args[1]);
    });
  } else {
    throw new Error('usage: jwt_oracle.mjs keys DIR | tokens DIR SPEC | serve FILE PORTFILE');
  }
} catch (e) {
  console.error(String(e));
  process.exit(1);
}
