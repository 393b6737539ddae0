#!/usr/bin/env bash
# Runs scripts/lib/bench-inpod.mjs in a network and mount namespace of its own (started by
# scripts/bench as `unshare -mn scripts/lib/bench-inpod-ns.sh`; needs root or user
# namespaces), so that every in-pod binary, ours and the peers', reaches the test bed
# under the production host names without touching the machine's network or files:
#   - loopback only (a fresh network namespace: port 443 is ours to bind);
#   - a private /etc/hosts: kv-bench-0.vault.azure.net is 127.0.0.2 and
#     login.microsoftonline.com 127.0.0.1 (so akv-env takes its Key Vault path, the Azure
#     SDKs' challenge check sees a real vault host at port 443, and MSAL-based peers find
#     Entra ID's discovery documents where they look for them);
#   - with BENCH_INPOD_SA_TOKEN=1, a private /run holding a service-account token at
#     /var/run/secrets/kubernetes.io/serviceaccount/token, which client-go's in-cluster
#     configuration insists on (akv2k8s's azure-keyvault-env reads it at start); the
#     machine's /run entries are bound back into it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { printf 'bench-inpod-ns: ERROR: %s\n' "$*" >&2; exit 1; }

ip link set lo up 2>/dev/null || die "cannot bring up loopback in the new network namespace (run through 'unshare -mn' as root)"
hosts="$(mktemp)"
{ cat /etc/hosts; echo "127.0.0.2 kv-bench-0.vault.azure.net"; echo "127.0.0.1 login.microsoftonline.com"; } >"$hosts"
mount --bind "$hosts" /etc/hosts || die "cannot bind a private /etc/hosts (run through 'unshare -mn' as root)"

if [ "${BENCH_INPOD_SA_TOKEN:-0}" = 1 ]; then
  orig="$(mktemp -d)"
  mount --rbind /run "$orig"
  mount -t tmpfs -o mode=0755 tmpfs /run
  for e in "$orig"/* "$orig"/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n="${e##*/}"
    if [ -L "$e" ]; then cp -P "$e" "/run/$n"
    elif [ -d "$e" ]; then mkdir "/run/$n" && mount --rbind "$e" "/run/$n"
    else touch "/run/$n" && mount --bind "$e" "/run/$n"
    fi
  done
  sa=/run/secrets/kubernetes.io/serviceaccount
  mkdir -p "$sa"
  printf 'bench-service-account-token' >"$sa/token"
  printf 'bench' >"$sa/namespace"
fi

exec node "$here/bench-inpod.mjs"
