#!/usr/bin/env bash
# Makes the akv-webhook serving certificate with openssl, and a kustomize overlay that
# installs it: the Secret akv-webhook-tls (type kubernetes.io/tls) and the CA as the
# MutatingWebhookConfiguration's caBundle. See certs/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: certs/make-certs.sh [options]

Makes (once) a private CA and a serving certificate for the akv-webhook Service, and
writes a kustomize overlay that installs them on top of manifests/base:

  OUT/ca.key, OUT/ca.crt      the CA (kept; replaced only with --force)
  OUT/tls.key, OUT/tls.crt    the serving key and certificate (issued from the CA)
  OUT/ca-bundle.crt           the CAs the API server trusts (the caBundle)
  OUT/kustomization.yaml      base + Secret akv-webhook-tls + caBundle patch
  OUT/ca-bundle-patch.yaml

Then: kubectl apply -k OUT

A plain run creates what is missing and is otherwise a no-op; it re-issues the serving
certificate only when it is invalid for the CA or names, or expires within 30 days.

Options:
  -o, --out DIR        output directory, a kustomize overlay (default: manifests/tls,
                       which is git-ignored; it holds private keys: never commit it)
  -n, --namespace NS   namespace of the webhook (default: akv-injector)
  -s, --service NAME   name of the webhook's Service (default: akv-webhook)
      --san NAME       extra DNS name or IP address for the serving certificate
                       (repeatable), e.g. for a webhook reached by URL in tests
      --days N         serving certificate validity in days (default: 365)
      --ca-days N      CA validity in days (default: 3650)
      --key-type T     ec (P-256, default) or rsa (3072 bits), for new keys
      --base DIR       the kustomize base the overlay installs
                       (default: manifests/base next to this script)
      --rotate         re-issue the serving key and certificate from the existing CA
      --force          make a new CA (and serving certificate) even if one exists; the
                       old CA stays in the caBundle (ca-previous.crt) until you delete
                       that file and run again
  -h, --help           this help
EOF
}

die() { echo "make-certs.sh: error: $*" >&2; exit 1; }
note() { echo "make-certs.sh: $*" >&2; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)

out="$repo_dir/manifests/tls"
namespace=akv-injector
service=akv-webhook
days=365
ca_days=3650
key_type=ec
base="$repo_dir/manifests/base"
rotate=false
force=false
extra_sans=()

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    -o|--out) need_arg "$@"; out=$2; shift 2 ;;
    -n|--namespace) need_arg "$@"; namespace=$2; shift 2 ;;
    -s|--service) need_arg "$@"; service=$2; shift 2 ;;
    --san) need_arg "$@"; extra_sans+=("$2"); shift 2 ;;
    --days) need_arg "$@"; days=$2; shift 2 ;;
    --ca-days) need_arg "$@"; ca_days=$2; shift 2 ;;
    --key-type) need_arg "$@"; key_type=$2; shift 2 ;;
    --base) need_arg "$@"; base=$2; shift 2 ;;
    --rotate) rotate=true; shift ;;
    --force) force=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

command -v openssl >/dev/null 2>&1 ||
  die "openssl not found: install it (Debian/Ubuntu: apt-get install openssl; macOS: brew install openssl)"

dns_label='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'
[[ $namespace =~ $dns_label ]] || die "--namespace '$namespace' is not a valid namespace name (RFC 1123 label)"
[[ $service =~ $dns_label ]] || die "--service '$service' is not a valid Service name (RFC 1123 label)"
[[ $days =~ ^[1-9][0-9]*$ ]] || die "--days must be a positive number of days, got '$days'"
[[ $ca_days =~ ^[1-9][0-9]*$ ]] || die "--ca-days must be a positive number of days, got '$ca_days'"
[[ $key_type == ec || $key_type == rsa ]] || die "--key-type must be 'ec' or 'rsa', got '$key_type'"
[[ $rotate == true && $force == true ]] && die "--rotate and --force exclude each other (--force re-issues both)"
[[ -f $base/kustomization.yaml ]] || die "--base '$base' has no kustomization.yaml"

