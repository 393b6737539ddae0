#!/usr/bin/env python3
"""Webhook soak for scripts/soak: steady load on POST /mutate while the serving
certificate is swapped the way the kubelet updates a Secret volume (a new `..data`
directory behind a symlink), alternating a good pair, a bad pair (key of another
certificate) and another good pair.

Reports: reviews sent, failed reviews (wrong status or answer, connection errors) per
swap window (target 0 everywhere: a bad pair is refused and the old one kept), whether
new connections saw each good certificate, RSS at start / after warm-up / end / peak,
and open file descriptors at start and end.

Usage: soak_webhook.py WEBHOOK_BIN REPO OUT_JSON
Env: SOAK_SECONDS (120), SOAK_RATE (500 reviews/s), SOAK_SWAP (10 s), SOAK_WORKERS (8)
"""
import http.client
import json
import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SECONDS = int(os.environ.get("SOAK_SECONDS", "120"))
RATE = int(os.environ.get("SOAK_RATE", "500"))
SWAP = int(os.environ.get("SOAK_SWAP", "10"))
WORKERS = int(os.environ.get("SOAK_WORKERS", "8"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pair(d: pathlib.Path, name: str) -> None:
    """A CA and a leaf for localhost/127.0.0.1, as NAME-ca.crt, NAME.crt, NAME.key."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.crt", "-days", "2",
            "-subj", f"/CN=soak {name} CA", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=localhost", cwd=d)
    (d / f"{name}.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.crt", "-CAkey", f"{name}-ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


class SecretVolume:
    """tls.crt and tls.key behind `..data`, swapped atomically like the kubelet does."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.n = 0
        root.mkdir(parents=True, exist_ok=True)
        for f in ("tls.crt", "tls.key"):
            (root / f).symlink_to(f"..data/{f}")

    def publish(self, cert: pathlib.Path, key: pathlib.Path) -> None:
        self.n += 1
        ts = self.root / f"..ts{self.n}"
        ts.mkdir()
        shutil.copy(cert, ts / "tls.crt")
        shutil.copy(key, ts / "tls.key")
        tmp = self.root / "..data_tmp"
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(ts.name)
        os.replace(tmp, self.root / "..data")


def proc_status(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    binary, repo, out = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    work = pathlib.Path(tempfile.mkdtemp(prefix="akv-soak-"))
    for name in ("a", "b"):
        make_pair(work, name)
    volume = SecretVolume(work / "tls")
    volume.publish(work / "a.crt", work / "a.key")
    port, mport = free_port(), free_port()
    log = open(work / "webhook.log", "wb")
    proc = subprocess.Popen(
        [binary, f"--listen=127.0.0.1:{port}", f"--metrics-listen=127.0.0.1:{mport}",
         f"--tls-cert={volume.root}/tls.crt", f"--tls-key={volume.root}/tls.key", "--log-format=json"],
        stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{mport}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("soak: the webhook did not become ready; see " + str(work / "webhook.log"))
        result = soak(proc.pid, port, volume, work, repo)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result["log"] = str(work / "webhook.log")
    pathlib.Path(out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}))
    # After every swap, new connections must see the pair that should be served: the new
    # one after a good swap, still the old one after a bad swap.
    ok = result["failed"] == 0 and all(w.get("next_seen", True) for w in result["windows"])
    sys.exit(0 if ok else 1)


def soak(pid: int, port: int, volume: SecretVolume, work: pathlib.Path, repo: pathlib.Path) -> dict:
    ctx = ssl.create_default_context()
    for name in ("a", "b"):
        ctx.load_verify_locations(work / f"{name}-ca.crt")
    bodies = [
        ((repo / "examples/review-3-containers.json").read_bytes(), "patched"),
        ((repo / "examples/review-bad-reference.json").read_bytes(), "denied"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": ', "malformed"),
    ]
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"sent": 0, "failed": 0, "by_kind": {"patched": 0, "denied": 0, "malformed": 0}}
    window_failures = [0]
    first_errors: list[str] = []

    def check(kind: str, status: int, body: bytes) -> bool:
        if kind == "malformed":
            return status == 400
        if status != 200:
            return False
        response = json.loads(body)["response"]
        return response["allowed"] is (kind == "patched") and (kind != "patched" or bool(response.get("patch")))

    def worker(n: int) -> None:
        interval = WORKERS / RATE
        conn = None
        next_at = time.monotonic() + n * interval / WORKERS
        i = n
        while not stop.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += interval
            body, kind = bodies[i % len(bodies)]
            i += 1
            ok = False
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
                conn.request("POST", "/mutate", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                ok = check(kind, response.status, response.read())
                if not ok and len(first_errors) < 5:
                    first_errors.append(f"{kind}: HTTP {response.status}")
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                if conn is not None:
                    conn.close()
                conn = None
                if len(first_errors) < 5:
                    first_errors.append(f"{kind}: {type(e).__name__}: {e}")
            with lock:
                counts["sent"] += 1
                counts["by_kind"][kind] += 1
                if not ok:
                    counts["failed"] += 1
                    window_failures[0] += 1

    def served_fingerprint() -> str:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True) or b""
        return der.hex()[-64:]

    def fingerprint_of(pem_file: pathlib.Path) -> str:
        der = ssl.PEM_cert_to_DER_cert(pem_file.read_text())
        return der.hex()[-64:]

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(WORKERS)]
    for t in threads:
        t.start()
    rss_start = proc_status(pid, "VmRSS")
    fds_start = fds(pid)
    rss_samples = []
    windows = []
    # Pairs in turn after the first (a): bad, b, bad, a, ...
    schedule = ["bad", "b", "bad", "a"]
    started = time.monotonic()
    swap_at = started + SWAP
    current = "a"
    k = 0
    while time.monotonic() - started < SECONDS:
        time.sleep(1)
        rss_samples.append((round(time.monotonic() - started), proc_status(pid, "VmRSS")))
        if time.monotonic() >= swap_at:
            pair = schedule[k % len(schedule)]
            k += 1
            with lock:
                failures, window_failures[0] = window_failures[0], 0
            windows.append({"pair": current, "failed": failures})
            if pair == "bad":
                other = "b" if current == "a" else "a"
                volume.publish(work / f"{current}.crt", work / f"{other}.key")
                expect = fingerprint_of(work / f"{current}.crt")
            else:
                volume.publish(work / f"{pair}.crt", work / f"{pair}.key")
                expect = fingerprint_of(work / f"{pair}.crt")
                current = pair
            seen = False
            probe_note = ""
            # The webhook checks its files every 5 s (tls::DEFAULT_RELOAD_INTERVAL).
            swapped = time.monotonic()
            deadline = swapped + 7
            while time.monotonic() < deadline:
                try:
                    got = served_fingerprint()
                    if got == expect:
                        seen = True
                        windows[-1]["served_after_ms"] = round((time.monotonic() - swapped) * 1000)
                        break
                    probe_note = f"served {got[:16]}, expected {expect[:16]}"
                except OSError as e:
                    probe_note = f"{type(e).__name__}: {e}"
                time.sleep(0.1)
            windows[-1]["next_seen"] = seen
            if not seen:
                windows[-1]["probe"] = probe_note
            windows[-1]["next"] = pair
            swap_at += SWAP
    stop.set()
    for t in threads:
        t.join(timeout=10)
    with lock:
        windows.append({"pair": current, "failed": window_failures[0]})
    warm = next((r for t, r in rss_samples if t >= 20), rss_samples[0][1] if rss_samples else 0)
    return {
        "seconds": SECONDS,
        "rate": RATE,
        "sent": counts["sent"],
        "achieved_rate": round(counts["sent"] / SECONDS),
        "by_kind": counts["by_kind"],
        "failed": counts["failed"],
        "first_errors": first_errors,
        "swaps": len(windows) - 1,
        "good_swap_served_after_ms_max": max((w.get("served_after_ms", -1) for w in windows if w.get("next") not in (None, "bad")), default=None),
        "rss_kib": {"start": rss_start, "after_20s": warm, "end": rss_samples[-1][1] if rss_samples else 0,
                    "peak": max((r for _, r in rss_samples), default=0), "hwm": proc_status(pid, "VmHWM")},
        "fds": {"start": fds_start, "end": fds(pid)},
        "windows": windows,
    }


if __name__ == "__main__":
    main()
