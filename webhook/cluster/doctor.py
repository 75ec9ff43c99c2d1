"""`netguard doctor`: an installation checked from the outside in, with what to fix.

What the API server needs for netguard to guard every policy change, in the order it needs it:

  webhook-configurations  ValidatingWebhookConfiguration and MutatingWebhookConfiguration exist
  failure-policy          validating fails closed (Fail), mutating fails open (Ignore)
  timeouts                timeoutSeconds as shipped (validating 5, mutating 3): above netguard's budget
  namespace-selector      both skip kube-system and netguard's own namespace (else netguard can block its own repair)
  ca-bundle               each caBundle verifies the serving certificate in the Secret the pods mount
  endpoints               the Service the webhooks call has ready endpoints (EndpointSlices)
  dry-run-review          a harmless NetworkPolicy created with dryRun=All goes through the API server and netguard
  dry-run-denial          an allow-all NetworkPolicy created with dryRun=All is refused (or warned) by netguard

The checks are pure functions over what `read` fetched (webhook.cluster.kube.ApiReader: raw JSON, no models), so
they are tested against objects; `read` is tested against the API server stand-in. A check that cannot
run because an earlier one failed is skipped and says so. Exit status (cli.py): 0 all ok, 1 a FAIL,
2 the cluster could not be read at all.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from webhook.cluster.api_reader import ApiAnswer
from webhook.core.selectors import NAMESPACE_NAME_LABEL, parse_selector
from webhook.core.shape import ShapeError

VALIDATING, MUTATING = "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"
PLURALS = {VALIDATING: "validatingwebhookconfigurations", MUTATING: "mutatingwebhookconfigurations"}
# As shipped in deploy/base and documented in docs/operations.md ("Failure behaviour").
EXPECTED = {VALIDATING: ("Fail", 5), MUTATING: ("Ignore", 3)}
ALWAYS_EXCLUDED = ("kube-system",)  # plus netguard's own namespace (the webhooks' Service namespace)
PROBE_NAME = "netguard-doctor-probe"
PROBE_LABELS = {"netguard.io/doctor": "probe"}
APPLY = "kubectl apply -k <your overlay of deploy/base>"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped (an earlier check failed)
    detail: str
    fix: str = ""

    def line(self) -> str:
        state = "ok  " if self.ok else ("FAIL" if self.ok is False else "skip")
        return f"{state} {self.name}: {self.detail}" + (f"; fix: {self.fix}" if self.fix and not self.ok else "")


@dataclass
class Installation:
    """What `read` fetched. Error answers are kept as ApiAnswer (status, message) for the checks to explain."""

    name: str
    configurations: dict[str, ApiAnswer] = field(default_factory=dict)  # kind -> GET answer
    service: ApiAnswer | None = None
    secret: ApiAnswer | None = None
    secret_name: str = "netguard-tls"
    slices: ApiAnswer | None = None
    probe_namespace: str = "default"
    harmless: ApiAnswer | None = None  # dry-run create of a default-deny policy
    allow_all: ApiAnswer | None = None  # dry-run create of an allow-all egress policy

    def configuration(self, kind: str) -> dict[str, Any] | None:
        answer = self.configurations.get(kind)
        return answer.body if answer is not None and answer.status == 200 else None

    def service_ref(self) -> tuple[str, str] | None:
        """(namespace, name) of the Service the validating webhook calls (else the mutating one)."""
        for kind in (VALIDATING, MUTATING):
            for webhook in _webhooks(self.configuration(kind)):
                service = (webhook.get("clientConfig") or {}).get("service")
                if isinstance(service, dict) and service.get("namespace") and service.get("name"):
                    return str(service["namespace"]), str(service["name"])
        return None


class Reader(Protocol):
    def request(self, method: str, path: str, query: list[tuple[str, str]] | None = None,
                body: dict[str, Any] | None = None) -> ApiAnswer: ...


def probe_policy(namespace: str, allow_all: bool) -> dict[str, Any]:
    """A NetworkPolicy for the dry-run: a default deny for the probe's pods, or one allowing all their egress."""
    spec: dict[str, Any] = {"podSelector": {"matchLabels": dict(PROBE_LABELS)}}
    if allow_all:
        spec.update(policyTypes=["Egress"], egress=[{}])
    else:
        spec.update(policyTypes=["Ingress", "Egress"])
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": PROBE_NAME + ("-allow-all" if allow_all else ""), "namespace": namespace,
                         "labels": dict(PROBE_LABELS)},
            "spec": spec}


