// In-pod binary benchmark for scripts/bench: akv-env and the peers given by path, in the
// same run, alternating run by run. Run inside scripts/lib/bench-inpod-ns.sh (a network
// and mount namespace of its own, where kv-bench-0.vault.azure.net and
// login.microsoftonline.com are 127.0.0.1).
//
// The backend: the Key Vault test bed (crates/akv-env/tests/testbed/harness.mjs: token
// endpoint + a vault named kv-bench-0.vault.azure.net with 50 secrets, on 127.0.0.2:443),
// Entra ID's discovery documents (bench-entra-discovery.mjs, on 127.0.0.1:443, for
// MSAL-based peers),
// all behind bench-delay-proxy.mjs (DELAY_MS per round trip, default 20). Every binary
// reads the same secrets with the same workload identity (federated token file, client
// id, tenant) from the same token endpoint and vault, trusting the same CA bundle.
//
// For 0, 1, 10, 50 secrets and each implementation that can reach this backend:
//   - injection is checked once (the app is /usr/bin/env: the last secret's value must be
//     in its environment);
//   - start: from spawning `WRAPPER [--] /bin/date +%s%N` to the application's start (date
//     prints its own start time), minus the same for /bin/date alone; RUNS runs;
//   - token, Key Vault and discovery requests and TLS connections per start (the
//     harness's and the discovery server's own counters);
//   - peak RSS (/usr/bin/time %M, /bin/true as the application);
// and once per implementation: whether the wrapper stays resident while the app runs,
// and with how much RSS (the app reads /proc/$PPID: after an execve its parent is this
// process).
// Also the floor a perfect wrapper could reach: one token request and one Key Vault GET,
// each on a new TLS connection through the same proxy.
//
// Env: AKV_TESTBED_* (scripts/testbed-keyvault env), BENCH_INPOD_IMPLS (JSON
// [{"name", "bin", "kind"}], kind: akv-env | secret-init | vault-env | akv2k8s-env),
// RUNS (10), DELAY_MS (20), BENCH_OUT (JSON file).
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { firstLine, floorOnce, startSeededHarness } from '../../crates/akv-env/tests/testbed/bench-setup.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const impls = JSON.parse(process.env.BENCH_INPOD_IMPLS);
const runs = Number(process.env.RUNS ?? 10);
const delayMs = Number(process.env.DELAY_MS ?? 20);
const counts = [0, 1, 10, 50];
const VAULT_HOST = 'kv-bench-0.vault.azure.net';
const fail = (msg) => { console.error(`bench-inpod: ERROR: ${msg}`); process.exit(1); };

// The vault and Entra ID at their real names and port 443 (Azure SDKs compare the vault's
// host, port included, with the challenge's resource): two loopback addresses.
const VAULT_ADDR = '127.0.0.2';
const LOGIN_ADDR = '127.0.0.1';
for (const [host, want] of [[VAULT_HOST, VAULT_ADDR], ['login.microsoftonline.com', LOGIN_ADDR]]) {
  const { address } = await lookup(host).catch(() => ({ address: null }));
  if (address !== want) fail(`${host} does not resolve to ${want}: run this through scripts/lib/bench-inpod-ns.sh`);
}

// ---- TLS: a bench CA for the production host names, plus the test bed's CA --------------
const dir = mkdtempSync(path.join(os.tmpdir(), 'akv-bench-inpod-'));
const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=akv-injector in-pod bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=vault.azure.net');
writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:*.vault.azure.net,DNS:login.microsoftonline.com\nextendedKeyUsage=serverAuth\n');
openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
const read = (f) => readFileSync(path.join(dir, f), 'utf8');
const bundle = path.join(dir, 'roots.pem');
writeFileSync(bundle, readFileSync(process.env.AKV_TESTBED_CA, 'utf8') + read('ca.pem'));
const ca = readFileSync(bundle);

