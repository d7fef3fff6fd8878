// verify_page: the JavaScript of the in-browser verifier (handlers/verify.html), run in node
// (same WebCrypto interface: SHA-256 and Ed25519) against independent references.
//
//   node verify_page.mjs jcs VERIFY_HTML JCS_DIR
//       RFC 8785: every vector of JCS_DIR (input/*.json -> output/*.json) byte for byte, both
//       through the page's own JSON reader and through JSON.parse; and the npm `canonicalize`
//       package (the oracle) agrees with the page on thousands of random values.
//   node verify_page.mjs parse VERIFY_HTML
//       the page's JSON reader refuses what jansson refuses (duplicates, lone surrogates,
//       \u0000, integers past int64, trailing bytes ...) and reads the rest as JSON.parse does.
//   node verify_page.mjs compare VERIFY_HTML BROKER_BIN BUNDLE.json [KEYS.json]
//       the page's checks and `gsap-broker verify` give the same list of PASS/FAIL items (and
//       messages, in the same order) for the bundle and for every one-scalar change, deletion
//       and nulling of it,
//       a self-authorized AC, and pinned (--keys) to KEYS.json and to altered copies of it;
//       a session bundle with an agent passport also gets passport and agent-signature
//       variants a one-scalar change cannot make (unsigned members, other spellings, limits).
// Prints one line per failure and exits 1 on any; "ok ..." and 0 otherwise.
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

export function loadPage(htmlPath) {
  const html = readFileSync(htmlPath, 'utf8');
  const m = /<script>([\s\S]*)<\/script>/.exec(html);
  if (!m) throw new Error('no <script> in ' + htmlPath);
  let api = null;
  globalThis.gsapVerifyExport = (a) => { api = a; };
  new Function(m[1])();
  delete globalThis.gsapVerifyExport;
  if (!api) throw new Error('the page script exported nothing');
  return api;
}

let failures = 0;
const fail = (msg) => { failures++; console.log('FAIL ' + msg); };

function testJcs(api, dir) {
  let n = 0;
  for (const f of readdirSync(join(dir, 'input')).sort()) {
    const input = readFileSync(join(dir, 'input', f), 'utf8');
    const want = readFileSync(join(dir, 'output', f), 'utf8');
    const mine = api.jcs(api.parseJson(input));
    if (mine !== want) fail(`jcs ${f}: page reader gives ${JSON.stringify(mine)}`);
    if (api.jcs(JSON.parse(input)) !== want) fail(`jcs ${f}: JSON.parse + page jcs differs`);
    if (canonicalize(JSON.parse(input)) !== want) fail(`jcs ${f}: the oracle itself differs`);
    n++;
  }
  if (n < 6) fail(`only ${n} RFC 8785 vectors found in ${dir}`);
  // random values: numbers from random bit patterns, strings over the awkward code points
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
  const pick = (a) => a[Math.floor(rnd() * a.length)];
  const chars = ['a', 'Z', '"', '\\', '\n', '\u0001', '\u001f', '\u007f', '\u2028', '\u00e9',
    '\ue000', '\uffff', '\ud83d\ude00', '\ud800\udc00', '€', '/', ' '];
  const num = () => {
    const dv = new DataView(new ArrayBuffer(8));
    dv.setUint32(0, Math.floor(rnd() * 2 ** 32));
    dv.setUint32(4, Math.floor(rnd() * 2 ** 32));
    const d = dv.getFloat64(0);
    return isFinite(d) ? d : pick([0, -0, 1e21, 1e-7, 123456789012345680000, 5e-324, 0.1]);
  };
  const str = () => Array.from({ length: Math.floor(rnd() * 6) }, () => pick(chars)).join('');
  const val = (d) => {
    const r = rnd();
    if (d > 3 || r < 0.3) return pick([() => num(), () => str(), () => true, () => false, () => null,
      () => Math.floor(rnd() * 1e6)])();
    if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 4) }, () => val(d + 1));
    const o = {};
    for (let k = Math.floor(rnd() * 5); k > 0; k--) o[str()] = val(d + 1);
    return o;
  };
  for (let k = 0; k < 5000; k++) {
    const v = val(0);
    const want = canonicalize(v), mine = api.jcs(v);
    if (mine !== want) { fail(`jcs random: ${JSON.stringify(v)}: ${mine} != ${want}`); break; }
    // and through the page's reader, as a bundle's members are read
    if (typeof v === 'object' && v !== null && api.jcs(api.parseJson(JSON.stringify(v))) !== want) {
      fail(`jcs random via reader: ${JSON.stringify(v)}`);
      break;
    }
  }
  for (const bad of [NaN, Infinity, '\ud800', { '\udc00': 1 }]) {
    let threw = false;
    try { api.jcs(bad); } catch (e) { threw = true; }
    if (!threw) fail(`jcs accepted ${String(bad)}`);
  }
  let deep = 1;
  for (let k = 0; k < 65; k++) deep = [deep]; // 65 nested containers, as unit_jcs
  try { api.jcs(deep); fail('jcs accepted 65 nested containers'); } catch (e) { /* refused */ }
  try { api.jcs(deep[0]); } catch (e) { fail('jcs refused 64 nested containers'); }
  console.log(`ok jcs: ${n} RFC 8785 vectors, 5000 random values`);
}

