// The "application" akv-env execs in the integration tests.
//   node app.mjs dump OUT ARGS...  write {pid, argv, env} as JSON to OUT, exit 0
//   node app.mjs wait OUT          write OUT.ready, then wait for SIGTERM; on it write
//                                  "SIGTERM <pid>" to OUT and exit 0 (exit 3 after 20 s)
import { renameSync, writeFileSync } from 'node:fs';

const [mode, out, ...rest] = process.argv.slice(2);
if (mode === 'dump') {
  writeFileSync(out, JSON.stringify({ pid: process.pid, argv: rest, env: process.env }));
} else if (mode === 'wait') {
  process.on('SIGTERM', () => { writeFileSync(out, `SIGTERM ${process.pid}`); process.exit(0); });
  // Written whole, then renamed: a test polling for OUT.ready never reads it empty.
  writeFileSync(`${out}.ready.tmp`, String(process.pid));
  renameSync(`${out}.ready.tmp`, `${out}.ready`);
  setTimeout(() => process.exit(3), 20000);
} else {
  process.exit(2);
}