// ---- backend ----------------------------------------------------------------------------
const { harness, ports, control, clientId, tenant, tokenFile } = await startSeededHarness(0);
const federated = readFileSync(tokenFile, 'utf8');
const { port: vaultPort } = await control('/vault-add', { name: 'bench0', hostname: VAULT_HOST, cert: read('server.pem'), key: read('server.key') });
await control('/vault/bench0/grant', { client_id: clientId });
const value = (i) => `value-${i}-${'x'.repeat(32)}`;
for (let i = 0; i < Math.max(...counts); i++) await control('/vault/bench0/secret', { name: `bench-secret-${i}`, value: value(i) });

const proxyTargets = [`127.0.0.1:${ports.token}`, `${VAULT_ADDR}:443=127.0.0.1:${vaultPort}`];
const proxy = spawn(process.execPath, [path.join(here, 'bench-delay-proxy.mjs'), String(delayMs), ...proxyTargets], { stdio: ['pipe', 'pipe', 'inherit'] });
const proxied = JSON.parse(await firstLine(proxy));
const tokenPort = proxied[proxyTargets[0]];
const discovery = spawn(process.execPath, [path.join(here, 'bench-entra-discovery.mjs'), path.join(dir, 'server.pem'), path.join(dir, 'server.key'), `https://localhost:${tokenPort}`], { stdio: ['pipe', 'pipe', 'inherit'] });
const discoveryPort = JSON.parse(await firstLine(discovery)).port;
// Entra ID's discovery host, at its real port, through the same delay.
const discoveryProxy = spawn(process.execPath, [path.join(here, 'bench-delay-proxy.mjs'), String(delayMs), `${LOGIN_ADDR}:443=127.0.0.1:${discoveryPort}`], { stdio: ['pipe', 'pipe', 'inherit'] });
await firstLine(discoveryProxy);
const discoveryStats = () => new Promise((resolve, reject) => {
  https.get({ host: '127.0.0.1', port: discoveryPort, path: '/stats', ca, servername: 'login.microsoftonline.com' }, (res) => {
    let raw = '';
    res.on('data', (c) => { raw += c; });
    res.on('end', () => resolve(JSON.parse(raw)));
  }).on('error', reject);
});

// ---- the implementations -----------------------------------------------------------------
const vaultUrl = `https://${VAULT_HOST}`;
const identity = { PATH: '/usr/bin:/bin', SSL_CERT_FILE: bundle, AZURE_CLIENT_ID: clientId, AZURE_TENANT_ID: tenant, AZURE_FEDERATED_TOKEN_FILE: tokenFile };
const refs = (n, ref) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`SECRET_${i}`, ref(`bench-secret-${i}`)]));
// akv2k8s's env injector refuses to run unless its arguments carry the webhook's signature
// (RSA PKCS#1 v1.5 over SHA-256 of the joined arguments, base64 twice; the public key as
// PEM, base64): made here for each application command line, as its webhook makes them.
const akv2k8sKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const akv2k8sSignature = (app) => ({
  ENV_INJECTOR_ARGS_SIGNATURE: Buffer.from(sign('sha256', Buffer.from(app.join(' ')), akv2k8sKey.privateKey).toString('base64')).toString('base64'),
  ENV_INJECTOR_ARGS_KEY: Buffer.from(akv2k8sKey.publicKey.export({ type: 'spki', format: 'pem' }).replace(/PUBLIC KEY/g, 'RSA PUBLIC KEY')).toString('base64'),
});
const KINDS = {
  'akv-env': {
    argv: (app) => ['--', ...app],
    env: (n) => ({ ...identity, AZURE_AUTHORITY_HOST: `https://localhost:${tokenPort}/`, AKV_INJECTOR_VAULT: vaultUrl, AKV_INJECTOR_TIMEOUT: '30s', ...refs(n, (s) => `akv:${s}`) }),
    counts,
  },
  // bank-vaults secret-init, Azure provider (azidentity's DefaultAzureCredential: workload
  // identity from the same AZURE_* variables; its authority stays login.microsoftonline.com).
  'secret-init': {
    argv: (app) => app,
    env: (n) => ({ ...identity, AZURE_KEY_VAULT_URL: vaultUrl, ...refs(n, (s) => `azure:keyvault:${s}`) }),
    counts,
  },
  'vault-env': {
    argv: (app) => app,
    // A static token: no Vault login at start; with no vault: reference nothing is read.
    env: () => ({ PATH: '/usr/bin:/bin', VAULT_ADDR: 'https://127.0.0.1:8200', VAULT_TOKEN: 'bench-static-token' }),
    counts: [0],
    reason: "speaks HashiCorp Vault's API only (VAULT_ADDR, Vault auth methods, KV paths): no Key Vault backend can be named",
  },
  'akv2k8s-env': {
    argv: (app) => app,
    env: (n, app) => ({ PATH: '/usr/bin:/bin', ENV_INJECTOR_USE_AUTH_SERVICE: 'false', KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '6443', ...akv2k8sSignature(app) }),
    counts: [0],
    reason: 'reads each reference as an AzureKeyVaultSecret object from the Kubernetes API (in-cluster config) before Key Vault, and authenticates only by client secret, certificate, password or IMDS managed identity (go-autorest adal, v1 token endpoint): no workload-identity federated token, so it cannot take the test bed token endpoint',
  },
};
for (const im of impls) if (!KINDS[im.kind]) fail(`unknown kind ${im.kind} for ${im.name}`);

