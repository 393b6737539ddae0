#!/usr/bin/env python3
"""Renders target/bench/*.json (written by scripts/bench) as markdown on stdout."""
import json
import os
import statistics
import sys

out = sys.argv[1]
load = lambda n: json.load(open(os.path.join(out, n)))
peers = load("peers.json")
web = load("webhooks.json")
inpod = load("inpod.json")
sizes = load("sizes.json")
machine = load("machine.json")
med = statistics.median
given = {p["var"] for p in peers}


def peer_cell(var):
    return "given, no runner yet" if var in given else "not given¹"


print(f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['mem_gib']} GiB, Linux {machine['kernel']}; "
      f"{machine['rustc']}; {machine['wrk']}. Load average (1/5/15 min) before the webhook runs: "
      f"{machine['load_before_webhooks']}; before the in-pod runs: {machine['load_before_inpod']}.")
print()
print(f"### Webhooks — medians of {web['rounds']} rounds; {web['duration_s']} s per measurement, "
      f"{web['connections']} keep-alive HTTPS connections, load generator on the same 2 cores")
print()
print("| review | figure | akv-webhook (ours) | vault-secrets-webhook | akv2k8s azure-keyvault-secrets-webhook |")
print("| --- | --- | --- | --- | --- |")
vsw = peer_cell("PEER_VAULT_SECRETS_WEBHOOK")
akw = peer_cell("PEER_AKV2K8S_WEBHOOK")
reviews = []
for s in web["samples"]:
    if s["review"] not in reviews:
        reviews.append(s["review"])
for r in reviews:
    ss = [s for s in web["samples"] if s["review"] == r and s["impl"] == "akv-webhook"]
    f = lambda k: med([s[k] for s in ss])
    rng = lambda k, fmt: f"{fmt.format(f(k))} ({fmt.format(min(s[k] for s in ss))}–{fmt.format(max(s[k] for s in ss))})"
    rows = [
        ("max throughput (wrk), reviews/s", rng("max_rps", "{:.0f}")),
        (f"p50 latency at {web['rate']}/s (oha, corrected)", rng("fixed_p50_ms", "{:.2f}") + " ms"),
        (f"p99 latency at {web['rate']}/s (oha, corrected)", rng("fixed_p99_ms", "{:.2f}") + " ms"),
        ("CPU s per 10k reviews (at max / at fixed rate)", f"{f('cpu_s_per_10k_at_max'):.2f} / {f('cpu_s_per_10k_at_fixed'):.2f}"),
        ("RSS idle / peak under load", f"{f('rss_idle_kb') / 1024:.1f} / {f('rss_peak_kb') / 1024:.1f} MiB"),
    ]
    for i, (fig, val) in enumerate(rows):
        print(f"| {r if i == 0 else ''} | {fig} | {val} | {vsw} | {akw} |")
print()
fo = [x["foreign_cpu_pct_at_max"] for x in web["samples"] if "foreign_cpu_pct_at_max" in x]
print("Ranges in parentheses are min–max over the rounds." + (
    f" CPU used by other processes (other engineers' builds) during the max-throughput runs: median {med(fo):.0f}%, "
    f"max {max(fo):.0f}% of the machine." if fo else ""))
print()
print(f"### In-pod binary — {inpod['delay_ms']} ms added to every request (TCP proxy in front of the token endpoint "
      f"and the vault), {inpod['runs']} runs per row, medians")
print()
venv = peer_cell("PEER_VAULT_ENV")
akenv = peer_cell("PEER_AKV2K8S_ENV")
names = []
for r in inpod["results"]:
    if r["impl"] not in names:
        names.append(r["impl"])
by = {(r["impl"], r["secrets"]): r for r in inpod["results"]}
counts = sorted({r["secrets"] for r in inpod["results"]})
base = inpod["baseline_date_ms"]
print("| figure | " + " | ".join(f"{n} (ours)" for n in names) + " | vault-env | akv2k8s azure-keyvault-env |")
print("| --- | " + " | ".join("---" for _ in names) + " | --- | --- |")
row = lambda fig, cells: print(f"| {fig} | " + " | ".join(cells) + f" | {venv} | {akenv} |")
row("size, stripped", [f"{sizes[n]['stripped_bytes'] / 1048576:.2f} MiB ({sizes[n]['stripped_bytes']} B)" for n in names])
pl = lambda n: f"{n} secret{'s' if n > 1 else ''}"
for n in counts:
    row(f"{pl(n)}: startup overhead (spawn → app start, minus /bin/date alone)",
        [f"{by[(i, n)]['overhead_ms']:.1f} ms (min {by[(i, n)]['spawn_to_app_ms']['min'] - base:.1f}, max {by[(i, n)]['spawn_to_app_ms']['max'] - base:.1f})" for i in names])
for n in counts:
    row(f"{pl(n)}: peak RSS", [f"{by[(i, n)]['peak_rss_kb'] / 1024:.1f} MiB" for i in names])
for n in counts:
    row(f"{pl(n)}: requests (token / Key Vault) and TLS connections (token / Key Vault) per start",
        [f"{by[(i, n)]['token_requests_per_start']:.0f} / {by[(i, n)]['keyvault_requests_per_start']:.0f} req; "
         f"{by[(i, n)]['token_connections_per_start']:.0f} / {by[(i, n)]['keyvault_connections_per_start']:.1f} conn" for i in names])
fl = inpod["floor_ms"]["median"]
print(f"| floor: one token + one Key Vault request, each on a new TLS connection, through the same proxy | {fl:.1f} ms |" + " |" * (len(names) + 1))
if 50 in counts:
    print("| 50 secrets ÷ floor (target ≤ 1.3) | " + " | ".join(f"{by[(i, 50)]['overhead_ms'] / fl:.2f}" for i in names) + " | | |")
print()
for n in names:
    print(f"- {n}: `{sizes[n]['file']}`")
print(f"- akv-webhook: {sizes['akv-webhook']['stripped_bytes'] / 1048576:.1f} MiB stripped (glibc build, as `cargo build --profile dist`).")
print()
print("¹ Peers are taken by path (PEER_VAULT_SECRETS_WEBHOOK, PEER_SECRET_INIT, PEER_VAULT_ENV,")
print("PEER_AKV2K8S_WEBHOOK, PEER_AKV2K8S_ENV), built outside this repository; given in this run:")
print()
for p in peers:
    print(f"- {p['var']}: `{p['binary']}` ({p['bytes']} bytes)")
if not peers:
    print("- none")
print()
print("### Registry lookup")
print()
print(open(os.path.join(out, "registry.md")).read().strip())
for name in ("standalone-webhook.md", "standalone-akv-env.txt"):
    path = os.path.join(out, name)
    if os.path.exists(path):
        print()
        print(f"### Standalone: {name}")
        print()
        text = open(path).read().strip()
        print(text if name.endswith(".md") else "```\n" + text + "\n```")
