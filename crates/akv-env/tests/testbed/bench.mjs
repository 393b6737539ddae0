// Startup benchmark for akv-env (run by scripts/bench-akv-env, inside a mount namespace
// whose /etc/hosts resolves kv-bench-{0,1,2}.vault.azure.net to 127.0.0.1, so akv-env
// takes its Key Vault path: the audience known from the host, no challenge).
// Starts the harness (token endpoint + vaults) and, for each case (1, 10, 50 and 200
// objects in one vault; 50 over 3 vaults) and each injected round trip (20 ms and 0 ms,
// by scripts/lib/bench-delay-proxy.mjs in front of the token endpoint and every vault),
// measures over RUNS runs:
//   - the floor: one token exchange, then one Key Vault GET, each on a new TLS
//     connection, from this process through the same proxies;
//   - the floor for N: one token exchange, then per vault one new HTTP/2 connection with
//     all of its GETs at once (what no client can beat against this harness: it holds
//     the harness's own time to answer N requests);
//   - our start: spawning `akv-env -- /bin/date +%s%N` until date starts (it prints its
//     own start time), minus the same for /bin/date alone;
//   - Key Vault requests, token requests, and TLS connections (vaults, token endpoint)
//     per start, from the harness's counters;
//   - peak RSS of akv-env (/usr/bin/time -f %M) and its CPU time (user + system, from
//     wait4's rusage), with /bin/true as the application: "start ms" read against what
//     akv-env itself spent.
// Prints medians with min–max. Env: AKV_TESTBED_* (scripts/testbed-keyvault env),
// AKV_ENV_BIN, RUNS (default 10), CASES (e.g. "1,50x3"), DELAYS (e.g. "20,0").
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { firstLine, floorAllOnce, floorOnce, startSeededHarness } from './bench-setup.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = process.env.AKV_ENV_BIN;
const runs = Number(process.env.RUNS ?? 10);
const cases = (process.env.CASES ?? '1,10,50,200,50x3').split(',').map((c) => {
  const [n, v] = c.split('x').map(Number);
  return { objects: n, vaults: v || 1 };
});
const delays = (process.env.DELAYS ?? '20,0').split(',').map(Number);
const HOSTS = [0, 1, 2].map((i) => `kv-bench-${i}.vault.azure.net`);
const MAX_OBJECTS = Math.max(...cases.map((c) => Math.ceil(c.objects / c.vaults)));

for (const host of HOSTS) {
  const { address } = await lookup(host).catch(() => ({ address: null }));
  if (address !== '127.0.0.1') {
    console.error(`bench-akv-env: ERROR: ${host} does not resolve to 127.0.0.1; run this through scripts/bench-akv-env`);
    process.exit(1);
  }
}

// A CA and a certificate for *.vault.azure.net, for the named vaults.
const dir = mkdtempSync(path.join(os.tmpdir(), 'akv-bench-tls-'));
const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=akv-env bench CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=vault.azure.net');
writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:*.vault.azure.net\nextendedKeyUsage=serverAuth\n');
openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
const read = (f) => readFileSync(path.join(dir, f), 'utf8');
const bundle = path.join(dir, 'roots.pem');
writeFileSync(bundle, readFileSync(process.env.AKV_TESTBED_CA, 'utf8') + read('ca.pem'));
const ca = readFileSync(bundle);

const { harness, ports, control, clientId, tenant, tokenFile } = await startSeededHarness(0);
const federated = readFileSync(tokenFile, 'utf8');
const vaults = [];
for (const [i, hostname] of HOSTS.entries()) {
  const name = `bench${i}`;
  const { port } = await control('/vault-add', { name, hostname, cert: read('server.pem'), key: read('server.key') });
  await control(`/vault/${name}/grant`, { client_id: clientId });
  for (let s = 0; s < MAX_OBJECTS; s++) await control(`/vault/${name}/secret`, { name: `bench-secret-${s}`, value: `value-${s}-${'x'.repeat(32)}` });
  vaults.push({ name, hostname, port });
}

