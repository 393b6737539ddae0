# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034  # here, dir, pki, api, kubeconfig: kube-up's; node_apiserver_args: used by kube-up
# The node of the test bed, started by scripts/kube-up when AKV_TESTBED_NODE=1:
#   a CNI bridge on this machine (pods in their own network namespaces, no default route:
#   they reach only the bridge's gateway address, i.e. this machine), a TLS + htpasswd
#   image registry on loopback that containerd trusts, containerd (CRI), the kubelet
#   (registered as node NODE_NAME) and kube-scheduler.
# Sourced by scripts/kube-up; uses its dir, pki, kubeconfig, KUBECTL, start, wait_for, die,
# log, ossl. Cleaned up by lib/node/down.sh (scripts/kube-down).
#
# Optional environment:
#   AKV_TESTBED_POD_NET   the first three octets of the pod network's /24 (default 10.211.0):
#                         the bridge gets .1, pods .2-.254
#   AKV_TESTBED_NODE_NAME the node's name (default akv-testbed-node)
#   AKV_TESTBED_RUNC      the OCI runtime containerd runs (default: Debian's runc); e.g. a
#                         wrapper that adds --debug when a container does not start

# shellcheck source=scripts/lib/node/down.sh
. "$here/lib/node/down.sh"

node_net="${AKV_TESTBED_POD_NET:-10.211.0}"
node_name="${AKV_TESTBED_NODE_NAME:-akv-testbed-node}"
node_gw="$node_net.1"
# A second address of this machine on the pod network (pods get .2-.250): where the end to
# end tests serve a second vault on port 443 (a vault's DNS name cannot carry a port in
# every place it is written, e.g. the akv-injector.io/client-id.<VAULT> annotation).
node_gw2="$node_net.253"
node_bridge=akvtb0
node_cgroup_root=akv-testbed
ndir="$dir/node"

# First of all: a run that was killed leaves its processes, mounts, netns, bridge and
# cgroups (one node per machine): stop and clean them with scripts/kube-down.
node_clean_killed() {
  [ -f "$node_record" ] || return 0
  local old; old="$(cat "$node_record")"
  if [ "$old" != "$dir" ] && [ -d "$old" ]; then
    log "the test bed in $old (with a node) was not stopped: scripts/kube-down $old"
    "$here/kube-down" "$old" >&2 || die "could not stop the earlier test bed in $old (scripts/kube-down $old)"
  fi
  rm -f "$node_record"
}

# Before the control plane starts: the tools, the certificates, and the API server's flags
# for reaching the kubelet (logs, exec).
node_prepare() {
  [ "$(id -u)" = 0 ] || die "the node (AKV_TESTBED_NODE=1) runs containerd and the kubelet: run as root"
  case "$node_net" in
    10.*|172.1[6-9].*|172.2[0-9].*|172.3[01].*|192.168.*) ;;
    *) die "AKV_TESTBED_POD_NET=$node_net is not a private (RFC 1918) network prefix" ;;
  esac
  eval "$("$here/testbed-node" install)"
  eval "$("$here/testbed-registry" install)"
  NODE_RUNC="${AKV_TESTBED_RUNC:-$NODE_RUNC}"
  [ -x "$NODE_RUNC" ] || die "AKV_TESTBED_RUNC=$NODE_RUNC is not an executable"
  if [ ! -x "$KUBELET" ] || [ ! -x "$KUBE_SCHEDULER" ]; then
    die "kubelet/kube-scheduler missing after scripts/testbed-kube install"
  fi
  if ip link show "$node_bridge" >/dev/null 2>&1; then
    die "the bridge $node_bridge exists but no test bed records it: delete it (ip link delete $node_bridge) if nothing uses it"
  fi
  if ip -4 -o addr show | grep -q " inet $node_net\."; then
    die "this machine already has an address in $node_net.0/24: choose another pod network with AKV_TESTBED_POD_NET"
  fi
  mkdir -p "$(dirname "$node_record")"
  printf '%s\n' "$dir" >"$node_record"

  mkdir -p "$ndir"/{containerd/certs.d,cni/net.d,cni/ipam,kubelet,pod-logs,registry/data,scheduler}
  node_sock="$ndir/containerd/containerd.sock"
  [ ${#node_sock} -le 100 ] || die "the containerd socket path $node_sock is too long for a unix socket: use a shorter test bed dir"
  cat >"$ndir/node.env" <<EOF
NODE_CGROUP_ROOT=$node_cgroup_root
NODE_BRIDGE=$node_bridge
NODE_CONTAINERD_SOCK=$node_sock
EOF

  read -r p_kubelet p_kubelet_health p_sched p_registry < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)
  # client certificates (CN = user, O = group) and serving certificates, all from the test bed CA
  node_cert() { # NAME CN O SAN USAGE
    ossl req -newkey rsa:2048 -nodes -subj "/CN=$2${3:+/O=$3}" -keyout "$pki/$1.key" -out "$pki/$1.csr"
    printf '%sextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
      "${4:+subjectAltName=$4
}" "$5" >"$pki/$1.ext"
    ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 3650 -sha256 -extfile "$pki/$1.ext" -out "$pki/$1.crt"
    rm -f "$pki/$1.csr"; chmod 600 "$pki/$1.key"
  }
  node_cert kubelet-client "system:node:$node_name" system:nodes "" clientAuth
  node_cert kubelet-serving "system:node:$node_name" system:nodes "IP:$node_gw,IP:127.0.0.1" serverAuth
  node_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
  node_cert registry docker-registry "" "IP:127.0.0.1,DNS:localhost" serverAuth
  node_apiserver_args=(
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt"
    --kubelet-client-key "$pki/apiserver-kubelet-client.key"
    --kubelet-certificate-authority "$pki/ca.crt"
    --kubelet-preferred-address-types InternalIP
  )
}

