"""`netguard explain`: what each policy does, in words, with the field path of every rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.core.explain import Explanation, explain, render_text
from webhook.core.facts import FactParams, enrich
from webhook.core.normalize import normalize


def k8s(spec: dict[str, Any], name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "team-a"}, "spec": spec}


def cnp(spec: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                           "metadata": {"name": "c", "namespace": "team-a"}}
    if spec is not None:
        obj["spec"] = spec
    obj.update(extra)
    return obj


def ccnp(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "cw"}, "spec": spec}


WEB = {"matchLabels": {"app": "web"}}


def explained(obj: dict[str, Any]) -> Explanation:
    return explain(enrich(normalize(obj), FactParams()))


def text(obj: dict[str, Any]) -> str:
    return render_text([("heading", explained(obj))])


def notes(obj: dict[str, Any], topic: str) -> dict[str, str]:
    """The notes of one topic, by path."""
    return {n["path"]: n["text"] for n in explained(obj).to_json()["notes"] if n["topic"] == topic}


# --- Kubernetes -------------------------------------------------------------------------------

def test_the_subject_is_the_selected_pods_of_the_policy_namespace_in_words() -> None:
    assert explained(k8s({"podSelector": {}})).subjects[0].selects == "every pod in namespace team-a"
    expr = {"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "canary", "operator": "DoesNotExist"}]}
    assert explained(k8s({"podSelector": expr})).subjects[0].selects == (
        "pods with app=web and tier in (a, b) and no label canary in namespace team-a")


def test_a_policy_isolating_both_directions_without_rules_denies_everything() -> None:
    obj = k8s({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    data = explained(obj).to_json()
    subject = data["subjects"][0]
    assert subject["ingress"] == [] and subject["egress"] == []
    assert subject["isolation"]["egress"] == {
        "isolated": True, "defaulted": False,
        "text": "isolated (policyTypes lists Egress): nothing is allowed: all egress is denied (default deny) "
                "unless another policy selecting these pods allows it"}
    deny = [n for n in data["notes"] if n["topic"] == "default-deny"]
    assert [n["path"] for n in deny] == ["spec.policyTypes", "spec.policyTypes"]
    assert "all ingress of the selected pods is denied (default deny)" in deny[0]["text"]
    assert "all egress of the selected pods is denied (default deny)" in deny[1]["text"]


def test_an_empty_kubernetes_rule_allows_every_destination_on_every_port() -> None:
    obj = k8s({"podSelector": WEB, "policyTypes": ["Egress"], "egress": [{}]})
    assert "      spec.egress[0]: to every destination on every port\n" in text(obj)
    assert notes(obj, "allow-all") == {"spec.egress[0]": "an empty rule {} allows every destination on every port"}
    assert explained(obj).to_json()["subjects"][0]["egress"][0] == {
        "path": "spec.egress[0]", "action": "allow", "effective": True, "peers": [], "ports": "every port",
        "l7": [], "text": "to every destination on every port"}


def test_an_ingress_rule_names_its_peers_and_ports() -> None:
    obj = k8s({"podSelector": WEB, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}},
                  {"namespaceSelector": {"matchLabels": {"team": "b"}}}],
         "ports": [{"port": 80}, {"protocol": "UDP", "port": 5000, "endPort": 5010}]}]})
    assert ("spec.ingress[0]: from pods with role=frontend in this namespace or every pod in namespaces with "
            "team=b on TCP/80, UDP/5000-5010") in text(obj)


def test_an_ip_block_except_is_a_hole_in_the_peer_not_a_deny() -> None:
    obj = k8s({"podSelector": WEB, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]}]})
    out = text(obj)
    assert ("spec.egress[0]: to 0.0.0.0/0 except 10.0.0.0/8 (the whole IPv4 internet except 10.0.0.0/8, "
            "plus the metadata address 169.254.169.254) on TCP/443") in out
    assert "spec.egress[1]: to 0.0.0.0/0 except 169.254.169.254/32 (the whole IPv4 internet except " in out
    holes = notes(obj, "except")
    assert holes["spec.egress[1].to[0]"].startswith(
        "0.0.0.0/0 except 169.254.169.254/32: everything but the metadata address; an except only narrows this "
        "peer, it does not deny what another rule or policy allows")
    assert holes["spec.egress[0].to[0]"].startswith("0.0.0.0/0 except 10.0.0.0/8: everything but 10.0.0.0/8 (private)")


def test_a_cidr_says_which_part_of_the_address_space_it_covers() -> None:
    obj = k8s({"podSelector": WEB, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "169.254.0.0/16"}},
                {"ipBlock": {"cidr": "10.0.0.0/7"}}, {"ipBlock": {"cidr": "::/0"}},
                {"ipBlock": {"cidr": "169.254.169.254/32"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}},
                {"ipBlock": {"cidr": "10.20.0.0/16"}}]}]})
    peers = explained(obj).to_json()["subjects"][0]["egress"][0]["peers"]
    assert peers == ["0.0.0.0/0 (every IPv4 address, including the metadata address 169.254.169.254)",
                     "169.254.0.0/16 (includes the metadata address 169.254.169.254)",
                     "10.0.0.0/7 (includes the private range 10.0.0.0/8)",
                     "::/0 (it holds 64:ff9b::/96, the IPv4 internet through a NAT64 gateway) (every IPv6 address, "
                     "including the metadata address fd00:ec2::254)",
                     "169.254.169.254/32 (the metadata address)",
                     "128.0.0.0/1 (about 43% of the public IPv4 internet, plus the metadata address 169.254.169.254 "
                     "and the private ranges 172.16.0.0/12, 192.168.0.0/16)",
                     "10.20.0.0/16"]


def test_defaulted_policy_types_isolate_ingress_of_an_egress_only_policy() -> None:
    obj = k8s({"podSelector": WEB, "egress": [{"to": [{"podSelector": {}}]}]})
    data = explained(obj).to_json()
    ingress = data["subjects"][0]["isolation"]["ingress"]
    assert ingress["isolated"] and ingress["defaulted"]
    assert ingress["text"].startswith("isolated (policyTypes not written, defaulted to [Ingress, Egress]: Kubernetes "
                                      "always adds Ingress, and Egress only when spec.egress has rules)")
    assert "nothing is allowed" in ingress["text"]
    deny = notes(obj, "default-deny")
    assert list(deny) == ["spec"]
    assert "Kubernetes defaults it to include Ingress even for a policy with only egress rules" in deny["spec"]


def test_defaulted_policy_types_without_egress_rules_leave_egress_alone() -> None:
    egress = explained(k8s({"podSelector": WEB, "ingress": [{}]})).to_json()["subjects"][0]["isolation"]["egress"]
    assert egress["isolated"] is False and egress["defaulted"] is True
    assert egress["text"].endswith("defaulted to [Ingress]: Kubernetes always adds Ingress, and Egress only when "
                                   "spec.egress has rules): this policy does not restrict egress")


def test_an_egress_rule_that_policy_types_leaves_out_has_no_effect() -> None:
    obj = k8s({"podSelector": WEB, "policyTypes": ["Ingress"], "ingress": [{}],
               "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]})
    rule = explained(obj).to_json()["subjects"][0]["egress"][0]
    assert rule["effective"] is False
    assert rule["text"].endswith("(no effect: policyTypes leaves out Egress)")
    assert notes(obj, "ignored-rule") == {"spec.egress[0]": "has no effect: policyTypes leaves out Egress, so the "
                                          "egress rules are ignored and this policy leaves egress unrestricted"}
    assert "spec.egress[0]" not in notes(obj, "allow-all")


@pytest.mark.parametrize(("namespace_selector", "peer", "how"), [
    ({}, "every pod in every namespace", "namespaceSelector {} matches every namespace"),
    ({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]},
     "every pod in every namespace except kube-system",
     "namespaceSelector (kubernetes.io/metadata.name!=kube-system) only excludes, so it matches every namespace "
     "except kube-system"),
])
def test_an_open_namespace_selector_matches_every_namespace_including_future_ones(
        namespace_selector: dict[str, Any], peer: str, how: str) -> None:
    obj = k8s({"podSelector": WEB, "ingress": [{"from": [{"namespaceSelector": namespace_selector}]}]})
    assert explained(obj).subjects[0].ingress[0].peers == (peer,)
    assert notes(obj, "open-namespaces") == {"spec.ingress[0].from[0]": f"{how}, including ones created later"}


def test_a_namespace_selector_asking_only_for_the_name_label_is_open() -> None:
    obj = k8s({"podSelector": WEB, "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}}]}]})
    assert explained(obj).subjects[0].ingress[0].peers == ("every pod in every namespace",)
    assert notes(obj, "open-namespaces")["spec.ingress[0].from[0]"] == (
        "namespaceSelector (label kubernetes.io/metadata.name) only asks for labels every namespace has, so it "
        "matches every namespace, including ones created later")


def test_a_namespace_selector_naming_one_namespace_is_not_open() -> None:
    obj = k8s({"podSelector": WEB, "ingress": [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app": "prometheus"}}}]}]})
    assert explained(obj).subjects[0].ingress[0].peers == ("pods with app=prometheus in namespace monitoring",)
    assert notes(obj, "open-namespaces") == {}


def test_a_named_port_is_resolved_per_pod() -> None:
    obj = k8s({"podSelector": WEB, "ingress": [{"ports": [{"port": "http"}]}]})
    assert "spec.ingress[0]: from every source on TCP/http" in text(obj)
    assert notes(obj, "allow-all") == {}  # every source, but only on that port
    assert notes(obj, "named-port")["spec.ingress[0].ports[0]"].startswith(
        "the named port http is resolved per pod from its container ports")


def test_rules_that_reach_the_internet_only_together_are_noted() -> None:
    obj = k8s({"podSelector": WEB, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/1"}}]}, {"to": [{"ipBlock": {"cidr": "128.0.0.0/1"}}]}]})
    assert notes(obj, "combined-reach") == {"spec.egress[0]": (
        "spec.egress[0] and spec.egress[1] together reach the whole IPv4 internet on every port through "
        "0.0.0.0/1, 128.0.0.0/1, though no single egress rule does")}


def test_rules_on_different_ports_that_reach_the_internet_together_name_their_ports() -> None:
    obj = k8s({"podSelector": WEB, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/1"}}], "ports": [{"port": 443}]},
        {"to": [{"ipBlock": {"cidr": "128.0.0.0/1"}}]}]})
    assert notes(obj, "combined-reach")["spec.egress[0]"].startswith(
        "spec.egress[0] (TCP/443) and spec.egress[1] (every port) together reach the whole IPv4 internet through")


def test_the_json_form_has_the_policy_its_subjects_their_rules_and_the_notes() -> None:
    data = explained(k8s({"podSelector": WEB, "egress": [{}]})).to_json()
    assert set(data) == {"kind", "name", "namespace", "subjects", "notes"}
    assert (data["kind"], data["name"], data["namespace"]) == ("NetworkPolicy", "web", "team-a")
    subject = data["subjects"][0]
    assert set(subject) == {"path", "selector_path", "selects", "isolation", "ingress", "egress"}
    assert (subject["path"], subject["selector_path"]) == ("spec", "spec.podSelector")
    assert set(subject["isolation"]) == {"ingress", "egress"}
    assert subject["egress"][0]["path"] == "spec.egress[0]"
    assert all(set(n) == {"path", "topic", "text"} for n in data["notes"])


# --- Cilium -----------------------------------------------------------------------------------

def test_an_empty_cilium_rule_allows_nothing_but_isolates() -> None:
    obj = cnp({"endpointSelector": WEB, "ingress": [{}]})
    data = explained(obj).to_json()["subjects"][0]
    assert data["ingress"][0]["text"] == "allows nothing (an empty rule)"
    assert data["isolation"]["ingress"]["isolated"] is True
    assert data["isolation"]["ingress"]["text"] == (
        "isolated (default deny: the spec has ingress rules): nothing is allowed: all ingress is denied "
        "(default deny) unless another policy selecting these pods allows it")
    assert notes(obj, "empty-rule") == {
        "spec.ingress[0]": "an empty Cilium rule {} allows nothing, but it still isolates ingress (default deny)"}
    assert list(notes(obj, "default-deny")) == ["spec"]


def test_a_cilium_rule_with_only_ports_applies_to_every_peer() -> None:
    obj = cnp({"endpointSelector": WEB, "ingress": [{"toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}]})
    assert "spec.ingress[0]: from every source on TCP/8080" in text(obj)
    assert notes(obj, "ports-only") == {"spec.ingress[0]": "names ports but no peer: it applies to every source, "
                                        "inside and outside the cluster, on TCP/8080"}


def dns_and_api(*extra_dns: dict[str, Any], dns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    egress: list[dict[str, Any]] = [{"toFQDNs": [{"matchName": "api.example.com"}],
                                     "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]
    if dns is not None:
        egress.insert(0, {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                                           "k8s:k8s-app": "kube-dns"}}],
                          "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": dns}}]})
    return cnp({"endpointSelector": WEB, "egress": egress})


def test_a_dns_rule_matching_every_name_is_visibility_not_an_allow_to_every_domain() -> None:
    obj = dns_and_api(dns=[{"matchPattern": "*"}])
    out = text(obj)
    assert ("spec.egress[0]: to pods with k8s-app=kube-dns in namespace kube-system on port 53; only DNS lookups "
            "of any name (*)") in out
    assert "spec.egress[1]: to domain api.example.com on TCP/443" in out
    visibility = notes(obj, "dns-visibility")["spec.egress[0]"]
    assert "lets the DNS proxy see every lookup" in visibility and "NOT an allow to every domain" in visibility
    assert notes(obj, "fqdn-needs-dns") == {}
    assert "spec.egress[1].toFQDNs[0]" in notes(obj, "fqdn")


def test_to_fqdns_without_a_dns_rule_never_resolves() -> None:
    obj = dns_and_api()
    need = notes(obj, "fqdn-needs-dns")
    assert list(need) == ["spec.egress[0].toFQDNs[0]"]
    assert "the names will never resolve to allowed IPs" in need["spec.egress[0].toFQDNs[0]"]


def test_to_fqdns_with_a_dns_rule_for_other_names_never_resolves() -> None:
    obj = dns_and_api(dns=[{"matchPattern": "*.internal.example.org"}])
    assert "lookups of api.example.com" in notes(obj, "fqdn-needs-dns")["spec.egress[1].toFQDNs[0]"]
    assert notes(obj, "dns-visibility") == {}
    assert "restricts lookups" in notes(obj, "l7")["spec.egress[0]"]


def test_to_fqdns_covered_by_a_dns_pattern_is_not_flagged() -> None:
    assert notes(dns_and_api(dns=[{"matchPattern": "*.example.com"}]), "fqdn-needs-dns") == {}


@pytest.mark.parametrize(("pattern", "words"), [
    ("*", "* matches every domain name"),
    ("*.com", "*.com matches names anyone can register under the public suffix com, not only your own domains"),
    ("*.github.io", "*.github.io matches names anyone can register under the public suffix github.io"),
])
def test_a_wildcard_over_a_public_suffix_matches_anyones_domain(pattern: str, words: str) -> None:
    obj = cnp({"endpointSelector": WEB, "egress": [{"toFQDNs": [{"matchPattern": pattern}]}]})
    assert f"spec.egress[0]: to domains matching {pattern} on every port" in text(obj)
    assert notes(obj, "fqdn-wildcard")["spec.egress[0].toFQDNs[0]"].startswith(words)


def test_a_wildcard_inside_one_registrant_is_not_flagged() -> None:
    assert notes(cnp({"endpointSelector": WEB, "egress": [{"toFQDNs": [{"matchPattern": "*.example.com"}]}]}),
                 "fqdn-wildcard") == {}


def test_http_rules_restrict_what_the_ports_allow() -> None:
    obj = cnp({"endpointSelector": WEB, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "ui"}}], "toPorts": [
        {"ports": [{"port": "80", "protocol": "TCP"}], "rules": {"http": [{"method": "GET", "path": "/api/.*"}]}}]}]})
    assert "spec.ingress[0]: from pods with app=ui in this namespace on TCP/80; only HTTP GET /api/.*" in text(obj)
    assert notes(obj, "l7")["spec.ingress[0]"].startswith("the HTTP rules restrict what is allowed on those ports")


@pytest.mark.parametrize(("entity", "words"), [
    ("world", "everything outside the cluster"),
    ("cluster", "every endpoint in the cluster"),
    ("host", "the node the pod runs on"),
    ("remote-node", "the other nodes of the cluster"),
    ("kube-apiserver", "the Kubernetes API server"),
    ("all", "every endpoint inside and outside the cluster"),
])
def test_entities_are_explained_in_words(entity: str, words: str) -> None:
    obj = cnp({"endpointSelector": WEB, "egress": [{"toEntities": [entity]}]})
    assert f"spec.egress[0]: to entity {entity} on every port" in text(obj)
    assert notes(obj, "entity")["spec.egress[0].toEntities[0]"].startswith(f"entity {entity} is {words}")


def test_an_egress_deny_rule_says_it_wins_over_allows() -> None:
    obj = cnp({"endpointSelector": WEB, "egress": [{"toEntities": ["all"]}], "egressDeny": [{"toEntities": ["world"]}]})
    rules = explained(obj).to_json()["subjects"][0]["egress"]
    assert [(r["path"], r["action"]) for r in rules] == [("spec.egress[0]", "allow"), ("spec.egressDeny[0]", "deny")]
    assert rules[1]["text"] == "denied: to entity world on every port — deny rules win over any allow"


def test_enable_default_deny_false_only_adds_allows() -> None:
    obj = cnp({"endpointSelector": WEB, "enableDefaultDeny": {"egress": False},
               "egress": [{"toEndpoints": [{"matchLabels": {"app": "db"}}]}]})
    egress = explained(obj).to_json()["subjects"][0]["isolation"]["egress"]
    assert egress["isolated"] is False
    assert egress["text"].startswith("does not isolate: only adds allows (enableDefaultDeny.egress: false)")
    assert list(notes(obj, "no-default-deny")) == ["spec.enableDefaultDeny.egress"]
    assert notes(obj, "default-deny") == {}


def test_each_entry_of_a_specs_list_is_its_own_subject() -> None:
    obj = cnp(specs=[
        {"endpointSelector": WEB, "egress": [{"toEntities": ["kube-apiserver"]}]},
        {"nodeSelector": {"matchLabels": {"role": "worker"}},
         "ingress": [{"fromEntities": ["remote-node"], "icmps": [{"fields": [{"type": 8, "family": "IPv4"}]}]}]},
    ])
    data = explained(obj).to_json()
    assert [(s["path"], s["selects"]) for s in data["subjects"]] == [
        ("specs[0]", "pods with app=web in namespace team-a"), ("specs[1]", "nodes with role=worker")]
    assert data["subjects"][0]["egress"][0]["path"] == "specs[0].egress[0]"
    assert data["subjects"][1]["ingress"][0]["text"] == "from entity remote-node on ICMP type 8"
    out = text(obj)
    assert "  specs[1].nodeSelector: applies to nodes with role=worker\n" in out
    assert "      specs[1].ingress[0]: from entity remote-node on ICMP type 8\n" in out


def test_a_clusterwide_empty_endpoint_selector_peer_is_every_namespace() -> None:
    obj = ccnp({"endpointSelector": WEB, "egress": [{"toEndpoints": [{}]}]})
    data = explained(obj).to_json()
    assert data["subjects"][0]["selects"] == "pods with app=web in every namespace"
    assert data["subjects"][0]["egress"][0]["text"] == "to every pod in every namespace on every port"
    assert notes(obj, "open-namespaces") == {"spec.egress[0].toEndpoints[0]": (
        "an endpoint selector without a namespace key in a clusterwide policy matches pods in every namespace, "
        "including ones created later")}


def test_a_namespaced_empty_endpoint_selector_peer_is_its_own_namespace() -> None:
    obj = cnp({"endpointSelector": WEB, "egress": [{"toEndpoints": [{}]}]})
    assert explained(obj).subjects[0].egress[0].text == "to every pod in this namespace on every port"
    assert "spec.egress[0].toEndpoints[0]" in notes(obj, "own-namespace")
    assert notes(obj, "open-namespaces") == {}


def test_a_cilium_endpoint_selector_naming_another_namespace_selects_nothing() -> None:
    obj = cnp({"endpointSelector": {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "team-b", "app": "x"}},
               "ingress": [{"fromEntities": ["cluster"]}]})
    assert explained(obj).subjects[0].selects == "no pods at all (see notes)"
    assert notes(obj, "selects-nothing") == {"spec.endpointSelector": (
        "names namespace team-b, but a CiliumNetworkPolicy in team-a only applies to team-a's pods: "
        "this selects nothing")}


def test_a_clusterwide_subject_pinned_to_a_namespace_says_so() -> None:
    obj = ccnp({"endpointSelector": {"matchLabels": {"io.kubernetes.pod.namespace": "kube-system"}},
                "ingress": [{"fromEntities": ["host"]}]})
    assert explained(obj).subjects[0].selects == "every pod in namespace kube-system"
    assert notes(obj, "selects-nothing") == {}


# --- text ---------------------------------------------------------------------------------------

def test_several_policies_from_a_file_render_under_their_headings(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump_all([
        k8s({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, name="deny-all"),
        k8s({"podSelector": WEB, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
                                              "ports": [{"port": 80}]}]}),
    ]))
    with path.open() as f:
        docs = list(yaml.safe_load_all(f))
    out = render_text([(f"team-a/{d['metadata']['name']} (NetworkPolicy)", explained(d)) for d in docs])
    first, second = out.split("\n\n")
    assert first.splitlines()[:2] == ["team-a/deny-all (NetworkPolicy)",
                                      "  spec.podSelector: applies to every pod in namespace team-a"]
    assert "  notes:\n    - spec.policyTypes: isolates ingress but allows none" in first
    assert second.splitlines() == [
        "team-a/web (NetworkPolicy)",
        "  spec.podSelector: applies to pods with app=web in namespace team-a",
        "    ingress: isolated (policyTypes not written, defaulted to [Ingress]: Kubernetes always adds Ingress, and "
        "Egress only when spec.egress has rules): only the ingress the rules allow gets through (allows of other "
        "policies selecting these pods add up)",
        "      spec.ingress[0]: from pods with role=frontend in this namespace on TCP/80",
        "    egress: not isolated (policyTypes not written, defaulted to [Ingress]: Kubernetes always adds Ingress, "
        "and Egress only when spec.egress has rules): this policy does not restrict egress",
    ]
    assert out.endswith("\n")


def test_nothing_to_render_is_an_empty_string() -> None:
    assert render_text([]) == ""


# --- peers under other names (reserved selectors, nodes, CIDR groups, port unions) -------------

def egress_text(obj: dict[str, Any]) -> str:
    return explained(obj).to_json()["subjects"][0]["egress"][0]["text"]


@pytest.mark.parametrize("selector", [
    {"matchLabels": {"reserved:world": ""}},
    {"matchExpressions": [{"key": "reserved:world", "operator": "Exists"}]},
])
def test_a_reserved_world_selector_is_described_as_the_entity_world(selector: dict[str, Any]) -> None:
    obj = cnp({"endpointSelector": {}, "egress": [{"toEndpoints": [selector]}]})
    rule = egress_text(obj)
    assert rule.startswith("to entity world") and "pods in this namespace" not in rule
    (note,) = notes(obj, "reserved-selector").values()
    assert "entity world spelled as a selector, not pods of this namespace" in note


def test_a_selector_not_requiring_the_namespace_names_the_reserved_identities_it_matches() -> None:
    selector = {"matchExpressions": [{"key": "io.kubernetes.pod.namespace", "operator": "NotIn",
                                      "values": ["kube-system"]}]}
    rule = egress_text(cnp({"endpointSelector": {}, "egress": [{"toEndpoints": [selector]}]}))
    for entity in ("world", "host", "kube-apiserver", "remote-node"):
        assert f"entity {entity}" in rule


@pytest.mark.parametrize("nodes", [{}, {"matchLabels": {"node-role.kubernetes.io/control-plane": ""}}])
def test_to_nodes_is_described_as_the_nodes_host_identities(nodes: dict[str, Any]) -> None:
    obj = cnp({"endpointSelector": WEB, "egress": [{"toNodes": [nodes]}]})
    assert "the host and remote-node identities" in egress_text(obj)
    assert "host and remote-node identities" in notes(obj, "nodes")["spec.egress[0].toNodes[0]"]


def test_a_cidr_group_reference_is_described_as_a_cidr_group() -> None:
    obj = cnp({"endpointSelector": WEB, "egress": [{"toCIDRSet": [{"cidrGroupRef": "partners"}]}]})
    assert "CIDR group partners" in egress_text(obj)
    assert "CiliumCIDRGroup" in notes(obj, "cidr-group")["spec.egress[0].toCIDRSet[0]"]


@pytest.mark.parametrize("ports", [
    [{"protocol": "TCP", "port": 1, "endPort": 79}, {"protocol": "TCP", "port": 81, "endPort": 65535}],
    [{"protocol": "TCP", "port": 2, "endPort": 65535}],
])
def test_split_port_ranges_are_described_as_every_port(ports: list[dict[str, Any]]) -> None:
    rule = egress_text(k8s({"podSelector": {}, "policyTypes": ["Egress"],
                            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": ports}]}))
    assert "judged as every port" in rule


def test_a_few_ports_are_not_described_as_every_port() -> None:
    rule = egress_text(k8s({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}, {"port": 8443}]}]}))
    assert "every port" not in rule


def test_a_calico_log_rule_is_said_to_record_and_go_on_not_dropped_silently() -> None:
    """Calico's Log action neither allows nor denies (felix renders it as a LOG rule before the next one): it is
    no rule the guardrails read, but explain still names it where it stands."""
    policy = enrich(normalize({
        "apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": "logged", "namespace": "team-a"},
        "spec": {"selector": "app == 'web'", "ingress": [
            {"action": "Log", "source": {"nets": ["10.0.0.0/8"]}},
            {"action": "Allow", "source": {"selector": "app == 'front'"}},
            {"action": "Log"}]}}), FactParams())
    assert policy.passive == ("spec.ingress[0]", "spec.ingress[2]")
    assert [r.path for r in policy.rules] == ["spec.ingress[1]"]
    logs = [n for n in explain(policy).notes if n.topic == "log"]
    assert [n.path for n in logs] == ["spec.ingress[0]", "spec.ingress[2]"]
    assert all("neither allows nor denies" in n.text for n in logs)
    assert "passive" not in policy.to_input()  # nothing for the guardrails to judge
