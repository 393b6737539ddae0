// Restart on change, load figures (run by scripts/bench-refresh):
//  - the RSS of akv-env's parent process while the application runs, after CHECKS check
//    rounds of OBJECTS secrets (VmRSS now, VmHWM peak), with a 2 s test interval;
//  - Key Vault requests per check round, from the harness's counters;
//  - the request rate of PODS pods × PER_POD objects at INTERVAL_S, with ±10 % jitter,
//    against Key Vault's documented limit.
// Env: AKV_TESTBED_HARNESS, AKV_TESTBED_CA (scripts/testbed-keyvault env), AKV_ENV_BIN.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { envFor, startSeededHarness } from './bench-setup.mjs';

const OBJECTS = Number(process.env.OBJECTS ?? 20);
const CHECKS = Number(process.env.CHECKS ?? 3);
const bin = process.env.AKV_ENV_BIN;

const { harness, control, podEnv } = await startSeededHarness(OBJECTS);
const env = envFor({ ...podEnv, AKV_INJECTOR_REFRESH: '2s' }, OBJECTS);

const reads = async () => {
  const s = (await control('/stats')).vaults.a ?? {};
  return Object.entries(s).filter(([k]) => /^GET \/secrets\/bench-secret-\d+$/.test(k))
    .reduce((a, [, v]) => a + v.total - v.unauthenticated, 0);
};
const before = await reads();
const parent = spawn(bin, ['--', '/bin/sleep', '120'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const wanted = before + OBJECTS * (1 + CHECKS);
for (let t = 0; (await reads()) < wanted; t++) {
  if (t > 600) throw new Error(`fewer than ${CHECKS} check rounds after 60 s`);
  await sleep(100);
}
await sleep(300);
const status = (pid) => Object.fromEntries(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')
  .map((l) => l.split(':')).filter((p) => p.length === 2).map(([k, v]) => [k, v.trim()]));
const st = status(parent.pid);
const kib = (v) => Number(v.split(' ')[0]);
const children = readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').trim();
const app = status(children.split(' ')[0]);
const perRound = ((await reads()) - before - OBJECTS) / CHECKS;
parent.kill('SIGTERM');
const code = await new Promise((r) => parent.once('exit', (c, s) => r(c ?? s)));
harness.stdin.end();

const PODS = 1000, PER_POD = 20, INTERVAL_S = 600, LIMIT_PER_10S = 4000;
const steady = (PODS * PER_POD) / INTERVAL_S;
const burst = (PODS * PER_POD) / (INTERVAL_S * 0.2);
const mib = (k) => (k / 1024).toFixed(2);
console.log(`akv-env parent while the application (${app.Name}) runs, ${OBJECTS} secrets, after ${CHECKS} check rounds: VmRSS between rounds ${mib(kib(st.VmRSS))} MiB (target <= 3 MiB; anonymous ${mib(kib(st.RssAnon))}, file-backed ${mib(kib(st.RssFile))}), VmHWM (peak, during a round or the start) ${mib(kib(st.VmHWM))} MiB; Key Vault GETs per round: ${perRound} (one per object); exit on SIGTERM: ${code}`);
console.log(`${PODS} pods x ${PER_POD} objects every ${INTERVAL_S / 60}m (+-10% jitter), one vault: ${steady.toFixed(1)} requests/s = ${(steady * 10).toFixed(0)} per 10 s in steady state (${((steady * 10 / LIMIT_PER_10S) * 100).toFixed(1)}% of Key Vault's ${LIMIT_PER_10S} transactions per 10 s per vault); worst case, all pods started at once: the first checks spread over the 0.2 x interval jitter window, ${burst.toFixed(1)} requests/s = ${(burst * 10).toFixed(0)} per 10 s (${((burst * 10 / LIMIT_PER_10S) * 100).toFixed(1)}%); without jitter the same ${PODS * PER_POD} requests would come in the same second of each interval (${(PODS * PER_POD / LIMIT_PER_10S).toFixed(1)}x the 10-s limit)`);
