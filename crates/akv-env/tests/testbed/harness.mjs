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
//   /secrets|certificates|keys/NAME[/VERSION]?api-version=..., names case-insensitive.
//   More vaults under real Key Vault host names (myvault.vault.azure.net, ...) with their
//   own TLS certificate: POST /vault-add (tests resolve the name to loopback themselves);
//   with "http1Only", a vault that offers only HTTP/1.1 (ALPN), as a proxy might.
//   lowkey-vault cannot be installed here (not on Maven Central; see scripts/testbed-keyvault).
// - Every vault answers as the real service does where a recording in
//   ../shared/vectors/keyvault/ (or a documented answer) shows it; each behaviour below
//   names its source. Recordings are cited by file name.
// - All vaults belong to one tenant (AKV_TESTBED_TENANT_ID, default
//   00000000-0000-0000-0000-00000000beef, the one scripts/kube-up uses); a token from
//   another tenant or issuer is refused as the service refuses it.
// - Faults: per vault and path, answer N times with a status (429 with Retry-After, 5xx),
//   drop the connection, or send an oversized body, before the real answer; per vault, a
//   hostile challenge (another resource or scope); per identity, an oversized token answer.
// - Control API: plain HTTP on loopback, JSON; counts every request, and every token
//   request per client id and scope, and every TLS connection (per vault, and to the
//   token endpoint).
//
// Env: AKV_TESTBED_NODE_MODULES, AKV_TESTBED_CERT, AKV_TESTBED_KEY, AKV_TESTBED_TENANT_ID.
// Prints one JSON line {"control":PORT,"token":PORT,"vaults":{"a":PORT,"b":PORT},
// "tenant":TENANT}; exits when its stdin closes (the test process ended).