node_kubeconfig() { # FILE CERT KEY
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster: {server: "$api", certificate-authority: "$pki/ca.crt"}
users:
- name: node
  user: {client-certificate: "$2", client-key: "$3"}
contexts:
- name: testbed
  context: {cluster: testbed, user: node}
current-context: testbed
EOF
  chmod 600 "$1"
}

node_network() {
  ip link add "$node_bridge" type bridge || die "could not create the bridge $node_bridge (ip link add)"
  ip addr add "$node_gw/24" dev "$node_bridge" || die "could not give $node_gw/24 to $node_bridge"
  ip addr add "$node_gw2/32" dev "$node_bridge" || die "could not give $node_gw2/32 to $node_bridge"
  ip link set "$node_bridge" up || die "could not bring $node_bridge up"
  # isGateway false: the bridge already has the gateway address, and pods get no default
  # route (only their /24): they can reach this machine and each other, nothing else.
  cat >"$ndir/cni/net.d/10-akv-testbed.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "akv-testbed",
  "plugins": [
    {
      "type": "bridge", "bridge": "$node_bridge", "isGateway": false, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "$ndir/cni/ipam",
               "ranges": [[{"subnet": "$node_net.0/24", "rangeStart": "$node_net.2", "rangeEnd": "$node_net.250"}]]}
    }
  ]
}
EOF
}

node_registry() {
  node_registry_user=testbed
  node_registry_password="$(openssl rand -hex 16)"
  "$AKV_TESTBED_HTPASSWD" -Bbn "$node_registry_user" "$node_registry_password" >"$ndir/registry/htpasswd" 2>/dev/null ||
    die "htpasswd failed to write $ndir/registry/htpasswd"
  cat >"$ndir/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: "$ndir/registry/data"}
  delete: {enabled: true}
http:
  addr: "127.0.0.1:$p_registry"
  secret: "$(openssl rand -hex 16)"
  tls: {certificate: "$pki/registry.crt", key: "$pki/registry.key"}
auth:
  htpasswd: {realm: akv-testbed, path: "$ndir/registry/htpasswd"}
EOF
  start docker-registry "$AKV_TESTBED_REGISTRY" serve "$ndir/registry/config.yml"
  wait_for docker-registry 20 curl -sS --cacert "$pki/ca.crt" -o /dev/null "https://127.0.0.1:$p_registry/v2/"
  # containerd trusts the test bed CA for it (pulls authenticate with the pod's imagePullSecrets)
  mkdir -p "$ndir/containerd/certs.d/127.0.0.1:$p_registry"
  cat >"$ndir/containerd/certs.d/127.0.0.1:$p_registry/hosts.toml" <<EOF
server = "https://127.0.0.1:$p_registry"
[host."https://127.0.0.1:$p_registry"]
  capabilities = ["pull", "resolve"]
  ca = "$pki/ca.crt"
EOF
}

node_containerd() {
  cat >"$ndir/containerd/config.toml" <<EOF
version = 2
root = "$ndir/containerd/root"
state = "$ndir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$node_sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$ndir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # the pods' network namespaces under DIR (cleaned with the other mounts under it)
  netns_mounts_under_state_dir = true
  # no CAP_SYS_RESOURCE in this VM: runc cannot lower oom_score_adj below containerd's own
  # (the kubelet asks -998 for sandboxes; "failed to update /proc/self/oom_score_adj")
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$NODE_RUNC"
        Root = "$ndir/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$NODE_CNI_BIN_DIR"
    conf_dir = "$ndir/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$ndir/containerd/certs.d"
EOF
  start containerd "$NODE_CONTAINERD" --config "$ndir/containerd/config.toml"
  wait_for containerd 30 "$NODE_CTR" --address "$node_sock" version
  node_import_pause || {
    log "the pause image $NODE_PAUSE_IMAGE is not in containerd after the import: importing it again (log: $dir/logs/ctr-import.log)"
    node_import_pause ||
      die "the pause image $NODE_PAUSE_IMAGE is not in containerd after two imports (log: $dir/logs/ctr-import.log; ctr --address $node_sock -n k8s.io images ls)"
  }
}

