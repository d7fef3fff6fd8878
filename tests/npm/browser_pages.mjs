// browser_pages: the broker's pages in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core), asserted on the rendered DOM. Run by tests/it_browser.c, which starts
// the broker and passes what it made in the environment:
//   GSAP_BASE (http://127.0.0.1:port), GSAP_VIEW_URL (a signed session view link),
//   GSAP_CONTEXT_ID, GSAP_INVOICE_ID, GSAP_FINANCE_TOKEN, GSAP_BUNDLE (the session's bundle
//   file), GSAP_KEYS (/.well-known/gsap-broker.json saved), GSAP_ARTIFACT_DIR (screenshots),
//   GSAP_N_CRS (receipts in the session), GSAP_INVOICE_BUNDLE (the finalized invoice's bundle,
//   empty when the broker has no such route); CHROMIUM overrides the browser's path.
// Prints one line per assertion that failed and each screenshot's path; exits 1 on any failure
// (a browser that cannot start is a failure, not a skip).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
for (const k of ['GSAP_BASE', 'GSAP_VIEW_URL', 'GSAP_CONTEXT_ID', 'GSAP_INVOICE_ID', 'GSAP_FINANCE_TOKEN',
  'GSAP_BUNDLE', 'GSAP_KEYS', 'GSAP_ARTIFACT_DIR', 'GSAP_N_CRS']) {
  if (!env[k]) { console.log(`FAIL ${k} is not set`); process.exit(1); }
}
const BASE = env.GSAP_BASE, N = Number(env.GSAP_N_CRS), ART = env.GSAP_ARTIFACT_DIR;
mkdirSync(ART, { recursive: true });
let failures = 0;
const expect = (ok, what) => { if (!ok) { failures++; console.log('FAIL ' + what); } return ok; };
const shots = [];
async function shot(page, name) {
  const p = join(ART, `browser_${name}.png`);
  await page.screenshot({ path: p, fullPage: true });
  shots.push(p);
}