import { X509Certificate, createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
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
const TENANT = process.env.AKV_TESTBED_TENANT_ID || '00000000-0000-0000-0000-00000000beef';
// Entra ID takes a tenant's verified domain in place of its GUID in the authority URL
// (https://login.microsoftonline.com/contoso.onmicrosoft.com/...), and the token it issues
// carries the GUID in `tid` (Microsoft identity platform docs, "Authority" / "tid" claim).
const TENANT_DOMAIN = (process.env.AKV_TESTBED_TENANT_DOMAIN || 'contoso.onmicrosoft.com').toLowerCase();
const canonicalTenant = (t) => (String(t).toLowerCase() === TENANT_DOMAIN ? TENANT : t);
// Key Vault's audience per DNS suffix (Azure PowerShell's cloud table:
// AzureKeyVaultDnsSuffix -> AzureKeyVaultServiceEndpointResourceId; Managed HSM's challenge).
const AUDIENCES = [
  ['vault.azure.net', 'https://vault.azure.net'],
  ['vault.azure.cn', 'https://vault.azure.cn'],
  ['vault.usgovcloudapi.net', 'https://vault.usgovcloudapi.net'],
  ['vault.microsoftazure.de', 'https://vault.microsoftazure.de'],
  ['managedhsm.azure.net', 'https://managedhsm.azure.net'],
];
const audienceOf = (host) => (AUDIENCES.find(([suffix]) => host.endsWith(`.${suffix}`)) ?? [null, KV_AUDIENCE])[1];
// api-versions the service knows (the SDKs' recordings use 7.6-preview.1/.2 and 2025-07-01).
const API_VERSIONS = new Set(['2016-10-01', '7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6-preview.1', '7.6-preview.2', '7.6', '2025-06-01-preview', '2025-07-01']);
const LATEST_API_VERSION = '2025-07-01';

// ---- counters -------------------------------------------------------------------------
const stats = { vault: {}, tokens: {}, tokenFailures: {}, scopes: {}, tokenConnections: 0, certificateAssertions: 0, imdsRequests: 0 };
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

// Federated identity credentials: client id -> { tenant, subject, issuer?, hugeTokenBody? }.
const identities = new Map();
// Service principals (app registrations with credentials): client id -> { tenant, secret?,
// secretExpired?, certs: [PEM] }.
const servicePrincipals = new Map();
// Managed identities assigned to "the node": client id -> { system }.
const managedIdentities = new Map();

// The client-credentials grant with a secret or a certificate assertion, checked as Entra
// ID checks it. Texts: Entra ID's error code reference (AADSTS7000215 "Invalid client secret
// provided. Ensure the secret being sent in the request is the client secret value, not the
// client secret ID", AADSTS7000222 "The provided client secret keys for app '...' are
// expired", AADSTS700027 "Client assertion failed signature validation" /
// "The certificate with identifier used to sign the client assertion is not registered on
// application").
async function checkServicePrincipal(body, tenant, tokenUrl) {
  const clientId = body.client_id;
  const sp = servicePrincipals.get(clientId);
  if (sp.tenant !== tenant) return [700016, `AADSTS700016: Application with identifier '${clientId}' was not found in the directory '${tenant}'.`];
  if (body.client_secret !== undefined) {
    if (!sp.secret || body.client_secret !== sp.secret) return [7000215, `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`];
    if (sp.secretExpired) return [7000222, `AADSTS7000222: The provided client secret keys for app '${clientId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`];
    return null;
  }
  if (body.client_assertion_type !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return [7000216, 'AADSTS7000216: client_assertion_type is wrong'];
  let header;
  try { header = jose.decodeProtectedHeader(body.client_assertion ?? ''); } catch (e) { return [50027, `AADSTS50027: JWT token is invalid or malformed (${e.message}).`]; }
  const thumb = header['x5t#S256'];
  const cert = (sp.certs ?? []).map((pem) => new X509Certificate(pem)).find((c) => createHash('sha256').update(c.raw).digest('base64url') === thumb);
  if (!cert) return [700027, `AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${thumb}']`];
  if (header.alg !== 'RS256' && header.alg !== 'PS256') return [700027, `AADSTS700027: Client assertion failed signature validation (alg ${header.alg}).`];
  if (header.x5t !== undefined && header.x5t !== createHash('sha1').update(cert.raw).digest('base64url')) return [700027, 'AADSTS700027: Client assertion failed signature validation (x5t does not match x5t#S256).'];
  try {
    await jose.jwtVerify(body.client_assertion, cert.publicKey, { audience: tokenUrl, issuer: clientId, subject: clientId, algorithms: ['RS256', 'PS256'] });
  } catch (e) {
    return [700027, `AADSTS700027: Client assertion failed signature validation (${e.code ?? e.message}).`];
  }
  stats.certificateAssertions += 1;
  return null;
}

// Streams `bytes` bytes of filler as the body; `declared` says whether Content-Length is sent.
async function sendHuge(res, status, bytes, declared) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...(declared ? { 'content-length': String(bytes) } : {}) });
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  let closed = false;
  let wake = () => {};
  res.on('close', () => { closed = true; wake(); });
  res.on('drain', () => wake());
  while (sent < bytes && !closed) {
    const part = chunk.subarray(0, Math.min(chunk.length, bytes - sent));
    sent += part.length;
    if (!res.write(part)) await new Promise((r) => { wake = r; });
  }
  if (!closed) res.end();
}

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
    const tenant = canonicalTenant(decodeURIComponent(m[1]));
    const clientId = body.client_id ?? '?';
    const json = (status, obj) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(obj));
    };
    stats.scopes[clientId] ??= {};
    bump(stats.scopes[clientId], String(body.scope ?? ''));
    if (body.grant_type !== 'client_credentials') {
      return json(400, { error: 'unsupported_grant_type', error_description: 'AADSTS70003: grant_type must be client_credentials' });
    }
    if (servicePrincipals.has(clientId)) {
      // The audience of a certificate assertion is the token URL the client used: this
      // server's, or the end-to-end front's (which names it in x-forwarded-host).
      const host = req.headers['x-forwarded-host'] ?? `localhost:${tokenServer.address().port}`;
      const tokenUrl = `https://${host}/${m[1]}/oauth2/v2.0/token`;
      const refused = await checkServicePrincipal(body, tenant, tokenUrl);
      if (refused) {
        bump(stats.tokenFailures, clientId);
        return json(401, { error: 'invalid_client', error_description: refused[1], error_codes: [refused[0]], timestamp: new Date().toISOString() });
      }
    } else {
      const verdict = await checkAssertion({ body, params: { tenant } });
      if (verdict) {
        bump(stats.tokenFailures, clientId);
        return json(400, { error: 'invalid_client', error_description: verdict, error_codes: [700213], timestamp: new Date().toISOString() });
      }
    }
    bump(stats.tokens, clientId);
    const scope = String(body.scope ?? '');
    const id = identities.get(clientId) ?? servicePrincipals.get(clientId);
    if (id.hugeTokenBody) return sendHuge(res, 200, id.hugeTokenBody.bytes, id.hugeTokenBody.declared);
    // The audience is the resource of the `/.default` scope. MSAL clients send the OpenID
    // Connect scopes beside it ("X/.default openid offline_access profile"); Entra ID takes
    // those as reserved and issues the token for X alone (Microsoft identity platform docs,
    // "Scopes and permissions": openid, profile, offline_access, email).
    const resource = (scope.split(' ').find((s) => s.endsWith('/.default')) ?? scope).replace(/\/\.default$/, '');
    const token = await oauth.service.buildToken(req, 3600, (_header, payload) => {
      Object.assign(payload, {
        aud: resource, appid: clientId, azp: clientId, tid: tenant,
        // v1 access tokens for Key Vault carry this issuer (see the AKV10032 texts below).
        iss: id.issuer ?? `https://sts.windows.net/${tenant}/`, sub: clientId, oid: clientId,
      });
    });
    json(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
  })().catch((e) => { res.writeHead(500); res.end(String(e)); }));
});

