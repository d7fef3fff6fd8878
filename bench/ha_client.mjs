// ha_client.mjs: the client side of bench/ha.sh. WORKERS concurrent loops, for SECONDS, each
// issuing an AC under its own Idempotency-Key and posting one CR on it, through the load
// balancer at URL. A request that meets a dead broker (connection reset, 502/503/504) is sent
// again, unchanged: the same Idempotency-Key, the same CR body. That is the whole contract a
// retrying client needs: the broker turns a retry of something that already committed into
// the same answer, never a second AC or receipt.
//
//   node bench/ha_client.mjs URL TOKEN WORKERS SECONDS OUT ISSUE_BODY CR_BODY
//
// CR_BODY holds CTX where the context id goes. Writes OUT (one "key context_id cr_id" line
// per completed pair) and prints a JSON summary: pairs, attempts, retries, failures (answers
// that are neither success nor retryable, with their first bodies), and duplicates: a key
// whose retry answered a different context than its first success.
import { writeFileSync } from 'node:fs';

const [url, token, workersArg, secondsArg, out, issueBody, crBody] = process.argv.slice(2);
const WORKERS = Number(workersArg), SECONDS = Number(secondsArg);
const RETRY_FOR_MS = 60000; // a request is retried for at most this long, then counted failed
const RETRY_PAUSE_MS = 50;
const RETRYABLE = new Set([429, 502, 503, 504]);
const deadline = Date.now() + SECONDS * 1000;
const stats = { pairs: 0, attempts: 0, retries: 0, failures: 0, duplicates: 0, failed: [] };
const lines = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function post(path, body, extra) {
  const until = Date.now() + RETRY_FOR_MS;
  const seen = new Set();
  for (let first = true; ; first = false) {
    if (!first) stats.retries++;
    stats.attempts++;
    let status = 0, text = '';
    try {
      const res = await fetch(url + path, {
        method: 'POST',
        headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json', ...extra },
        body,
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      text = String(e.cause?.code || e.message);
    }
    if (status === 200) {
      const j = JSON.parse(text);
      return { j, seen };
    }
    if ((status !== 0 && !RETRYABLE.has(status)) || Date.now() > until) {
      stats.failures++;
      if (stats.failed.length < 5) stats.failed.push({ path, status, body: text.slice(0, 300) });
      return null;
    }
    seen.add(status || text);
    await sleep(RETRY_PAUSE_MS);
  }
}

async function worker(w) {
  for (let i = 0; Date.now() < deadline; i++) {
    const key = `ha-${w}-${i}`;
    const ac = await post('/governance/authorize/', issueBody, { 'idempotency-key': key });
    if (!ac) continue;
    const ctx = ac.j.context_id;
    // A second answer for the same key must name the same context: ask once more, as a
    // client whose first answer was lost would.
    const again = await post('/governance/authorize/', issueBody, { 'idempotency-key': key });
    if (again && again.j.context_id !== ctx) stats.duplicates++;
    const cr = await post('/governance/complete/', crBody.replace('CTX', ctx), {});
    if (!cr) continue;
    lines.push(`${key} ${ctx} ${cr.j.cr_id}`);
    stats.pairs++;
  }
}

await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
writeFileSync(out, lines.join('\n') + (lines.length ? '\n' : ''));
console.log(JSON.stringify(stats));
