// Test bed for akv-env (started by the integration tests and scripts/bench-akv-env).
//
// - Token endpoint: oauth2-mock-server (real signed JWTs, JWKS), served over HTTPS at
//   /{tenant}/oauth2/v2.0/token. Before a token is issued, the client_assertion must be a
//   JWT signed by this harness's "cluster issuer" key with audience
//   api://AzureADTokenExchange and the subject registered for the client id and tenant
//   (what Entra ID checks for a federated identity credential); otherwise 400
//   invalid_client, as Entra ID answers.
// - Two vaults ("a", "b"), each an HTTPS (HTTP/1.1 and HTTP/2) server on its own port,
//   speaking the Key Vault data-plane REST API for what akv-env reads: GET
//   /secrets|certificates|keys/NAME[/VERSION]?api-version=..., a 401 challenge without a
//   bearer token, bearer tokens verified against the token endpoint's JWKS (audience
//   https://vault.azure.net), 403 ForbiddenByRbac for identities without a grant, 404
//   SecretNotFound/CertificateNotFound/KeyNotFound, names case-insensitive.
//   lowkey-vault cannot be installed here (not on Maven Central; see scripts/testbed-keyvault).
// - Faults: per vault and path, answer N times with a status (429 with Retry-After, 5xx) or
//   drop the connection, before the real answer.
// - Control API: plain HTTP on loopback, JSON; counts every request.
//
// Env: AKV_TESTBED_NODE_MODULES, AKV_TESTBED_CERT, AKV_TESTBED_KEY.
// Prints one JSON line {"control":PORT,"token":PORT,"vaults":{"a":PORT,"b":PORT}}; exits
// when its stdin closes (the test process ended).

import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.AKV_TESTBED_NODE_MODULES;
const load = (name, file) => import(pathToFileURL(path.join(modules, name, file)).href);
const { OAuth2Server } = await load('oauth2-mock-server', 'dist/index.mjs');
const jose = await load('jose', 'dist/webapi/index.js');

const tls = { key: readFileSync(process.env.AKV_TESTBED_KEY), cert: readFileSync(process.env.AKV_TESTBED_CERT) };
const KV_AUDIENCE = 'https://vault.azure.net';
const FEDERATED_AUDIENCE = 'api://AzureADTokenExchange';

// ---- counters -------------------------------------------------------------------------
const stats = { vault: {}, tokens: {}, tokenFailures: {} };
const bump = (obj, key) => { obj[key] = (obj[key] ?? 0) + 1; };

// ---- the cluster's service-account issuer (signs federated tokens) --------------------
const clusterKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const clusterIssuer = 'https://oidc.test.invalid/cluster';
async function mint(subject, audience = FEDERATED_AUDIENCE, expiresIn = 3600) {
  return new jose.SignJWT({ 'kubernetes.io': { namespace: subject.split(':')[2] ?? '' } })
    .setProtectedHeader({ alg: 'RS256', kid: 'cluster' })
    .setIssuer(clusterIssuer).setSubject(subject).setAudience(audience)
    .setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn)
    .sign(clusterKey.privateKey);
}

// Federated identity credentials: client id -> { tenant, subject }.
const identities = new Map();

// ---- token endpoint ----------------------------------------------------------------------
const oauth = new OAuth2Server(process.env.AKV_TESTBED_KEY, process.env.AKV_TESTBED_CERT, {
  endpoints: { token: '/:tenant/oauth2/v2.0/token', jwks: '/common/discovery/v2.0/keys' },
});
await oauth.issuer.keys.generate('RS256');

async function checkAssertion(req) {
  const body = req.body ?? {};
  const tenant = req.params?.tenant ?? req.path.split('/')[1];
  const clientId = body.client_id;
  const id = identities.get(clientId);
  if (!id) return `AADSTS700016: Application with identifier '${clientId}' was not found in the directory '${tenant}'.`;
  if (id.tenant !== tenant) return `AADSTS700016: Application with identifier '${clientId}' was not found in the directory '${tenant}'.`;
  if (body.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return 'AADSTS7000216: client_assertion_type is wrong';
  try {
    const { payload } = await jose.jwtVerify(body.client_assertion ?? '', clusterKey.publicKey, { issuer: clusterIssuer, audience: FEDERATED_AUDIENCE });
    if (payload.sub !== id.subject) {
      return `AADSTS700213: No matching federated identity record found for presented assertion subject '${payload.sub}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`;
    }
  } catch (e) {
    return `AADSTS50027: JWT token is invalid or malformed (${e.code ?? e.message}).`;
  }
  return null;
}

// The token endpoint: the assertion is checked here; oauth2-mock-server signs the token
// (its keys are the JWKS the vaults verify against) and serves every other endpoint.
const tokenServer = https.createServer(tls, (req, res) => {
  const m = /^\/([^/?]+)\/oauth2\/v2\.0\/token(\?.*)?$/.exec(req.url);
  if (req.method !== 'POST' || !m) return oauth.service.requestHandler(req, res);
  let raw = '';
  req.on('data', (c) => { raw += c; });
  req.on('end', () => (async () => {
    const body = Object.fromEntries(new URLSearchParams(raw));
    const tenant = m[1];
    const clientId = body.client_id ?? '?';
    const json = (status, obj) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(obj));
    };
    if (body.grant_type !== 'client_credentials') {
      return json(400, { error: 'unsupported_grant_type', error_description: 'AADSTS70003: grant_type must be client_credentials' });
    }
    const verdict = await checkAssertion({ body, params: { tenant } });
    if (verdict) {
      bump(stats.tokenFailures, clientId);
      return json(400, { error: 'invalid_client', error_description: verdict, error_codes: [700213], timestamp: new Date().toISOString() });
    }
    bump(stats.tokens, clientId);
    const scope = String(body.scope ?? '');
    const token = await oauth.service.buildToken(req, 3600, (_header, payload) => {
      Object.assign(payload, {
        aud: scope.replace(/\/\.default$/, ''), appid: clientId, azp: clientId, tid: tenant,
        iss: `https://sts.windows.net/${tenant}/`, sub: clientId, oid: clientId,
      });
    });
    json(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
  })().catch((e) => { res.writeHead(500); res.end(String(e)); }));
});