// ---- IMDS, on loopback -------------------------------------------------------------------
// GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id=C] with
// "Metadata: true"; answers as IMDS does (numbers as strings; 400 "Identity not found" for a
// client id not assigned to the VM; 400 without the Metadata header). Tokens come from the
// same issuer as the token endpoint, so the vaults accept them.
const imdsServer = http.createServer((req, res) => (async () => {
  stats.imdsRequests += 1;
  const url = new URL(req.url, 'http://imds.invalid');
  const send = (status, obj) => { res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }); res.end(JSON.stringify(obj)); };
  if (url.pathname !== '/metadata/identity/oauth2/token') return send(404, { error: 'not_found' });
  if (req.headers.metadata !== 'true') return send(400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
  const resource = url.searchParams.get('resource');
  if (!url.searchParams.get('api-version') || !resource) return send(400, { error: 'invalid_request', error_description: 'Required query variable \'resource\' is missing' });
  let clientId = url.searchParams.get('client_id');
  if (clientId && !managedIdentities.has(clientId)) return send(400, { error: 'invalid_request', error_description: 'Identity not found' });
  if (!clientId) {
    const system = [...managedIdentities.entries()].find(([, v]) => v.system);
    if (!system) return send(400, { error: 'invalid_request', error_description: 'Identity not found' });
    clientId = system[0];
  }
  bump(stats.tokens, clientId);
  const token = await oauth.issuer.buildToken({ scopesOrTransform: (_h, payload) => {
    Object.assign(payload, { aud: resource, appid: clientId, azp: clientId, tid: TENANT, iss: `https://sts.windows.net/${TENANT}/`, sub: clientId, oid: clientId });
  }, expiresIn: 3600 });
  const now = Math.floor(Date.now() / 1000);
  send(200, { access_token: token, client_id: clientId, expires_in: '86399', expires_on: String(now + 86399), ext_expires_in: '86399', not_before: String(now), resource, token_type: 'Bearer' });
})().catch((e) => { res.writeHead(500); res.end(String(e)); }));

// ---- connection counts -------------------------------------------------------------------
// Each TLS connection, counted once its handshake is done.
const countConnections = (server, count) => server.on('secureConnection', () => count());
countConnections(tokenServer, () => { stats.tokenConnections += 1; });

// ---- vaults -------------------------------------------------------------------------------
const hex = () => randomBytes(16).toString('hex');
const now = () => Math.floor(Date.now() / 1000);
const vaults = {};   // name -> { port, host, base, audience, secrets, certificates, keys, readers:Set, faults:[], challenge }

