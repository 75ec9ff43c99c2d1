"""Size limits, counted on the raw object: each limit, its message, the pipeline's denial (never on DELETE)
and the `limits:` configuration section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from webhook.config import from_mapping, load
from webhook.core.admission import parse_review
from webhook.core.decide import LIMITS
from webhook.core.limits import Limits, LimitViolation, check_limits, counts
from webhook.core.model import Mode, Verdict
from webhook.core.reviews import make_review
from webhook.core.settings import ConfigError
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]
SMALL = Limits(max_specs=2, max_rules=3, max_peers_per_rule=2, max_ports_per_rule=2, max_excepts_per_peer=2,
               max_selector_requirements=2, max_fqdn_patterns=2, max_cidrs=4)


def netpol(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "team-a"}, "spec": {"podSelector": {}, **spec}}


def cnp(spec: dict[str, Any] | None = None, specs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                           "metadata": {"name": "p", "namespace": "team-a"}}
    if spec is not None:
        obj["spec"] = {"endpointSelector": {}, **spec}
    if specs is not None:
        obj["specs"] = [{"endpointSelector": {}, **s} for s in specs]
    return obj


def calico(spec: dict[str, Any], kind: str = "NetworkPolicy") -> dict[str, Any]:
    metadata = {"name": "p", "namespace": "team-a"} if kind == "NetworkPolicy" else {"name": "p"}
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": metadata,
            "spec": {"selector": "all()", **spec}}


def nets(n: int) -> list[str]:
    return [f"10.{i}.0.0/16" for i in range(n)]


def block(n: int) -> dict[str, Any]:
    return {"ipBlock": {"cidr": "10.0.0.0/8", "except": [f"10.0.{i}.0/24" for i in range(n)]}}


def labels(n: int) -> dict[str, Any]:
    return {"matchLabels": {f"k{i}": "v" for i in range(n)}}


OVER = {
    "max_specs": (cnp(spec={}, specs=[{}, {}]), "specs", 3),
    "max_rules": (netpol({"ingress": [{}, {}], "egress": [{}, {}]}), "spec.ingress", 4),
    "max_peers_per_rule": (netpol({"egress": [{"to": [block(0)] * 3}]}), "spec.egress[0].to", 3),
    "max_ports_per_rule": (netpol({"egress": [{"ports": [{"port": 1}, {"port": 2}, {"port": 3}]}]}),
                           "spec.egress[0].ports", 3),
    "max_excepts_per_peer": (netpol({"egress": [{"to": [block(3)]}]}), "spec.egress[0].to[0].ipBlock.except", 3),
    "max_selector_requirements": (netpol({"egress": [{"to": [{"podSelector": labels(3)}]}]}),
                                  "spec.egress[0].to[0].podSelector", 3),
    "max_fqdn_patterns": (cnp({"egress": [{"toFQDNs": [{"matchName": f"h{i}.example.com"} for i in range(3)]}]}),
                          "spec.egress[0].toFQDNs", 3),
    "max_cidrs": (netpol({"egress": [{"to": [block(2), block(0)]}, {"to": [block(1)]}]}), "spec.egress[0]", 6),
}


# The same limits over Calico's rule language (projectcalico.org/v3: counted per side of a rule).
CALICO_OVER = {
    "max_rules": (calico({"ingress": [{"action": "Allow"}] * 2, "egress": [{"action": "Allow"}] * 2}),
                  "spec.ingress", 4),
    "max_peers_per_rule": (calico({"egress": [{"action": "Allow", "destination": {"nets": nets(3)}}]}),
                           "spec.egress[0].destination.nets", 3),
    "max_ports_per_rule": (calico({"ingress": [{"action": "Allow", "protocol": "TCP",
                                                "destination": {"ports": [80, 443], "notPorts": [8080]}}]}),
                           "spec.ingress[0].destination", 3),
    "max_excepts_per_peer": (calico({"egress": [{"action": "Allow", "destination": {"notNets": nets(3)}}]}),
                             "spec.egress[0].destination.notNets", 3),
    "max_fqdn_patterns": (calico({"egress": [{"action": "Allow",
                                              "destination": {"domains": [f"h{i}.example.com" for i in range(3)]}}]},
                                 "GlobalNetworkPolicy"), "spec.egress[0].destination.domains", 3),
    # two nets, each with the two notNets carved from it: 2 x (1 + 2)
    "max_cidrs": (calico({"egress": [{"action": "Allow", "destination": {"nets": nets(2), "notNets": nets(2)}}]}),
                  "spec.egress[0]", 6),
}


@pytest.mark.parametrize("limit", sorted(CALICO_OVER))
def test_each_limit_counts_calico_rules(limit: str) -> None:
    obj, path, count = CALICO_OVER[limit]
    violation = check_limits(obj, SMALL)
    assert violation is not None
    assert (violation.limit, violation.path, violation.count) == (limit, path, count)
    assert violation.problem.startswith(f"{count} ")


def test_calico_counts_service_account_names_with_nets_and_both_sides() -> None:
    side = {"nets": ["10.0.0.0/8"], "serviceAccounts": {"names": ["a", "b"]}}
    violation = check_limits(calico({"egress": [{"action": "Allow", "destination": side}]}), SMALL)
    assert violation is not None and violation.limit == "max_peers_per_rule"
    assert (violation.path, violation.count) == ("spec.egress[0].destination", 3)
    assert "nets 1, serviceAccounts.names 2" in violation.detail
    source = calico({"egress": [{"action": "Allow", "source": {"nets": nets(3)}}]})  # the other side counts too
    assert check_limits(source, SMALL).path == "spec.egress[0].source.nets"  # type: ignore[union-attr]
    assert check_limits(calico({"ingress": [{"action": "Allow", "source": {"nets": nets(2), "notNets": nets(1)},
                                             "destination": {"ports": [1, 2]}}]}), SMALL) is None


def test_calico_limits_bound_a_huge_policy_before_it_is_read() -> None:
    huge = calico({"egress": [{"action": "Allow", "destination": {"nets": nets(200) * 500}}]})
    violation = check_limits(huge, Limits())
    assert violation is not None
    assert (violation.limit, violation.path, violation.count) == (
        "max_peers_per_rule", "spec.egress[0].destination.nets", 100000)
    assert check_limits(calico({"egress": [{"action": "Allow"}] * 1001}), Limits()).limit == "max_rules"  # type: ignore[union-attr]


@pytest.mark.parametrize("limit", sorted(OVER))
def test_each_limit_names_itself_the_field_and_the_count(limit: str) -> None:
    obj, path, count = OVER[limit]
    violation = check_limits(obj, SMALL)
    assert violation == LimitViolation(limit, path, count, getattr(SMALL, limit), violation.detail if violation else "")
    assert f"limits.{limit} ({getattr(SMALL, limit)})" in violation.problem
    assert violation.problem.startswith(f"{count} ")
    assert f"limits.{limit}" in violation.fix


def test_every_limit_is_exercised() -> None:
    assert sorted(OVER) == sorted(Limits.names())


def test_at_the_limit_is_allowed() -> None:
    assert check_limits(netpol({"egress": [{"to": [block(2), {"podSelector": labels(2)}],
                                            "ports": [{"port": 1}, {"port": 2}]}, {}, {}]}), SMALL) is None
    assert check_limits(cnp(spec={}, specs=[{}]), SMALL) is None


def test_cilium_counts_every_peer_field_of_a_rule_together() -> None:
    rule = {"toCIDR": ["1.1.1.1/32"], "toEntities": ["world"], "toEndpoints": [{}]}
    violation = check_limits(cnp({"egress": [rule]}), SMALL)
    assert violation is not None and violation.limit == "max_peers_per_rule"
    assert (violation.path, violation.count) == ("spec.egress[0]", 3)
    assert "toCIDR 1" in violation.detail and "toEndpoints 1" in violation.detail


def test_cilium_counts_ports_and_selectors_where_they_are() -> None:
    ports = {"toPorts": [{"ports": [{"port": "80"}, {"port": "443"}]}, {}]}  # an entry without ports counts one
    assert check_limits(cnp({"egress": [ports]}), SMALL).limit == "max_ports_per_rule"  # type: ignore[union-attr]
    spec = {"egress": [{"toServices": [{"k8sServiceSelector": {"selector": labels(3)}}]}]}
    violation = check_limits(cnp(spec), SMALL)
    assert violation is not None
    assert violation.path == "spec.egress[0].toServices[0].k8sServiceSelector.selector"
    assert check_limits(cnp({"endpointSelector": labels(3)}), SMALL).path == "spec.endpointSelector"  # type: ignore[union-attr]


def test_rules_are_counted_over_every_spec_entry_and_the_largest_list_is_named() -> None:
    violation = check_limits(cnp(specs=[{"egress": [{}]}, {"ingress": [{}], "egressDeny": [{}, {}]}]), SMALL)
    assert violation is not None and violation.limit == "max_rules"
    assert (violation.path, violation.count) == ("specs[1].egressDeny", 4)
    assert "specs[1].egressDeny has 2" in violation.problem


def test_a_list_over_its_limit_is_never_walked() -> None:
    class Boom(dict):  # type: ignore[type-arg]
        def get(self, *args: Any) -> Any:
            raise AssertionError("walked into an oversized list")

    obj = netpol({"egress": [{"to": [Boom()] * 3}]})
    assert check_limits(obj, SMALL).limit == "max_peers_per_rule"  # type: ignore[union-attr]


def test_malformed_shapes_are_left_to_normalize() -> None:
    for obj in ({"kind": "NetworkPolicy", "spec": "x"}, {"kind": "NetworkPolicy", "spec": {"egress": "x"}},
                {"kind": "CiliumNetworkPolicy", "specs": [None, {"egress": [None, {"toPorts": [1], "toCIDR": 3}]}]},
                {"kind": "Deployment"}, {}):
        assert check_limits(obj, SMALL) is None
    assert all(c.count >= 0 for c in counts({"kind": "NetworkPolicy", "spec": {"egress": [{"to": [3]}]}}))


def test_the_defaults_admit_every_corpus_sized_policy() -> None:
    big_but_real = netpol({"egress": [{"to": [block(4)] * 638}] + [{}] * 18,
                           "ingress": [{"from": [{"podSelector": labels(4)}], "ports": [{"port": 1}] * 6}]})
    assert check_limits(big_but_real, Limits()) is None


# --- the pipeline ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return build_pipeline(from_mapping({"policies_dir": str(REPO / "policies"),
                                        "limits": {"max_rules": 3, "max_excepts_per_peer": 2}}))


def test_an_object_over_a_limit_is_denied_before_any_work(pipeline: Pipeline) -> None:
    obj = netpol({"policyTypes": ["Egress"], "egress": [{}] * 5})
    decision = pipeline.review(parse_review(make_review(obj))).decision
    assert decision.verdict is Verdict.DENIED
    (applied,) = decision.findings
    assert (applied.finding.rule, applied.finding.path, applied.mode) == (LIMITS, "spec.egress", Mode.ENFORCE)
    assert applied.finding.message.startswith("5 rules in the object")
    assert "limits.max_rules (3)" in applied.finding.message


def test_an_oversized_calico_policy_is_denied_naming_the_field(pipeline: Pipeline) -> None:
    obj = calico({"types": ["Egress"], "egress": [{"action": "Allow", "destination": {"notNets": nets(3)}}]},
                 "GlobalNetworkPolicy")
    decision = pipeline.review(parse_review(make_review(obj))).decision
    assert decision.verdict is Verdict.DENIED
    (applied,) = decision.findings
    assert (applied.finding.rule, applied.finding.path, applied.mode) == (
        LIMITS, "spec.egress[0].destination.notNets", Mode.ENFORCE)
    assert applied.finding.message.startswith("3 except entries in this peer")
    assert "limits.max_excepts_per_peer (2)" in applied.finding.message


def test_deleting_an_oversized_object_stays_possible(pipeline: Pipeline) -> None:
    obj = netpol({"egress": [{"to": [block(3)]}]})
    decision = pipeline.review(parse_review(make_review(None, old=obj, operation="DELETE"))).decision
    assert decision.allowed and decision.verdict is Verdict.ALLOWED
    assert "limits.max_excepts_per_peer" in decision.reason


def test_an_update_may_shrink_an_oversized_object(pipeline: Pipeline) -> None:
    old = netpol({"policyTypes": ["Egress"], "egress": [{}] * 5})
    new = netpol({"policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}]})
    decision = pipeline.review(parse_review(make_review(new, old=old, operation="UPDATE"))).decision
    assert not any(f.finding.rule == LIMITS for f in decision.findings)


# --- configuration -----------------------------------------------------------------------------


def test_limits_default_and_are_configured(tmp_path: Path) -> None:
    assert load(None, env={}).limits == Limits()
    path = tmp_path / "netguard.yaml"
    path.write_text("limits:\n  max_rules: 50\n  max_cidrs: 20\n")
    limits = load(str(path), env={}).limits
    assert (limits.max_rules, limits.max_cidrs, limits.max_specs) == (50, 20, Limits().max_specs)


@pytest.mark.parametrize(("text", "fragment"), [
    ("limits:\n  max_rule: 5\n", "limits: Additional properties are not allowed ('max_rule' was unexpected)"),
    ("limits:\n  max_rules: 0\n", "limits.max_rules: 0 is less than the minimum of 1"),
    ("limits:\n  max_cidrs: many\n", "limits.max_cidrs: 'many' is not of type 'integer'"),
    ("limits: 5\n", "limits: 5 is not of type 'object'"),
])
def test_invalid_limits_are_rejected_naming_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "netguard.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(str(path), env={})
    assert fragment in str(err.value)


def _first_over(obj: Any, limits: Limits) -> LimitViolation | None:
    """check_limits as the plain walk over `counts` (what the quick check must agree with)."""
    for c in counts(obj):
        if c.count > getattr(limits, c.limit):
            return LimitViolation(c.limit, c.path, c.count, getattr(limits, c.limit), c.detail)
    return None


def _objects() -> list[Any]:
    import yaml
    found: list[Any] = [None, 3, {"kind": "NetworkPolicy", "spec": {"egress": [{"to": [3]}]}}]
    for sample in sorted(REPO.glob("policies/*/samples/*/*.yaml")):
        if not sample.name.endswith(".request.yaml"):
            found.extend(yaml.safe_load_all(sample.read_text()))
    found.extend(obj for obj, _, _ in CALICO_OVER.values())
    side = {"nets": nets(2), "notNets": nets(1), "serviceAccounts": {"names": ["a"], "selector": "x == 'y'"},
            "ports": [1, "2:3"], "notPorts": [4], "domains": ["a.example.com"]}
    found.extend([
        calico({"ingress": [{"action": "Allow", "source": side, "destination": side}, {"action": "Log"}],
                "egress": [{"action": "Deny", "destination": {"notNets": nets(2)}},
                           {"action": "Pass", "source": {"nets": nets(1)}, "destination": {"nets": nets(3)}}]}),
        calico({"egress": [None, {"action": "Allow", "destination": "x", "source": {"nets": 3,
                                                                                    "serviceAccounts": []}}]}),
        calico({"ingress": "x"}, "GlobalNetworkPolicy"),
        {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "spec": None},
    ])
    return found


@pytest.mark.parametrize("name", Limits.names())
def test_the_quick_check_agrees_with_the_counts_at_every_limit(name: str) -> None:
    objects = _objects()
    for value in (0, 1, 2, 3, 5):
        limits = Limits(**{name: value})
        for obj in objects:
            assert check_limits(obj, limits) == _first_over(obj, limits), (name, value, obj)
    for obj in objects:
        assert check_limits(obj, SMALL) == _first_over(obj, SMALL), obj
