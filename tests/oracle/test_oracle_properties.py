"""netguard's findings against an independent oracle, in both directions.

For every generated policy:
- no bypass: when the oracle says the policy allows X, the guardrail(s) judging X report it;
- no false positive: when a guardrail reports X, the oracle agrees the policy allows X.

Internet figures are only asserted outside a small band around the thresholds (oracle.Figure is None
inside it): the IPv4 public share is computed under two readings of "public" (IPv4 multicast counted
or not), and both must land on the same side, at least INTERNET_BAND away; a protocol's port coverage
must be PORT_BAND away from port_coverage. The generators keep almost every figure far from them.

Run longer with `make fuzz` (HYPOTHESIS_PROFILE=fuzz).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import note as hypothesis_note
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from tests.oracle import strategies as gen
from tests.oracle.conftest import Verdicts, judge
from tests.oracle.oracle import InvalidPolicy, Oracle

FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"


def budget(examples: int) -> settings:
    return settings(max_examples=examples * 40 if FUZZ else examples, deadline=None, derandomize=not FUZZ,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much], database=None, print_blob=True)


DIRECTIONS = ("ingress", "egress")


def note(text: str) -> None:
    """hypothesis.note inside a property, nothing in a plain test (the regression tests reuse the checks)."""
    with contextlib.suppress(InvalidArgument):
        hypothesis_note(text)


def rule_of(path: str) -> str:
    """spec.egress[0].toEntities[1] -> spec.egress[0] (the rule a finding's path is in)."""
    for marker in (".ingress[", ".egress[", ".ingressDeny[", ".egressDeny["):
        at = path.find(marker)
        if at >= 0:
            return path[: path.index("]", at) + 1]
    return path


def judged(manifest: Mapping[str, Any]) -> tuple[Oracle | None, Verdicts, list[str]]:
    """The oracle, netguard's verdict, and the validity disagreements."""
    got = judge(manifest)
    try:
        oracle = Oracle(manifest)
    except InvalidPolicy as exc:
        note(f"oracle: invalid ({exc})")
        return None, got, [] if got.invalid else [f"invalid object admitted for judgement: {exc}"]
    if got.invalid:
        return oracle, got, [f"netguard rejects a valid object as invalid: {sorted(got.findings)}"]
    return oracle, got, []


# --- the checks (each returns the disagreements, so regression tests can reuse them) ---------


def internet_disagreements(oracle: Oracle, got: Verdicts) -> list[str]:
    problems = []
    for d in DIRECTIONS:
        every = oracle.internet(d, every_port=True)
        some = oracle.internet(d, every_port=False)
        all_ids = {f"no-internet-{d}-without-ports", f"no-allow-all-{d}"}
        some_ids = {f"internet-{d}", *all_ids}
        note(f"{d}: every port {every}, some port {some}; netguard {sorted(got.rules)}")
        if every.value is True and not got.rules & all_ids:
            problems.append(f"bypass: {d} internet on every port ({every.detail}) but none of {sorted(all_ids)}")
        if every.value is False and got.rules & all_ids:
            problems.append(f"false positive: {sorted(got.rules & all_ids)} but the {d} internet is not reached "
                            "on every port")
        if some.value is True and not got.rules & some_ids:
            problems.append(f"bypass: {d} internet on some port ({some.detail}) but none of {sorted(some_ids)}")
        if some.value is False and got.rules & some_ids:
            problems.append(f"false positive: {sorted(got.rules & some_ids)} but the {d} internet is not reached")
    return problems


def metadata_disagreements(oracle: Oracle, got: Verdicts, manifest: Mapping[str, Any]) -> list[str]:
    reached = oracle.metadata()
    fired = "no-metadata-egress" in got.rules
    note(f"metadata reached: {reached}; netguard fired: {fired}")
    has_deny = "egressDeny" in str(manifest)  # netguard honours same-entry deny rules; the oracle ignores them
    if reached and not fired and not has_deny:
        return ["bypass: a metadata address is reachable on TCP/80 but no-metadata-egress is silent"]
    if fired and not reached:
        return ["false positive: no-metadata-egress but no metadata address is reachable on TCP/80"]
    return []


def all_namespaces_disagreements(oracle: Oracle, got: Verdicts) -> list[str]:
    problems = []
    found = {rule_of(p) for p in got.paths("no-all-namespaces-peer")}
    expected: set[str] = set()
    for d in DIRECTIONS:
        rules = oracle.all_namespaces_rules(d)
        expected |= set(rules)
        allow_all = {rule_of(p) for p in got.paths(f"no-allow-all-{d}")}
        note(f"{d}: rules reaching tomorrow's namespace {rules}; netguard {sorted(found)} / allow-all {allow_all}")
        for rule in rules:
            if rule not in found and rule not in allow_all:
                problems.append(f"bypass: {rule} allows pods of a namespace created tomorrow but neither "
                                f"no-all-namespaces-peer nor no-allow-all-{d} reports it")
    for rule in sorted(found - expected):
        problems.append(f"false positive: no-all-namespaces-peer at {rule}, which reaches no pod of a new namespace")
    return problems


def sensitive_disagreements(oracle: Oracle, got: Verdicts) -> list[str]:
    any_rules, narrow = oracle.sensitive_rules()
    found = {rule_of(p) for p in got.paths("no-sensitive-entities")}
    note(f"sensitive: oracle any {any_rules} narrow {narrow}; netguard {sorted(found)}")
    problems = [f"bypass: {r} reaches host/remote-node/kube-apiserver/health/init but no-sensitive-entities is silent"
                for r in narrow if r not in found]
    problems += [f"false positive: no-sensitive-entities at {r}, which reaches no sensitive identity"
                 for r in sorted(found - set(any_rules))]
    return problems


def all_disagreements(manifest: Mapping[str, Any]) -> list[str]:
    oracle, got, problems = judged(manifest)
    if oracle is None or problems:
        return problems
    return (internet_disagreements(oracle, got) + metadata_disagreements(oracle, got, manifest)
            + all_namespaces_disagreements(oracle, got) + sensitive_disagreements(oracle, got))


# --- properties ---------------------------------------------------------------------------------


def _check(problems: list[str]) -> None:
    assert not problems, "\n".join(problems)


NAT64 = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "m", "namespace": "team-a"},
         "spec": {"endpointSelector": {}, "egress": [{"toCIDR": ["64:ff9b::/96"]}]}}
