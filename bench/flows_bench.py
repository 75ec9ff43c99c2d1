"""What `netguard audit --flows` costs on a large Hubble export: time and peak memory, at two export sizes (memory
must not grow with the export: it is streamed), against the least any reader of the export must do (read each
line and json.loads it) in the same run.

    .venv/bin/python bench/flows_bench.py                 # 200,000 and 1,000,000 flows (about 0.15 and 0.75 GB)
    .venv/bin/python bench/flows_bench.py --lines 100000 300000 --gzip

The export is generated (tests/flowgen.py's fields): 20 namespaces x 10 workloads talking to each other, to
kube-dns and to random internet addresses under --names distinct names, a share of it dropped; the policies
are one NetworkPolicy and one CiliumNetworkPolicy per workload. Each measurement runs in a fresh process; peak
memory is that process's maximum resident set size (getrusage).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.flowgen import WORLD, endpoint, flow  # noqa: E402

NAMESPACES = [f"team-{i:02d}" for i in range(20)]
APPS = [f"app-{i}" for i in range(10)]
BASELINE = """
import json, sys, resource
n = 0
with open(sys.argv[1], "rb") as raw:
    import gzip
    stream = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == b"\\x1f\\x8b" else raw
    for line in stream:
        json.loads(line)
        n += 1
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def policies() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for ns in NAMESPACES:
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for i, app in enumerate(APPS):
            peer = APPS[(i + 1) % len(APPS)]
            out.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": f"{app}-in", "namespace": ns},
                        "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
                                 "ingress": [{"from": [{"namespaceSelector": {}}],
                                              "ports": [{"protocol": "TCP", "port": 8080}]}]}})
            out.append({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                        "metadata": {"name": f"{app}-out", "namespace": ns},
                        "spec": {"endpointSelector": {"matchLabels": {"app": app}},
                                 "egress": [{"toEndpoints": [{"matchLabels": {"app": peer}}],
                                             "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]},
                                            {"toEntities": ["world"],
                                             "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
                                            {"toCIDR": ["192.0.2.0/24"]}]}})
    return out


def write_export(path: Path, count: int, compress: bool, names: int = 50_000) -> int:
    rng = random.Random(15)
    dns = endpoint("kube-system", "coredns-1", 3000, **{"k8s-app": "kube-dns"})
    opener = gzip.open if compress else open
    with opener(path, "wb") as out:  # type: ignore[operator]
        for n in range(count):
            ns, app = rng.choice(NAMESPACES), rng.randrange(len(APPS))
            src = endpoint(ns, f"{APPS[app]}-{n % 3}", 1000 + app, app=APPS[app])
            when = f"2026-11-30T{10 + n * 8 // count:02d}:{n % 60:02d}:{(n // 60) % 60:02d}Z"
            kind = rng.random()
            if kind < 0.5:
                dst = endpoint(ns, "p", 1000, app=APPS[(app + 1) % len(APPS)])
                record = flow(time=when, source=src, destination=dst, dst="10.0.1.9", port=8080)
            elif kind < 0.8:
                ip = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                record = flow(time=when, source=src, destination=WORLD, dst=ip, port=443,
                              names=[f"svc{rng.randrange(names)}.example.com"])
            elif kind < 0.95:
                record = flow(time=when, source=src, destination=dns, dst="10.96.0.10", protocol="UDP", port=53,
                              verdict="DROPPED", drop_reason="POLICY_DENIED")
            else:
                record = flow(time=when, source=src, destination=WORLD, dst="198.51.100.7", port=22,
                              verdict="DROPPED", drop_reason="POLICY_DENIED")
            out.write(json.dumps(record).encode() + b"\n")
    return path.stat().st_size


def measure(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return took, done.stdout


def peak_of(argv: list[str]) -> tuple[float, int, str]:
    """Wall time, peak RSS in KiB of the child, and its output (via GNU time-like getrusage of children)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    took, out = measure(argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return took, max(after, before), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--gzip", action="store_true", help="write the exports gzip-compressed")
    parser.add_argument("--names", type=int, default=50_000,
                        help="distinct internet names (default 50,000: nearly every internet flow a new shape, the "
                             "worst case; real traffic repeats a few hundred)")
    args = parser.parse_args()
    python = sys.executable
    netguard = [python, "-m", "webhook.cli"] if not (Path(python).parent / "netguard").exists() else [
        str(Path(python).parent / "netguard")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="netguard-flows-bench-") as tmp:
        folder = Path(tmp) / "policies"
        folder.mkdir()
        (folder / "all.yaml").write_text(yaml.safe_dump_all(policies()), encoding="utf-8")
        for count in args.lines:
            export = Path(tmp) / f"flows-{count}.jsonl{'.gz' if args.gzip else ''}"
            size = write_export(export, count, args.gzip, args.names)
            # Each measurement in its own child; RUSAGE_CHILDREN's maxrss is the largest child so far, so the runs
            # go from the smallest to the largest and the baseline is read from its own output.
            took_base, out = measure([python, "-c", BASELINE, str(export)])
            base_rss = int(out.split()[1])
            took, out = measure(["/usr/bin/env", "python3", "-c",
                                 "import resource,subprocess,sys;"
                                 "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL);"
                                 "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
                                 *netguard, "audit", "--from", str(folder), "--flows", str(export),
                                 "--format", "json", "--jobs", "1", "--no-workloads", "-q"])
            code, rss = out.split()
            if code != "0":
                raise SystemExit(f"netguard audit exited {code}")
            rows.append((count, size, took_base, base_rss, took, int(rss)))
            os.unlink(export)
    print(f"{'flows':>10} {'export MB':>10} {'baseline s':>11} {'baseline MB':>12} {'netguard s':>11} "
          f"{'netguard MB':>12} {'flows/s':>9} {'x baseline':>10}")
    for count, size, tb, rb, t, r in rows:
        print(f"{count:>10,} {size / 1e6:>10.1f} {tb:>11.1f} {rb / 1024:>12.0f} {t:>11.1f} {r / 1024:>12.0f} "
              f"{count / t:>9,.0f} {t / tb:>10.1f}")
    print("netguard s/MB: the whole `netguard audit --from <400 policies> --flows <export>` process (start-up, "
          "policy reviews, matching, report); baseline: read + json.loads of every line, nothing else.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
