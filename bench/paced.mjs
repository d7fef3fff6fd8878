// paced.mjs: an open-loop load generator for bench/latency.sh. Sends POST requests at a fixed
// RATE for SECONDS whatever the answers do (a slow answer does not delay the next request),
// and measures each latency from the moment the request was due, not from when it was sent,
// so a stall shows in the figures instead of hiding in fewer requests (coordinated omission).
//
//   node bench/paced.mjs URL TOKEN RATE SECONDS IDS BODY_TEMPLATE [WARMUP_SECONDS]
//
// IDS: one context id a line, each used once (BODY_TEMPLATE holds CTX where it goes).
// WARMUP_SECONDS (default 0): the same rate for that long first, not counted in the figures
// (connections opened, caches and the database's pages warm), as wrk2 leaves its calibration
// period out; its own p99 is printed as warmup_p99_ms.
// Prints one JSON line: due, sent, ok, other, errors, achieved (requests/s), p50_ms, p90_ms,
// p99_ms, max_ms, warmup_p99_ms, late (requests sent more than 5 ms after they were due: the
// generator itself could not keep up, so the figures are not to be trusted when it is large).
// due, ok, other and late count the measured requests only.
import http from 'node:http';
import { readFileSync } from 'node:fs';

const [url, token, rateArg, secondsArg, idsPath, template, warmupArg] = process.argv.slice(2);
const RATE = Number(rateArg), SECONDS = Number(secondsArg), WARMUP = Number(warmupArg || 0);
const MAX_SOCKETS = 512; // concurrent requests at most; past it requests queue in the agent
const LATE_MS = 5;
const ids = readFileSync(idsPath, 'utf8').split('\n').filter(Boolean);
const skip = Math.floor(RATE * WARMUP); // the warm-up's requests, not counted
const total = skip + Math.floor(RATE * SECONDS);
const due = total - skip;
if (ids.length < total) {
  console.error(`paced.mjs: ${total} requests due but only ${ids.length} ids`);
  process.exit(2);
}
const [head, tail] = template.split('CTX');
const u = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
const lat = [], warm = [];
let sent = 0, ok = 0, other = 0, errors = 0, late = 0, done = 0, measuredFrom = 0;
const t0 = performance.now() + 50;

function fire(i) {
  const dueAt = t0 + (i * 1000) / RATE;
  const counted = i >= skip;
  if (i === skip) measuredFrom = dueAt;
  if (counted && performance.now() - dueAt > LATE_MS) late++;
  const body = head + ids[i] + tail;
  sent++;
  const req = http.request(
    {
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
      headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json',
                 'content-length': Buffer.byteLength(body) },
    },
    (res) => {
      res.resume();
      res.on('end', () => {
        (counted ? lat : warm).push(performance.now() - dueAt);
        if (counted) { if (res.statusCode === 200) ok++; else other++; }
        else if (res.statusCode !== 200) errors++;
        finish();
      });
    });
  req.on('error', () => { errors++; finish(); });
  req.end(body);
}

function finish() {
  if (++done < total) return;
  const end = performance.now();
  lat.sort((a, b) => a - b);
  warm.sort((a, b) => a - b);
  const q = (v, p) => (v.length ? v[Math.min(v.length - 1, Math.floor(p * v.length))] : 0);
  const r = (x) => Math.round(x * 100) / 100;
  console.log(JSON.stringify({
    due, sent, ok, other, errors, late,
    achieved: Math.round(due / ((end - measuredFrom) / 1000)),
    p50_ms: r(q(lat, 0.5)), p90_ms: r(q(lat, 0.9)), p99_ms: r(q(lat, 0.99)),
    max_ms: r(lat[lat.length - 1] || 0), warmup_p99_ms: r(q(warm, 0.99)),
  }));
  agent.destroy();
}

let next = 0;
function tick() {
  const now = performance.now();
  while (next < total && t0 + (next * 1000) / RATE <= now) fire(next++);
  if (next < total) setTimeout(tick, 1);
}
setTimeout(tick, 50);
