"""Flows matched to allow rules (offline/flow_match.py): which rule carried which flow, what a flow cannot
settle, the DNS a policy's pods needed, and Hubble's own attribution as a cross-check. Flows are written by
tests/flowgen.py with the documented Hubble fields; tests/oracle/test_flow_match_oracle.py compares the
matching with an independent evaluator."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml

from tests.flowgen import WORLD, endpoint, flow, lines
from webhook.core.facts import FactParams, enrich
from webhook.core.flow_evidence import FlowEvidence, RuleUsage
from webhook.core.normalize import normalize
from webhook.offline import flow_match
from webhook.offline.flow_match import match_flows
from webhook.offline.flows import FlowStats, read_flows

WEB = endpoint("team-a", "web-1", 1001, app="web")
DB = endpoint("team-b", "db-0", 1002, app="db")
DNS = endpoint("kube-system", "coredns-1", 3000, **{"k8s-app": "kube-dns"})


def policy(text: str) -> Any:
    return enrich(normalize(yaml.safe_load(text)), FactParams())


def cilium(name: str, egress: str, selector: str = "{matchLabels: {app: web}}") -> Any:
    """A CiliumNetworkPolicy of team-a with these egress rules (YAML list items, indented two spaces)."""
    return policy(f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
                  f"metadata: {{name: {name}, namespace: team-a}}\n"
                  f"spec:\n  endpointSelector: {selector}\n  egress:\n{egress}")


def kubernetes(name: str, spec: str, namespace: str = "team-a", pods: str = "{matchLabels: {app: web}}") -> Any:
    """A NetworkPolicy with this pod selector and the rest of its spec (YAML, indented two spaces)."""
    return policy(f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                  f"metadata: {{name: {name}, namespace: {namespace}}}\n"
                  f"spec:\n  podSelector: {pods}\n{spec}")


def evidence(policies: Sequence[Any], records: Sequence[Mapping[str, Any]],
             namespaces: Mapping[str, Mapping[str, str]] | None = None) -> FlowEvidence:
    stats = FlowStats()
    return match_flows(policies, read_flows([io.BytesIO(lines(records))], stats), namespaces or {}, stats)


def usage(found: FlowEvidence, key: tuple[str, str, str], path: str) -> RuleUsage:
    return next(r for r in found.for_policy(key).rules if r.path == path)


CNP = cilium("web", """  - toEntities: [world]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": team-b, app: db}}]
    toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
  - toCIDR: [10.0.0.0/8]
  - toFQDNs: [{matchPattern: "*.example.com"}]
  - toPorts: [{ports: [{port: http, protocol: TCP}]}]
    toEndpoints: [{}]
  - toServices: [{k8sService: {serviceName: api, namespace: team-a}}]