function testParse(api) {
  const refused = ['{"a":1,"a":2}', '{"a":"\\ud800"}', '{"a":"\\udc00x"}', '{"a":"\\u0000"}',
    '{"\\u0000":1}', '{"a":9223372036854775808}', '{"a":-9223372036854775809}', '{"a":1e400}',
    '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":+1}', '{} x', '\ufeff{}', '"x"', '1', '{"a":"\u0001"}',
    '{"a":tru}', "{'a':1}", '{"a":1,}', '[1,]', '{"a" 1}', '', '{"a":"\\x"}', '{"a":NaN}'];
  for (const t of refused) {
    let ok = false;
    try { api.parseJson(t); } catch (e) { ok = e instanceof SyntaxError; }
    if (!ok) fail(`parse accepted ${JSON.stringify(t)}`);
  }
  const accepted = ['{}', ' {"a" : [1, -0, 2.5e3, 1E-2, true, false, null, "\\u00e9\\ud83d\\ude00\\/\\n"]} ',
    '{"a":9223372036854775807,"b":-9223372036854775808}', '[{"__proto__":1}]', '{"constructor":{}}'];
  for (const t of accepted) {
    try {
      const v = api.parseJson(t);
      if (api.jcs(v) !== canonicalize(JSON.parse(t))) fail(`parse ${t}: reads differently`);
    } catch (e) { fail(`parse refused ${JSON.stringify(t)}: ${e.message}`); }
  }
  const long = 'x\u00e9'.repeat(10 * 1024 * 1024);
  if (api.parseJson(`{"a":"${long}"}`).a !== long) fail('parse: a 20 MiB string is not read whole');
  const big = api.parseJson('{"a":9223372036854775807}').a;
  if (big.big !== 9223372036854775807n) fail('parse: an int64 is not kept exactly');
  if (Object.getPrototypeOf(api.parseJson('{"__proto__":{"x":1}}')) !== null) fail('parse: prototype');
  console.log(`ok parse: ${refused.length} refused, ${accepted.length} accepted`);
}

