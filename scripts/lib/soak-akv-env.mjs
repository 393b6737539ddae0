// akv-env soak for scripts/soak: starts akv-env in a loop against the Key Vault test bed
// while the vault answers storms of 429 (with Retry-After) and 5xx, and reports every
// start that failed outside its budget (target 0) and every start that failed at all.
//
// Env: AKV_TESTBED_* (scripts/testbed-keyvault env), AKV_ENV_BIN, SOAK_SECONDS (default
// 60), SOAK_SECRETS (20), SOAK_BUDGET (the pod's timeout, default 8s), SOAK_OUT (JSON file).
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

import { envFor, startSeededHarness } from '../../crates/akv-env/tests/testbed/bench-setup.mjs';

const seconds = Number(process.env.SOAK_SECONDS ?? 60);
const secrets = Number(process.env.SOAK_SECRETS ?? 20);
const budgetS = Number(process.env.SOAK_BUDGET ?? 8);
const bin = process.env.AKV_ENV_BIN;
if (!bin) throw new Error('AKV_ENV_BIN is not set');

const { harness, control, podEnv } = await startSeededHarness(secrets);
const env = envFor({ ...podEnv, AKV_INJECTOR_TIMEOUT: `${budgetS}s` }, secrets);

// Storms, in turn: none, 429 with Retry-After 1 s on every object, 503s, a long 429 storm
// that outlasts the budget (the start must then fail, but in time), dropped connections.
const storms = [
  { name: 'calm', faults: [] },
  { name: '429 x secrets, Retry-After 1', faults: [{ path: '*', status: 429, retryAfter: 1, times: secrets }] },
  { name: '503 x 2*secrets', faults: [{ path: '*', status: 503, times: 2 * secrets }] },
  { name: '429 outlasting the budget', faults: [{ path: '*', status: 429, retryAfter: budgetS + 2, times: secrets * 4 }], mayFail: true },
  { name: 'dropped connections x secrets', faults: [{ path: '*', drop: true, times: secrets }] },
];

function start() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(bin, ['--', '/bin/true'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => { err += c; });
    child.on('close', (code) => resolve({ code, ms: performance.now() - t0, err }));
  });
}

const results = [];
const t0 = Date.now();
let i = 0;
while ((Date.now() - t0) / 1000 < seconds) {
  const storm = storms[i % storms.length];
  i += 1;
  // Clear what is left of the last storm, then raise this one.
  await control('/vault/a/faults-clear', {});
  for (const f of storm.faults) await control('/vault/a/fault', f);
  const r = await start();
  const late = r.ms > budgetS * 1000 + 1500;
  results.push({ storm: storm.name, code: r.code, ms: Math.round(r.ms), late, unexpectedFailure: r.code !== 0 && !storm.mayFail, err: r.code !== 0 ? r.err.split('\n')[0] : '' });
}
harness.kill();

const byStorm = {};
for (const r of results) {
  const s = (byStorm[r.storm] ??= { starts: 0, ok: 0, failed: 0, late: 0, maxMs: 0 });
  s.starts += 1; s.maxMs = Math.max(s.maxMs, r.ms);
  if (r.code === 0) s.ok += 1; else s.failed += 1;
  if (r.late) s.late += 1;
}
const late = results.filter((r) => r.late).length;
const unexpected = results.filter((r) => r.unexpectedFailure);
const summary = { starts: results.length, late, unexpectedFailures: unexpected.length, budgetS, secrets, byStorm, firstUnexpected: unexpected[0] ?? null };
if (process.env.SOAK_OUT) writeFileSync(process.env.SOAK_OUT, JSON.stringify({ summary, results }, null, 1));
console.log(JSON.stringify(summary));
process.exit(late === 0 && unexpected.length === 0 ? 0 : 1);