def read(reader: Reader, name: str = "netguard", *, secret_name: str = "netguard-tls",
         probe_namespace: str = "default") -> Installation:
    """Everything the checks need, read through the API server (dry runs store nothing)."""
    found = Installation(name=name, secret_name=secret_name, probe_namespace=probe_namespace)
    for kind, plural in PLURALS.items():
        found.configurations[kind] = reader.request("GET", f"/apis/admissionregistration.k8s.io/v1/{plural}/{name}")
    ref = found.service_ref()
    if ref is not None:
        namespace, service = ref
        found.service = reader.request("GET", f"/api/v1/namespaces/{namespace}/services/{service}")
        found.secret = reader.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{secret_name}")
        found.slices = reader.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                                      [("labelSelector", f"kubernetes.io/service-name={service}")])
    path = f"/apis/networking.k8s.io/v1/namespaces/{probe_namespace}/networkpolicies"
    found.harmless = reader.request("POST", path, [("dryRun", "All")], probe_policy(probe_namespace, False))
    found.allow_all = reader.request("POST", path, [("dryRun", "All")], probe_policy(probe_namespace, True))
    return found


# -- the checks ---------------------------------------------------------------------------------------------


def _webhooks(configuration: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    hooks = (configuration or {}).get("webhooks")
    return [w for w in hooks if isinstance(w, dict)] if isinstance(hooks, list) else []


def _message(answer: ApiAnswer) -> str:
    message = answer.body.get("message")
    return str(message) if message else f"HTTP {answer.status}"


def check_configurations(found: Installation) -> Check:
    missing = []
    for kind in PLURALS:
        answer = found.configurations.get(kind)
        if answer is None or answer.status != 200:
            why = "not found" if answer is None or answer.status == 404 else _message(answer)
            missing.append(f"{kind} {found.name} ({why})")
        elif not _webhooks(answer.body):
            missing.append(f"{kind} {found.name} (no webhooks)")
    if missing:
        return Check("webhook-configurations", False, "missing: " + ", ".join(missing),
                     f"apply the manifests ({APPLY}), or pass --name if they are named otherwise")
    return Check("webhook-configurations", True, f"{VALIDATING} and {MUTATING} {found.name} present")


def _per_webhook(found: Installation, name: str, judge: Callable[[str, dict[str, Any]], str | None],
                 good: str, fix: str) -> Check:
    if not all(found.configuration(k) for k in PLURALS):
        return Check(name, None, "needs both webhook configurations")
    problems = [p for kind in PLURALS for w in _webhooks(found.configuration(kind)) if (p := judge(kind, w))]
    if problems:
        return Check(name, False, "; ".join(problems), fix)
    return Check(name, True, good)


def _expect(field: str, index: int, default: Any) -> Callable[[str, dict[str, Any]], str | None]:
    """A judge of one webhook field against EXPECTED[kind][index]; `default` is the API server's."""
    def judge(kind: str, webhook: dict[str, Any]) -> str | None:
        expected, actual = EXPECTED[kind][index], webhook.get(field, default)
        return None if actual == expected else f"{webhook.get('name')} has {field} {actual}, expected {expected}"
    return judge


def check_failure_policies(found: Installation) -> Check:
    return _per_webhook(found, "failure-policy", _expect("failurePolicy", 0, "Fail"),
                        "validating Fail (fails closed), mutating Ignore",
                        "set failurePolicy back (validating Fail: guardrails that silently disappear are worse "
                        f"than a paused change; mutating Ignore: annotations are only a record), e.g. {APPLY}")


def check_timeouts(found: Installation) -> Check:
    return _per_webhook(found, "timeouts", _expect("timeoutSeconds", 1, 10), "validating 5 s, mutating 3 s",
                        "set timeoutSeconds as shipped (netguard answers within engine.budget_seconds, 2 s, "
                        f"below them; docs/operations.md), e.g. {APPLY}")


def selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """A namespaceSelector applied as the API server applies it (missing or empty: every namespace). One the
    API server would not have stored counts as selecting: the worst case for a lock-out check."""
    try:
        return parse_selector(selector, "namespaceSelector").matches(labels)
    except ShapeError:
        return True


def check_namespace_selectors(found: Installation) -> Check:
    ref = found.service_ref()
    own = ref[0] if ref else "netguard"
    excluded = (*ALWAYS_EXCLUDED, own)

    def judge(kind: str, webhook: dict[str, Any]) -> str | None:
        reviewed = [ns for ns in excluded if selects(webhook.get("namespaceSelector"), {NAMESPACE_NAME_LABEL: ns})]
        if reviewed:
            return f"{webhook.get('name')} does not exclude {', '.join(reviewed)}"
        return None

    return _per_webhook(found, "namespace-selector", judge, f"both webhooks skip {', '.join(excluded)}",
                        "restore the namespaceSelector (matchExpressions: kubernetes.io/metadata.name NotIn "
                        f"[{', '.join(sorted(excluded))}]) so netguard can never block its own repair, e.g. {APPLY}")


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer` signed `cert` (names and signature; ECDSA, RSA PKCS#1 v1.5 and Ed25519 keys)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _chains_to(chain: list[x509.Certificate], roots: Iterable[x509.Certificate]) -> bool:
    """The serving chain (leaf first, then any intermediates) ends at, or is issued by, one of `roots`."""
    roots = list(roots)
    for index, cert in enumerate(chain):
        if index and not _issued_by(chain[index - 1], cert):
            return False
        if any(_issued_by(cert, root) or cert == root for root in roots):
            return True
    return False


def check_ca_bundles(found: Installation, now: datetime.datetime | None = None) -> Check:
    name = "ca-bundle"
    if not all(found.configuration(k) for k in PLURALS) or found.secret is None:
        return Check(name, None, "needs both webhook configurations")
    ref = found.service_ref()
    namespace = ref[0] if ref else "netguard"
    where = f"Secret {namespace}/{found.secret_name}"
    if found.secret.status != 200:
        return Check(name, False, f"cannot read {where}: {_message(found.secret)}",
                     "create the serving certificate Secret (netguard certs generate + kubectl create secret tls, "
                     "or the cert-manager overlay), or run doctor as someone who may get it (--secret for another "
                     "name)")
    encoded = (found.secret.body.get("data") or {}).get("tls.crt", "")
    try:
        chain = _pem_certificates(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        chain = []
    if not chain:
        return Check(name, False, f"{where} holds no PEM certificate in tls.crt",
                     "recreate the Secret from netguard certs generate (or let cert-manager issue it)")
    leaf = chain[0]
    now = now or datetime.datetime.now(datetime.UTC)
    problems = []
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        problems.append(f"the serving certificate in {where} is not valid now (valid "
                        f"{leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})")
    if ref is not None:
        try:
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
        host = f"{ref[1]}.{ref[0]}.svc"
        if host not in names:
            problems.append(f"the serving certificate does not name {host} (it names {', '.join(names) or 'nothing'})")
    for kind in PLURALS:
        for webhook in _webhooks(found.configuration(kind)):
            bundle = str((webhook.get("clientConfig") or {}).get("caBundle") or "")
            try:
                roots = _pem_certificates(base64.b64decode(bundle, validate=True)) if bundle else []
            except (binascii.Error, ValueError):
                roots = []
            if not roots:
                problems.append(f"{webhook.get('name')} has {'no' if not bundle else 'an unreadable'} caBundle")
            elif not _chains_to(chain, roots):
                problems.append(f"{webhook.get('name')}'s caBundle does not verify the serving certificate in {where}")
    if problems:
        return Check(name, False, "; ".join(problems),
                     "install the CA that signed the serving certificate: netguard certs install --ca ca.crt "
                     "--cluster (or cert-manager's CA injector), or reissue the certificate for the Service name")
    return Check(name, True, f"every caBundle verifies the serving certificate in {where}")


def check_endpoints(found: Installation) -> Check:
    name = "endpoints"
    ref = found.service_ref()
    if ref is None or found.service is None or found.slices is None:
        return Check(name, None, "needs the webhook configurations (to know the Service)")
    namespace, service = ref
    fix = f"kubectl -n {namespace} get pods,endpointslices; kubectl -n {namespace} logs deploy/{service} (/readyz " \
          "says why a pod is not ready: policies that do not compile, an engine that does not answer, no cluster sync)"
    if found.service.status != 200:
        return Check(name, False, f"Service {namespace}/{service} the webhooks call: {_message(found.service)}",
                     f"apply the manifests ({APPLY})")
    if found.slices.status != 200:
        return Check(name, False, f"cannot list the EndpointSlices of {namespace}/{service}: "
                     f"{_message(found.slices)}", "run doctor as someone who may list endpointslices there")
    ready = 0
    for item in found.slices.body.get("items") or []:
        for endpoint in (item or {}).get("endpoints") or []:
            if ((endpoint or {}).get("conditions") or {}).get("ready", True) is not False:
                ready += 1
    if not ready:
        return Check(name, False, f"Service {namespace}/{service} has no ready endpoints", fix)
    return Check(name, True, f"Service {namespace}/{service} has {ready} ready endpoint{'s' * (ready != 1)}")


def _webhook_unreachable(answer: ApiAnswer) -> bool:
    return "failed calling webhook" in _message(answer)


def check_dry_run_review(found: Installation) -> Check:
    name = "dry-run-review"
    answer = found.harmless
    if answer is None:
        return Check(name, None, "not run")
    what = f"a default-deny NetworkPolicy (dryRun=All) in {found.probe_namespace}"
    if answer.status in (200, 201):
        return Check(name, True, f"the API server accepted {what}")
    message = _message(answer)
    if _webhook_unreachable(answer):
        return Check(name, False, f"the API server could not call netguard: {message}",
                     "let the API server reach the pods (the apiserver-ingress component's CIDR, or the "
                     "Cilium variant), check the caBundle and the Service's endpoints above")
    if answer.status in (401, 403) and "admission webhook" not in message:
        return Check(name, False, f"not allowed to create {what}: {message}",
                     "run doctor as someone who may create networkpolicies there, or pass --namespace")
    return Check(name, False, f"{what} was refused: {message}",
                 "read the message: a harmless policy should pass; check netguard's configuration and logs")


def check_dry_run_denial(found: Installation) -> Check:
    name = "dry-run-denial"
    answer = found.allow_all
    if answer is None or found.harmless is None or found.harmless.status not in (200, 201):
        return Check(name, None, "needs dry-run-review")
    what = f"an allow-all egress NetworkPolicy (dryRun=All) in {found.probe_namespace}"
    message = _message(answer)
    if answer.status not in (200, 201):
        if "netguard" in message and "admission webhook" in message:
            return Check(name, True, f"netguard denied {what}")
        return Check(name, False, f"{what} was refused, but not by netguard: {message}",
                     "read the message")
    if any("netguard" in w or "no-allow-all-egress" in w for w in answer.warnings):
        return Check(name, True, f"netguard warned on {what} (dry_run or warn mode: it is not enforced)")
    return Check(name, False, f"the API server accepted {what} and netguard said nothing",
                 f"make the validating webhook's rules cover networkpolicies and its namespaceSelector select "
                 f"{found.probe_namespace} ({APPLY}); check that no-allow-all-egress is not off for it")


def run_checks(found: Installation, now: datetime.datetime | None = None) -> list[Check]:
    return [check_configurations(found), check_failure_policies(found), check_timeouts(found),
            check_namespace_selectors(found), check_ca_bundles(found, now), check_endpoints(found),
            check_dry_run_review(found), check_dry_run_denial(found)]