// `gsap-broker verify FILE` as a list of "PASS item" / "FAIL item" (the detail dropped: the
// items and their verdicts are what must agree; the messages are compared too when present).
function cli(bin, path, keysPath) {
  let out;
  try {
    out = execFileSync(bin, ['verify', ...(keysPath ? ['--keys', keysPath] : []), path], { encoding: 'utf8' });
  } catch (e) {
    out = e.stdout;
  }
  const lines = out.split('\n').filter((l) => /^(PASS|FAIL) /.test(l) && !l.startsWith('FAIL ' + path + ':'))
    .map((l) => l.replace(/^(FAIL [^:]*): .*$/, '$1') + (l.startsWith('FAIL') ? ' :' + l.slice(l.indexOf(': ') + 2) : ''));
  return noBundle(lines);
}
async function page(api, text, keysText) {
  const v = await api.verifyText(text, keysText ? api.keyDocument(keysText) : null);
  return noBundle(v.results.map((r) => (r.ok ? 'PASS ' + r.item : 'FAIL ' + r.item + ' :' + r.detail)));
}
// no bundle at all: "FAIL <path>: not a JSON object" before the streamed reader,
// "FAIL bundle: not a JSON object (...)" since; either way nothing was checked
const noBundle = (lines) => (lines.length === 1 && lines[0].startsWith('FAIL bundle :') ? [] : lines);