// ---- vaults -------------------------------------------------------------------------------
const hex = () => randomBytes(16).toString('hex');
const now = () => Math.floor(Date.now() / 1000);
const vaults = {};   // name -> { port, host, secrets, certificates, keys, readers:Set, faults:[] }

function attributes() {
  const t = now();
  return { enabled: true, created: t, updated: t, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 };
}

function store(v, kind, name, bundleFor) {
  const lname = name.toLowerCase();
  const version = hex();
  v[kind][lname] ??= [];
  v[kind][lname].push({ version, bundle: bundleFor(version) });
  return version;
}

function addSecret(v, { name, value, contentType, managedBy }) {
  return store(v, 'secrets', name, (version) => ({
    value,
    ...(contentType ? { contentType } : {}),
    id: `${v.base}/secrets/${name}/${version}`,
    attributes: attributes(),
    tags: {},
    ...(managedBy ? { kid: `${v.base}/keys/${name}/${managedBy}`, managed: true } : {}),
  }));
}

function jwkOf(pem) {
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  return jwk.kty === 'RSA' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y };
}

function addCertificate(v, { name, value, contentType, cer }) {
  // The certificate, its backing secret and key share one version, as in Key Vault.
  const der = Buffer.from(cer, 'base64');
  const lname = name.toLowerCase();
  const version = hex();
  const x5t = createHash('sha1').update(der).digest('base64url');
  v.certificates[lname] ??= [];
  v.certificates[lname].push({ version, bundle: {
    id: `${v.base}/certificates/${name}/${version}`,
    kid: `${v.base}/keys/${name}/${version}`,
    sid: `${v.base}/secrets/${name}/${version}`,
    x5t, cer: der.toString('base64'),
    attributes: attributes(),
    policy: { id: `${v.base}/certificates/${name}/policy`, secret_props: { contentType }, key_props: { exportable: true, kty: 'RSA', key_size: 2048, reuse_key: false } },
    tags: {},
  } });
  v.secrets[lname] ??= [];
  v.secrets[lname].push({ version, bundle: {
    value, contentType, id: `${v.base}/secrets/${name}/${version}`, attributes: attributes(), tags: {},
    kid: `${v.base}/keys/${name}/${version}`, managed: true,
  } });
  return version;
}

function addKey(v, { name, pem }) {
  return store(v, 'keys', name, (version) => {
    const jwk = jwkOf(pem);
    const ops = jwk.kty === 'RSA' ? ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'] : ['sign', 'verify'];
    return { key: { kid: `${v.base}/keys/${name}/${version}`, ...jwk, key_ops: ops }, attributes: attributes(), tags: {} };
  });
}

const NOT_FOUND = { secrets: ['SecretNotFound', 'A secret'], certificates: ['CertificateNotFound', 'A certificate'], keys: ['KeyNotFound', 'A key'] };

function kvError(res, status, code, message, extra = {}, inner) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-ms-keyvault-service-version': '1.9.0.0', ...extra });
  res.end(JSON.stringify({ error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } }));
}

