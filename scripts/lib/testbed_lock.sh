# shellcheck shell=bash
# One Kubernetes test bed per machine (the Azure Workload Identity webhook always binds
# :9443, the node's bridge and cgroups have fixed names): scripts/kube-up takes this lock,
# scripts/kube-down gives it back.
#
# The lock is a record, LOCK_DIR/owner, of who holds it: the pid of the process that ran
# kube-up (its parent: the e2e runner, a smoke script, a shell), that pid's start time (so
# that a reused pid is not taken for the holder), the test bed's dir and the user. Reading
# and writing the record is serialised with flock(1) on LOCK_DIR/lock; the flock is held
# only for that, never while a test bed runs (the bed's processes must not inherit it).
#   - free (no record): take it.
#   - held by a live process: wait, up to AKV_TESTBED_LOCK_WAIT seconds (default 300), then
#     fail naming the holder (pid, command, user, dir, since when).
#   - held by a dead process (a run that was killed): stale. Its test bed may still run
#     (its processes outlive the holder): scripts/kube-down of its dir, then take it.
# Environment: AKV_TESTBED_LOCK_DIR (default /run/akv-testbed), AKV_TESTBED_LOCK_WAIT.
# Needs: log, die (the caller's), flock (util-linux).

testbed_lock_dir="${AKV_TESTBED_LOCK_DIR:-/run/akv-testbed}"
testbed_lock_file="$testbed_lock_dir/lock"
testbed_lock_owner="$testbed_lock_dir/owner"

# The start time of PID (field 22 of /proc/PID/stat), empty when it does not run.
testbed_lock_pid_start() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  # the command (field 2) may hold spaces and parentheses: cut after its last ')'
  stat="${stat##*) }"
  # shellcheck disable=SC2086  # split into fields on purpose
  set -- $stat
  printf '%s' "${20:-}"
}

# A field of the owner record (KEY=value lines).
testbed_lock_field() { sed -n "s/^$1=//p" "$testbed_lock_owner" 2>/dev/null | head -1; }

# Whether the recorded holder still runs (same pid, same start time).
testbed_lock_holder_alive() {
  local pid start
  pid="$(testbed_lock_field pid)"; start="$(testbed_lock_field start)"
  [ -n "$pid" ] && [ -n "$start" ] && [ "$(testbed_lock_pid_start "$pid")" = "$start" ]
}

testbed_lock_describe() {
  local pid cmd; pid="$(testbed_lock_field pid)"
  cmd="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-120)"
  printf 'pid %s (%s), user %s, test bed %s, since %s' "$pid" "${cmd:-gone}" \
    "$(testbed_lock_field user)" "$(testbed_lock_field dir)" "$(testbed_lock_field since)"
}

# Runs CMD... with the flock on the lock file held.
testbed_lock_flocked() {
  local fd rc=0
  exec {fd}>>"$testbed_lock_file" || die "cannot open the test bed lock $testbed_lock_file"
  flock -w 30 "$fd" || { exec {fd}>&-; die "could not flock $testbed_lock_file within 30s"; }
  "$@" || rc=$?
  exec {fd}>&-
  return $rc
}

# Under the flock: 0 = taken for DIR, 3 = held by a live process, 2 = stale (dir printed).
testbed_lock_try() { # DIR OWNER_PID
  if [ -s "$testbed_lock_owner" ]; then
    if testbed_lock_holder_alive; then
      [ "$(testbed_lock_field dir)" = "$1" ] && [ "$(testbed_lock_field pid)" = "$2" ] && return 0
      return 3
    fi
    if [ "$(testbed_lock_field dir)" != "$1" ] && [ -d "$(testbed_lock_field dir)" ] &&
      [ -n "$(ls -A "$(testbed_lock_field dir)/pids" 2>/dev/null)" ]; then
      testbed_lock_field dir
      return 2
    fi
    log "taking over the test bed lock of a process that is gone ($(testbed_lock_describe))"
  fi
  {
    printf 'pid=%s\n' "$2"
    printf 'start=%s\n' "$(testbed_lock_pid_start "$2")"
    printf 'dir=%s\n' "$1"
    printf 'user=%s\n' "$(id -un 2>/dev/null || id -u)"
    printf 'since=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$testbed_lock_owner.tmp" && mv "$testbed_lock_owner.tmp" "$testbed_lock_owner"
}

# testbed_lock_acquire DIR [OWNER_PID]: the lock for the test bed in DIR, held by
# OWNER_PID (default: the caller's parent, i.e. whoever ran kube-up).
testbed_lock_acquire() {
  local bed="$1" owner="${2:-$PPID}" wait="${AKV_TESTBED_LOCK_WAIT:-300}" rc stale end waited=0
  case "$wait" in '' | *[!0-9]*) die "AKV_TESTBED_LOCK_WAIT must be a number of seconds, not '$wait'" ;; esac
  command -v flock >/dev/null 2>&1 || die "flock is not on PATH: apt-get install util-linux"
  mkdir -p "$testbed_lock_dir" || die "cannot create the test bed lock dir $testbed_lock_dir (set AKV_TESTBED_LOCK_DIR)"
  end=$(( $(date +%s) + wait ))
  while :; do
    rc=0
    stale="$(testbed_lock_flocked testbed_lock_try "$bed" "$owner")" || rc=$?
    case $rc in
      0) return 0 ;;
      2)
        log "the test bed lock is stale: its holder is gone but its test bed in $stale still runs: scripts/kube-down $stale"
        "$here/kube-down" "$stale" >&2 || die "could not stop the stale test bed in $stale (scripts/kube-down $stale)"
        continue ;;
      3) ;;
      *) die "could not take the test bed lock $testbed_lock_owner (see above)" ;;
    esac
    if [ "$(date +%s)" -ge "$end" ]; then
      die "another Kubernetes test bed holds the lock $testbed_lock_owner: $(testbed_lock_describe). Only one fits on a machine (the workload-identity webhook binds :9443). Waited ${wait}s (AKV_TESTBED_LOCK_WAIT); stop it with scripts/kube-down $(testbed_lock_field dir), or wait for it to finish"
    fi
    [ "$waited" = 1 ] || log "waiting up to ${wait}s for the test bed lock, held by $(testbed_lock_describe)"
    waited=1
    sleep 1
  done
}

testbed_lock_release_locked() { # DIR
  [ "$(testbed_lock_field dir)" = "$1" ] || return 0
  rm -f "$testbed_lock_owner"
}

# testbed_lock_release DIR: gives the lock back if the test bed in DIR holds it.
testbed_lock_release() {
  [ -e "$testbed_lock_owner" ] || return 0
  testbed_lock_flocked testbed_lock_release_locked "$1"
}