""")
CNP_KEY = ("CiliumNetworkPolicy", "team-a", "web")


def test_each_flow_goes_to_the_rules_that_carry_it_with_peers_ports_and_last_seen() -> None:
    found = evidence([CNP], [
        flow(time="2026-11-30T10:00:00Z", names=["api.github.com"], dst="140.82.112.6"),
        flow(time="2026-11-30T10:05:00Z", dst="1.2.3.4"),
        flow(time="2026-11-30T10:01:00Z", destination=DB, dst="10.0.2.7", port=5432),
    ])
    world = usage(found, CNP_KEY, "spec.egress[0]")
    assert (world.flows, world.uncertain) == (2, 0)
    assert sorted(p.describe() for p in world.peers) == ["1.2.3.4", "api.github.com"]
    assert world.ports == (("TCP", 443),)
    assert world.last_seen is not None and world.last_seen.isoformat().startswith("2026-11-30T10:05")
    db = usage(found, CNP_KEY, "spec.egress[1]")
    assert db.flows == 1 and [p.describe() for p in db.peers] == ["team-b/app=db"]
    # a pod address inside 10.0.0.0/8 is not carried by toCIDR: Cilium's CIDR rules select outside the cluster
    assert usage(found, CNP_KEY, "spec.egress[2]").flows == 0


def test_a_world_address_in_a_cidr_and_a_name_under_a_pattern_are_matched() -> None:
    found = evidence([CNP], [flow(dst="10.9.9.9", port=8443), flow(names=["www.example.com"], dst="93.184.216.34",
                                                                      port=80)])
    assert usage(found, CNP_KEY, "spec.egress[2]").flows == 1
    assert usage(found, CNP_KEY, "spec.egress[3]").flows == 1
    assert usage(found, CNP_KEY, "spec.egress[0]").flows == 0  # port 8443 and 80, not 443


def test_what_a_flow_cannot_settle_is_uncertain_and_services_are_not_judged() -> None:
    found = evidence([CNP], [flow(destination=endpoint("team-a", "api-1", 1003, app="api"), dst="10.0.1.9",
                                  port=8080)])
    named = usage(found, CNP_KEY, "spec.egress[4]")
    assert (named.flows, named.uncertain) == (0, 1)  # port "http": resolved per pod, not from the flow
    service = usage(found, CNP_KEY, "spec.egress[5]")
    assert service.uncertain == 1 and not service.judged and "services" in service.not_judged


def test_replies_unknown_directions_and_drops_are_not_carried_traffic() -> None:
    found = evidence([CNP], [
        flow(dst="1.2.3.4", is_reply=True),
        flow(dst="1.2.3.4", direction=""),
        flow(dst="1.2.3.4", verdict="DROPPED", drop_reason="POLICY_DENIED"),
        flow(dst="1.2.3.4", verdict="DROPPED", drop_reason="CT_MAP_INSERTION_FAILED"),
    ])
    assert usage(found, CNP_KEY, "spec.egress[0]").flows == 0
    assert found.for_policy(CNP_KEY).observed  # the denied flow still shows its pods were there


def test_a_policy_whose_pods_never_appear_is_not_observed() -> None:
    other = endpoint("team-a", "batch-1", 1009, app="batch")
    found = evidence([CNP], [flow(source=other, dst="1.2.3.4")])
    assert not found.for_policy(CNP_KEY).observed and found.for_policy(CNP_KEY).rules == ()


def test_ingress_flows_are_judged_at_their_destination_with_namespace_labels() -> None:
    np = kubernetes("web-in", """  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}}]
""")
    key = ("NetworkPolicy", "team-a", "web-in")
    incoming = flow(direction="INGRESS", source=DB, destination=WEB, src="10.0.2.7", dst="10.0.1.5", port=8080)
    assert usage(evidence([np], [incoming], {"team-b": {"team": "b"}}), key, "spec.ingress[0]").flows == 1
    # without the namespace's labels the selector matches nothing, unless Cilium carries them on the identity
    assert usage(evidence([np], [incoming]), key, "spec.ingress[0]").flows == 0
    labelled = endpoint("team-b", "db-0", 1002, app="db", **{"io.cilium.k8s.namespace.labels.team": "b"})
    cilium = flow(direction="INGRESS", source=labelled, destination=WEB, src="10.0.2.7", dst="10.0.1.5", port=8080)
    assert usage(evidence([np], [cilium]), key, "spec.ingress[0]").flows == 1
    # a pod label is not a namespace label for a Kubernetes namespaceSelector
    pod_labelled = endpoint("team-c", "x-0", 1004, team="b")
    spoof = flow(direction="INGRESS", source=pod_labelled, destination=WEB, src="10.0.3.7", dst="10.0.1.5")
    assert usage(evidence([np], [spoof]), key, "spec.ingress[0]").flows == 0


@pytest.mark.parametrize(("entity", "address", "expected"), [
    ("world", "1.2.3.4", 1), ("world-ipv4", "1.2.3.4", 1), ("world-ipv6", "1.2.3.4", 0),
    ("world-ipv6", "2001:db8::1", 1), ("cluster", "1.2.3.4", 0), ("all", "1.2.3.4", 1)])
def test_entities_match_by_identity_and_family(entity: str, address: str, expected: int) -> None:
    cnp = policy(f"""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: e, namespace: team-a}}
spec:
  endpointSelector: {{}}
  egress: [{{toEntities: [{entity}]}}]