async function vaultHandler(v, req, res) {
  const url = new URL(req.url, `https://${v.host}`);
  const p = url.pathname.replace(/\/+$/, '').toLowerCase();
  const auth = req.headers.authorization ?? '';
  const key = `${req.method} ${p}`;
  v.stats[key] ??= { total: 0, unauthenticated: 0, statuses: {} };
  const s = v.stats[key];
  s.total += 1;
  const answer = (status) => { bump(s.statuses, String(status)); };

  if (!url.searchParams.get('api-version')) { answer(400); return kvError(res, 400, 'BadParameter', 'The api-version query parameter is missing.'); }
  if (!auth.startsWith('Bearer ')) {
    s.unauthenticated += 1; answer(401);
    return kvError(res, 401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.', {
      'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${v.tenant}", resource="${KV_AUDIENCE}"`,
    });
  }
  let claims;
  try {
    const jwks = jose.createLocalJWKSet({ keys: oauth.issuer.keys.toJSON(false) });
    ({ payload: claims } = await jose.jwtVerify(auth.slice(7), jwks, { audience: KV_AUDIENCE }));
  } catch (e) {
    answer(401);
    return kvError(res, 401, 'Unauthorized', `AKV10032: Invalid issuer or signature (${e.code ?? e.message}).`, {
      'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${v.tenant}", resource="${KV_AUDIENCE}"`,
    });
  }
  const fault = v.faults.find((f) => (f.path === p || f.path === '*') && f.times > 0);
  if (fault) {
    fault.times -= 1;
    if (fault.drop) { answer('drop'); req.socket.destroy(); return; }
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    answer(fault.status);
    const headers = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
    const code = fault.status === 429 ? 'Throttled' : 'InternalServerError';
    return kvError(res, fault.status, code, fault.status === 429 ? 'Rate limit is exceeded. Try again in a while.' : 'The service encountered an internal error.', headers);
  }
  if (!v.readers.has(claims.appid)) {
    answer(403);
    return kvError(res, 403, 'Forbidden', `Caller is not authorized to perform action on resource. If role assignments, deny assignments or role definitions were changed recently, please observe propagation time. Caller: appid=${claims.appid}; Vault: ${v.name};location=westeurope`, {}, 'ForbiddenByRbac');
  }
  const m = /^\/(secrets|certificates|keys)\/([0-9a-z-]+)(?:\/([0-9a-f]{32}))?$/.exec(p);
  if (req.method !== 'GET' || !m) { answer(400); return kvError(res, 400, 'BadParameter', `Unsupported request ${req.method} ${p}`); }
  const [, kind, name, version] = m;
  const versions = v[kind][name] ?? [];
  const found = version ? versions.find((e) => e.version === version) : versions[versions.length - 1];
  if (!found) {
    answer(404);
    const [code, what] = NOT_FOUND[kind];
    return kvError(res, 404, code, `${what} with (name/id) ${name}${version ? `/${version}` : ''} was not found in this key vault. If you recently deleted this ${kind.slice(0, -1)} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`);
  }
  answer(200);
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(found.bundle));
}

async function startVault(name, host) {
  const v = { name, secrets: {}, certificates: {}, keys: {}, readers: new Set(), faults: [], stats: {}, tenant: '00000000-0000-0000-0000-000000000000' };
  const server = http2.createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => {
    vaultHandler(v, req, res).catch((e) => { try { kvError(res, 500, 'HarnessError', String(e)); } catch { /* closed */ } });
  });
  server.on('session', (session) => session.on('error', () => {}));
  await new Promise((r) => server.listen(0, host, r));
  v.port = server.address().port;
  v.host = `${host}:${v.port}`;
  v.base = `https://${v.host}`;
  vaults[name] = v;
}

// ---- control API ---------------------------------------------------------------------
async function control(req, res) {
  let raw = '';
  for await (const c of req) raw += c;
  const body = raw ? JSON.parse(raw) : {};
  const send = (status, obj) => { const b = JSON.stringify(obj); res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) }); res.end(b); };
  const parts = req.url.split('?')[0].split('/').filter(Boolean);
  const v = parts[0] === 'vault' ? vaults[parts[1]] : null;
  if (parts[0] === 'vault' && !v) return send(404, { error: `no vault ${parts[1]}` });
  const op = parts[0] === 'vault' ? parts[2] : parts[0];
  switch (op) {
    case 'identity': identities.set(body.client_id, { tenant: body.tenant, subject: body.subject }); return send(200, {});
    case 'mint': return send(200, { token: await mint(body.subject, body.audience, body.expiresIn) });
    case 'grant': v.readers.add(body.client_id); return send(200, {});
    case 'secret': return send(200, { version: addSecret(v, body) });
    case 'certificate': return send(200, { version: addCertificate(v, body) });
    case 'key': return send(200, { version: addKey(v, body) });
    case 'fault': v.faults.push({ path: body.path.toLowerCase(), status: body.status, retryAfter: body.retryAfter, times: body.times ?? 1, drop: body.drop, delayMs: body.delayMs }); return send(200, {});
    case 'stats': return send(200, { vaults: Object.fromEntries(Object.entries(vaults).map(([n, x]) => [n, x.stats])), tokens: stats.tokens, tokenFailures: stats.tokenFailures });
    default: return send(404, { error: `unknown ${req.url}` });
  }
}

const controlServer = http.createServer((req, res) => control(req, res).catch((e) => { res.writeHead(500); res.end(JSON.stringify({ error: String(e.stack ?? e) })); }));
await new Promise((r) => controlServer.listen(0, '127.0.0.1', r));
await new Promise((r) => tokenServer.listen(0, '127.0.0.1', r));
oauth.issuer.url = `https://localhost:${tokenServer.address().port}`;
await startVault('a', '127.0.0.1');
await startVault('b', '127.0.0.2');

process.stdout.write(JSON.stringify({
  control: controlServer.address().port,
  token: tokenServer.address().port,
  vaults: { a: vaults.a.port, b: vaults.b.port },
}) + '\n');

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
