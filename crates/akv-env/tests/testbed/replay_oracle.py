#!/usr/bin/env python3
"""What akv-env must produce for one recording of real Key Vault traffic, computed from
the recorded bytes with Python `cryptography` (never with akv-env's own parser). Used by
crates/akv-env/tests/replay.rs.

  replay_oracle.py expect RECORDING.json   -> JSON {"checks": [...]} on stdout
  replay_oracle.py normalize-key < PEM     -> the key as unencrypted PKCS#8 DER, base64

A check: {"var", "reference", "what", "expect": {"value": TEXT} | {"key_pkcs8": B64} |
{"failure": {"status", "code", "inner", "disabled"}}}.

Which references: every GET answered 200 gives `#value` (secrets, by version or latest),
`#cert` (certificates; plus `#key` and `#chain` when the recording also holds the backing
secret that `sid` names) or `#pubkey` (keys). Every 403/404 of a GET, and every 404 of
another method (the object is absent for a GET too), gives a failure check.
"""

import base64
import json
import re
import sys
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def entries(recording):
    if isinstance(recording.get("Entries"), list):
        for e in recording["Entries"]:
            body = e.get("ResponseBody")
            yield e["RequestMethod"], urlparse(e["RequestUri"]).path, e["StatusCode"], body
    elif isinstance(recording.get("recordings"), list):
        for e in recording["recordings"]:
            body = e.get("response")
            if isinstance(body, str):
                try:
                    body = json.loads(body)
                except ValueError:
                    pass
            yield e["method"], urlparse(e["url"]).path, e["status"], body
    else:
        raise SystemExit("neither Entries nor recordings")


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def var_name(*parts):
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts)).upper()


def spki(key):
    return key.public_key().public_bytes(DER, SPKI)


def ordered_chain(certs, key):
    """Leaf first: the certificate of the key (else the one that issued no other), then
    each issuer in turn; certificates off the path after, in stored order."""
    if not certs:
        return []
    leaf = None
    if key is not None:
        leaf = next((c for c in certs if c.public_key().public_bytes(DER, SPKI) == spki(key)), None)
    if leaf is None:
        leaf = next(
            (c for c in certs if not any(o is not c and o.issuer == c.subject for o in certs)),
            certs[0],
        )
    chain = [leaf]
    while chain[-1].issuer != chain[-1].subject:
        nxt = next((c for c in certs if c not in chain and c.subject == chain[-1].issuer), None)
        if nxt is None:
            break
        chain.append(nxt)
    return chain + [c for c in certs if c not in chain]


def pkcs8(key):
    der = key.private_bytes(DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return base64.b64encode(der).decode()


def backing_parts(secret):
    """(key, certificates in stored order) of a certificate's backing secret."""
    ctype = (secret.get("contentType") or "").split(";")[0].strip().lower()
    value = secret.get("value") or ""
    if ctype == "application/x-pkcs12":
        key, cert, extra = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
        return key, ([cert] if cert else []) + list(extra)
    key = None
    for m in re.finditer(r"-----BEGIN ((?:RSA |EC )?PRIVATE KEY)-----.*?-----END \1-----", value, re.S):
        key = serialization.load_pem_private_key(m.group(0).encode(), None)
        break
    return key, x509.load_pem_x509_certificates(value.encode())


def object_of(path):
    m = re.fullmatch(r"/(secrets|certificates|keys)/([0-9A-Za-z-]+)(?:/([0-9a-f]{32}))?/?", path)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def reference(name, version, part=None):
    r = f"akv:{name}" + (f"/{version}" if version else "")
    return r + (f"#{part}" if part else "")


def expect(recording):
    rows = list(entries(recording))
    secrets = {}
    for method, path, status, body in rows:
        obj = object_of(path)
        if method == "GET" and status == 200 and obj and obj[0] == "secrets" and isinstance(body, dict):
            secrets[(obj[1].lower(), obj[2])] = body
    checks = []
    seen = set()

    def add(check):
        if check["reference"] not in seen:
            seen.add(check["reference"])
            checks.append(check)

    for method, path, status, body in rows:
        obj = object_of(path)
        if obj is None or status == 401:
            continue
        kind, name, version = obj
        how = "by version" if version else "latest"
        if method == "GET" and status == 200:
            if kind == "secrets":
                add({"var": var_name("secret", name, version or "latest"), "reference": reference(name, version),
                     "what": f"#value {how}", "expect": {"value": body.get("value", "")}})
            elif kind == "certificates":
                cer = x509.load_der_x509_certificate(base64.b64decode(body["cer"]))
                add({"var": var_name("cert", name, version or "latest", "cert"), "reference": reference(name, version, "cert"),
                     "what": f"#cert {how}", "expect": {"value": cer.public_bytes(PEM).decode()}})
                sid = urlparse(body.get("sid") or "").path.split("/")
                backing = secrets.get((sid[2].lower(), sid[3] if len(sid) > 3 else None)) if len(sid) > 2 else None
                if backing is not None:
                    key, certs = backing_parts(backing)
                    ctype = backing.get("contentType")
                    chain = "".join(c.public_bytes(PEM).decode() for c in ordered_chain(certs, key))
                    add({"var": var_name("cert", name, version or "latest", "key"), "reference": reference(name, version, "key"),
                         "what": f"#key {how} ({ctype})", "expect": {"key_pkcs8": pkcs8(key)}})
                    add({"var": var_name("cert", name, version or "latest", "chain"), "reference": reference(name, version, "chain"),
                         "what": f"#chain {how} ({ctype})", "expect": {"value": chain}})
            elif kind == "keys":
                jwk = body["key"]
                if jwk["kty"] in ("RSA", "RSA-HSM"):
                    pub = rsa.RSAPublicNumbers(int.from_bytes(b64url(jwk["e"]), "big"),
                                               int.from_bytes(b64url(jwk["n"]), "big")).public_key()
                else:
                    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(),
                             "P-256K": ec.SECP256K1()}[jwk["crv"]]
                    pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64url(jwk["x"]), "big"),
                                                        int.from_bytes(b64url(jwk["y"]), "big"), curve).public_key()
                add({"var": var_name("key", name, version or "latest", "pubkey"), "reference": reference(name, version, "pubkey"),
                     "what": f"#pubkey {how} ({jwk['kty']})", "expect": {"value": pub.public_bytes(PEM, SPKI).decode()}})
        elif (method == "GET" and status in (403, 404)) or status == 404:
            error = (body or {}).get("error", {}) if isinstance(body, dict) else {}
            inner = (error.get("innererror") or {}).get("code")
            part = {"secrets": None, "certificates": "cert", "keys": "pubkey"}[kind]
            add({"var": var_name("failing", kind, name), "reference": reference(name, version, part),
                 "what": f"{status} {error.get('code')}" + (f"/{inner}" if inner else ""),
                 "expect": {"failure": {"status": status, "code": error.get("code"), "inner": inner,
                                        "disabled": inner == "SecretDisabled"}}})
    return {"checks": checks}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "expect":
        with open(sys.argv[2], encoding="utf-8") as f:
            print(json.dumps(expect(json.load(f))))
    elif len(sys.argv) == 2 and sys.argv[1] == "normalize-key":
        key = serialization.load_pem_private_key(sys.stdin.buffer.read(), None)
        print(pkcs8(key))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
