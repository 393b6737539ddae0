// In-pod binary startup benchmark for scripts/bench (issue 6, item 3).
// Reuses the Key Vault test bed (crates/akv-env/tests/testbed/harness.mjs: token endpoint +
// vaults) and puts bench-delay-proxy.mjs (DELAY_MS, default 20) in front of the token
// endpoint and vault "a". For 1, 10 and 50 secrets, RUNS times each, alternating the
// implementations run by run, it measures the time from spawning `WRAPPER -- /bin/date +%s%N`
// to the application's start (date prints its own start time), minus the same for
// /bin/date alone; token and Key Vault requests per start; peak RSS (/usr/bin/time %M, with
// /bin/true as the application so the wrapper's own peak is what is reported).
// It also measures the floor a perfect wrapper could reach: one token request and one Key
// Vault GET, each on a new TLS connection through the same proxies (from this process).
//
// Env: AKV_TESTBED_* (scripts/testbed-keyvault env), BENCH_INPOD_IMPLS (JSON
// [{"name":..., "bin":...}], all speak akv-env's interface), RUNS, DELAY_MS, BENCH_OUT (JSON file).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { envFor as envFor_, firstLine, floorOnce, startSeededHarness } from '../../crates/akv-env/tests/testbed/bench-setup.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const impls = JSON.parse(process.env.BENCH_INPOD_IMPLS);
const runs = Number(process.env.RUNS ?? 10);
const delayMs = Number(process.env.DELAY_MS ?? 20);
const counts = [1, 10, 50];

const { harness, ports, control, clientId, tenant, tokenFile } = await startSeededHarness();
const federated = readFileSync(tokenFile, 'utf8');
const countFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'akv-bench-proxy-')), 'connections.json');
const proxy = spawn(process.execPath, [path.join(here, 'bench-delay-proxy.mjs'), String(delayMs), `127.0.0.1:${ports.token}`, `127.0.0.1:${ports.vaults.a}`], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, PROXY_COUNT_FILE: countFile } });
const proxied = JSON.parse(await firstLine(proxy));
const tokenPort = proxied[`127.0.0.1:${ports.token}`];
const vaultPort = proxied[`127.0.0.1:${ports.vaults.a}`];

const baseEnv = {
  PATH: '/usr/bin:/bin',
  SSL_CERT_FILE: process.env.AKV_TESTBED_CA,
  AZURE_CLIENT_ID: clientId,
  AZURE_TENANT_ID: tenant,
  AZURE_FEDERATED_TOKEN_FILE: tokenFile,
  AZURE_AUTHORITY_HOST: `https://localhost:${tokenPort}/`,
  AKV_INJECTOR_VAULT: `https://127.0.0.1:${vaultPort}`,
  AKV_INJECTOR_ALLOW_VAULT_HOSTS: '127.0.0.1',
  AKV_INJECTOR_TIMEOUT: '30s',
};
const envFor = (n) => envFor_(baseEnv, n);

// Asynchronous spawn: the proxy is another process, but keep this event loop free anyway.
const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const t0 = nowNs();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { err += c; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ t0, out, err }) : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}
const startDelayMs = async (cmd, args, env) => { const r = await run(cmd, args, env); return Number(BigInt(r.out.trim()) - r.t0) / 1e6; };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const connections = () => { const c = JSON.parse(readFileSync(countFile, 'utf8')); return { token: c[`127.0.0.1:${ports.token}`], vault: c[`127.0.0.1:${ports.vaults.a}`] }; };
const sumTotals = (obj) => Object.values(obj ?? {}).reduce((a, v) => a + v.total, 0);

// The floor: one token request, then one Key Vault GET, each on a new TLS connection.
const floorArgs = { ca: readFileSync(process.env.AKV_TESTBED_CA), clientId, tenant, federated, token: { host: 'localhost', port: tokenPort }, vault: { host: '127.0.0.1', servername: '', port: vaultPort } };

await floorOnce(floorArgs);
const floor = [];
for (let i = 0; i < runs; i++) floor.push(await floorOnce(floorArgs));
const baseline = [];
for (let i = 0; i < runs; i++) baseline.push(await startDelayMs('/bin/date', ['+%s%N'], baseEnv));
const baselineMs = median(baseline);

const results = [];
for (const n of counts) {
  const env = envFor(n);
  const per = Object.fromEntries(impls.map((im) => [im.name, { times: [], tokens: 0, kv: 0, tokenConns: 0, vaultConns: 0 }]));
  for (const im of impls) await startDelayMs(im.bin, ['--', '/bin/date', '+%s%N'], env); // warm the page cache
  for (let i = 0; i < runs; i++) {
    for (const im of impls) { // alternate: ours, peer, ours, peer, ...
      const before = await control('/stats');
      const c0 = connections();
      per[im.name].times.push(await startDelayMs(im.bin, ['--', '/bin/date', '+%s%N'], env));
      const c1 = connections();
      const after = await control('/stats');
      per[im.name].tokenConns += c1.token - c0.token;
      per[im.name].vaultConns += c1.vault - c0.vault;
      per[im.name].tokens += (after.tokens[clientId] ?? 0) - (before.tokens[clientId] ?? 0);
      per[im.name].kv += sumTotals(after.vaults.a) - sumTotals(before.vaults.a);
    }
  }
  for (const im of impls) {
    const rss = [];
    for (let i = 0; i < 3; i++) {
      const r = await run('/usr/bin/time', ['-f', '%M', im.bin, '--', '/bin/true'], env);
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
      token_connections_per_start: p.tokenConns / runs,
      keyvault_connections_per_start: p.vaultConns / runs,
      peak_rss_kb: Math.max(...rss),
    });
  }
}

const out = { delay_ms: delayMs, runs, baseline_date_ms: baselineMs, floor_ms: { median: median(floor), all: floor }, results };
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify(out, null, 2) + '\n');
console.log(JSON.stringify({ delay_ms: delayMs, floor_ms: median(floor), baseline_date_ms: baselineMs, rows: results.map((r) => [r.impl, r.secrets, r.spawn_to_app_ms.median.toFixed(1), r.overhead_ms.toFixed(1), r.token_requests_per_start, r.keyvault_requests_per_start, r.peak_rss_kb]) }));
harness.stdin.end();
proxy.stdin.end();
process.exit(0);