function attributes(extra = {}) {
  const t = now();
  return { enabled: true, created: t, updated: t, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90, ...extra };
}

function store(v, kind, name, bundleFor) {
  const lname = name.toLowerCase();
  const version = hex();
  v[kind][lname] ??= [];
  v[kind][lname].push({ version, bundle: bundleFor(version) });
  return version;
}

function addSecret(v, { name, value, contentType, managedBy, enabled }) {
  return store(v, 'secrets', name, (version) => ({
    value,
    ...(contentType ? { contentType } : {}),
    id: `${v.base}/secrets/${name}/${version}`,
    attributes: attributes(enabled === false ? { enabled: false } : {}),
    tags: {},
    ...(managedBy ? { kid: `${v.base}/keys/${name}/${managedBy}`, managed: true } : {}),
  }));
}

function jwkOf(keyObject) {
  const jwk = keyObject.export({ format: 'jwk' });
  return jwk.kty === 'RSA' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y };
}
const keyOps = (kty) => (kty === 'RSA' ? ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'] : ['sign', 'verify']);

function addCertificate(v, { name, value, contentType, cer }) {
  // The certificate, its backing secret and key share one version, as in Key Vault
  // (net-certs-DownloadLatestCertificate-*.excerpt.json: id/kid/sid end in the same version).
  const der = Buffer.from(cer, 'base64');
  const lname = name.toLowerCase();
  const version = hex();
  const x5t = createHash('sha1').update(der).digest('base64url');
  const x509 = new X509Certificate(der);
  const validity = { nbf: Math.floor(Date.parse(x509.validFrom) / 1000), exp: Math.floor(Date.parse(x509.validTo) / 1000) };
  const jwk = jwkOf(x509.publicKey);
  v.certificates[lname] ??= [];
  v.certificates[lname].push({ version, bundle: {
    id: `${v.base}/certificates/${name}/${version}`,
    kid: `${v.base}/keys/${name}/${version}`,
    sid: `${v.base}/secrets/${name}/${version}`,
    x5t, cer: der.toString('base64'),
    attributes: attributes(validity),
    tags: {},
  }, policy: {
    // The policy's shape in net-certs-DownloadLatestCertificate-pem.excerpt.json.
    id: `${v.base}/certificates/${name}/policy`,
    key_props: { exportable: true, kty: jwk.kty, ...(jwk.kty === 'RSA' ? { key_size: 2048 } : { crv: jwk.crv }), reuse_key: false },
    secret_props: { contentType },
    x509_props: { subject: x509.subject.replace(/\n/g, ', '), ekus: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], key_usage: ['digitalSignature', 'keyEncipherment'], validity_months: 12, basic_constraints: { ca: false } },
    lifetime_actions: [{ trigger: { lifetime_percentage: 80 }, action: { action_type: 'AutoRenew' } }],
    issuer: { name: 'Self', cert_transparency: false },
    attributes: { enabled: true, created: now(), updated: now() },
  } });
  // The backing secret: managed, with the key's kid (net-certs-DownloadLatestCertificate-pem).
  v.secrets[lname] ??= [];
  v.secrets[lname].push({ version, bundle: {
    value, contentType, id: `${v.base}/secrets/${name}/${version}`, attributes: attributes(validity), tags: {},
    kid: `${v.base}/keys/${name}/${version}`, managed: true,
  } });
  // The managed key: GET /keys/NAME[/VERSION] answers the certificate's public key as a
  // JWK, marked managed (KeyBundle.Managed: "If this is a key backing a certificate, then
  // managed will be true" —
  // https://learn.microsoft.com/dotnet/api/microsoft.azure.keyvault.models.keybundle).
  v.keys[lname] ??= [];
  v.keys[lname].push({ version, bundle: {
    key: { kid: `${v.base}/keys/${name}/${version}`, ...jwk, key_ops: keyOps(jwk.kty) },
    attributes: attributes({ ...validity, exportable: true }), tags: {}, managed: true,
  } });
  return version;
}

