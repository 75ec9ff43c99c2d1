"""Per-request work on large policies: normalize + facts (no engine), the cost admission pays before Rego.

    .venv/bin/python bench/work_bench.py            # the three shapes of issue "The gate stays up"
    .venv/bin/python bench/work_bench.py --review   # plus a whole Pipeline.review (the engine included)

Not a timed test: figures depend on the machine; compare before/after on the same one.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from webhook.core.facts import FactParams, enrich
from webhook.core.normalize import normalize

try:  # absent before webhook/core/limits.py: the script also measures the code it replaced
    from webhook.core.limits import Limits, check_limits
except ImportError:  # pragma: no cover
    Limits = check_limits = None  # type: ignore[assignment,misc]


def many_excepts(n: int = 8000) -> dict[str, Any]:
    # every other /32 of 10.0.0.0/8: no two excepts merge, so the coverage has n + 1 pieces
    excepts = [f"10.{2 * i // 65536 % 256}.{2 * i // 256 % 256}.{2 * i % 256}/32" for i in range(n)]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "excepts", "namespace": "bench"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": excepts}}]}]}}


def many_rules(n: int = 300_000) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "rules", "namespace": "bench"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{} for _ in range(n)]}}


def cilium_cidrs(specs: int = 10, rules: int = 10, cidrs: int = 100) -> dict[str, Any]:
    def rule(s: int, r: int) -> dict[str, Any]:
        base = (s * rules + r) * cidrs
        return {"toCIDR": [f"{1 + (base + c) // 65536 % 200}.{(base + c) // 256 % 256}.{(base + c) % 256}.0/24"
                           for c in range(cidrs)],
                "toPorts": [{"ports": [{"port": str(1000 + r), "protocol": "TCP"}]}]}

    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "cidrs", "namespace": "bench"},
            "specs": [{"endpointSelector": {"matchLabels": {"app": f"a{s}"} if s % 2 else {}},
                       "egress": [rule(s, r) for r in range(rules)]} for s in range(specs)]}


def many_requirements(specs: int = 32, requirements: int = 64) -> dict[str, Any]:
    """Spec entries whose selectors can all select one pod: the worst case of the subject group search."""
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "groups", "namespace": "bench"},
            "specs": [{"endpointSelector": {"matchLabels": {f"k{s}-{r}": "v" for r in range(requirements)}},
                       "egress": [{"toEntities": ["world"], "toPorts": [{"ports": [{"port": "443"}]}]}]}
                      for s in range(specs)]}


def timed(label: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    out = fn()
    print(f"  {label:<10} {time.perf_counter() - start:8.3f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--review", action="store_true", help="also time Pipeline.review (regorus, in-process)")
    args = parser.parse_args()
    cases = {"NetworkPolicy, 8,000 ipBlock.except": many_excepts(),
             "NetworkPolicy, 300,000 {} egress rules": many_rules(),
             "CiliumNetworkPolicy, 10 specs x 10 rules x 100 toCIDR": cilium_cidrs(),
             "CiliumNetworkPolicy, 32 specs x 64 selector requirements": many_requirements()}
    pipeline = None
    if args.review:
        from webhook.core.settings import Settings
        from webhook.pipeline import build_pipeline
        pipeline = build_pipeline(Settings())
    for label, obj in cases.items():
        print(label)
        if check_limits is not None:
            over = timed("limits", lambda o=obj: check_limits(o, Limits()))
            print(f"  {'':<10} {'over ' + over.limit if over else 'within the default limits'}")
        policy = timed("normalize", lambda o=obj: normalize(o))
        timed("facts", lambda p=policy: enrich(p, FactParams()))
        if pipeline is not None:
            from webhook.core.admission import parse_review
            from webhook.core.reviews import make_review
            request = parse_review(make_review(obj, username="bench", groups=("system:authenticated",),
                                               namespace="bench"))
            decision = timed("review", lambda r=request: pipeline.review(r).decision)
            print(f"  verdict    {decision.verdict.value} {[f.finding.rule for f in decision.findings][:3]}")


if __name__ == "__main__":
    main()
