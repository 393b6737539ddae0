# shellcheck shell=bash
# Stop the node of a test bed (scripts/kube-up with AKV_TESTBED_NODE=1) and remove what it
# leaves on the machine: pod processes and containerd shims, mounts under the test bed's
# dir (the pods' network namespaces among them), the bridge, the cgroups. Sourced by scripts/kube-down
# (and by scripts/kube-up, which cleans up after a run that was killed).
# Needs: log (message to stderr). Everything here is keyed by the test bed's dir, the pod
# bridge's name and the cgroup root recorded in DIR/node/node.env; nothing else is touched.

# The machine-wide record of the test bed whose node runs (one per machine: the bridge,
# the cgroup root and the kubelet's ports are machine-wide).
node_record=/run/akv-testbed/node-dir

# node_pid_alive NAME PIDFILE: the pid recorded still runs NAME
node_pid_alive() {
  local pid exe
  [ -f "$2" ] || return 1
  pid="$(cat "$2")"
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [ "${exe##*/}" = "$1" ]
}

# node_stop_pids SECONDS PID...: TERM, then KILL after SECONDS
node_stop_pids() {
  local secs="$1" pid alive; shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 1 $((secs * 10))); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 1 ] || return 0
    sleep 0.1
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop on TERM within ${secs}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

# pids of processes whose command line contains STRING (exact substring, NUL-separated args)
node_pids_with_arg() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid="${f#/proc/}"; pid="${pid%/cmdline}"
    [ "$pid" != $$ ] || continue
    if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qxF -- "$1"; then echo "$pid"; fi
  done
}

node_down() { # DIR
  local dir="$1" ndir="$1/node"
  [ -f "$ndir/node.env" ] || return 0
  local NODE_CGROUP_ROOT="" NODE_BRIDGE="" NODE_CONTAINERD_SOCK=""
  # shellcheck source=/dev/null
  . "$ndir/node.env"

  # 1. the kubelet and the scheduler first (nothing restarts containers after this), then
  #    the registry
  local name pids=()
  for name in kubelet kube-scheduler docker-registry; do
    node_pid_alive "$name" "$dir/pids/$name.pid" && pids+=("$(cat "$dir/pids/$name.pid")")
    rm -f "$dir/pids/$name.pid"
  done
  node_stop_pids 10 "${pids[@]}"

  # 2. every process in the pods' cgroups (they all live under the kubelet's cgroup root)
  local cg procs=()
  if [ -n "$NODE_CGROUP_ROOT" ]; then
    for cg in /sys/fs/cgroup/*/"$NODE_CGROUP_ROOT"; do
      [ -d "$cg" ] || continue
      while read -r pid; do procs+=("$pid"); done < <(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    done
  fi
  [ ${#procs[@]} -eq 0 ] || kill -KILL "${procs[@]}" 2>/dev/null || true

  # 3. containerd, then its shims (they outlive it; each names our socket in its argv)
  pids=()
  node_pid_alive containerd "$dir/pids/containerd.pid" && pids+=("$(cat "$dir/pids/containerd.pid")")
  rm -f "$dir/pids/containerd.pid"
  node_stop_pids 10 "${pids[@]}"
  if [ -n "$NODE_CONTAINERD_SOCK" ]; then
    mapfile -t pids < <(node_pids_with_arg "$NODE_CONTAINERD_SOCK")
    node_stop_pids 5 "${pids[@]}"
  fi

  # 4. mounts under the test bed's dir, deepest first (the pods' network namespaces too:
  #    containerd keeps them in its state dir)
  local m
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done < <(awk -v d="$dir/" 'index($5, d) == 1 { print length($5) " " $5 }' /proc/self/mountinfo | sort -rn | cut -d' ' -f2-)

  # 5. the bridge and the cgroups
  [ -z "$NODE_BRIDGE" ] || ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1 || ip link delete "$NODE_BRIDGE" 2>/dev/null ||
    log "could not delete the bridge $NODE_BRIDGE"
  if [ -n "$NODE_CGROUP_ROOT" ]; then
    for cg in /sys/fs/cgroup/*/"$NODE_CGROUP_ROOT"; do
      [ -d "$cg" ] || continue
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ ! -d "$cg" ] || log "could not remove cgroup $cg (processes left: $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' '))"
    done
  fi
  if [ -f "$node_record" ] && [ "$(cat "$node_record")" = "$dir" ]; then rm -f "$node_record"; fi
}