function addKey(v, { name, pem }) {
  // The JWK's shape in rust-keys-key_roundtrip.json (kid, kty, key_ops, n, e unpadded base64url).
  return store(v, 'keys', name, (version) => {
    const jwk = jwkOf(createPublicKey(pem));
    return { key: { kid: `${v.base}/keys/${name}/${version}`, ...jwk, key_ops: keyOps(jwk.kty) }, attributes: attributes(), tags: {} };
  });
}

// 404 codes and texts: net-secrets-StartDeleteSecretNonExisting-404.json ("A secret with
// (name/id) NAME was not found in this key vault. ..."); certificates and keys alike.
const NOT_FOUND = { secrets: ['SecretNotFound', 'A secret'], certificates: ['CertificateNotFound', 'A certificate'], keys: ['KeyNotFound', 'A key'] };

function kvError(res, status, code, message, extra = {}, inner) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-ms-keyvault-service-version': '1.9.2762.1', ...extra });
  res.end(JSON.stringify({ error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } }));
}

// The challenge: net-secrets-GetSecretWithVersion.json and the other 2024 recordings:
//   WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"
// naming the vault's tenant; the audience is the vault's cloud's. A test may make a vault
// hostile: another resource, or a scope= challenge.
function challengeOf(v) {
  const c = v.challenge ?? {};
  const authority = `https://login.microsoftonline.com/${v.tenant}`;
  if (c.scope) return `Bearer authorization="${authority}", scope="${c.scope}"`;
  return `Bearer authorization="${authority}", resource="${c.resource ?? v.audience}"`;
}

function unauthorized(v, res, message) {
  // Every 401 carries the challenge; body {"error":{"code":"Unauthorized","message":...}}.
  return kvError(res, 401, 'Unauthorized', message, { 'www-authenticate': challengeOf(v) });
}

// Why a bearer token is refused, in the service's words, or null.
async function refuseToken(v, token) {
  let claims;
  try {
    claims = jose.decodeJwt(token);
  } catch {
    return 'AKV10000: Request is missing a Bearer or PoP token.';
  }
  // Issuer first: "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/<vault
  // tenant>/, ..., found https://sts.windows.net/<token tenant>/." (quoted in
  // Azure/azure-sdk-for-js#6221 and #12539, MicrosoftDocs/azure-docs#75410).
  const expected = [`https://sts.windows.net/${v.tenant}/`, `https://login.microsoftonline.com/${v.tenant}/v2.0`];
  if (!expected.includes(claims.iss)) return `AKV10032: Invalid issuer. Expected one of ${expected.join(', ')}, found ${claims.iss}.`;
  // Audience: "AKV10022: Invalid audience. Expected https://vault.azure.net, found:
  // https://management.azure.com/." (quoted in public write-ups of that error).
  if (claims.aud !== v.audience) return `AKV10022: Invalid audience. Expected ${v.audience}, found: ${claims.aud}.`;
  // Signature and lifetime: no recording shows the service's text (see the README there);
  // modeled. A token whose signature was checked once is remembered until it expires (as
  // a service caches validated tokens): a start with 200 objects sends the same token 200
  // times, and the benchmarks measure akv-env, not 200 RSA verifications here.
  const exp = verifiedTokens.get(token);
  if (exp !== undefined && Date.now() / 1000 < exp) return null;
  try {
    jwks ??= jose.createLocalJWKSet({ keys: oauth.issuer.keys.toJSON(false) });
    const { payload } = await jose.jwtVerify(token, jwks, { audience: v.audience });
    if (verifiedTokens.size >= 10000) verifiedTokens.clear();
    verifiedTokens.set(token, payload.exp ?? 0);
  } catch (e) {
    return `AKV10032: Invalid issuer or signature (${e.code ?? e.message}).`;
  }
  return null;
}

// The issuer's keys as a key set (made once: the keys do not change), and the tokens
// already verified against it, each with its expiry (seconds since the epoch).
let jwks;
const verifiedTokens = new Map();

