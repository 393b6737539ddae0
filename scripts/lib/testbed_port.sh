# shellcheck shell=bash
# Sourced by the scripts that start a kube test bed: the workload-identity webhook of
# scripts/kube-up always binds :9443, so one test bed runs at a time per machine.
# akv_wait_testbed_port [SECONDS]: waits (default 1200 s) until no one listens on :9443,
# saying who does; fails loudly when the time is up.
akv_wait_testbed_port() {
  local secs=${1:-1200} said=0
  local end=$(( $(date +%s) + secs ))
  while ss -ltnH 'sport = :9443' 2>/dev/null | grep -q .; do
    if [[ $said == 0 ]]; then
      echo "waiting up to ${secs}s for :9443 (another kube test bed runs: $(ss -ltnpH 'sport = :9443' 2>/dev/null | grep -o 'users:.*' | head -1))" >&2
      said=1
    fi
    if [[ $(date +%s) -ge $end ]]; then
      echo "error: :9443 still in use after ${secs}s: stop the other test bed (scripts/kube-down DIR) and run again" >&2
      return 1
    fi
    sleep 2
  done
}
