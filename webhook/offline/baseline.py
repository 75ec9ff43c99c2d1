"""The recommended baseline policies for a namespace, as manifests ready for `kubectl apply`.

A namespace without any policy is open in both directions. The baseline isolates every pod
(default deny) and optionally lets DNS and same-namespace traffic through, so teams then add
only the allow policies their workloads need. Every object carries the baseline marker
(`netguard.io/baseline: "true"`), which the protect-baseline guardrail reserves to the platform
team: teams cannot edit or delete the isolation that protects them. Pure: the CLI prints it.

Semantics relied on (see normalize.py for the references):
- Kubernetes: a policy that lists a direction in policyTypes but has no rule for it denies that
  direction; policyTypes is written out so nothing depends on API defaulting.
- Cilium: an empty rule `{}` selects the endpoints into default deny without allowing anything;
  to/fromEndpoints `{}` in a namespaced CiliumNetworkPolicy means the policy's own namespace.
  A DNS L7 rule routes lookups through Cilium's DNS proxy, which toFQDNs rules depend on.
- ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2, network-policy-api apis/v1alpha2): cluster-scoped, so
  the subject names the namespace (kubernetes.io/metadata.name); the Admin tier decides before every
  NetworkPolicy (an Admin deny-all cannot be opened by a team's NetworkPolicy), the Baseline tier after (it
  denies what no NetworkPolicy decides: the usual default deny). Lower priorities are evaluated first, so the
  allow policies (Accept) come before the deny-all. Ingress peers can only be pods (namespaces, pods), so
  ingress from outside the cluster is not denied by it; egress denies networks 0.0.0.0/0 and ::/0, which hold
  pod traffic too.
- Calico (projectcalico.org/v3 NetworkPolicy, Calico's policy reference): a policy whose `selector` picks an
  endpoint and whose `types` name a direction, but none of whose rules matches, lets the tier's end decide,
  which denies (the tier's default action is Deny); so `all()` with both types and no rules is the namespace's
  default deny, in the `default` tier where Calico also places Kubernetes NetworkPolicies, after the allow
  policies (`order`: lower first). A rule `selector` in a namespaced policy picks endpoints of the policy's own
  namespace unless the rule names a `namespaceSelector`; `projectcalico.org/name` is a namespace's name label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, NAMESPACE_NAME_LABEL

FLAVORS = ("kubernetes", "cilium", "cnp-admin", "cnp-baseline", "calico")
MARKER = "netguard.io/baseline"
DESCRIPTION = "netguard.io/description"
LABELS = {MARKER: "true", "app.kubernetes.io/managed-by": "netguard"}
_DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_K8S_API = ("networking.k8s.io/v1", "NetworkPolicy")
_CILIUM_API = ("cilium.io/v2", "CiliumNetworkPolicy")
_CNP_API = ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy")
_CNP_TIERS = {"cnp-admin": "Admin", "cnp-baseline": "Baseline"}
_CALICO_API = ("projectcalico.org/v3", "NetworkPolicy")
_CALICO_ALLOW_ORDER = 100  # the allow policies, before the default deny (lower first)
_CALICO_DENY_ORDER = 1000
_CNP_ALLOW_PRIORITY = 100  # the allow policies, evaluated before the deny-all (lower first)
_CNP_DENY_PRIORITY = 1000


def _default_dns_labels() -> dict[str, str]:
    return {"k8s-app": "kube-dns"}


@dataclass(frozen=True)
class BaselineOptions:
    namespace: str
    flavor: str = "kubernetes"
    allow_dns: bool = False
    allow_same_namespace: bool = False
    dns_namespace: str = "kube-system"
    dns_labels: Mapping[str, str] = field(default_factory=_default_dns_labels)


def baseline_objects(options: BaselineOptions) -> list[dict[str, Any]]:
    """default-deny, then allow-dns and allow-same-namespace when asked; ValueError on bad options."""
    _validate(options)
    build = {"kubernetes": _KUBERNETES, "cilium": _CILIUM, "calico": _CALICO}.get(options.flavor, _CNP)
    wanted = [("default-deny", True), ("allow-dns", options.allow_dns),
              ("allow-same-namespace", options.allow_same_namespace)]
    return [build[name](options) for name, on in wanted if on]


def render_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML with a header saying what gets applied and who may change it."""
    names = ", ".join(str(o["metadata"]["name"]) for o in objects)
    namespaces = sorted({_namespace_of(o) for o in objects})
    header = (
        f"# netguard baseline for namespace {', '.join(namespaces)}: {names}.\n"
        "# Default deny isolates every pod in both directions; each allow policy opens only what it names.\n"
        f"# Apply with `kubectl apply -f -`. These objects carry {MARKER}: \"true\": netguard's\n"
        "# protect-baseline guardrail lets only the platform team create, change or delete them.\n"
    )
    docs = [yaml.safe_dump(dict(o), sort_keys=False, default_flow_style=False, width=4096) for o in objects]
    return header + "".join(f"---\n{d}" for d in docs)