// ---- measuring ---------------------------------------------------------------------------
const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const t0 = nowNs();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { err += c; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ t0, out, err }) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out}\n${err}`.slice(0, 4000)))));
  });
}
const DATE = ['/bin/date', '+%s%N'];
// The application's own start time: the last line of digits (wrappers may log to stdout).
async function startMs(cmd, args, env) {
  const r = await run(cmd, args, env);
  const line = r.out.trim().split('\n').reverse().find((l) => /^\d{16,}$/.test(l.trim()));
  if (!line) throw new Error(`${cmd}: the application printed no start time:\n${r.out}`);
  return Number(BigInt(line.trim()) - r.t0) / 1e6;
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const sumTotals = (obj) => Object.values(obj ?? {}).reduce((a, v) => a + v.total, 0);
const sumCounts = (obj) => Object.values(obj ?? {}).reduce((a, v) => a + v, 0);
const snapshot = async () => ({ h: await control('/stats'), d: await discoveryStats() });
const delta = (a, b) => ({
  tokens: (b.h.tokens[clientId] ?? 0) - (a.h.tokens[clientId] ?? 0),
  kv: sumTotals(b.h.vaults.bench0) - sumTotals(a.h.vaults.bench0),
  tokenConns: (b.h.tokenConnections ?? 0) - (a.h.tokenConnections ?? 0),
  kvConns: (b.h.connections.bench0 ?? 0) - (a.h.connections.bench0 ?? 0),
  discovery: sumCounts(b.d) - sumCounts(a.d),
});

const floorArgs = { ca, clientId, tenant, federated, token: { host: 'localhost', port: tokenPort }, vault: { host: VAULT_ADDR, servername: VAULT_HOST, port: 443 } };
await floorOnce(floorArgs);
const floor = [];
for (let i = 0; i < runs; i++) floor.push(await floorOnce(floorArgs));
const baseline = [];
for (let i = 0; i < runs; i++) baseline.push(await startMs(DATE[0], DATE.slice(1), identity));
const baselineMs = median(baseline);

const results = [];
for (const n of counts) {
  const able = impls.filter((im) => KINDS[im.kind].counts.includes(n));
  const per = Object.fromEntries(able.map((im) => [im.name, { times: [], tokens: 0, kv: 0, tokenConns: 0, kvConns: 0, discovery: 0 }]));
  for (const im of able) {
    const k = KINDS[im.kind];
    // Injection check: the last secret must reach the application's environment.
    const envApp = ['/usr/bin/env'];
    const r = await run(im.bin, k.argv(envApp), k.env(n, envApp));
    if (n > 0 && !r.out.split('\n').includes(`SECRET_${n - 1}=${value(n - 1)}`)) fail(`${im.name} did not inject SECRET_${n - 1} (${n} secrets):\n${r.out.slice(0, 2000)}\n${r.err.slice(0, 2000)}`);
    await startMs(im.bin, k.argv(DATE), k.env(n, DATE)); // warm the page cache
  }
  for (let i = 0; i < runs; i++) {
    for (const im of able) { // alternate: ours, peer, ours, peer, ...
      const k = KINDS[im.kind];
      const before = await snapshot();
      per[im.name].times.push(await startMs(im.bin, k.argv(DATE), k.env(n, DATE)));
      const d = delta(before, await snapshot());
      for (const key of Object.keys(d)) per[im.name][key] += d[key];
    }
  }
  for (const im of able) {
    const k = KINDS[im.kind];
    const rss = [];
    for (let i = 0; i < 3; i++) {
      const r = await run('/usr/bin/time', ['-f', '%M', im.bin, ...k.argv(['/bin/true'])], k.env(n, ['/bin/true']));
      rss.push(Number(r.err.trim().split('\n').pop()));
    }
    const p = per[im.name];
    const sorted = [...p.times].sort((a, b) => a - b);
    results.push({
      impl: im.name, secrets: n, runs,
      spawn_to_app_ms: { median: median(p.times), min: sorted[0], max: sorted[sorted.length - 1], all: p.times },
      overhead_ms: median(p.times) - baselineMs,
      token_requests_per_start: p.tokens / runs,
      keyvault_requests_per_start: p.kv / runs,
      discovery_requests_per_start: p.discovery / runs,
      token_connections_per_start: p.tokenConns / runs,
      keyvault_connections_per_start: p.kvConns / runs,
      peak_rss_kb: Math.max(...rss),
    });
  }
}

// Resident while the application runs: the app reads its parent. After an execve the
// wrapper is gone and the parent is this process.
const resident = {};
const probe = ['/bin/sh', '-c', 'cat /proc/$PPID/comm; grep VmRSS /proc/$PPID/status'];
for (const im of impls) {
  const k = KINDS[im.kind];
  const n = k.counts.includes(1) ? 1 : 0;
  const r = await run(im.bin, k.argv(probe), k.env(n, probe));
  const lines = r.out.trim().split('\n');
  const rssLine = lines.find((l) => l.startsWith('VmRSS:'));
  const comm = lines[lines.indexOf(rssLine) - 1]?.trim();
  resident[im.name] = comm === path.basename(process.execPath) || comm === 'node'
    ? { stays: false }
    : { stays: true, comm, rss_kb: Number(rssLine?.split(/\s+/)[1]) };
}

const out = {
  delay_ms: delayMs, runs, counts, baseline_date_ms: baselineMs, floor_ms: { median: median(floor), all: floor },
  impls: impls.map((im) => ({ ...im, counts: KINDS[im.kind].counts, reason: KINDS[im.kind].reason ?? null })),
  results, resident,
};
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify(out, null, 2) + '\n');
console.log(JSON.stringify({ delay_ms: delayMs, floor_ms: median(floor), baseline_date_ms: baselineMs, rows: results.map((r) => [r.impl, r.secrets, r.spawn_to_app_ms.median.toFixed(1), r.overhead_ms.toFixed(1), r.token_requests_per_start, r.keyvault_requests_per_start, r.discovery_requests_per_start, r.peak_rss_kb]), resident }));
for (const c of [harness, proxy, discovery, discoveryProxy]) c.stdin.end();
process.exit(0);
