// Replays one recording of real Key Vault traffic (../shared/vectors/keyvault/*.json) as a
// vault for akv-env's replay test (crates/akv-env/tests/replay.rs).
//
//   node replay.mjs RECORDING.json
//   env: AKV_TESTBED_CERT, AKV_TESTBED_KEY (the test bed's server certificate and key)
//
// Serves HTTPS (HTTP/2 and HTTP/1.1) on 127.0.0.1 and answers exactly what was recorded:
// status, headers (Content-Length recomputed, hop-by-hop headers dropped) and body, with
// every recorded vault host (https://NAME.vault.azure.net) rewritten to this server's
// host:port. Both recording shapes are read: test-proxy `{"Entries": [...]}` and the older
// `{"recordings": [...]}` (see the README next to the recordings).
//
// Matching a request:
// - No bearer token: the recording's 401 challenge (the first 401 entry, whatever its
//   method and path: the service challenges every unauthenticated request alike). A file
//   with no 401 entry borrows the first one of its directory (sorted by name).
// - With a bearer token: the recorded entries of the same method and path (api-version
//   and host ignored, trailing slashes ignored, the name compared as sent first, then
//   without case as Key Vault does), served in recorded order (the last one repeats).
//   A GET with no such entry gets a 404 recorded for another method on the same path (an
//   object that does not exist is absent for every method).
// - Anything else: 400 with an error body that says so; the log marks it unmatched, and
//   the test fails on it.
//
// Prints {"port":PORT,"challenge":FILE} when ready. When stdin closes it prints one JSON
// line with every request it saw ({"requests":[...]}), then exits.

import { readFileSync, readdirSync } from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';

const file = process.argv[2];
if (!file) { console.error('usage: node replay.mjs RECORDING.json'); process.exit(2); }
const tls = { key: readFileSync(process.env.AKV_TESTBED_KEY), cert: readFileSync(process.env.AKV_TESTBED_CERT) };

// One entry, whatever the shape: { method, path, apiVersion, status, headers, body }.
function entries(recordingFile) {
  const d = JSON.parse(readFileSync(recordingFile, 'utf8'));
  if (Array.isArray(d.Entries)) {
    return d.Entries.map((e) => {
      const u = new URL(e.RequestUri);
      return {
        method: e.RequestMethod, path: u.pathname, apiVersion: u.searchParams.get('api-version'),
        status: e.StatusCode, headers: e.ResponseHeaders ?? {}, body: bodyText(e.ResponseBody),
      };
    });
  }
  if (Array.isArray(d.recordings)) {
    return d.recordings.map((e) => ({
      method: e.method, path: new URL(e.url).pathname, apiVersion: e.query?.['api-version'] ?? null,
      status: e.status, headers: e.responseHeaders ?? {}, body: bodyText(e.response),
    }));
  }
  throw new Error(`${recordingFile}: neither "Entries" nor "recordings"`);
}

function bodyText(b) {
  if (b === null || b === undefined) return '';
  return typeof b === 'string' ? b : JSON.stringify(b);
}

const norm = (p) => p.replace(/\/+$/, '');
const recorded = entries(file);

let challenge = recorded.find((e) => e.status === 401);
let challengeFrom = path.basename(file);
if (!challenge) {
  const dir = path.dirname(file);
  for (const other of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    challenge = entries(path.join(dir, other)).find((e) => e.status === 401);
    if (challenge) { challengeFrom = other; break; }
  }
}

// Headers node (and HTTP/2) must not be given, or that it computes itself.
const DROP = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade']);
let host = '';
const rewrite = (s) => s.replace(/https:\/\/[A-Za-z0-9_-]+\.vault\.azure\.net/g, `https://${host}`);

function send(res, e) {
  const headers = {};
  for (const [k, v] of Object.entries(e.headers)) {
    if (!DROP.has(k.toLowerCase())) headers[k.toLowerCase()] = rewrite(String(v));
  }
  const body = Buffer.from(rewrite(e.body), 'utf8');
  headers['content-length'] = String(body.length);
  res.writeHead(e.status, headers);
  res.end(body);
}

// The audience of a bearer token (not verified: the test bed's token endpoint issued it).
function audience(auth) {
  try {
    const payload = JSON.parse(Buffer.from(auth.slice(7).split('.')[1], 'base64url').toString('utf8'));
    return payload.aud ?? null;
  } catch { return null; }
}

const served = new Map(); // entry index -> times served
const log = [];

function pick(method, p) {
  const same = (e, exact) => e.status !== 401 && (exact ? norm(e.path) === p : norm(e.path).toLowerCase() === p.toLowerCase());
  for (const exact of [true, false]) {
    const hits = recorded.map((e, i) => [e, i]).filter(([e]) => e.method === method && same(e, exact));
    if (hits.length) {
      const n = hits.filter(([, i]) => served.has(i)).length;
      return { index: hits[Math.min(n, hits.length - 1)][1], via: null };
    }
  }
  if (method === 'GET') {
    for (const exact of [true, false]) {
      const i = recorded.findIndex((e) => e.status === 404 && same(e, exact));
      if (i >= 0) return { index: i, via: `${recorded[i].method} 404` };
    }
  }
  return null;
}

function handle(req, res) {
  const url = new URL(req.url, `https://${host}`);
  const p = norm(url.pathname);
  const auth = req.headers.authorization ?? '';
  const entry = { method: req.method, path: url.pathname, apiVersion: url.searchParams.get('api-version'), authenticated: auth.startsWith('Bearer ') };
  log.push(entry);
  if (!entry.authenticated) {
    if (!challenge) {
      entry.unmatched = 'no 401 challenge in this recording or its directory';
    } else {
      entry.status = 401; entry.challengeFrom = challengeFrom;
      return send(res, challenge);
    }
  } else {
    entry.audience = audience(auth);
    const hit = pick(req.method, p);
    if (hit) {
      const e = recorded[hit.index];
      served.set(hit.index, (served.get(hit.index) ?? 0) + 1);
      Object.assign(entry, { entry: hit.index, status: e.status, recordedApiVersion: e.apiVersion, recordedMethod: e.method, via: hit.via });
      return send(res, e);
    }
    entry.unmatched = `no recorded response for ${req.method} ${url.pathname}`;
  }
  entry.status = 400;
  const body = JSON.stringify({ error: { code: 'ReplayUnmatched', message: `replay of ${path.basename(file)}: ${entry.unmatched}` } });
  res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

const server = http2.createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => {
  try { handle(req, res); } catch (e) {
    log.push({ method: req.method, path: req.url, unmatched: `replay error: ${e.stack ?? e}` });
    try { res.writeHead(500); res.end(); } catch { /* closed */ }
  }
});
server.on('session', (s) => s.on('error', () => {}));
await new Promise((r) => server.listen(0, '127.0.0.1', r));
host = `127.0.0.1:${server.address().port}`;
process.stdout.write(JSON.stringify({ port: server.address().port, challenge: challenge ? challengeFrom : null }) + '\n');

let done = false;
const finish = () => {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify({ requests: log, recorded: recorded.length }) + '\n', () => process.exit(0));
};
process.stdin.resume();
process.stdin.on('end', finish);
process.stdin.on('close', finish);
