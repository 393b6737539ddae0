#!/usr/bin/env python3
"""Webhook benchmark driver for scripts/bench (issues 6 and 14).

For ROUNDS rounds, for each implementation in turn (ours, peer A, peer B, ours, ...):
start it fresh on loopback HTTPS (the same certificate for all), send each review once and
check the answer is an allowed patch, and record what the patch does to the pod
(bench_patch.py: containers wrapped, init containers and volumes added), wait, read RSS
(idle), then for each review:
  - max throughput: wrk -t1 -cCONNS -dDURs (keep-alive, HTTPS); CPU seconds of the
    server over the run from /proc/PID/stat (utime+stime) -> CPU s per 10k reviews; RSS
    sampled every 0.2 s (peak) and VmHWM;
  - fixed rates, each of RATES: oha -q RATE -z DURs --latency-correction (open-loop
    pacing: latency is counted from when each request was due, so a stall is not hidden)
    -> p50/p99 and the rate achieved (below the rate: the server is saturated).
Stops the server, next implementation. Writes every sample to OUT (JSON).

Usage: bench_webhooks.py IMPLS_JSON OUT
IMPLS_JSON: [{"name", "argv": [...], "env": {...}, "url": "https://127.0.0.1:PORT/path",
              "ready": "URL that answers 200 when ready", "reviews": {"name": "file.json"},
              "ref_pattern": "regex an env value matches when it is a reference"}]
Env: ROUNDS (3), DURATION (10), RATES (500,2000), CONNS (16), OHA (path), WRK (path)
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import resource
import ssl

import bench_patch

ROUNDS = int(os.environ.get("ROUNDS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
RATES = [int(r) for r in os.environ.get("RATES", os.environ.get("RATE", "500,2000")).split(",")]
CONNS = int(os.environ.get("CONNS", "16"))
OHA = os.environ.get("OHA", "oha")
WRK = os.environ.get("WRK", "wrk")
TICK = os.sysconf("SC_CLK_TCK")
INSECURE = ssl.create_default_context()
INSECURE.check_hostname = False
INSECURE.verify_mode = ssl.CERT_NONE


def log(msg):
    print(f"bench-webhooks: {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def busy_seconds():
    """CPU seconds all processes spent busy (every core), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK  # all but idle and iowait


def children_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def post(url, body):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, context=INSECURE, timeout=10) as r:
        return json.load(r)


def wait_ready(url, proc, log_path):
    for _ in range(300):
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, context=INSECURE, timeout=1) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    sys.exit(f"bench-webhooks: ERROR: the server did not become ready ({url}); its log:\n" + open(log_path).read())


def wrk_lua(body):
    return ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            "wrk.body = " + json.dumps(body.decode()) + "\n")