UDP_EVERY_PORT = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                  "metadata": {"name": "m", "namespace": "team-a"},
                  "spec": {"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"protocol": "UDP"}]}]}]}}
MAPPED_EXCEPT_IN_V6 = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                       "metadata": {"name": "m", "namespace": "team-a"},
                       "spec": {"podSelector": {}, "egress": [{"to": [{"ipBlock": {
                           "cidr": "::/0", "except": ["::ffff:169.254.169.254/128"]}}]}]}}


@budget(40)
@given(gen.policies())
@example(NAT64)
@example(MAPPED_EXCEPT_IN_V6)
def test_internet_findings_match_the_oracle(manifest: dict[str, Any]) -> None:
    oracle, got, problems = judged(manifest)
    _check(problems)
    if oracle is not None:
        _check(internet_disagreements(oracle, got))


@budget(25)
@given(gen.policies())
@example(UDP_EVERY_PORT)
def test_metadata_finding_matches_the_oracle(manifest: dict[str, Any]) -> None:
    oracle, got, problems = judged(manifest)
    _check(problems)
    if oracle is not None:
        _check(metadata_disagreements(oracle, got, manifest))


@budget(30)
@given(gen.policies())
def test_all_namespaces_finding_matches_the_oracle(manifest: dict[str, Any]) -> None:
    oracle, got, problems = judged(manifest)
    _check(problems)
    if oracle is not None:
        _check(all_namespaces_disagreements(oracle, got))


@budget(25)
@given(gen.cilium_policies())
def test_sensitive_entities_finding_matches_the_oracle(manifest: dict[str, Any]) -> None:
    oracle, got, problems = judged(manifest)
    _check(problems)
    if oracle is not None:
        _check(sensitive_disagreements(oracle, got))


@budget(20)
@given(gen.cilium_policies(invalid_ports=True))
def test_invalid_port_strings_are_rejected_not_judged(manifest: dict[str, Any]) -> None:
    """A port string Go's ParseUint(s, 0, 16) refuses and that is no IANA service name: Cilium rejects
    the rule, so netguard must deny with invalid-object (and never crash)."""
    oracle, _, problems = judged(manifest)
    assert oracle is None, "the generator was meant to produce an invalid port"
    _check(problems)


@budget(10)
@given(st.sampled_from(sorted(gen.ODD_SPELLINGS.items())).flatmap(
    lambda kv: st.tuples(st.just(kv[0]), st.sampled_from(kv[1]))))
@example((80, "0x50"))
def test_odd_but_valid_port_spellings_mean_their_number(case: tuple[int, str]) -> None:
    number, spelling = case
    manifest = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                "metadata": {"name": "odd", "namespace": "team-a"},
                "spec": {"endpointSelector": {}, "egress": [
                    {"toCIDR": ["0.0.0.0/0"], "toPorts": [{"ports": [{"port": spelling, "protocol": "TCP"}]}]}]}}
    oracle, got, problems = judged(manifest)
    _check(problems)
    assert oracle is not None
    expected = "no-internet-egress-without-ports" if number == 0 else "internet-egress"
    assert expected in got.rules, f"{spelling!r} (= {number}) read differently: {sorted(got.rules)}"
    _check(metadata_disagreements(oracle, got, manifest))
