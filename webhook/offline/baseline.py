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
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from webhook.core.selectors import CILIUM_NAMESPACE_LABEL, NAMESPACE_NAME_LABEL

FLAVORS = ("kubernetes", "cilium")
MARKER = "netguard.io/baseline"
DESCRIPTION = "netguard.io/description"
LABELS = {MARKER: "true", "app.kubernetes.io/managed-by": "netguard"}
_DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_K8S_API = ("networking.k8s.io/v1", "NetworkPolicy")
_CILIUM_API = ("cilium.io/v2", "CiliumNetworkPolicy")


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
    build = _KUBERNETES if options.flavor == "kubernetes" else _CILIUM
    wanted = [("default-deny", True), ("allow-dns", options.allow_dns),
              ("allow-same-namespace", options.allow_same_namespace)]
    return [build[name](options) for name, on in wanted if on]


def render_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML with a header saying what gets applied and who may change it."""
    names = ", ".join(str(o["metadata"]["name"]) for o in objects)
    namespaces = sorted({str(o["metadata"]["namespace"]) for o in objects})
    header = (
        f"# netguard baseline for namespace {', '.join(namespaces)}: {names}.\n"
        "# Default deny isolates every pod in both directions; each allow policy opens only what it names.\n"
        f"# Apply with `kubectl apply -f -`. These objects carry {MARKER}: \"true\": netguard's\n"
        "# protect-baseline guardrail lets only the platform team create, change or delete them.\n"
    )
    docs = [yaml.safe_dump(dict(o), sort_keys=False, default_flow_style=False, width=4096) for o in objects]
    return header + "".join(f"---\n{d}" for d in docs)


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


_KUBERNETES = {"default-deny": _k8s_default_deny, "allow-dns": _k8s_allow_dns,
               "allow-same-namespace": _k8s_allow_same_namespace}
_CILIUM = {"default-deny": _cilium_default_deny, "allow-dns": _cilium_allow_dns,
           "allow-same-namespace": _cilium_allow_same_namespace}