def parse_wrk(text):
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    requests = int(m.group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    return {"requests": requests, "rps": rps, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sock.group(1) if sock else ""}


def run_sampling(cmd, pid):
    """Runs cmd to completion, sampling the server's RSS; returns (stdout, peak_rss_kb)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while p.poll() is None:
        peak = max(peak, status_kb(pid, "VmRSS"))
        time.sleep(0.2)
    out, err = p.communicate()
    if p.returncode != 0:
        sys.exit(f"bench-webhooks: ERROR: {' '.join(cmd)} failed ({p.returncode}):\n{out}\n{err}")
    return out, peak


def bench_impl(impl, round_no, work, patches):
    log_path = os.path.join(work, f"{impl['name']}.log")
    env = {**os.environ, **impl.get("env", {})}
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(impl["argv"], env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    samples = []
    try:
        wait_ready(impl["ready"], proc, log_path)
        pid = proc.pid
        bodies = {}
        for review, path in impl["reviews"].items():
            with open(path, "rb") as f:
                bodies[review] = json.dumps(json.load(f), separators=(",", ":")).encode()
            answer = post(impl["url"], bodies[review])["response"]
            if not (answer.get("allowed") and answer.get("patch")):
                sys.exit(f"bench-webhooks: ERROR: {impl['name']} did not answer {review} with an allowed patch: {answer}")
            summary = bench_patch.summarize(json.load(open(path)), answer, impl["ref_pattern"])
            patches.setdefault(impl["name"], {})[review] = summary
            log(f"{impl['name']} {review}: {bench_patch.describe(summary)}")
        time.sleep(2)
        idle_kb = status_kb(pid, "VmRSS")
        for review, body in bodies.items():
            lua = os.path.join(work, "post.lua")
            with open(lua, "w") as f:
                f.write(wrk_lua(body))
            cpu0, busy0, kids0, t0 = cpu_seconds(pid), busy_seconds(), children_seconds(), time.monotonic()
            out, peak_wrk = run_sampling([WRK, "-t1", f"-c{CONNS}", f"-d{DURATION}s", "--timeout", "60s", "--latency",
                                          "-s", lua, impl["url"]], pid)
            cpu1, busy1, kids1, t1 = cpu_seconds(pid), busy_seconds(), children_seconds(), time.monotonic()
            # CPU that neither the server nor the load generator used: other engineers' builds.
            foreign_max = max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (kids1 - kids0)) / (t1 - t0) / os.cpu_count() * 100
            w = parse_wrk(out)
            if w["non_2xx"] or w["socket_errors"]:
                sys.exit(f"bench-webhooks: ERROR: wrk against {impl['name']} {review}: {out}")
            body_path = os.path.join(work, "body.json")
            with open(body_path, "wb") as f:
                f.write(body)
            fixed, peak_oha = {}, 0
            for rate in RATES:
                cpu2 = cpu_seconds(pid)
                out, peak = run_sampling([OHA, "--no-tui", "--output-format", "json", "--insecure", "-m", "POST",
                                          "-H", "Content-Type: application/json", "-D", body_path,
                                          "-q", str(rate), "--latency-correction", "-c", str(CONNS),
                                          "-z", f"{DURATION}s", impl["url"]], pid)
                cpu3 = cpu_seconds(pid)
                peak_oha = max(peak_oha, peak)
                o = json.loads(out)
                codes = o.get("statusCodeDistribution", {})
                # oha cancels the requests still in flight when -z ends: not the server's fault.
                errors = {k: v for k, v in (o.get("errorDistribution") or {}).items() if k != "aborted due to deadline"}
                if set(codes) - {"200"} or errors:
                    sys.exit(f"bench-webhooks: ERROR: oha against {impl['name']} {review} at {rate}/s: {codes} {errors}")
                fixed_n = sum(codes.values())
                fixed[str(rate)] = {
                    "achieved_rps": o["summary"]["requestsPerSec"],
                    "p50_ms": o["latencyPercentiles"]["p50"] * 1000,
                    "p99_ms": o["latencyPercentiles"]["p99"] * 1000,
                    "cpu_s_per_10k": (cpu3 - cpu2) / max(fixed_n, 1) * 10000,
                }
            s = {
                "impl": impl["name"], "review": review, "round": round_no,
                "max_rps": w["rps"], "max_requests": w["requests"],
                "cpu_s_per_10k_at_max": (cpu1 - cpu0) / w["requests"] * 10000,
                "fixed": fixed,
                "foreign_cpu_pct_at_max": foreign_max,
                "rss_idle_kb": idle_kb, "rss_peak_kb": max(peak_wrk, peak_oha),
                "vm_hwm_kb": status_kb(pid, "VmHWM"),
            }
            at = ", ".join(f"p50/p99 {f['p50_ms']:.2f}/{f['p99_ms']:.2f} ms at {r}/s ({f['achieved_rps']:.0f}/s achieved)"
                           for r, f in fixed.items())
            log(f"round {round_no} {impl['name']} {review}: {s['max_rps']:.0f}/s max, {at}, {s['cpu_s_per_10k_at_max']:.2f} CPU s/10k, "
                f"RSS {idle_kb // 1024}->{s['rss_peak_kb'] // 1024} MiB; other processes used {foreign_max:.0f}% of the cores meanwhile")
            samples.append(s)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return samples


def main():
    impls = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    samples, patches = [], {}
    with tempfile.TemporaryDirectory(prefix="akv-bench-webhooks-") as work:
        for r in range(1, ROUNDS + 1):
            for impl in impls:
                samples += bench_impl(impl, r, work, patches)
    with open(out, "w") as f:
        json.dump({"rounds": ROUNDS, "duration_s": DURATION, "rates": RATES, "connections": CONNS,
                   "impls": [i["name"] for i in impls], "patches": patches, "samples": samples}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
