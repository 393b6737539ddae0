# shellcheck shell=bash
# Sourced by the check scripts: a Go command-line tool built once from the Go module
# proxy and cached outside the clone, keyed by module version:
#   ${AKV_CACHE:-$HOME/.cache/akv-injector}/tools/NAME/VERSION/NAME
# (NAME.build next to it records package and ldflags: a change rebuilds)
# with GOMODCACHE/GOCACHE shared with the other test beds ($AKV_CACHE/go/), so a version
# bump rebuilds warm. Building happens under a lock, one builder at a time per cache.
#
#   akv_go_tool NAME MODULE VERSION PACKAGE [LDFLAGS]
# prints the path of the binary on stdout; progress goes to stderr; any failure exits
# loudly with what to do next.
AKV_CACHE=${AKV_CACHE:-$HOME/.cache/akv-injector}

akv_go_tool() {
  local name=$1 module=$2 version=$3 pkg=$4 ldflags=${5:-}
  local root=$AKV_CACHE/tools/$name/$version
  local bin=$root/$name
  local want="$module@$version $pkg $ldflags"
  if [[ -x $bin && -f $bin.build && $(<"$bin.build") == "$want" ]]; then
    echo "$bin"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null 2>&1 || {
    echo "error: 'go' is not on PATH (nor /usr/local/go/bin/go): install Go (https://go.dev/doc/install) to build $name $version from the Go module proxy" >&2
    exit 1
  }
  command -v flock >/dev/null 2>&1 || { echo "error: 'flock' is not on PATH: apt-get install util-linux" >&2; exit 1; }
  mkdir -p "$root"
  local lock_fd
  exec {lock_fd}>"$root.lock"
  flock "$lock_fd"
  if [[ ! -x $bin || ! -f $bin.build || $(<"$bin.build") != "$want" ]]; then
    local t0 src=$root/src
    t0=$(date +%s)
    echo "building $name $version ($pkg) from the Go module proxy into $root" >&2
    rm -rf "$src" && mkdir -p "$src"
    printf 'module akvtool\n\ngo 1.24\n' >"$src/go.mod"
    (
      cd "$src"
      export GOMODCACHE="$AKV_CACHE/go/mod" GOCACHE="$AKV_CACHE/go/build"
      export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
      export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
      nice -n 15 go get "$module@$version" >&2 || {
        echo "error: could not resolve $module@$version from the Go module proxy ($GOPROXY): check access to it and that the version exists" >&2
        exit 1
      }
      nice -n 15 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin.tmp" "$pkg" >&2 || {
        echo "error: go build $pkg ($module@$version) failed (see above); a newer Go may be needed (go.mod of $module)" >&2
        exit 1
      }
    ) || { exec {lock_fd}>&-; exit 1; }
    mv "$bin.tmp" "$bin"
    echo "$want" >"$bin.build"
    rm -rf "$src"
    echo "built $name $version in $(( $(date +%s) - t0 ))s" >&2
  fi
  exec {lock_fd}>&-
  echo "$bin"
}