def _namespace_of(obj: Mapping[str, Any]) -> str:
    """The namespace an object is for: its own, or a cluster-scoped policy's subject namespace."""
    if "namespace" in obj["metadata"]:
        return str(obj["metadata"]["namespace"])
    return str(obj["spec"]["subject"]["namespaces"]["matchLabels"][NAMESPACE_NAME_LABEL])


def _validate(options: BaselineOptions) -> None:
    if options.flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {', '.join(FLAVORS)}, got {options.flavor!r}")
    for what, value in (("namespace", options.namespace), ("DNS namespace", options.dns_namespace)):
        if not (isinstance(value, str) and len(value) <= 63 and _DNS_1123_LABEL.fullmatch(value)):
            raise ValueError(f"{what} must be a DNS-1123 label (lower-case letters, digits and '-', "
                             f"starting and ending with a letter or digit, at most 63 characters), got {value!r}")
    if options.allow_dns and not options.dns_labels:
        # An empty pod selector would open port 53 to every pod of the DNS namespace.
        raise ValueError("DNS labels must not be empty: they select the DNS server pods")


def _object(api: tuple[str, str], name: str, options: BaselineOptions, description: str,
            spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": api[0], "kind": api[1],
        "metadata": {"name": name, "namespace": options.namespace, "labels": dict(LABELS),
                     "annotations": {DESCRIPTION: description}},
        "spec": spec,
    }


def _dns_target(options: BaselineOptions) -> str:
    labels = ",".join(f"{k}={v}" for k, v in options.dns_labels.items())
    return f"the cluster DNS (pods {labels} in namespace {options.dns_namespace})"


# --- Kubernetes NetworkPolicy -------------------------------------------------------------------

def _k8s_default_deny(options: BaselineOptions) -> dict[str, Any]:
    return _object(_K8S_API, "default-deny", options,
                   f"Isolates every pod in {options.namespace} for ingress and egress: only traffic another "
                   "policy allows gets through.",
                   {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})


def _k8s_allow_dns(options: BaselineOptions) -> dict[str, Any]:
    peer = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: options.dns_namespace}},
            "podSelector": {"matchLabels": dict(options.dns_labels)}}
    return _object(_K8S_API, "allow-dns", options,
                   f"Lets every pod in {options.namespace} query {_dns_target(options)} on port 53, UDP and TCP.",
                   {"podSelector": {}, "policyTypes": ["Egress"],
                    "egress": [{"to": [peer], "ports": [{"protocol": "UDP", "port": 53},
                                                        {"protocol": "TCP", "port": 53}]}]})


def _k8s_allow_same_namespace(options: BaselineOptions) -> dict[str, Any]:
    return _object(_K8S_API, "allow-same-namespace", options,
                   f"Allows traffic between the pods of {options.namespace}, in both directions; "
                   "traffic to and from other namespaces stays denied.",
                   {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]})


# --- CiliumNetworkPolicy ------------------------------------------------------------------------

def _cilium_default_deny(options: BaselineOptions) -> dict[str, Any]:
    return _object(_CILIUM_API, "default-deny", options,
                   f"Isolates every endpoint in {options.namespace} for ingress and egress: the empty rules "
                   "select the endpoints into default deny without allowing anything.",
                   {"endpointSelector": {}, "enableDefaultDeny": {"ingress": True, "egress": True},
                    "ingress": [{}], "egress": [{}]})


def _cilium_allow_dns(options: BaselineOptions) -> dict[str, Any]:
    endpoint = {f"k8s:{CILIUM_NAMESPACE_LABEL}": options.dns_namespace,
                **{f"k8s:{k}": v for k, v in options.dns_labels.items()}}
    return _object(_CILIUM_API, "allow-dns", options,
                   f"Lets every endpoint in {options.namespace} query {_dns_target(options)} on port 53; the "
                   "L7 DNS rule sends lookups through Cilium's DNS proxy so toFQDNs rules work.",
                   {"endpointSelector": {},
                    "egress": [{"toEndpoints": [{"matchLabels": endpoint}],
                                "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
                                             "rules": {"dns": [{"matchPattern": "*"}]}}]}]})


def _cilium_allow_same_namespace(options: BaselineOptions) -> dict[str, Any]:
    return _object(_CILIUM_API, "allow-same-namespace", options,
                   f"Allows traffic between the endpoints of {options.namespace}, in both directions; "
                   "traffic to and from other namespaces stays denied.",
                   {"endpointSelector": {}, "ingress": [{"fromEndpoints": [{}]}], "egress": [{"toEndpoints": [{}]}]})


# --- ClusterNetworkPolicy (network-policy-api) -------------------------------------------------------