# The names the API server connects to: <service>.<namespace>.svc (what it uses for a
# clientConfig.service reference) and the cluster-local FQDN.
sans=("$service.$namespace.svc" "$service.$namespace.svc.cluster.local")
for s in ${extra_sans[@]+"${extra_sans[@]}"}; do
  if [[ $s =~ ^[0-9]+(\.[0-9]+){3}$ || $s == *:* ]]; then
    sans+=("IP:$s")
  elif [[ $s =~ ^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$ ]]; then
    sans+=("$s")
  else
    die "--san '$s' is neither a DNS name nor an IP address"
  fi
done
common_name="$service.$namespace.svc"

mkdir -p "$out"
out=$(cd "$out" && pwd)
chmod 700 "$out"
umask 077

if command -v flock >/dev/null 2>&1; then
  exec 9>"$out/.lock"
  flock -n 9 || die "another make-certs.sh is writing $out"
fi

work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

new_key() { # FILE
  if [[ $key_type == ec ]]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
      -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$1" 2>/dev/null
  fi
}

pubkey_of_key() { openssl pkey -in "$1" -pubout; }
pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey; }

# Key usages of the serving certificate: keyEncipherment only matters for RSA.
leaf_key_usage() { # KEYFILE
  if openssl pkey -in "$1" -noout -text 2>/dev/null | grep -q 'RSA'; then
    echo "critical, digitalSignature, keyEncipherment"
  else
    echo "critical, digitalSignature"
  fi
}

write_config() { # FILE KEYFILE
  {
    echo "[req]"
    echo "distinguished_name = dn"
    echo "prompt = no"
    echo "[dn]"
    echo "CN = $common_name"
    echo "[v3_ca]"
    echo "basicConstraints = critical, CA:TRUE, pathlen:0"
    echo "keyUsage = critical, keyCertSign, cRLSign"
    echo "subjectKeyIdentifier = hash"
    echo "[v3_leaf]"
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = $(leaf_key_usage "$2")"
    echo "extendedKeyUsage = serverAuth"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid:always"
    echo "subjectAltName = @alt_names"
    echo "[alt_names]"
    local d=0 i=0 s
    for s in "${sans[@]}"; do
      if [[ $s == IP:* ]]; then
        i=$((i + 1)); echo "IP.$i = ${s#IP:}"
      else
        d=$((d + 1)); echo "DNS.$d = $s"
      fi
    done
  } >"$1"
}

