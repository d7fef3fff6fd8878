// paced.mjs: an open-loop load generator for bench/latency.sh. Sends POST requests at a fixed
// RATE for SECONDS whatever the answers do (a slow answer does not delay the next request),
// and measures each latency from the moment the request was due, not from when it was sent,
// so a stall shows in the figures instead of hiding in fewer requests (coordinated omission).
//
//   node bench/paced.mjs URL TOKEN RATE SECONDS IDS BODY_TEMPLATE
//
// IDS: one context id a line, each used once (BODY_TEMPLATE holds CTX where it goes).
// Prints one JSON line: due, sent, ok, other, errors, achieved (requests/s), p50_ms, p90_ms,
// p99_ms, max_ms, late (requests sent more than 5 ms after they were due: the generator
// itself could not keep up, so the figures are not to be trusted when it is large).
import http from 'node:http';
import { readFileSync } from 'node:fs';

const [url, token, rateArg, secondsArg, idsPath, template] = process.argv.slice(2);
const RATE = Number(rateArg), SECONDS = Number(secondsArg);
const MAX_SOCKETS = 512; // concurrent requests at most; past it requests queue in the agent
const LATE_MS = 5;
const ids = readFileSync(idsPath, 'utf8').split('\n').filter(Boolean);
const due = Math.floor(RATE * SECONDS);
if (ids.length < due) {
  console.error(`paced.mjs: ${due} requests due but only ${ids.length} ids`);
  process.exit(2);
}
const [head, tail] = template.split('CTX');
const u = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
const lat = [];
let sent = 0, ok = 0, other = 0, errors = 0, late = 0, done = 0;
const t0 = performance.now() + 50;

function fire(i) {
  const dueAt = t0 + (i * 1000) / RATE;
  if (performance.now() - dueAt > LATE_MS) late++;
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
        lat.push(performance.now() - dueAt);
        if (res.statusCode === 200) ok++; else other++;
        finish();
      });
    });
  req.on('error', () => { errors++; finish(); });
  req.end(body);
}

function finish() {
  if (++done < due) return;
  const end = performance.now();
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0);
  const r = (x) => Math.round(x * 100) / 100;
  console.log(JSON.stringify({
    due, sent, ok, other, errors, late,
    achieved: Math.round(due / ((end - t0) / 1000)),
    p50_ms: r(q(0.5)), p90_ms: r(q(0.9)), p99_ms: r(q(0.99)), max_ms: r(lat[lat.length - 1] || 0),
  }));
  agent.destroy();
}

let next = 0;
function tick() {
  const now = performance.now();
  while (next < due && t0 + (next * 1000) / RATE <= now) fire(next++);
  if (next < due) setTimeout(tick, 1);
}
setTimeout(tick, 50);
