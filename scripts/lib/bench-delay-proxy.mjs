// TCP proxy that adds a fixed latency, for scripts/bench (in-pod binary startup).
//   node bench-delay-proxy.mjs DELAY_MS [[LISTEN_HOST:]LISTEN_PORT=]HOST:PORT [...]
// For each target, listens on LISTEN_HOST (default: the target's host), port LISTEN_PORT
// (default 0: any free port), and forwards bytes both ways.
// Every chunk from the client is held DELAY_MS before it is written upstream (in order);
// answers come back at once. So each request/response exchange costs DELAY_MS more, and a
// new TLS connection costs one more DELAY_MS for its handshake: a DELAY_MS round trip, as
// on a real network (TLS passes through untouched).
// Prints one JSON line {"HOST:PORT": listenPort, ...}; exits when stdin closes.
// With PROXY_COUNT_FILE set, rewrites that file with {"HOST:PORT": connections so far}
// on every new connection (how many TLS connections a client opened).
import { writeFileSync } from 'node:fs';
import net from 'node:net';

const [delayArg, ...targets] = process.argv.slice(2);
const delay = Number(delayArg);
const ports = {};
const conns = Object.fromEntries(targets.map((t) => [t.slice(t.indexOf('=') + 1), 0]));
const countFile = process.env.PROXY_COUNT_FILE;
if (countFile) writeFileSync(countFile, JSON.stringify(conns));
for (const spec of targets) {
  const eq = spec.indexOf('=');
  const listen = eq < 0 ? '' : spec.slice(0, eq);
  const listenPort = listen ? Number(listen.slice(listen.lastIndexOf(':') + 1)) : 0;
  const t = spec.slice(eq + 1);
  const i = t.lastIndexOf(':');
  const host = t.slice(0, i);
  const listenHost = listen.includes(':') ? listen.slice(0, listen.lastIndexOf(':')) : host;
  const port = Number(t.slice(i + 1));
  const server = net.createServer({ noDelay: true }, (client) => {
    conns[t] += 1;
    if (countFile) writeFileSync(countFile, JSON.stringify(conns));
    const upstream = net.connect({ host, port, noDelay: true });
    client.on('data', (chunk) => setTimeout(() => upstream.write(chunk), delay));
    client.on('end', () => setTimeout(() => upstream.end(), delay));
    upstream.on('data', (chunk) => client.write(chunk));
    upstream.on('end', () => client.end());
    const close = () => { client.destroy(); upstream.destroy(); };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', () => setTimeout(() => upstream.destroy(), delay + 5));
    upstream.on('close', () => client.destroy());
  });
  await new Promise((r) => server.listen(listenPort, listenHost, r));
  ports[t] = server.address().port;
}
process.stdout.write(JSON.stringify(ports) + '\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
