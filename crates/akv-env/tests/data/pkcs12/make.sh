#!/usr/bin/env bash
# Remakes the PKCS#12 fixtures of crates/akv-env/src/parts/pkcs12.rs and parts.rs's tests
# (run once when the tests were written; the outputs are committed, so the tests need no
# openssl). Needs openssl 3 and python3 with `cryptography`.
#
#   root.der, intermediate.der, leaf.der   a 3-certificate chain (root -> intermediate -> leaf)
#   leaf.key.der                           the leaf's RSA key, PKCS#8 DER
#   ec-leaf.der, ec-leaf.key.der           an EC (P-256) leaf signed by root, PKCS#8 key
#   legacy.p12       openssl -legacy: key 3DES, certificates RC2-40, SHA-1 MAC over the
#                    empty BMPString (two zero bytes)
#   aes.p12          openssl 3 default: PBES2 (PBKDF2-SHA256, AES-256-CBC), SHA-256 MAC
#                    over the empty BMPString
#   nomac.p12        openssl -nomac: PBES2 bags, no MAC
#   legacy-3des.p12  openssl -legacy -descert: certificates 3DES too
#   scrambled.p12    python cryptography, no "main" certificate: plain certificate bags
#                    intermediate, root, leaf (no localKeyId), then a plain key bag, last
#   ec-key-last.p12  python cryptography: root before the EC leaf, key bag last
#   password.p12     openssl with password "secret" (must be refused)
#   keyvault.p12     Key Vault's own archive, from the recording
#                    ../shared/vectors/keyvault/net-certs-DownloadLatestCertificate-pkcs12.excerpt.json:
#                    3DES bags and SHA-1 MAC, both over a zero-length password
#   keyvault-cer.der, keyvault.key.der  its `cer` and the key as `openssl pkcs12 -nocerts -nodes` prints it
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
recording="$here/../../../../../../shared/vectors/keyvault/net-certs-DownloadLatestCertificate-pkcs12.excerpt.json"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

ext() { printf '%s\n' "$@" >ext.cnf; }
openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 3650 \
  -subj "/CN=akv-env test root" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout int.key -out int.csr -subj "/CN=akv-env test intermediate" 2>/dev/null
ext "basicConstraints=critical,CA:TRUE"
openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -out int.pem -days 3650 -extfile ext.cnf 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj "/CN=leaf.example.test" 2>/dev/null
ext "basicConstraints=CA:FALSE" "subjectAltName=DNS:leaf.example.test"
openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -CAcreateserial -out leaf.pem -days 3650 -extfile ext.cnf 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ec.key -out ec.csr -subj "/CN=ec.example.test" 2>/dev/null
openssl x509 -req -in ec.csr -CA root.pem -CAkey root.key -CAcreateserial -out ec.pem -days 3650 -extfile ext.cnf 2>/dev/null

for c in root int leaf ec; do openssl x509 -in $c.pem -outform DER -out $c.der; done
openssl pkcs8 -topk8 -nocrypt -in leaf.key -outform DER -out leaf.key.der
openssl pkcs8 -topk8 -nocrypt -in ec.key -outform DER -out ec.key.der
cat int.pem root.pem >chain.pem

openssl pkcs12 -export -legacy -inkey leaf.key -in leaf.pem -certfile chain.pem -passout pass: -out legacy.p12
openssl pkcs12 -export -inkey leaf.key -in leaf.pem -certfile chain.pem -passout pass: -out aes.p12
openssl pkcs12 -export -nomac -inkey leaf.key -in leaf.pem -certfile chain.pem -passout pass: -out nomac.p12
openssl pkcs12 -export -legacy -descert -inkey leaf.key -in leaf.pem -certfile chain.pem -passout pass: -out legacy-3des.p12
openssl pkcs12 -export -inkey leaf.key -in leaf.pem -passout pass:secret -out password.p12

python3 - <<'EOF'
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

def cert(name):
    return x509.load_pem_x509_certificate(open(f"{name}.pem", "rb").read())

def key(name):
    return serialization.load_pem_private_key(open(f"{name}.key", "rb").read(), None)

# No "main" certificate: every certificate goes in as given (no localKeyId), in one plain
# safe, and the key (a plain keyBag) in a second safe after it. SHA-256 MAC.
def write(out, k, cas):
    data = pkcs12.serialize_key_and_certificates(None, k, None, cas, serialization.NoEncryption())
    open(out, "wb").write(data)
write("scrambled.p12", key("leaf"), [cert("int"), cert("root"), cert("leaf")])
write("ec-key-last.p12", key("ec"), [cert("root"), cert("ec")])
EOF

python3 - "$recording" <<'EOF'
import base64, json, sys
d = json.load(open(sys.argv[1]))
for e in d["Entries"]:
    b = e["ResponseBody"]
    if isinstance(b, dict) and "/secrets/" in e["RequestUri"] and b.get("contentType") == "application/x-pkcs12":
        open("keyvault.p12", "wb").write(base64.b64decode(b["value"]))
    if isinstance(b, dict) and "cer" in b:
        open("keyvault-cer.der", "wb").write(base64.b64decode(b["cer"]))
EOF
openssl pkcs12 -in keyvault.p12 -nocerts -nodes -passin pass: 2>/dev/null |
  python3 -c 'import base64, sys; t = sys.stdin.read(); b = t[t.index("-----BEGIN PRIVATE KEY-----") + 27:t.index("-----END")]; sys.stdout.buffer.write(base64.b64decode(b))' >keyvault.key.der

cp root.der "$here/root.der"; cp int.der "$here/intermediate.der"; cp leaf.der "$here/leaf.der"
cp ec.der "$here/ec-leaf.der"; cp leaf.key.der "$here/leaf.key.der"; cp ec.key.der "$here/ec-leaf.key.der"
cp legacy.p12 aes.p12 nomac.p12 legacy-3des.p12 password.p12 scrambled.p12 ec-key-last.p12 keyvault.p12 keyvault-cer.der keyvault.key.der "$here/"
chmod 0644 "$here"/*.p12 "$here"/*.der
echo "written to $here" >&2
