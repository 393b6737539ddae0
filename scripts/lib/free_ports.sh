# shellcheck shell=bash
# Sourced by the check scripts: `akv_free_ports N` prints N free TCP ports on 127.0.0.1,
# space-separated (all bound at once, so they differ), e.g.
#   read -r p_https p_metrics < <(akv_free_ports 2)
akv_free_ports() {
  python3 -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1", 0)) for x in s]
print(*[x.getsockname()[1] for x in s])' "$1"
}
