#!/usr/bin/env python3
"""Renders target/bench/*.json (written by scripts/bench) as markdown on stdout.

Every peer column is filled or says why not: the peer was not given (its PEER_* variable),
or it cannot do that row (the reason bench-inpod.mjs gives, as a footnote).
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_patch  # noqa: E402

out = sys.argv[1]
load = lambda n: json.load(open(os.path.join(out, n)))  # noqa: E731
peers = load("peers.json")
web = load("webhooks.json")
inpod = load("inpod.json")
sizes = load("sizes.json")
machine = load("machine.json")
med = statistics.median
given = {p["var"] for p in peers}
mib = lambda b: f"{b / 1048576:.2f} MiB"  # noqa: E731

WEBHOOKS = [("akv-webhook", None), ("vault-secrets-webhook", "PEER_VAULT_SECRETS_WEBHOOK"),
            ("akv2k8s-webhook", "PEER_AKV2K8S_WEBHOOK")]
INPOD = [("akv-env (musl, shipped)", None), ("akv-env (glibc)", None), ("secret-init", "PEER_SECRET_INIT"),
         ("vault-env", "PEER_VAULT_ENV"), ("azure-keyvault-env", "PEER_AKV2K8S_ENV")]


def not_given(var):
    return f"not given ({var})"


print(f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['mem_gib']} GiB, Linux {machine['kernel']}; "
      f"{machine['rustc']}; {machine['wrk']}. Load average (1/5/15 min) before the webhook runs: "
      f"{machine['load_before_webhooks']}; before the in-pod runs: {machine['load_before_inpod']}.")
print()

# ---- webhooks ------------------------------------------------------------------------------
print(f"### Webhooks — medians of {web['rounds']} rounds, alternating; {web['duration_s']} s per measurement, "
      f"{web['connections']} keep-alive HTTPS connections, load generator on the same 2 cores as every server")
print()
print("| review | figure | " + " | ".join(n + (" (ours)" if v is None else "") for n, v in WEBHOOKS) + " |")
print("| --- | --- | " + " | ".join("---" for _ in WEBHOOKS) + " |")
reviews = []
for s in web["samples"]:
    if s["review"] not in reviews:
        reviews.append(s["review"])


def cells(review, fn):
    row = []
    for name, var in WEBHOOKS:
        ss = [s for s in web["samples"] if s["review"] == review and s["impl"] == name]
        row.append(fn(ss) if ss else not_given(var))
    return row


def spread(ss, get, fmt):
    vals = [get(s) for s in ss]
    return f"{fmt.format(med(vals))} ({fmt.format(min(vals))}–{fmt.format(max(vals))})"


def at_rate(rate):
    def cell(ss):
        fs = [s["fixed"][str(rate)] for s in ss]
        text = (f"{med(f['p50_ms'] for f in fs):.2f} / {med(f['p99_ms'] for f in fs):.2f} ms "
                f"(p99 {min(f['p99_ms'] for f in fs):.2f}–{max(f['p99_ms'] for f in fs):.2f})")
        achieved = med(f["achieved_rps"] for f in fs)
        if achieved < 0.95 * rate:
            text += f"; **saturated: {achieved:.0f}/s achieved**"
        return text
    return cell


for r in reviews:
    rows = [
        ("what the patch does (applied to the pod)",
         [bench_patch.describe(web["patches"][n][r]) if n in web["patches"] else not_given(v) for n, v in WEBHOOKS]),
        ("max throughput (wrk), reviews/s", cells(r, lambda ss: spread(ss, lambda s: s["max_rps"], "{:.0f}"))),
    ]
    for rate in web["rates"]:
        rows.append((f"p50 / p99 at {rate}/s (oha, open loop, corrected)", cells(r, at_rate(rate))))
    rows.append(("CPU s per 10k reviews: at max / " + " / ".join(f"at {x}/s" for x in web["rates"]),
                 cells(r, lambda ss: " / ".join([f"{med(s['cpu_s_per_10k_at_max'] for s in ss):.2f}"] +
                                                [f"{med(s['fixed'][str(x)]['cpu_s_per_10k'] for s in ss):.2f}" for x in web["rates"]]))))
    rows.append(("RSS idle / peak under load",
                 cells(r, lambda ss: f"{med(s['rss_idle_kb'] for s in ss) / 1024:.1f} / {med(s['rss_peak_kb'] for s in ss) / 1024:.1f} MiB")))
    for i, (fig, vals) in enumerate(rows):
        print(f"| {r if i == 0 else ''} | {fig} | " + " | ".join(vals) + " |")
print("| all | binary size, stripped (unstripped) | " + " | ".join(
    f"{mib(sizes[n]['stripped_bytes'])} ({mib(sizes[n]['bytes'])})" if n in sizes else not_given(v) for n, v in WEBHOOKS) + " |")
print()
for r in reviews:
    ours = [s["max_rps"] for s in web["samples"] if s["review"] == r and s["impl"] == "akv-webhook"]
    others = {n: med(s["max_rps"] for s in web["samples"] if s["review"] == r and s["impl"] == n)
              for n, _ in WEBHOOKS[1:] if any(s["impl"] == n for s in web["samples"])}
    if others:
        best = max(others, key=others.get)
        print(f"- {r}: ours ÷ best peer ({best}) max throughput = **{med(ours) / others[best]:.1f}×**")
fo = [x["foreign_cpu_pct_at_max"] for x in web["samples"] if "foreign_cpu_pct_at_max" in x]
print()
print("Ranges in parentheses are min–max over the rounds." + (
    f" CPU used by processes other than the server and the load generator during the max-throughput runs: "
    f"median {med(fo):.0f}%, max {max(fo):.0f}% of the machine." if fo else ""))
print()

# ---- in-pod ----------------------------------------------------------------------------------
impls = {i["name"]: i for i in inpod["impls"]}
cols = [(n, v) for n, v in INPOD if n in impls or v]
by = {(r["impl"], r["secrets"]): r for r in inpod["results"]}
base = inpod["baseline_date_ms"]
notes = []


def reason_mark(name):
    text = impls[name]["reason"]
    if text not in notes:
        notes.append(text)
    return f"cannot reach the backend ({notes.index(text) + 1})"


def icell(name, var, n, fn):
    if name not in impls:
        return not_given(var)
    r = by.get((name, n))
    return fn(r) if r else reason_mark(name)


print(f"### In-pod binaries — {inpod['delay_ms']} ms added to every round trip (TCP proxy in front of the token "
      f"endpoint, the vault and Entra ID's discovery host), {inpod['runs']} runs per row, alternating, medians")
print()
print("| figure | " + " | ".join(n + (" (ours)" if v is None else "") for n, v in cols) + " |")
print("| --- | " + " | ".join("---" for _ in cols) + " |")
row = lambda fig, vals: print(f"| {fig} | " + " | ".join(vals) + " |")  # noqa: E731
row("size, stripped (unstripped)", [f"{mib(sizes[n]['stripped_bytes'])} ({mib(sizes[n]['bytes'])})" if n in sizes else not_given(v) for n, v in cols])
pl = lambda n: f"{n} secret{'' if n == 1 else 's'}"  # noqa: E731
for n in inpod["counts"]:
    row(f"{pl(n)}: start (spawn → app start, minus /bin/date alone)",
        [icell(c, v, n, lambda r: f"{r['overhead_ms']:.1f} ms ({r['spawn_to_app_ms']['min'] - base:.1f}–{r['spawn_to_app_ms']['max'] - base:.1f})") for c, v in cols])
for n in inpod["counts"]:
    row(f"{pl(n)}: peak RSS", [icell(c, v, n, lambda r: f"{r['peak_rss_kb'] / 1024:.1f} MiB") for c, v in cols])
for n in inpod["counts"]:
    if n == 0:
        continue
    row(f"{pl(n)}: requests per start (token / Key Vault / Entra discovery); TLS connections (token / vault)",
        [icell(c, v, n, lambda r: f"{r['token_requests_per_start']:.0f} / {r['keyvault_requests_per_start']:.0f} / "
                                  f"{r['discovery_requests_per_start']:.0f}; {r['token_connections_per_start']:.0f} / "
                                  f"{r['keyvault_connections_per_start']:.1f}") for c, v in cols])
res = inpod["resident"]
row("stays resident while the app runs", [
    not_given(v) if c not in res else (f"yes: parent of the app, {res[c]['rss_kb'] / 1024:.1f} MiB RSS" if res[c]["stays"] else "no (execve)")
    for c, v in cols])
fl = inpod["floor_ms"]["median"]
print(f"| floor: one token + one Key Vault request, each on a new TLS connection, through the same proxy | {fl:.1f} ms |" + " |" * (len(cols) - 1))
print()
for i, text in enumerate(notes, 1):
    print(f"({i}) {text}.")
print()
for n, _ in cols:
    if n in sizes:
        print(f"- {n}: `{sizes[n]['file']}`")
print()
print("Peers given in this run (built outside this repository):")
print()
for p in peers:
    print(f"- {p['var']}: `{p['binary']}` ({p['bytes']} B; {p.get('go', '?')}; module {p.get('path', '?')} {p.get('mod', '')})")
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
