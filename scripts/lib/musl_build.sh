# shellcheck shell=bash
# Sourced by the scripts that build what the image ships (check-dockerfile, testbed-node):
# the Dockerfile's own two cargo commands, for one Rust musl target, with cargo-zigbuild
# and zig from the cached venv (scripts/lib/venv.sh), as the Dockerfile's build stage runs
# them.
#
#   akv_musl_build TARGET     x86_64-unknown-linux-musl or aarch64-unknown-linux-musl
#   akv_musl_bin TARGET NAME  prints the path of akv-webhook or akv-env for TARGET
# They build in a target directory outside the clone, under $AKV_CACHE/musl-target/ keyed
# by the compiler's and zig's versions (AKV_MUSL_TARGET_DIR overrides it), so that a fresh
# clone (CI) compiles only our own crates and the final link, not every dependency again,
# for each architecture. Any failure exits loudly with what to do next.

# shellcheck source-path=SCRIPTDIR source=venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

# The zig pins of venv.sh, as the Dockerfile must install them too.
AKV_ZIG_PINS=$(printf '%s ' "${AKV_PY_TOOLS[@]}" | grep -Eo 'cargo-zigbuild==[^ ]+ ziglang==[^ ]+')

# The commands, with $RUST_TARGET as the Dockerfile writes it.
AKV_MUSL_BUILD_CMDS='cargo zigbuild --profile dist --locked --target $RUST_TARGET --bin akv-webhook
cargo zigbuild --profile release-size --locked --target $RUST_TARGET --bin akv-env'

# The target directory of these builds (made on first use).
akv_musl_target_dir() {
  if [[ -z ${AKV_MUSL_TARGET_DIR:-} ]]; then
    local key
    key=$(printf '%s %s' "$(rustc -V 2>/dev/null)" "$AKV_ZIG_PINS" |
      sha256sum | cut -c1-12)
    AKV_MUSL_TARGET_DIR=$AKV_CACHE/musl-target/$key
  fi
  echo "$AKV_MUSL_TARGET_DIR"
}

akv_musl_build() {
  local target=$1 repo_root
  repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  command -v rustup >/dev/null 2>&1 || { echo "error: rustup not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "rustup target add $target" >&2
    rustup target add "$target" >&2 || { echo "error: 'rustup target add $target' failed (see above)" >&2; exit 1; }
  fi
  akv_venv
  local cmd
  while read -r cmd; do
    cmd=${cmd//\$RUST_TARGET/$target}
    echo "$cmd" >&2
    # shellcheck disable=SC2086  # the command's words
    (cd "$repo_root" && CARGO_TARGET_DIR=$(akv_musl_target_dir) PATH="$AKV_VENV/bin:$PATH" nice -n 10 $cmd >&2) ||
      { echo "error: '$cmd' failed (see above)" >&2; exit 1; }
  done <<<"$AKV_MUSL_BUILD_CMDS"
}

akv_musl_bin() {
  local target=$1 name=$2 profile=dist
  [[ $name == akv-env ]] && profile=release-size
  echo "$(akv_musl_target_dir)/$target/$profile/$name"
}