async function vaultHandler(v, req, res) {
  const url = new URL(req.url, `https://${v.host}`);
  const asSent = url.pathname.replace(/\/+$/, '');
  const p = asSent.toLowerCase();
  const auth = req.headers.authorization ?? '';
  const key = `${req.method} ${p}`;
  v.stats[key] ??= { total: 0, unauthenticated: 0, statuses: {} };
  const s = v.stats[key];
  s.total += 1;
  const answer = (status) => { bump(s.statuses, String(status)); };

  const apiVersion = url.searchParams.get('api-version');
  if (!apiVersion) { answer(400); return kvError(res, 400, 'BadParameter', 'The api-version query parameter is missing.'); }
  // An unknown version: 400 BadParameter "The specified version (X) is not recognized.
  // Consider using the latest supported version (Y)." (the service's answer quoted in
  // Azure/azure-sdk-for-net#14789 and Azure/azure-sdk-for-python#28595).
  if (!API_VERSIONS.has(apiVersion)) {
    answer(400);
    return kvError(res, 400, 'BadParameter', `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (${LATEST_API_VERSION}).`);
  }
  if (!auth.startsWith('Bearer ')) {
    // net-certs-DownloadLatestCertificate-pem.excerpt.json: 401, the challenge, and
    // {"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}.
    s.unauthenticated += 1; answer(401);
    return unauthorized(v, res, 'AKV10000: Request is missing a Bearer or PoP token.');
  }
  const refused = await refuseToken(v, auth.slice(7));
  if (refused) { answer(401); return unauthorized(v, res, refused); }
  const claims = jose.decodeJwt(auth.slice(7));
  const fault = v.faults.find((f) => (f.path === p || f.path === '*') && f.times > 0);
  if (fault) {
    fault.times -= 1;
    if (fault.drop) { answer('drop'); req.socket.destroy(); return; }
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault.hugeBody) { answer('huge'); return sendHuge(res, 200, fault.hugeBody.bytes, fault.hugeBody.declared); }
    answer(fault.status);
    const headers = fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {};
    const code = fault.status === 429 ? 'Throttled' : 'InternalServerError';
    return kvError(res, fault.status, code, fault.status === 429 ? 'Rate limit is exceeded. Try again in a while.' : 'The service encountered an internal error.', headers);
  }
  if (!v.readers.has(claims.appid)) {
    // No recording shows ForbiddenByRbac (README there); modeled on the documented text.
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
    // The name as sent, case kept (the service echoes the request's path segment).
    const sentName = asSent.split('/')[2];
    return kvError(res, 404, code, `${what} with (name/id) ${sentName}${version ? `/${version}` : ''} was not found in this key vault. If you recently deleted this ${kind.slice(0, -1)} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`);
  }
  if (kind === 'secrets' && found.bundle.attributes.enabled === false) {
    // js-secrets-cant_get_a_disabled_secret-403.excerpt.json: 403
    // {"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}
    answer(403);
    return kvError(res, 403, 'Forbidden', 'Operation get is not allowed on a disabled secret.', {}, 'SecretDisabled');
  }
  // The latest certificate comes with its policy (net-certs-DownloadLatestCertificate-*:
  // GET /certificates/NAME/ has "policy"); a version without it (GetCertificateVersion
  // "gets a specific version", GetCertificate "returns the latest version ... along with
  // its CertificatePolicy": learn.microsoft.com/dotnet/api/azure.security.keyvault.
  // certificates.certificateclient.getcertificateasync and .getcertificateversionasync).
  const bundle = kind === 'certificates' && !version ? { ...found.bundle, policy: found.policy } : found.bundle;
  answer(200);
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-ms-keyvault-service-version': '1.9.2762.1' });
  res.end(JSON.stringify(bundle));
}

