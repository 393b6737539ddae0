// Startup benchmark for akv-env (run by scripts/bench-akv-env).
// Starts the harness (token endpoint + vaults), seeds 50 secrets, then for 1, 10 and 50
// references measures, over RUNS runs each:
//   - the time from spawning `akv-env -- /bin/date +%s%N` to the application's start
//     (date prints its own start time), minus the same for `/bin/date` alone;
//   - token requests and Key Vault requests per start (from the harness's counters);
//   - peak RSS of akv-env (/usr/bin/time -f %M) while it fetches.
// Env: AKV_TESTBED_* (from scripts/testbed-keyvault env), AKV_ENV_BIN, RUNS.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';

import { envFor as envFor_, startSeededHarness } from './bench-setup.mjs';

const bin = process.env.AKV_ENV_BIN;
const runs = Number(process.env.RUNS ?? 15);

const { harness, ports, control, clientId, tenant, tokenFile } = await startSeededHarness();

const baseEnv = {
  PATH: '/usr/bin:/bin',
  SSL_CERT_FILE: process.env.AKV_TESTBED_CA,
  AZURE_CLIENT_ID: clientId,
  AZURE_TENANT_ID: tenant,
  AZURE_FEDERATED_TOKEN_FILE: tokenFile,
  AZURE_AUTHORITY_HOST: `https://localhost:${ports.token}/`,
  AKV_INJECTOR_VAULT: `https://127.0.0.1:${ports.vaults.a}`,
  AKV_INJECTOR_ALLOW_VAULT_HOSTS: '127.0.0.1',
  AKV_INJECTOR_TIMEOUT: '30s',
};
const envFor = (n) => envFor_(baseEnv, n);

const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
function startDelayMs(cmd, args, env) {
  const t0 = nowNs();
  const r = spawnSync(cmd, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return Number(BigInt(r.stdout.trim()) - t0) / 1e6;
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const sum = (obj) => Object.values(obj ?? {}).reduce((a, v) => a + v.total, 0);

const baseline = median(Array.from({ length: runs }, () => startDelayMs('/bin/date', ['+%s%N'], baseEnv)));
const rows = [];
for (const n of [1, 10, 50]) {
  const env = envFor(n);
  startDelayMs(bin, ['--', '/bin/date', '+%s%N'], env); // warm the page cache
  const before = await control('/stats');
  const times = [];
  for (let i = 0; i < runs; i++) times.push(startDelayMs(bin, ['--', '/bin/date', '+%s%N'], env));
  const after = await control('/stats');
  const tokens = ((after.tokens[clientId] ?? 0) - (before.tokens[clientId] ?? 0)) / runs;
  const kv = (sum(after.vaults.a) - sum(before.vaults.a)) / runs;
  const rss = spawnSync('/usr/bin/time', ['-f', '%M %U %S', bin, '--', '/bin/true'], { env, encoding: 'utf8' });
  const [rssKb, user, sys] = rss.stderr.trim().split('\n').pop().split(' ').map(Number);
  const cpuMs = (user + sys) * 1000;
  rows.push({ secrets: n, median_ms: median(times), overhead_ms: median(times) - baseline, tokens_per_start: tokens, keyvault_requests_per_start: kv, peak_rss_kb: rssKb, cpu_ms: cpuMs });
}

console.log(`akv-env benchmark: ${bin}`);
console.log(`binary size: ${statSync(bin).size} bytes (${(statSync(bin).size / 1048576).toFixed(2)} MiB)`);
console.log(`runs per row: ${runs}; baseline spawn->exec of /bin/date alone: ${baseline.toFixed(2)} ms (median)`);
console.log('secrets  spawn->app median ms  overhead ms  token req/start  Key Vault req/start  peak RSS KiB  akv-env CPU ms (user+sys)');
for (const r of rows) {
  console.log(`${String(r.secrets).padStart(7)}  ${r.median_ms.toFixed(2).padStart(20)}  ${r.overhead_ms.toFixed(2).padStart(11)}  ${r.tokens_per_start.toFixed(2).padStart(15)}  ${r.keyvault_requests_per_start.toFixed(2).padStart(19)}  ${String(r.peak_rss_kb).padStart(12)}  ${r.cpu_ms.toFixed(0).padStart(25)}`);
}
// Note: peak RSS of the /bin/true row is that of akv-env itself, since /bin/true replaces it
// and is smaller; /usr/bin/time reports the maximum over the process's life.
harness.stdin.end();
process.exit(0);