# Imports the pause image, then waits up to 10 s for containerd to list it (the CRI plugin
# can lag behind the import). Fails when it does not show.
node_import_pause() {
  local end
  "$NODE_CTR" --address "$node_sock" -n k8s.io images import "$NODE_PAUSE_ARCHIVE" >>"$dir/logs/ctr-import.log" 2>&1 || return 1
  end=$(( $(date +%s) + 10 ))
  until "$NODE_CTR" --address "$node_sock" -n k8s.io images ls -q 2>>"$dir/logs/ctr-import.log" | grep -qxF "$NODE_PAUSE_IMAGE"; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.5
  done
}

node_kubelet() {
  local cg
  # cgroup v1 (this VM) or v2: the kubelet's cgroup root must exist in every hierarchy
  for cg in /sys/fs/cgroup/*/; do
    [ -e "$cg/cgroup.procs" ] || continue
    mkdir -p "$cg$node_cgroup_root" || die "could not create the cgroup $cg$node_cgroup_root"
    # cgroup v1 cpuset: a new cgroup has no CPUs and memory nodes until given its parent's
    if [ -e "$cg/cpuset.cpus" ]; then
      cat "$cg/cpuset.cpus" >"$cg$node_cgroup_root/cpuset.cpus"
      cat "$cg/cpuset.mems" >"$cg$node_cgroup_root/cpuset.mems"
    fi
  done
  [ -e /sys/fs/cgroup/cgroup.procs ] && mkdir -p "/sys/fs/cgroup/$node_cgroup_root"
  : >"$ndir/kubelet/resolv.conf" # pods get no name server: host names come from hostAliases
  node_kubeconfig "$ndir/kubelet/kubeconfig" "$pki/kubelet-client.crt" "$pki/kubelet-client.key"
  cat >"$ndir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "$node_gw"
port: $p_kubelet
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $p_kubelet_health
tlsCertFile: "$pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$pki/kubelet-serving.key"
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: "unix://$node_sock"
cgroupDriver: cgroupfs
cgroupRoot: "/$node_cgroup_root"
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
failSwapOn: false
failCgroupV1: false
resolvConf: "$ndir/kubelet/resolv.conf"
podLogsDir: "$ndir/pod-logs"
serializeImagePulls: false
maxPods: 60
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
registerNode: true
shutdownGracePeriod: 0s
EOF
  start kubelet "$KUBELET" --config "$ndir/kubelet/config.yaml" --kubeconfig "$ndir/kubelet/kubeconfig" \
    --root-dir "$ndir/kubelet/root" --hostname-override "$node_name" --node-ip "$node_gw" --v 1
  wait_for kubelet 60 curl -fsS "http://127.0.0.1:$p_kubelet_health/healthz"
}

node_scheduler() {
  start kube-scheduler "$KUBE_SCHEDULER" --kubeconfig "$kubeconfig" \
    --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$p_sched" --leader-elect=false --v 1
  wait_for kube-scheduler 60 curl -fsS -k "https://127.0.0.1:$p_sched/healthz"
}

node_ready() { [ "$("$KUBECTL" --kubeconfig "$kubeconfig" get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }

# After the control plane is up.
node_start() {
  node_network
  node_registry
  node_containerd
  node_kubelet
  node_scheduler
  wait_for kubelet 90 node_ready
}

node_env() {
  cat <<EOF
export NODE_NAME=$node_name
export NODE_GATEWAY_IP=$node_gw
export NODE_GATEWAY2_IP=$node_gw2
export NODE_POD_CIDR=$node_net.0/24
export NODE_CONTAINERD_ADDRESS=$node_sock
export NODE_CTR=$NODE_CTR
export NODE_REGISTRY_CONFIG_DIR=$ndir/containerd/certs.d
export NODE_REGISTRY=127.0.0.1:$p_registry
export NODE_REGISTRY_USER=$node_registry_user
export NODE_REGISTRY_PASSWORD=$node_registry_password
export NODE_REGISTRY_CA=$pki/ca.crt
export NODE_PAUSE_IMAGE=$NODE_PAUSE_IMAGE
export KUBELET_HEALTHZ_URL=http://127.0.0.1:$p_kubelet_health/healthz
export KUBE_SCHEDULER_PORT=$p_sched
EOF
}
