#!/usr/bin/env python3
"""Relay TCP connections from an address of the pod network to a loopback listener.

Usage: tcp_relay.py LISTEN_IP:PORT=127.0.0.1:PORT ...

The Key Vault harness and the token endpoint listen on 127.0.0.1 only; pods reach this
machine through the bridge's gateway address. Each pair makes LISTEN_IP:PORT forward to
the loopback port (bytes only: TLS stays end to end). Targets must be on loopback.
Prints "ready" once every listener is bound; exits on SIGTERM or when stdin closes.
"""

import asyncio
import ipaddress
import signal
import sys


def parse(pair):
    listen, sep, target = pair.partition("=")
    if not sep:
        sys.exit(f"tcp_relay: expected LISTEN_IP:PORT=127.0.0.1:PORT, got {pair}")
    (lh, _, lp), (th, _, tp) = listen.rpartition(":"), target.rpartition(":")
    if not ipaddress.ip_address(th).is_loopback:
        sys.exit(f"tcp_relay: target {target} is not on loopback")
    return lh, int(lp), th, int(tp)


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


def handler(th, tp):
    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(th, tp)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    return handle


async def main(pairs):
    servers = [await asyncio.start_server(handler(th, tp), lh, lp) for lh, lp, th, tp in pairs]
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(4096) or stop.done() or stop.set_result(None))
    await stop
    for s in servers:
        s.close()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    asyncio.run(main([parse(p) for p in sys.argv[1:]]))