""")
    found = evidence([cnp], [flow(dst=address, destination=WORLD)])
    assert usage(found, ("CiliumNetworkPolicy", "team-a", "e"), "spec.egress[0]").flows == expected


def test_the_host_entity_matches_the_host_not_a_pod() -> None:
    cnp = policy("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: h, namespace: team-a}
spec:
  endpointSelector: {}
  egress: [{toEntities: [host]}]
""")
    host = {"identity": 1, "labels": ["reserved:host"]}
    found = evidence([cnp], [flow(destination=host, dst="172.18.0.2"), flow(destination=DB, dst="10.0.2.7")])
    assert usage(found, ("CiliumNetworkPolicy", "team-a", "h"), "spec.egress[0]").flows == 1


def test_dropped_dns_is_reported_once_on_the_first_isolating_policy_with_the_rule_to_add() -> None:
    np = kubernetes("web", """  policyTypes: [Egress]
  egress: [{to: [{podSelector: {}}], ports: [{port: 8080}]}]
""")
    ingress_only = kubernetes("a-ingress", """  policyTypes: [Ingress]
""", pods="{}")
    dropped = flow(verdict="DROPPED", drop_reason="POLICY_DENIED", destination=DNS, dst="10.96.0.10",
                   protocol="UDP", port=53)
    audited = flow(verdict="AUDIT", destination=DNS, dst="10.96.0.10", protocol="TCP", port=53)
    denied_on_purpose = flow(verdict="DROPPED", drop_reason="POLICY_DENY", destination=DNS, dst="10.96.0.10",
                             protocol="UDP", port=53)
    found = evidence([ingress_only, np], [dropped, audited, denied_on_purpose])
    assert found.for_policy(("NetworkPolicy", "team-a", "a-ingress")).missing == ()  # it does not isolate egress
    (missing,) = found.for_policy(("NetworkPolicy", "team-a", "web")).missing
    assert missing.flows == 2 and missing.path == "spec.egress" and missing.sources == ("team-a/app=web",)
    assert missing.rule == {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    # the suggested rule, added to the policy, is a rule netguard reads as allowing exactly that DNS
    fixed = yaml.safe_load(yaml.safe_dump({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                           "metadata": {"name": "web", "namespace": "team-a"},
                                           "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                                                    "policyTypes": ["Egress"], "egress": [missing.rule]}}))
    assert usage(evidence([enrich(normalize(fixed), FactParams())], [flow(destination=DNS, dst="10.96.0.10",
                                                                            protocol="UDP", port=53)]),
                 ("NetworkPolicy", "team-a", "web"), "spec.egress[0]").flows == 1


def test_hubble_crediting_a_policy_with_a_flow_no_rule_matched_is_a_disagreement() -> None:
    cnp = cilium("web", """  - toEntities: [world]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
""")
    credited = {"kind": "CiliumNetworkPolicy", "namespace": "team-a", "name": "web"}
    found = evidence([cnp], [flow(dst="1.2.3.4", port=22, allowed_by=[credited]),
                             flow(dst="1.2.3.4", port=443, allowed_by=[credited])])
    assert found.for_policy(CNP_KEY).disagreements == 1  # port 22: no rule of it carries that


def test_broader_than_observed_names_the_narrower_peers_and_ports() -> None:
    np = kubernetes("api-in", """  ingress: [{from: [{namespaceSelector: {}}]}]
""")
    records = [flow(direction="INGRESS", source=endpoint(ns, "fe", 7, app="fe"), destination=WEB, src="10.0.5.5",
                    dst="10.0.1.5", port=port) for ns, port in (("team-b", 8080), ("team-c", 8443))]
    rule = usage(evidence([np], records), ("NetworkPolicy", "team-a", "api-in"), "spec.ingress[0]")
    aspects = {b.aspect: b for b in rule.breadth}
    assert aspects["namespaces"].observed == ("team-b", "team-c")
    assert aspects["ports"].narrower == "only TCP/8080, TCP/8443"
    world = usage(evidence([CNP], [flow(dst="1.2.3.4"), flow(names=["api.github.com"], dst="140.82.112.6")]),
                  CNP_KEY, "spec.egress[0]")
    (internet,) = world.breadth
    assert internet.narrower == "only toFQDNs matchName api.github.com and 1.2.3.4/32"


def test_more_distinct_peers_than_kept_is_never_a_small_part() -> None:
    records = [flow(dst=f"1.2.{i // 250}.{i % 250 + 1}") for i in range(flow_match.MAX_KEPT + 5)]
    rule = usage(evidence([CNP], records), CNP_KEY, "spec.egress[0]")
    assert rule.flows == flow_match.MAX_KEPT + 5 and rule.more_peers and len(rule.peers) == flow_match.MAX_KEPT
    assert rule.breadth == ()


def test_the_result_does_not_depend_on_the_shape_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [flow(dst=f"1.2.3.{i % 7 + 1}", port=443 if i % 3 else 5432,
                    destination=DB if i % 5 == 0 else WORLD) for i in range(60)]
    cached = evidence([CNP], records)
    monkeypatch.setattr(flow_match, "_CACHE_SIZE", 2)
    assert evidence([CNP], records) == cached


def test_namespace_labels_nobody_gave_leave_a_selector_on_them_uncertain_never_unused() -> None:
    np = kubernetes("web-in", """  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}}]
  - from: [{namespaceSelector: {matchExpressions: [{key: team, operator: DoesNotExist}]}}]
""")
    key = ("NetworkPolicy", "team-a", "web-in")
    incoming = flow(direction="INGRESS", source=DB, destination=WEB, src="10.0.2.7", dst="10.0.1.5", port=8080)
    unknown = evidence([np], [incoming], {"team-a": {}})  # team-b's labels: neither listed nor on the identity
    assert [(r.flows, r.uncertain) for r in unknown.for_policy(key).rules] == [(0, 1), (0, 1)]
    known = evidence([np], [incoming], {"team-b": {"team": "b"}})
    # an open selector (DoesNotExist) is not every namespace: team-b carries the label it excludes
    assert [(r.flows, r.uncertain) for r in known.for_policy(key).rules] == [(1, 0), (0, 0)]


def test_a_clusterwide_subject_chosen_by_unknown_namespace_labels_is_not_observed() -> None:
    ccnp = policy("""
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: teams}
spec:
  endpointSelector: {matchLabels: {"io.cilium.k8s.namespace.labels.tier": prod}}
  egress: [{toEntities: [world]}]
""")
    found = evidence([ccnp], [flow(dst="1.2.3.4")])
    policy_evidence = found.for_policy(("CiliumClusterwideNetworkPolicy", "", "teams"))
    assert not policy_evidence.observed  # whether it selects web depends on labels nobody gave
    labelled = endpoint("team-a", "web-1", 1001, app="web", **{"io.cilium.k8s.namespace.labels.tier": "prod"})
    seen = evidence([ccnp], [flow(source=labelled, dst="1.2.3.4")])
    assert usage(seen, ("CiliumClusterwideNetworkPolicy", "", "teams"), "spec.egress[0]").flows == 1


def test_dual_stack_world_labels_are_the_world() -> None:
    dual = {"identity": 9, "labels": ["reserved:world-ipv4"]}
    found = evidence([CNP], [flow(dst="1.2.3.4", destination=dual)])
    assert usage(found, CNP_KEY, "spec.egress[0]").flows == 1


def test_flows_of_one_shape_to_other_addresses_are_still_checked_address_by_address() -> None:
    cnp = cilium("web", """  - toCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
""")
    records = [flow(dst=f"203.0.113.{last}", names=["api.example.com"]) for last in (7, 200, 9, 130)]
    rule = usage(evidence([cnp], records), CNP_KEY, "spec.egress[0]")
    assert rule.flows == 2 and sorted(p.ip for p in rule.peers) == ["203.0.113.7", "203.0.113.9"]


def test_what_cannot_be_a_kubernetes_label_is_not_kept_as_evidence() -> None:
    huge = endpoint("team-b", "db-0", 1002, app="db", junk="x" * 100_000)
    rule = usage(evidence([CNP], [flow(destination=huge, dst="10.0.2.7", port=5432)]), CNP_KEY, "spec.egress[1]")
    assert rule.flows == 1 and [p.describe() for p in rule.peers] == ["team-b/app=db"]
    nameless = endpoint("team-b", "x-0", 1003, **{f"k{i}": "v" for i in range(100)}, big="y" * 64)
    from webhook.core.flow_evidence import workload_labels
    from webhook.offline.flows import parse_flow

    parsed = parse_flow(flow(destination=nameless))
    assert parsed is not None
    kept = workload_labels(parsed.destination.labels)
    assert len(kept) == 32 and all(len(v) <= 63 for _, v in kept)


def test_a_drop_the_other_side_s_policy_allows_names_the_allow_this_side_forgot() -> None:
    web_out = kubernetes("web-out", """  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: cache}}}], ports: [{port: 6379}]}]
""")
    db_in = kubernetes("db-in", """  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: team-a}},
             podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
""", namespace="team-b", pods="{matchLabels: {app: db}}")
    dropped = flow(verdict="DROPPED", drop_reason="POLICY_DENIED", destination=DB, dst="10.0.2.7", port=5432)
    elsewhere = flow(verdict="DROPPED", drop_reason="POLICY_DENIED", destination=DB, dst="10.0.2.7", port=22)
    found = evidence([web_out, db_in], [dropped, dropped, elsewhere])
    (missing,) = found.for_policy(("NetworkPolicy", "team-a", "web-out")).missing  # port 22: db-in does not allow it
    assert (missing.path, missing.direction, missing.flows) == ("spec.egress", "egress", 2)
    assert missing.what == "TCP/5432 to team-b/app=db, which NetworkPolicy team-b/db-in allows on its side"
    assert missing.rule == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}},
                                    "podSelector": {"matchLabels": {"app": "db"}}}],
                            "ports": [{"protocol": "TCP", "port": 5432}]}
    # and the other way round: dropped at db's ingress while web's egress allows it
    web_all = kubernetes("web-all", """  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: team-b}}}], ports: [{port: 5432}]}]
""")
    db_closed = kubernetes("db-closed", """  policyTypes: [Ingress]
""", namespace="team-b", pods="{matchLabels: {app: db}}")
    at_db = flow(direction="INGRESS", verdict="DROPPED", drop_reason="POLICY_DENIED", source=WEB, destination=DB,
                 src="10.0.1.5", dst="10.0.2.7", port=5432)
    (back,) = evidence([web_all, db_closed], [at_db]).for_policy(("NetworkPolicy", "team-b", "db-closed")).missing
    assert back.path == "spec.ingress" and back.rule["from"][0]["podSelector"] == {"matchLabels": {"app": "web"}}