# The subjectAltName of a certificate, normalised to one sorted "DNS:x"/"IP:x" a line.
sans_of_cert() {
  openssl x509 -in "$1" -noout -text |
    awk '/X509v3 Subject Alternative Name/ { getline; print; exit }' |
    tr ',' '\n' | sed -e 's/^ *//' -e 's/^IP Address:/IP:/' | sort
}
# An IP address as openssl prints it: IPv6 with every group, no leading zeros, upper case.
ip_as_openssl() {
  local ip=$1
  if [[ $ip != *:* ]]; then echo "$ip"; return; fi
  local head=${ip%%::*} tail="" groups=() g n i
  if [[ $ip == *::* ]]; then tail=${ip#*::}; fi
  IFS=: read -r -a hg <<<"$head"
  IFS=: read -r -a tg <<<"$tail"
  n=$((8 - ${#hg[@]} - ${#tg[@]}))
  groups=(${hg[@]+"${hg[@]}"})
  for ((i = 0; i < n; i++)); do groups+=(0); done
  groups+=(${tg[@]+"${tg[@]}"})
  local outs=()
  for g in "${groups[@]}"; do outs+=("$(printf '%X' "0x${g:-0}")"); done
  (IFS=:; echo "${outs[*]}")
}
wanted_sans() {
  local s
  for s in "${sans[@]}"; do
    if [[ $s == IP:* ]]; then echo "IP:$(ip_as_openssl "${s#IP:}")"; else echo "DNS:$s"; fi
  done | sort
}

# ---- the CA -----------------------------------------------------------------------
ca_key="$out/ca.key" ca_crt="$out/ca.crt" ca_prev="$out/ca-previous.crt"
new_ca=false
if [[ $force == true ]]; then
  new_ca=true
elif [[ -e $ca_key || -e $ca_crt ]]; then
  [[ -f $ca_key && -f $ca_crt ]] ||
    die "$out has only one of ca.key and ca.crt: restore the other, or run with --force to make a new CA"
  [[ "$(pubkey_of_key "$ca_key")" == "$(pubkey_of_cert "$ca_crt")" ]] ||
    die "$ca_key does not match $ca_crt: restore them, or run with --force to make a new CA"
  openssl x509 -in "$ca_crt" -noout -checkend 0 >/dev/null ||
    die "the CA $ca_crt has expired: run with --force to make a new CA"
elif [[ $rotate == true ]]; then
  die "--rotate re-issues from the existing CA, and $out has none: run without --rotate first"
else
  new_ca=true
fi
if [[ $new_ca == true ]]; then
  write_config "$work/openssl.cnf" /dev/null
  new_key "$work/ca.key"
  openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$ca_days" \
    -subj "/CN=akv-injector-ca ($namespace)" -config "$work/openssl.cnf" \
    -extensions v3_ca -out "$work/ca.crt" 2>/dev/null
  if [[ -f $ca_crt ]] && openssl x509 -in "$ca_crt" -noout -checkend 0 >/dev/null 2>&1; then
    # Keep trusting the old CA until the webhook serves a certificate of the new one.
    cp "$ca_crt" "$work/ca-previous.crt"
    mv -f "$work/ca-previous.crt" "$ca_prev"
    note "kept the replaced CA in ca-previous.crt (still in the caBundle); delete it and run again once the webhook serves the new certificate"
  fi
  chmod 600 "$work/ca.key"; chmod 644 "$work/ca.crt"
  mv -f "$work/ca.key" "$ca_key"
  mv -f "$work/ca.crt" "$ca_crt"
  note "made a new CA: $ca_crt (valid $ca_days days)"
fi

# ---- the serving certificate --------------------------------------------------------
tls_key="$out/tls.key" tls_crt="$out/tls.crt"
reason=""
if [[ $new_ca == true ]]; then
  reason="new CA"
elif [[ $rotate == true ]]; then
  reason="--rotate"
elif [[ ! -f $tls_key || ! -f $tls_crt ]]; then
  reason="no serving certificate yet"
elif ! openssl verify -CAfile "$ca_crt" "$tls_crt" >/dev/null 2>&1; then
  reason="serving certificate does not verify against the CA"
elif [[ "$(pubkey_of_key "$tls_key")" != "$(pubkey_of_cert "$tls_crt")" ]]; then
  reason="tls.key does not match tls.crt"
elif [[ "$(sans_of_cert "$tls_crt")" != "$(wanted_sans)" ]]; then
  reason="serving certificate names differ from the requested ones"
elif ! openssl x509 -in "$tls_crt" -noout -checkend $((30 * 86400)) >/dev/null; then
  reason="serving certificate expires within 30 days"
fi
if [[ -n $reason ]]; then
  openssl x509 -in "$ca_crt" -noout -checkend $((days * 86400)) >/dev/null ||
    die "the CA expires before a serving certificate of $days days would: use fewer --days, or --force for a new CA"
  new_key "$work/tls.key"
  write_config "$work/openssl.cnf" "$work/tls.key"
  openssl req -new -key "$work/tls.key" -config "$work/openssl.cnf" -out "$work/tls.csr"
  openssl x509 -req -in "$work/tls.csr" -CA "$ca_crt" -CAkey "$ca_key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
    -extfile "$work/openssl.cnf" -extensions v3_leaf -out "$work/tls.crt" 2>/dev/null
  openssl verify -CAfile "$ca_crt" "$work/tls.crt" >/dev/null ||
    die "internal error: the new serving certificate does not verify against the CA"
  chmod 600 "$work/tls.key"; chmod 644 "$work/tls.crt"
  mv -f "$work/tls.key" "$tls_key"
  mv -f "$work/tls.crt" "$tls_crt"
  note "issued the serving certificate ($reason): $tls_crt for ${sans[*]} (valid $days days)"
else
  note "kept the serving certificate $tls_crt (valid, names match; use --rotate to re-issue)"
fi

# ---- the caBundle and the overlay ---------------------------------------------------
if [[ -f $ca_prev ]] && ! openssl x509 -in "$ca_prev" -noout -checkend 0 >/dev/null 2>&1; then
  rm -f "$ca_prev"   # an expired previous CA trusts nothing any more
fi
{
  cat "$ca_crt"
  if [[ -f $ca_prev ]]; then cat "$ca_prev"; fi
} >"$work/ca-bundle.crt"
ca_bundle_b64=$(openssl base64 -A -in "$work/ca-bundle.crt")

cat >"$work/ca-bundle-patch.yaml" <<EOF
# Generated by certs/make-certs.sh: the CAs that the API server trusts for the webhook.
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: akv-injector
webhooks:
  - name: pods.akv-injector.io
    clientConfig:
      caBundle: $ca_bundle_b64
EOF

if command -v realpath >/dev/null 2>&1 && realpath --relative-to=/ / >/dev/null 2>&1; then
  base_rel=$(realpath --relative-to="$out" "$base")
elif command -v python3 >/dev/null 2>&1; then
  base_rel=$(python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$base" "$out")
else
  die "need GNU realpath or python3 to write the overlay's relative path to $base"
fi

{
  echo "# Generated by certs/make-certs.sh; re-run it rather than editing this file."
  echo "# This directory holds private keys: never commit it."
  echo "#   kubectl apply -k $out"
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo
  echo "resources:"
  echo "  - $base_rel"
  if [[ $namespace != akv-injector ]]; then
    echo
    echo "namespace: $namespace"
  fi
  echo
  echo "secretGenerator:"
  echo "  - name: akv-webhook-tls"
  echo "    namespace: $namespace"
  echo "    type: kubernetes.io/tls"
  echo "    files:"
  echo "      - tls.crt"
  echo "      - tls.key"
  echo "      - ca.crt"
  echo "    options:"
  echo "      # The webhook reloads the mounted Secret when it changes: keep one name."
  echo "      disableNameSuffixHash: true"
  echo "      labels:"
  echo "        app.kubernetes.io/part-of: akv-injector"
  echo
  echo "patches:"
  echo "  - path: ca-bundle-patch.yaml"
  if [[ $namespace != akv-injector ]]; then
    echo "  # Keep the webhook's own namespace excluded from injection."
    echo "  - target:"
    echo "      kind: MutatingWebhookConfiguration"
    echo "      name: akv-injector"
    echo "    patch: |-"
    echo "      - op: test"
    echo "        path: /webhooks/0/namespaceSelector/matchExpressions/0/key"
    echo "        value: kubernetes.io/metadata.name"
    echo "      - op: replace"
    echo "        path: /webhooks/0/namespaceSelector/matchExpressions/0/values"
    echo "        value: [\"kube-system\", \"$namespace\"]"
  fi
  if [[ $service != akv-webhook ]]; then
    echo "  # Rename the Service (kustomize follows the name into the webhook's clientConfig)."
    echo "  - target:"
    echo "      version: v1"
    echo "      kind: Service"
    echo "      name: akv-webhook"
    echo "    patch: |-"
    echo "      - op: replace"
    echo "        path: /metadata/name"
    echo "        value: $service"
  fi
} >"$work/kustomization.yaml"

for f in ca-bundle.crt ca-bundle-patch.yaml kustomization.yaml; do
  chmod 644 "$work/$f"
  mv -f "$work/$f" "$out/$f"
done

note "wrote the overlay $out (Secret akv-webhook-tls in namespace $namespace, caBundle patch)"
note "install with: kubectl apply -k $out"