async function testCompare(api, bin, bundlePath, keysPath) {
  const text = readFileSync(bundlePath, 'utf8');
  const dir = mkdtempSync(join(tmpdir(), 'gsap-verify-page-'));
  const file = join(dir, 'b.json'), kfile = join(dir, 'k.json');
  let n = 0, honestFails = 0;
  const compare = async (what, t, keysText) => {
    writeFileSync(file, t);
    if (keysText) writeFileSync(kfile, keysText);
    const want = cli(bin, file, keysText ? kfile : null), got = await page(api, t, keysText);
    n++;
    // the same checks, verdicts and messages, in the same order (a passport's checks come
    // after the checkpoint, a receipt's agent signature before its inclusion proof)
    if (JSON.stringify(want) !== JSON.stringify(got))
      fail(`${what}: page and gsap-broker verify differ\n  cli:  ${want.join(' | ')}\n  page: ${got.join(' | ')}`);
    return got;
  };
  try {
    const honest = await compare('the honest bundle', text);
    honestFails = honest.filter((l) => l.startsWith('FAIL')).length;
    if (honest.length < 10 || honestFails) fail(`the honest bundle: ${honestFails} of ${honest.length} checks fail`);
    const root = JSON.parse(text);
    const flip = (s) => {
      for (let k = 0; k < s.length; k++) {
        const i = (Math.floor(s.length / 2) + k) % s.length, c = s[i];
        if (/[a-zA-Z0-9]/.test(c)) {
          const d = c === 'z' ? 'y' : c === 'Z' ? 'Y' : c === '9' ? '8' : String.fromCharCode(c.charCodeAt(0) + 1);
          return s.slice(0, i) + d + s.slice(i + 1);
        }
      }
      return null;
    };
    const muts = [];
    const walk = (v, set, path) => {
      if (Array.isArray(v)) v.forEach((e, i) => walk(e, (x) => { v[i] = x; }, `${path}[${i}]`));
      else if (v !== null && typeof v === 'object') {
        for (const k of Object.keys(v)) {
          walk(v[k], (x) => { v[k] = x; }, `${path}.${k}`);
          muts.push([`${path}.${k} deleted`, () => { const o = v[k]; delete v[k]; return () => { v[k] = o; }; }]);
        }
      } else if (typeof v === 'string' && flip(v) !== null) muts.push([path, () => { set(flip(v)); return () => set(v); }]);
      else if (typeof v === 'number') muts.push([path, () => { set(v + 1); return () => set(v); }]);
      else if (typeof v === 'boolean') muts.push([path, () => { set(!v); return () => set(v); }]);
      if (path !== '') muts.push([`${path} = null`, () => { set(null); return () => set(v); }]);
    };
    walk(root, null, '');
    for (const [what, apply] of muts) {
      const undo = apply();
      await compare(what, JSON.stringify(root));
      undo();
    }
    // pinned to the published key document (--keys), to another broker's, to a stranger key
    if (keysPath) {
      const keys = readFileSync(keysPath, 'utf8');
      const pinned = await compare('pinned', text, keys);
      if (!pinned.includes('PASS broker.keys pinned')) fail('pinned: the pin check does not hold');
      const other = JSON.parse(keys);
      other.broker_id += 'x';
      await compare('pinned to another broker id', text, JSON.stringify(other));
      other.broker_id = JSON.parse(keys).broker_id;
      other.keys = other.keys.map((k) => ({ ...k, public_key: flip(k.public_key) }));
      await compare('pinned to other keys', text, JSON.stringify(other));
    }
    // a self-authorized AC (unsigned: its ac_cid binds it), honest and changed
    if (root.kind === 'session') {
      const b = JSON.parse(text), ac = b.acs[0].ac;
      ac.self_authorized = true;
      ac.signature = null;
      const { ac_cid, signature, ...rest } = ac;
      ac.ac_cid = 'sha256:' + createHash('sha256').update(canonicalize(rest), 'utf8').digest('hex');
      const got = await compare('self-authorized AC', JSON.stringify(b));
      if (!got.includes('PASS acs[0].ac')) fail('self-authorized AC: its ac_cid check does not hold');
      ac.tenant = flip(ac.tenant);
      await compare('self-authorized AC changed', JSON.stringify(b));
    }
    // agent passports: what a one-scalar change cannot reach (members the signatures do not
    // cover, other spellings of a key or signature, limits, nesting), each checked alike
    if (root.kind === 'session' && Array.isArray(root.passports) && root.passports.length > 0) {
      const ai = root.receipts.findIndex((x) => typeof x.agent_passport_cid === 'string');
      if (!honest.includes('PASS passports[0]') || ai < 0 ||
        honest.filter((l) => l === `PASS receipts[${ai}].agent_signature`).length !== 3)
        fail('the honest bundle: its passport and agent signature are not all PASS');
      const deep = (n) => { let d = 'x'; for (let k = 0; k < n; k++) d = [d]; return d; };
      const sig = (b) => b.receipts[ai].cr.agent_signature;
      const setSig = (b, f) => { b.receipts[ai].cr.agent_signature = f(sig(b)); };
      const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const variants = [
        ['issuerId kept', (b) => { b.passports[0].issuerSignature.issuerId = 'acme-ca'; }],
        ['issuer signedAt kept', (b) => { b.passports[0].issuerSignature.signedAt = b.passports[0].signedAt; }],
        ['issuerId a number', (b) => { b.passports[0].issuerSignature.issuerId = 7; }],
        ['issuerId too long', (b) => { b.passports[0].issuerSignature.issuerId = 'x'.repeat(257); }],
        ['issuer signedAt too long', (b) => { b.passports[0].issuerSignature.signedAt = 'x'.repeat(41); }],
        ['unknown issuer member', (b) => { b.passports[0].issuerSignature.note = 'x'; }],
        ['unknown passport member', (b) => { b.passports[0].extra = 1; }],
        ['two unknown members', (b) => { b.passports[0].issuerSignature.zz = 1; b.passports[0].issuerSignature.aa = 2; }],
        ['unknown long member', (b) => { b.passports[0]['k'.repeat(100)] = 1; }],
        ['issuer key upper case', (b) => { const s = b.passports[0].issuerSignature; s.issuerPublicKey = s.issuerPublicKey.toUpperCase(); }],
        ['agent key upper case', (b) => { b.passports[0].passport.publicKey = b.passports[0].passport.publicKey.toUpperCase(); }],
        ['signature upper case', (b) => { b.passports[0].signature = b.passports[0].signature.toUpperCase(); }],
        ['agent key 63 digits', (b) => { b.passports[0].passport.publicKey = b.passports[0].passport.publicKey.slice(1); }],
        ['agent key 65 digits', (b) => { b.passports[0].passport.publicKey += '0'; }],
        ['agent key not hex', (b) => { b.passports[0].passport.publicKey = 'g' + b.passports[0].passport.publicKey.slice(1); }],
        ['agent key multibyte', (b) => { b.passports[0].passport.publicKey = '\u00e9' + b.passports[0].passport.publicKey.slice(2); }],
        ['issuer signature 127 digits', (b) => { const s = b.passports[0].issuerSignature; s.signature = s.signature.slice(1); }],
        ['signature 129 digits', (b) => { b.passports[0].signature += '0'; }],
        ['null member deep in the passport', (b) => { b.passports[0].passport.metadata = { a: [{ b: null }] }; }],
        ['null member past the depth bound', (b) => { b.passports[0].passport.metadata = [deep(70), { n: null }]; }],
        ['null member nested past the bound', (b) => { let d = { n: null }; for (let k = 0; k < 70; k++) d = [d]; b.passports[0].passport.metadata = d; }],
        ['passport nested too deep', (b) => { b.passports[0].passport.metadata = deep(70); }],
        ['passport over 8192 bytes', (b) => { b.passports[0].passport.metadata = { pad: 'x'.repeat(9000) }; }],
        ['expiresAt not a time', (b) => { b.passports[0].passport.expiresAt = 'tomorrow'; }],
        ['expiresAt a number', (b) => { b.passports[0].passport.expiresAt = 1; }],
        ['expiresAt too long', (b) => { b.passports[0].passport.expiresAt = '2026-01-01T00:00:00.' + '0'.repeat(30) + 'Z'; }],
        ['expiresAt Feb 30', (b) => { b.passports[0].passport.expiresAt = '2026-02-30T00:00:00Z'; }],
        ['notBefore not a time', (b) => { b.passports[0].passport.notBefore = 'now'; }],
        ['notBefore a time', (b) => { b.passports[0].passport.notBefore = '2026-01-01T00:00:00Z'; }],
        ['passport an array', (b) => { b.passports[0].passport = []; }],
        ['issuerSignature a string', (b) => { b.passports[0].issuerSignature = 'x'; }],
        ['passport entry a string', (b) => { b.passports[0] = 'x'; }],
        ['passports an object', (b) => { b.passports = { 0: b.passports[0] }; }],
        ['passports empty', (b) => { b.passports = []; }],
        ['passport twice', (b) => { b.passports.push(b.passports[0]); }],
        ['a broken passport first', (b) => { b.passports.unshift({ passport: {} }); }],
        ['passport cid a number', (b) => { b.receipts[ai].agent_passport_cid = 1; }],
        ['passport cid on another receipt', (b) => { b.receipts[(ai + 1) % b.receipts.length].agent_passport_cid = b.receipts[ai].agent_passport_cid; }],
        ['agent_did missing', (b) => { delete b.receipts[ai].cr.agent_did; }],
        ['agent signature padded', (b) => setSig(b, (s) => s + '==')],
        ['agent signature standard base64', (b) => setSig(b, (s) => s.replace(/-/g, '+').replace(/_/g, '/'))],
        ['agent signature unused bits set', (b) => setSig(b, (s) => s.slice(0, -1) + b64[(b64.indexOf(s.slice(-1)) + 1) % 64])],
        ['agent signature one byte short', (b) => setSig(b, (s) => s.slice(0, -3))],
        ['agent signature too long', (b) => setSig(b, (s) => s + 'A'.repeat(100))],
        ['agent signature prefix', (b) => setSig(b, (s) => 'Ed25519:' + s.slice(8))],
        ['agent signature hex', (b) => setSig(b, (s) => b.passports[0].signature)],
        ['agent signature a number', (b) => setSig(b, () => 5)],
        ['agent signature the broker one', (b) => setSig(b, () => b.acs[0].ac.signature)],
      ];
      // a null member just inside and just past the depth the null-member rule looks to
      for (let n = 58; n <= 66; n++)
        variants.push([`null member under ${n} arrays`, (b) => { let d = { n: null }; for (let k = 0; k < n; k++) d = [d]; b.passports[0].passport.metadata = d; }]);
      for (const [what, change] of variants) {
        const b = JSON.parse(text);
        change(b);
        await compare(`passport variant: ${what}`, JSON.stringify(b));
      }
    }
    // an invoice bundle: rate cards that are not valid (their card_cid recomputed, so the
    // card's own rules are reached), and received_at spellings the time parser must judge alike
    if (root.kind === 'invoice') {
      const cidOf = (v) => 'sha256:' + createHash('sha256').update(canonicalize(v), 'utf8').digest('hex');
      const cards = [
        (c) => { c.x = 1; }, (c) => { delete c.per_cr.failed; }, (c) => { c.per_cr.completed = -1; },
        (c) => { c.per_cr.completed = 1000000000001; }, (c) => { c.per_second = '1'; },
        (c) => { delete c.per_second; }, (c) => { c.per_cr = []; },
        (c) => { c.shell_class_multipliers = { Application: '1.5' }; },
        (c) => { c.shell_class_multipliers = { 'bad name': '1' }; },
        (c) => { c.shell_class_multipliers = 7; },
        (c) => { c.capability_multipliers = { 7: 'x', 3: 'y' }; },
        (c) => { c.capability_multipliers = { 32: '1' }; },
        (c) => { c.capability_multipliers = { '01': '1' }; },
        (c) => { c.capability_multipliers = { 0: '1000', 1: '1000' }; },
        (c) => { c.capability_multipliers = { 0: '1.0000001' }; },
        (c) => { c.capability_multipliers = { 0: '1000.000001' }; },
        (c) => { c.capability_multipliers = { 0: '-1' }; },
        (c) => { c.capability_multipliers = { 0: 1.5 }; },
        (c) => { c.flagged_surcharge = 5; }, (c) => { c.per_cr.violated = 11; },
      ];
      for (const [k, change] of cards.entries()) {
        const b = JSON.parse(text), rc = b.rate_cards[0];
        change(rc.card);
        rc.card_cid = cidOf(rc.card);
        await compare(`rate card variant ${k}`, JSON.stringify(b));
      }
      const times = ['2026-11-30T09:18:22.602013+01:00', '2026-02-29T00:00:00Z', '2024-02-29T00:00:00Z',
        '1969-12-31T23:59:59Z', '2026-11-30 09:18:22Z', '2026-11-30T09:18:22.Z', '2026-11-30T24:00:00Z',
        '2026-11-30T09:18:22.1234567891Z', '2026-11-30t09:18:22z', '2026-11-30T09:18:22-23:59',
        '2026-11-30T09:18:22+24:00', '2030-01-01T00:00:00Z', '2026-11-30T09:18:22'];
      for (const t of times) {
        const b = JSON.parse(text);
        b.lines[0].received_at = t;
        await compare(`received_at ${t}`, JSON.stringify(b));
      }
      for (const [what, change] of [
        ['duplicate flag', (l) => { l.flags = ['overage', 'overage']; }],
        ['unknown flag', (l) => { l.flags = ['nonsense']; }],
        ['no flags', (l) => { l.flags = []; }],
        ['capability set spelled as a number', (l) => { l.ac.capability_set = 5; }],
        ['capability set " 0x12345"', (l) => { l.ac.capability_set = '0x -123456'; }],
        ['line after lines', null],
      ]) {
        const b = JSON.parse(text);
        if (change) change(b.lines[0]);
        let t = JSON.stringify(b);
        if (!change) t = t.replace(/\]\}$/, '],"extra":1}');
        await compare(what, t);
      }
    }
    // bytes that are no bundle at all
    for (const [what, t] of [['duplicate member', text.replace(/^\{/, '{"kind":"session",')],
      ['trailing bytes', text + 'x'], ['a BOM', '\ufeff' + text]]) {
      await compare(what, t);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`ok compare: ${n} bundles, the page and gsap-broker verify agree on every check`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [cmd, html, ...rest] = process.argv.slice(2);
  const api = loadPage(html);
  if (cmd === 'jcs') testJcs(api, rest[0]);
  else if (cmd === 'parse') testParse(api);
  else if (cmd === 'compare') await testCompare(api, rest[0], rest[1], rest[2]);
  else { console.error('usage: node verify_page.mjs jcs|parse|compare VERIFY_HTML ...'); process.exit(2); }
  process.exit(failures ? 1 : 0);
}