def _cnp(name: str, options: BaselineOptions, description: str, priority: int,
         rules: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    tier = _CNP_TIERS[options.flavor]
    spec = {"tier": tier, "priority": priority,
            "subject": {"namespaces": {"matchLabels": {NAMESPACE_NAME_LABEL: options.namespace}}}, **rules}
    return {
        "apiVersion": _CNP_API[0], "kind": _CNP_API[1],
        "metadata": {"name": f"{options.namespace}-{name}", "labels": dict(LABELS),
                     "annotations": {DESCRIPTION: description}},
        "spec": spec,
    }


def _cnp_default_deny(options: BaselineOptions) -> dict[str, Any]:
    tier = _CNP_TIERS[options.flavor]
    when = ("before every NetworkPolicy: no NetworkPolicy can open what it denies" if tier == "Admin" else
            "after NetworkPolicy: it denies what no NetworkPolicy allows")
    return _cnp("default-deny", options,
                f"Denies all ingress from pods and all egress of every pod in {options.namespace} ({tier} tier, "
                f"evaluated {when}); ClusterNetworkPolicy ingress peers are pods only.",
                _CNP_DENY_PRIORITY,
                {"ingress": [{"name": "deny-all-ingress", "action": "Deny", "from": [{"namespaces": {}}]}],
                 "egress": [{"name": "deny-all-egress", "action": "Deny",
                             "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]}]})


def _cnp_allow_dns(options: BaselineOptions) -> dict[str, Any]:
    peer = {"pods": {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: options.dns_namespace}},
                     "podSelector": {"matchLabels": dict(options.dns_labels)}}}
    return _cnp("allow-dns", options,
                f"Lets every pod in {options.namespace} query {_dns_target(options)} on port 53, UDP and TCP "
                "(evaluated before the deny-all: a lower priority).",
                _CNP_ALLOW_PRIORITY,
                {"egress": [{"name": "allow-dns", "action": "Accept", "to": [peer],
                             "protocols": [{"udp": {"destinationPort": {"number": 53}}},
                                           {"tcp": {"destinationPort": {"number": 53}}}]}]})


def _cnp_allow_same_namespace(options: BaselineOptions) -> dict[str, Any]:
    own = {"namespaces": {"matchLabels": {NAMESPACE_NAME_LABEL: options.namespace}}}
    return _cnp("allow-same-namespace", options,
                f"Allows traffic between the pods of {options.namespace}, in both directions (evaluated before "
                "the deny-all: a lower priority); traffic to and from other namespaces stays denied.",
                _CNP_ALLOW_PRIORITY,
                {"ingress": [{"name": "same-namespace", "action": "Accept", "from": [own]}],
                 "egress": [{"name": "same-namespace", "action": "Accept", "to": [own]}]})


# --- Calico projectcalico.org/v3 NetworkPolicy -----------------------------------------------------------------

def _calico_default_deny(options: BaselineOptions) -> dict[str, Any]:
    return _object(_CALICO_API, "default-deny", options,
                   f"Isolates every endpoint in {options.namespace} for ingress and egress: it selects them and "
                   "has no rule, so the end of the tier denies what no other policy allows.",
                   {"order": _CALICO_DENY_ORDER, "selector": "all()", "types": ["Ingress", "Egress"]})


def _calico_allow_dns(options: BaselineOptions) -> dict[str, Any]:
    pods = " && ".join(f"{k} == '{v}'" for k, v in options.dns_labels.items())
    destination = {"selector": pods, "namespaceSelector": f"projectcalico.org/name == '{options.dns_namespace}'",
                   "ports": [53]}
    return _object(_CALICO_API, "allow-dns", options,
                   f"Lets every endpoint in {options.namespace} query {_dns_target(options)} on port 53, UDP and "
                   "TCP (a lower order than the default deny).",
                   {"order": _CALICO_ALLOW_ORDER, "selector": "all()", "types": ["Egress"],
                    "egress": [{"action": "Allow", "protocol": protocol, "destination": dict(destination)}
                               for protocol in ("UDP", "TCP")]})


def _calico_allow_same_namespace(options: BaselineOptions) -> dict[str, Any]:
    return _object(_CALICO_API, "allow-same-namespace", options,
                   f"Allows traffic between the endpoints of {options.namespace}, in both directions; traffic to and "
                   "from other namespaces stays denied.",
                   {"order": _CALICO_ALLOW_ORDER, "selector": "all()", "types": ["Ingress", "Egress"],
                    "ingress": [{"action": "Allow", "source": {"selector": "all()"}}],
                    "egress": [{"action": "Allow", "destination": {"selector": "all()"}}]})


_CALICO = {"default-deny": _calico_default_deny, "allow-dns": _calico_allow_dns,
           "allow-same-namespace": _calico_allow_same_namespace}
_KUBERNETES = {"default-deny": _k8s_default_deny, "allow-dns": _k8s_allow_dns,
               "allow-same-namespace": _k8s_allow_same_namespace}
_CILIUM = {"default-deny": _cilium_default_deny, "allow-dns": _cilium_allow_dns,
           "allow-same-namespace": _cilium_allow_same_namespace}
_CNP = {"default-deny": _cnp_default_deny, "allow-dns": _cnp_allow_dns,
        "allow-same-namespace": _cnp_allow_same_namespace}
