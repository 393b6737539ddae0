// The Entra ID token endpoint as the end-to-end tests' pods see it (AZURE_AUTHORITY_HOST):
// a thin HTTPS front of akv-env's test harness (crates/akv-env/tests/testbed/harness.mjs),
// so that the client_assertion a pod presents is checked against the REAL Kubernetes
// API server's service-account issuer:
//
//   1. POST /{tenant}/oauth2/v2.0/token: the client_assertion must be a JWT signed by a key
//      of the API server's JWKS (GET /openid/v1/jwks, given as a file), with the API
//      server's issuer and audience api://AzureADTokenExchange, not expired. Otherwise
//      400 invalid_client, as Entra ID answers.
//   2. Then the harness decides as Entra ID does for a federated identity credential: the
//      front asks the harness's control API to mint an assertion for the SAME subject
//      (system:serviceaccount:NS:SA) and forwards the request with it; the harness checks
//      that subject against the credential registered for the client id and tenant
//      (AADSTS700213 otherwise) and issues the access token the harness's vaults accept.
//   3. A service principal's request (a client_secret, or a certificate assertion whose
//      issuer is the client id, not the cluster) goes to the harness as it came, which
//      checks it against the principal registered there; x-forwarded-host tells the
//      harness the token URL the pod used (a certificate assertion's audience).
//
// Why a front rather than a harness option: the harness verifies assertions against its
// own in-process issuer key and listens on a random port, while kube-up must know the
// authority host before the API server exists. If the harness grows an option to verify
// against a JWKS file and issuer, this file can go.
//
// Env: AKV_TESTBED_NODE_MODULES (jose), AKV_TESTBED_CERT/AKV_TESTBED_KEY (TLS),
//      AKV_TESTBED_CA (trusts the harness), AKV_E2E_FRONT_PORT, AKV_E2E_JWKS_FILE,
//      AKV_E2E_ISSUER, AKV_E2E_HARNESS_TOKEN_PORT, AKV_E2E_HARNESS_CONTROL_PORT.
// Prints {"port":PORT} once listening; exits when stdin closes. GET /stats (plain JSON over
// the same HTTPS port) returns {"accepted":{SUBJECT:N},"rejected":{REASON:N}}.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const env = (k) => {
  const v = process.env[k];
  if (!v) { console.error(`k8s-token-front: ${k} is not set`); process.exit(2); }
  return v;
};
const jose = await import(pathToFileURL(path.join(env('AKV_TESTBED_NODE_MODULES'), 'jose', 'dist/webapi/index.js')).href);
const tls = { key: readFileSync(env('AKV_TESTBED_KEY')), cert: readFileSync(env('AKV_TESTBED_CERT')) };
const harnessCa = readFileSync(env('AKV_TESTBED_CA'));
const jwks = jose.createLocalJWKSet(JSON.parse(readFileSync(env('AKV_E2E_JWKS_FILE'), 'utf8')));
const issuer = env('AKV_E2E_ISSUER');
const tokenPort = Number(env('AKV_E2E_HARNESS_TOKEN_PORT'));
const controlPort = Number(env('AKV_E2E_HARNESS_CONTROL_PORT'));
const FEDERATED_AUDIENCE = 'api://AzureADTokenExchange';

const stats = { accepted: {}, rejected: {} };
const bump = (o, k) => { o[k] = (o[k] ?? 0) + 1; };

function mint(subject) {
  const body = JSON.stringify({ subject });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: controlPort, path: '/mint', method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let raw = '';
      res.on('data', (c) => { raw += c; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(raw).token) : reject(new Error(`mint: ${res.statusCode} ${raw}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// Whether the request carries a federated assertion of the cluster's issuer (step 1):
// anything else is a service principal's (step 3). An assertion that claims the cluster's
// issuer is always verified against its keys.
function fromCluster(form) {
  if (form.has('client_secret')) return false;
  try { return jose.decodeJwt(form.get('client_assertion') ?? '').iss === issuer; } catch { return true; }
}

function forward(req, res, body) {
  const up = https.request({ host: 'localhost', port: tokenPort, path: req.url, method: req.method, ca: harnessCa,
    headers: { ...req.headers, host: `localhost:${tokenPort}`, 'x-forwarded-host': req.headers.host, 'content-length': Buffer.byteLength(body) } }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
  up.end(body);
}

const server = https.createServer(tls, (req, res) => {
  let raw = '';
  req.on('data', (c) => { raw += c; });
  req.on('end', () => (async () => {
    if (req.method === 'GET' && req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(stats));
    }
    if (req.method !== 'POST' || !/^\/[^/?]+\/oauth2\/v2\.0\/token(\?.*)?$/.test(req.url)) return forward(req, res, raw);
    const form = new URLSearchParams(raw);
    if (!fromCluster(form)) { bump(stats.accepted, 'service-principal'); return forward(req, res, raw); }
    let payload;
    try {
      ({ payload } = await jose.jwtVerify(form.get('client_assertion') ?? '', jwks, { issuer, audience: FEDERATED_AUDIENCE }));
    } catch (e) {
      const reason = e.code ?? e.message;
      bump(stats.rejected, reason);
      res.writeHead(400, { 'content-type': 'application/json; charset=utf-8' });
      return res.end(JSON.stringify({ error: 'invalid_client', error_codes: [50027],
        error_description: `AADSTS50027: JWT token is invalid or malformed: not issued by the trusted cluster issuer ${issuer} for ${FEDERATED_AUDIENCE} (${reason}).` }));
    }
    bump(stats.accepted, payload.sub);
    form.set('client_assertion', await mint(payload.sub));
    forward(req, res, form.toString());
  })().catch((e) => { res.writeHead(500); res.end(String(e.stack ?? e)); }));
});

server.listen(Number(env('AKV_E2E_FRONT_PORT')), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