def test_without_flows_the_flow_guardrails_are_not_evaluated_at_all() -> None:
    """The webhook never has flows: the three guardrails would cost every admission request an evaluation."""
    from dataclasses import replace
    from typing import cast

    from webhook import config
    from webhook.core.model import UserInfo
    from webhook.core.reviews import synthetic_create
    from webhook.core.snapshot import ClusterSnapshot
    from webhook.engine.engines import Engine
    from webhook.pipeline import build_pipeline

    pipeline = build_pipeline(config.load())
    asked: list[list[str]] = []
    real = pipeline.engine

    class Recording:
        name = real.name

        def __getattr__(self, attr: str) -> Any:
            return getattr(real, attr)

        def evaluate(self, document: dict[str, Any], deadline: float | None = None) -> Any:
            asked.append(list(document["rules"]))
            return real.evaluate(document, deadline)

    pipeline = replace(pipeline, engine=cast(Engine, Recording()), cache=None)
    obj = yaml.safe_load("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: team-a}
spec: {podSelector: {}, policyTypes: [Egress]}
""")
    request = synthetic_create(obj, user=UserInfo("alice"), namespace="team-a")
    pipeline.review(request)
    flow_rules = {"unused_rule", "broader_than_observed", "dropped_needed"}
    assert asked and not flow_rules & set(asked[-1]) and "no_allow_all_egress" in asked[-1]
    with_flows = replace(ClusterSnapshot.from_objects({}, []), flows=evidence([], []))
    pipeline.review(request, with_flows)
    assert flow_rules <= set(asked[-1])
