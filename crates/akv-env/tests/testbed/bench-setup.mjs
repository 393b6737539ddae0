// Shared by the startup benchmarks (bench.mjs beside this file, run by
// scripts/bench-akv-env, and scripts/lib/bench-inpod.mjs, run by scripts/bench): starts
// the harness (token endpoint + vaults), enrols one workload identity, writes its
// federated token file and seeds vault "a" with the benchmark's secrets.
// Env: AKV_TESTBED_HARNESS (from scripts/testbed-keyvault env).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

/** The first line a child prints on stdout (its ports, as JSON). */
export const firstLine = (child) => new Promise((resolve, reject) => {
  readline.createInterface({ input: child.stdout }).once('line', resolve);
  child.once('exit', (code) => reject(new Error(`child exited ${code} before it was ready`)));
});

/** Starts the harness and prepares an identity and SECRETS secrets named bench-secret-N. */
export async function startSeededHarness(secrets = 50) {
  const harness = spawn(process.execPath, [process.env.AKV_TESTBED_HARNESS], { stdio: ['pipe', 'pipe', 'inherit'] });
  const ports = JSON.parse(await firstLine(harness));
  const control = (p, body = {}) => new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port: ports.control, path: p, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let raw = '';
      res.on('data', (c) => { raw += c; });
      res.on('end', () => resolve(raw ? JSON.parse(raw) : null));
    });
    req.on('error', reject);
    req.end(data);
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'akv-bench-'));
  const clientId = randomUUID();
  // The harness's vaults belong to one tenant; a token from another is refused.
  const tenant = ports.tenant ?? randomUUID();
  const subject = 'system:serviceaccount:bench:app';
  await control('/identity', { client_id: clientId, tenant, subject });
  const tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, (await control('/mint', { subject })).token);
  await control('/vault/a/grant', { client_id: clientId });
  for (let i = 0; i < secrets; i++) await control('/vault/a/secret', { name: `bench-secret-${i}`, value: `value-${i}-${'x'.repeat(32)}` });
  // akv-env's environment for this identity and vault a (what the webhook and Azure
  // Workload Identity would set); callers add their references and settings.
  const podEnv = {
    PATH: '/usr/bin:/bin',
    SSL_CERT_FILE: process.env.AKV_TESTBED_CA,
    AZURE_CLIENT_ID: clientId,
    AZURE_TENANT_ID: tenant,
    AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    AZURE_AUTHORITY_HOST: `https://localhost:${ports.token}/`,
    AKV_INJECTOR_VAULT: `https://127.0.0.1:${ports.vaults.a}`,
    AKV_INJECTOR_ALLOW_VAULT_HOSTS: '127.0.0.1',
  };
  return { harness, ports, control, clientId, tenant, tokenFile, podEnv };
}

/** BASE plus N variables SECRET_i referencing bench-secret-i. */
export function envFor(base, n) {
  const env = { ...base };
  for (let i = 0; i < n; i++) env[`SECRET_${i}`] = `akv:bench-secret-${i}`;
  return env;
}

/** One HTTPS request on a new connection; resolves with the JSON answer of a 200. */
export function freshRequest(opts, body) {
  return new Promise((resolve, reject) => {
    const req = https.request({ agent: false, ...opts }, (res) => {
      let raw = '';
      res.on('data', (c) => { raw += c; });
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(raw)) : reject(new Error(`${opts.path}: ${res.statusCode} ${raw}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The floor a perfect client could reach, in ms: one token request, then one Key Vault
 * GET, each on a new TLS connection. `token` and `vault` are {host, port, servername?};
 * `ca` the roots; `secret` a secret the identity may read.
 */
export async function floorOnce({ ca, token, vault, clientId, tenant, federated, secret = 'bench-secret-0' }) {
  const t0 = performance.now();
  const tok = await tokenOnce({ ca, token, clientId, tenant, federated });
  await freshRequest({ ca, ...vault, path: `/secrets/${secret}?api-version=2025-07-01`, method: 'GET', headers: { authorization: `Bearer ${tok.access_token}` } });
  return performance.now() - t0;
}

/**
 * The floor for N objects, in ms: one token request, then for each vault one new HTTP/2
 * connection carrying all of that vault's GETs at once. No client can fetch N objects
 * from this harness faster: it includes the harness's own time to answer N requests,
 * which the one-GET floor leaves out. `vaults`: [{host, port, servername, secrets}].
 */
export async function floorAllOnce({ ca, token, vaults, clientId, tenant, federated }) {
  const t0 = performance.now();
  const tok = await tokenOnce({ ca, token, clientId, tenant, federated });
  await Promise.all(vaults.map((v) => batchOnOneConnection({ ca, ...v, bearer: tok.access_token })));
  return performance.now() - t0;
}

function tokenOnce({ ca, token, clientId, tenant, federated }) {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, scope: 'https://vault.azure.net/.default', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: federated }).toString();
  return freshRequest({ ca, ...token, path: `/${tenant}/oauth2/v2.0/token`, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(form) } }, form);
}

/** Every GET of `secrets` at once on one new HTTP/2 connection; rejects on any non-200. */
function batchOnOneConnection({ ca, host, port, servername, secrets, bearer }) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${host}:${port}`, { ca, servername });
    const fail = (e) => { session.destroy(); reject(e); };
    session.on('error', fail);
    let left = secrets.length;
    for (const name of secrets) {
      const req = session.request({ ':method': 'GET', ':path': `/secrets/${name}?api-version=2025-07-01`, authorization: `Bearer ${bearer}` });
      let raw = '';
      let status = 0;
      req.setEncoding('utf8');
      req.on('response', (h) => { status = h[':status']; });
      req.on('data', (c) => { raw += c; });
      req.on('error', fail);
      req.on('end', () => {
        if (status !== 200) return fail(new Error(`${name}: ${status} ${raw}`));
        JSON.parse(raw);
        if (--left === 0) { session.close(); resolve(); }
      });
      req.end();
    }
  });
}