// A vault on loopback. `hostname`: the name clients use (default: the address); `tls`: its
// own certificate (PEM cert and key) for a real Key Vault host name; `http1Only`: a server
// that offers only HTTP/1.1 by ALPN (a proxy in front of a vault), not HTTP/2.
async function startVault(name, address, { hostname, tls: own, http1Only } = {}) {
  const v = { name, secrets: {}, certificates: {}, keys: {}, readers: new Set(), faults: [], stats: {}, connections: 0, tenant: TENANT };
  const handler = (req, res) => {
    vaultHandler(v, req, res).catch((e) => { try { kvError(res, 500, 'HarnessError', String(e)); } catch { /* closed */ } });
  };
  const server = http1Only
    ? https.createServer({ ...(own ?? tls), ALPNProtocols: ['http/1.1'] }, handler)
    : http2.createSecureServer({ ...(own ?? tls), allowHTTP1: true }, handler);
  server.on('session', (session) => session.on('error', () => {}));
  countConnections(server, () => { v.connections += 1; });
  await new Promise((r) => server.listen(0, address, r));
  v.port = server.address().port;
  // A real name is reached on port 443 as far as the client's URL goes (the test's
  // resolver override supplies the port): ids carry no port, as the service's do.
  v.host = hostname ? hostname.toLowerCase() : `${address}:${v.port}`;
  v.base = `https://${v.host}`;
  v.audience = audienceOf(hostname ? v.host : '');
  vaults[name] = v;
  return v;
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
    case 'info': return send(200, { tenant: TENANT, tenantDomain: TENANT_DOMAIN });
    case 'identity': identities.set(body.client_id, { tenant: body.tenant, subject: body.subject, issuer: body.issuer, hugeTokenBody: body.hugeTokenBody }); return send(200, {});
    case 'service-principal': servicePrincipals.set(body.client_id, { tenant: body.tenant, secret: body.secret, secretExpired: body.secretExpired, certs: body.certs ?? [] }); return send(200, {});
    case 'managed-identity': managedIdentities.set(body.client_id, { system: Boolean(body.system) }); return send(200, {});
    case 'mint': return send(200, { token: await mint(body.subject, body.audience, body.expiresIn) });
    case 'vault-add': {
      if (vaults[body.name]) return send(409, { error: `vault ${body.name} exists` });
      const own = body.hostname ? { hostname: body.hostname, tls: { cert: body.cert, key: body.key } } : {};
      const added = await startVault(body.name, '127.0.0.1', { ...own, http1Only: body.http1Only });
      return send(200, { port: added.port, audience: added.audience });
    }
    case 'challenge': v.challenge = { resource: body.resource, scope: body.scope }; return send(200, {});
    case 'grant': v.readers.add(body.client_id); return send(200, {});
    case 'secret': return send(200, { version: addSecret(v, body) });
    case 'certificate': return send(200, { version: addCertificate(v, body) });
    case 'key': return send(200, { version: addKey(v, body) });
    case 'faults-clear': v.faults = []; return send(200, {});
    case 'fault': v.faults.push({ path: body.path.toLowerCase(), status: body.status, retryAfter: body.retryAfter, times: body.times ?? 1, drop: body.drop, delayMs: body.delayMs, hugeBody: body.hugeBody }); return send(200, {});
    case 'stats': return send(200, { vaults: Object.fromEntries(Object.entries(vaults).map(([n, x]) => [n, x.stats])), connections: Object.fromEntries(Object.entries(vaults).map(([n, x]) => [n, x.connections])), tokenConnections: stats.tokenConnections, certificateAssertions: stats.certificateAssertions, imdsRequests: stats.imdsRequests, tokens: stats.tokens, tokenFailures: stats.tokenFailures, scopes: stats.scopes });
    default: return send(404, { error: `unknown ${req.url}` });
  }
}

const controlServer = http.createServer((req, res) => control(req, res).catch((e) => { res.writeHead(500); res.end(JSON.stringify({ error: String(e.stack ?? e) })); }));
await new Promise((r) => controlServer.listen(0, '127.0.0.1', r));
await new Promise((r) => tokenServer.listen(0, '127.0.0.1', r));
await new Promise((r) => imdsServer.listen(0, '127.0.0.1', r));
oauth.issuer.url = `https://localhost:${tokenServer.address().port}`;
await startVault('a', '127.0.0.1');
await startVault('b', '127.0.0.2');

process.stdout.write(JSON.stringify({
  control: controlServer.address().port,
  token: tokenServer.address().port,
  imds: imdsServer.address().port,
  vaults: { a: vaults.a.port, b: vaults.b.port },
  tenant: TENANT,
  tenantDomain: TENANT_DOMAIN,
}) + '\n');

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