let browser;
try {
  browser = await chromium.launch({ executablePath: env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
} catch (e) {
  console.log('FAIL chromium does not start (tools/deps.sh installs it): ' + e.message.split('\n')[0]);
  process.exit(1);
}

// every page: no script error, nothing the page did not ask for
function watch(page, name) {
  page.on('pageerror', (e) => expect(false, `${name}: script error ${e.message}`));
  page.on('dialog', (d) => { expect(false, `${name}: a dialog opened (${d.message()})`); d.dismiss(); });
}

try {
  // ---- the session page, through the signed view link, no token ----
  {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    watch(page, 'session page');
    const res = await page.goto(env.GSAP_VIEW_URL);
    expect(res.status() === 200, `session page: status ${res.status()}`);
    expect((await page.locator('h1').textContent()).includes(env.GSAP_CONTEXT_ID), 'session page: h1 names the context');
    expect(await page.locator('.lineage-verified').count() === N, `session page: ${N} lineage steps verified`);
    expect(await page.locator('.lineage-broken').count() === 0, 'session page: no broken step');
    expect(await page.locator('script').count() === 0, 'session page: no script');
    // the markup in a chronicle is text on the page, not an element
    expect(await page.locator('img').count() === 0, 'session page: a receipt value made an element');
    expect((await page.textContent('body')).includes('<img src=x onerror=alert(1)>'), 'session page: the value shown as text');
    const inv = page.locator(`a[href="/billing/invoices/${env.GSAP_INVOICE_ID}/"]`);
    expect(await inv.count() >= 1, 'session page: links to the invoice');
    await shot(page, 'session');
    await ctx.close();
  }

  // ---- the invoice page, as finance ----
  {
    const ctx = await browser.newContext({
      extraHTTPHeaders: { Authorization: 'Bearer ' + env.GSAP_FINANCE_TOKEN, Accept: 'text/html' },
    });
    const page = await ctx.newPage();
    watch(page, 'invoice page');
    const res = await page.goto(`${BASE}/billing/invoices/${env.GSAP_INVOICE_ID}`);
    expect(res.status() === 200, `invoice page: status ${res.status()}`);
    expect((await page.locator('h1').textContent()).includes(env.GSAP_INVOICE_ID), 'invoice page: h1 names the invoice');
    const b = JSON.parse(readFileSync(env.GSAP_BUNDLE, 'utf8'));
    const body = await page.textContent('body');
    for (const r of b.receipts)
      expect(body.includes(r.lineage_cid), `invoice page: the line of receipt ${r.sequence} shows its lineage CID`);
    const links = page.locator(`a[href="/governance/session/${env.GSAP_CONTEXT_ID}/"]`);
    expect(await links.count() === N, `invoice page: ${N} lines link to their session page`);
    expect(await page.locator('script').count() === 0, 'invoice page: no script');
    await shot(page, 'invoice');
    await ctx.close();
  }

  // ---- /verify ----
  const honest = readFileSync(env.GSAP_BUNDLE, 'utf8');
  const keys = readFileSync(env.GSAP_KEYS, 'utf8');
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  watch(page, '/verify');
  const res = await page.goto(`${BASE}/verify`);
  expect(res.status() === 200, `/verify: status ${res.status()}`);
  const csp = res.headers()['content-security-policy'] || '';
  expect(/script-src 'sha256-[A-Za-z0-9+/]{43}='/.test(csp) && !csp.includes('unsafe') &&
    csp.includes("default-src 'none'") && csp.includes("frame-ancestors 'none'"), `/verify: CSP ${csp}`);
  const served = await res.text();
  expect(served.includes(`<meta http-equiv="Content-Security-Policy" content="${csp.replace("; frame-ancestors 'none'", '')}">`),
    '/verify: the page carries its CSP in a meta tag too');
  const style = /<style>([\s\S]*)<\/style>/.exec(served)[1], script = /<script>([\s\S]*)<\/script>/.exec(served)[1];
  expect(!/<script[^>]*src|<link|<img|<iframe|<object|<embed/i.test(served) && !/url\(|@import/.test(style) &&
    !/fetch\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon|import\(|\.src\s*=|\.href\s*=/.test(script),
    '/verify: loads nothing from elsewhere');

  // drop a bundle: the file input, then wait for the verdict
  async function verify(p, name, text) {
    await p.waitForSelector('body[data-ready="1"]');
    await p.evaluate(() => { document.getElementById('summary').dataset.status = 'idle'; });
    await p.setInputFiles('#file', { name, mimeType: 'application/json', buffer: Buffer.from(text) });
    await p.waitForFunction((n) => {
      const s = document.getElementById('summary');
      return s.dataset.status !== 'busy' && s.dataset.status !== 'idle' && s.textContent.length > 0 &&
        (document.getElementById('checks').hidden === false || s.dataset.status === 'error');
    }, name);
    return p.evaluate(() => ({
      status: document.getElementById('summary').dataset.status,
      summary: document.getElementById('summary').textContent,
      rows: [...document.querySelectorAll('#rows tr')].map((tr) => ({
        item: tr.dataset.item, result: tr.dataset.result, text: tr.cells[0].textContent,
      })),
    }));
  }
  const fails = (v) => v.rows.filter((r) => r.result === 'FAIL').map((r) => r.item);

  let v = await verify(page, 'bundle.json', honest);
  expect(v.status === 'pass' && v.summary.startsWith('OK: all'), `honest bundle: summary "${v.summary}"`);
  expect(v.rows.length >= 10 + 6 * N && v.rows.every((r) => r.result === 'PASS' && r.text === 'PASS'),
    `honest bundle: every row PASS (${v.rows.length} rows, failing ${fails(v)})`);
  for (const item of ['acs[0].ac', 'checkpoint.signature', `receipts[${N - 1}].inclusion`, `receipts[${N - 1}].lineage_cid`])
    expect(v.rows.some((r) => r.item === item && r.result === 'PASS'), `honest bundle: row ${item} PASS`);
  await shot(page, 'verify_honest');

  // dropped rather than picked: the same verdict
  {
    await page.evaluate(() => { document.getElementById('summary').dataset.status = 'idle'; });
    const dt = await page.evaluateHandle((text) => {
      const d = new DataTransfer();
      d.items.add(new File([text.replace(/"exit_code": ?2\b/, '"exit_code":7')], 'dropped.json', { type: 'application/json' }));
      return d;
    }, honest);
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: dt });
    await page.waitForFunction(() => ['pass', 'fail'].includes(document.getElementById('summary').dataset.status));
    const d = await page.evaluate(() => [...document.querySelectorAll('#rows tr[data-result="FAIL"]')].map((tr) => tr.dataset.item));
    expect(JSON.stringify(d) === '["receipts[1].cr_cid"]', `dropped tampered bundle: failing rows ${d}`);
  }

  // tampered copies: exactly the expected rows fail, the first named in the summary
  const flip = (s, from) => {
    for (let i = from; i < s.length; i++) {
      if (/[A-Za-z0-9]/.test(s[i])) return s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    }
    throw new Error('nothing to flip');
  };
  const receiptsAll = (what) => Array.from({ length: N }, (_, i) => `receipts[${i}].${what}`);
  const tamperings = [
    ['ac_signature', (b) => { b.acs[0].ac.signature = flip(b.acs[0].ac.signature, 20); }, ['acs[0].ac']],
    ['cr_field', (b) => { b.receipts[1].cr.exit_code += 1; }, ['receipts[1].cr_cid']],
    ['proof_hash', (b) => {
      const r = b.receipts.find((x) => x.inclusion.hashes.length > 0);
      r.inclusion.hashes[0] = flip(r.inclusion.hashes[0], 10);
      b.__which = `receipts[${r.sequence - 1}].inclusion`;
    }, null],
    ['checkpoint_signature', (b) => {
      const lines = b.checkpoint.note.split('\n');
      const at = lines.findIndex((l) => l.startsWith('\u2014 '));
      lines[at] = flip(lines[at], lines[at].lastIndexOf(' ') + 8);
      b.checkpoint.note = lines.join('\n');
    }, ['checkpoint.signature', ...receiptsAll('inclusion')]],
    ['checkpoint_root', (b) => { b.checkpoint.root_hash = b.receipts[0].inclusion.hashes[0] ?? flip(b.checkpoint.root_hash, 5); },
      ['checkpoint.note', ...receiptsAll('inclusion')]],
  ];
  for (const [name, mutate, want0] of tamperings) {
    const b = JSON.parse(honest);
    mutate(b);
    const want = want0 ?? [b.__which];
    delete b.__which;
    v = await verify(page, `${name}.json`, JSON.stringify(b));
    expect(v.status === 'fail' && v.summary.startsWith('FAILED: ') && v.summary.endsWith(`first: ${want[0]}`),
      `tampered ${name}: summary "${v.summary}"`);
    expect(JSON.stringify(fails(v)) === JSON.stringify(want), `tampered ${name}: failing rows ${fails(v)}, want ${want}`);
    await shot(page, `verify_tampered_${name}`);
  }

  // the invoice's bundle, where the broker has the route: every row PASS; a changed amount
  // fails exactly that line's total and the invoice's
  if (env.GSAP_INVOICE_BUNDLE) {
    const inv = readFileSync(env.GSAP_INVOICE_BUNDLE, 'utf8');
    v = await verify(page, 'invoice_bundle.json', inv);
    expect(v.status === 'pass' && v.rows.length >= 10 + N && v.rows.every((r) => r.result === 'PASS'),
      `invoice bundle: ${v.summary} (failing ${fails(v)})`);
    for (let i = 0; i < N; i++)
      expect(v.rows.some((r) => r.item === `lines[${i}]` && r.result === 'PASS'), `invoice bundle: row lines[${i}] PASS`);
    await shot(page, 'verify_invoice');
    const b = JSON.parse(inv);
    b.lines[1].total_minor = String(BigInt(b.lines[1].total_minor) + 1n);
    v = await verify(page, 'invoice_tampered.json', JSON.stringify(b));
    expect(JSON.stringify(fails(v)) === '["lines[1].total_minor","invoice.total_minor"]',
      `invoice bundle, a line's amount changed: failing rows ${fails(v)}`);
    await shot(page, 'verify_invoice_tampered');
  }

  // a bundle cannot script the page: markup in every place the page shows bundle text
  {
    const b = JSON.parse(honest);
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    b.context_id = evil;
    b.broker.broker_id = evil;
    v = await verify(page, '<b>evil</b>.json', JSON.stringify(b));
    expect(v.status === 'fail', 'markup bundle: fails');
    expect(await page.evaluate(() => window.__pwned === undefined), 'markup bundle: its script ran');
    expect(await page.locator('#about img, #rows img, #about script, #rows script').count() === 0,
      'markup bundle: its markup became elements');
    expect((await page.locator('#about').textContent()).includes(evil), 'markup bundle: its value shown as text');
    await shot(page, 'verify_markup');
  }

  // the policy holds: a script the page did not bring does not run (inline or from elsewhere)
  const blocked = await page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.__inline = 1';
    document.body.appendChild(s);
    const img = document.createElement('img');
    const loaded = new Promise((res) => { img.onload = () => res('loaded'); img.onerror = () => res('blocked'); });
    img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';
    document.body.appendChild(img);
    const r = { inline: window.__inline === undefined, img: await loaded };
    s.remove(); img.remove();
    return r;
  });
  expect(blocked.inline && blocked.img === 'blocked', `/verify: CSP lets in ${JSON.stringify(blocked)}`);

  // an invoice bundle cut before its lines: named as the command names it
  v = await verify(page, 'invoice.json', JSON.stringify({ format: 'gsap-audit-bundle/1', kind: 'invoice' }));
  expect(v.status === 'fail' && JSON.stringify(fails(v)) === '["lines"]', `invoice bundle without lines: ${v.summary}`);

  // not a bundle: named as the command names it
  v = await verify(page, 'dup.json', honest.replace(/^\{/, '{"kind":"session",'));
  expect(v.status === 'fail' && v.summary === 'FAILED: 1 of 1 checks; first: bundle' && v.rows.length === 1 &&
    v.rows[0].item === 'bundle', `duplicate member: ${v.summary}`);

  // pinned to the published key document: one more check, and it holds; a stranger's fails
  await page.setInputFiles('#keys', { name: 'keys.json', mimeType: 'application/json', buffer: Buffer.from(keys) });
  await page.waitForFunction(() => document.getElementById('keys-status').textContent.startsWith('pinned'));
  v = await verify(page, 'bundle.json', honest);
  expect(v.status === 'pass' && v.rows.some((r) => r.item === 'broker.keys pinned' && r.result === 'PASS'),
    `pinned keys: ${v.summary}`);
  const other = JSON.parse(keys);
  other.broker_id = 'someone-else';
  await page.evaluate(() => { document.getElementById('keys-status').textContent = ''; });
  await page.setInputFiles('#keys', { name: 'other.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(other)) });
  await page.waitForFunction(() => document.getElementById('keys-status').textContent.startsWith('pinned'));
  v = await verify(page, 'bundle.json', honest);
  expect(JSON.stringify(fails(v)) === '["broker.keys pinned"]', `pinned to another broker: ${fails(v)}`);
  await shot(page, 'verify_pinned_other');
  await ctx.close();

  // ---- a saved copy, opened from disk with the network cut off ----
  {
    const file = join(ART, 'verify.html');
    writeFileSync(file, served);
    const off = await browser.newContext({ offline: true });
    const requests = [];
    await off.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith('file://')) return route.continue();
      requests.push(u);
      return route.abort();
    });
    const p = await off.newPage();
    watch(p, 'file:// copy');
    await p.goto('file://' + file);
    v = await verify(p, 'bundle.json', honest);
    expect(v.status === 'pass' && v.rows.length >= 10 + 6 * N && v.rows.every((r) => r.result === 'PASS'),
      `file:// copy offline: ${v.summary}`);
    const t = JSON.parse(honest);
    t.receipts[0].cr.exit_code += 1;
    const vt = await verify(p, 'tampered.json', JSON.stringify(t));
    expect(JSON.stringify(fails(vt)) === '["receipts[0].cr_cid"]', `file:// copy offline, tampered: ${fails(vt)}`);
    expect(requests.length === 0, `file:// copy: network requests ${requests}`);
    await verify(p, 'bundle.json', honest);
    await shot(p, 'verify_file_offline');
    await off.close();
  }
} catch (e) {
  expect(false, 'exception: ' + (e.stack || e));
} finally {
  await browser.close();
}
for (const s of shots) console.log('screenshot ' + s);
console.log(failures ? `browser_pages: ${failures} failures` : `ok browser_pages: ${shots.length} screenshots`);
process.exit(failures ? 1 : 0);