const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
function startDelayMs(cmd, args, env) {
  const t0 = nowNs();
  const r = spawnSync(cmd, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return Number(BigInt(r.stdout.trim()) - t0) / 1e6;
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const spread = (xs) => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;

/**
 * CPU time (ms, user + system) of `cmd args` run to its end, from wait4's rusage (the
 * scheduler's own sum, not 10 ms ticks as /usr/bin/time prints it). Not its peak RSS: the
 * forked Python counts in that before the exec, so /usr/bin/time measures the RSS.
 */
const python3 = execFileSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).trim();
function cpuTime(cmd, args, env) {
  const py = 'import os,sys\npid=os.fork()\nif pid==0:\n  os.execvpe(sys.argv[1],sys.argv[1:],os.environ)\n_,st,ru=os.wait4(pid,0)\nif os.waitstatus_to_exitcode(st)!=0: sys.exit("the command failed: "+str(os.waitstatus_to_exitcode(st)))\nprint((ru.ru_utime+ru.ru_stime)*1000)';
  const r = spawnSync(python3, ['-c', py, cmd, ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} failed while its CPU time was measured: ${r.stderr}`);
  return Number(r.stdout.trim().split('\n').pop());
}
const vaultRequests = (stats, name) => Object.values(stats.vaults[name] ?? {}).reduce((a, v) => a + v.total, 0);

/** Per delay: where the token endpoint and each vault are reached (proxied or not). */
async function endpoints(delayMs) {
  if (delayMs === 0) return { token: ports.token, vaults: vaults.map((v) => v.port), stop: () => {} };
  const targets = [`127.0.0.1:${ports.token}`, ...vaults.map((v) => `127.0.0.1:${v.port}`)];
  const proxy = spawn(process.execPath, [path.join(here, '../../../../scripts/lib/bench-delay-proxy.mjs'), String(delayMs), ...targets], { stdio: ['pipe', 'pipe', 'inherit'] });
  const proxied = JSON.parse(await firstLine(proxy));
  return { token: proxied[targets[0]], vaults: targets.slice(1).map((t) => proxied[t]), stop: () => proxy.stdin.end() };
}

const rows = [];
for (const delayMs of delays) {
  const at = await endpoints(delayMs);
  const baseEnv = {
    PATH: '/usr/bin:/bin',
    SSL_CERT_FILE: bundle,
    AZURE_CLIENT_ID: clientId,
    AZURE_TENANT_ID: tenant,
    AZURE_FEDERATED_TOKEN_FILE: tokenFile,
    AZURE_AUTHORITY_HOST: `https://localhost:${at.token}/`,
    AKV_INJECTOR_TIMEOUT: '30s',
  };
  const floorArgs = { ca, clientId, tenant, federated, token: { host: 'localhost', port: at.token }, vault: { host: '127.0.0.1', servername: vaults[0].hostname, port: at.vaults[0] } };
  const baseline = [];
  for (let i = 0; i < runs; i++) baseline.push(startDelayMs('/bin/date', ['+%s%N'], baseEnv));
  const baselineMs = median(baseline);
  for (const c of cases) {
    const env = { ...baseEnv };
    for (let i = 0; i < c.objects; i++) {
      const v = i % c.vaults;
      env[`SECRET_${i}`] = `akv://${vaults[v].hostname}:${at.vaults[v]}/bench-secret-${Math.floor(i / c.vaults)}`;
    }
    startDelayMs(bin, ['--', '/bin/date', '+%s%N'], env); // warm the page cache
    const used = vaults.slice(0, c.vaults);
    const allArgs = { ...floorArgs, vaults: used.map((v, k) => ({ host: '127.0.0.1', servername: v.hostname, port: at.vaults[k], secrets: Array.from({ length: Math.ceil((c.objects - k) / c.vaults) }, (_, j) => `bench-secret-${j}`) })) };
    await floorOnce(floorArgs);
    await floorAllOnce(allArgs);
    const floor = [];
    const floorAll = [];
    const start = [];
    const rss = [];
    const before = await control('/stats');
    for (let i = 0; i < runs; i++) {
      floor.push(await floorOnce(floorArgs));
      floorAll.push(await floorAllOnce(allArgs));
      start.push(startDelayMs(bin, ['--', '/bin/date', '+%s%N'], env) - baselineMs);
    }
    const after = await control('/stats');
    const cpu = [];
    for (let i = 0; i < runs; i++) {
      const r = spawnSync('/usr/bin/time', ['-f', '%M', bin, '--', '/bin/true'], { env, encoding: 'utf8' });
      rss.push(Number(r.stderr.trim().split('\n').pop()));
      cpu.push(cpuTime(bin, ['--', '/bin/true'], env));
    }
    // The floors' own requests are taken out of the counts: per run 2 tokens (one
    // connection each), 1 + N GETs, 1 + (vaults) connections.
    const kv = (used.reduce((a, v) => a + vaultRequests(after, v.name) - vaultRequests(before, v.name), 0) - runs * (1 + c.objects)) / runs;
    const conns = (used.reduce((a, v) => a + (after.connections[v.name] ?? 0) - (before.connections[v.name] ?? 0), 0) - runs * (1 + c.vaults)) / runs;
    const tokens = ((after.tokens[clientId] ?? 0) - (before.tokens[clientId] ?? 0) - 2 * runs) / runs;
    const tokenConns = ((after.tokenConnections ?? 0) - (before.tokenConnections ?? 0) - 2 * runs) / runs;
    rows.push({ delayMs, ...c, floor, floorAll, start, ratio: median(start) / median(floor), ratioAll: median(start) / median(floorAll), kv, conns, tokens, tokenConns, rss, cpu });
  }
  at.stop();
}

const size = statSync(bin).size;
console.log(`akv-env benchmark: ${bin}, ${size} bytes (${(size / 1048576).toFixed(2)} MiB)`);
console.log(`${runs} runs per row; medians (min–max); requests and connections per start`);
console.log('| round trip | objects | vaults | floor ms | floor for N ms | start ms | start ÷ floor | start ÷ floor for N | Key Vault req | token req | vault TLS conns | token TLS conns | peak RSS KiB | CPU ms |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(`| ${r.delayMs} ms | ${r.objects} | ${r.vaults} | ${spread(r.floor)} | ${spread(r.floorAll)} | ${spread(r.start)} | ${r.ratio.toFixed(2)} | ${r.ratioAll.toFixed(2)} | ${r.kv.toFixed(1)} | ${r.tokens.toFixed(1)} | ${r.conns.toFixed(1)} | ${r.tokenConns.toFixed(1)} | ${median(r.rss)} (${Math.min(...r.rss)}–${Math.max(...r.rss)}) | ${spread(r.cpu)} |`);
}
harness.stdin.end();
process.exit(0);
