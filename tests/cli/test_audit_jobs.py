"""`netguard audit --jobs`: the same report from worker processes as from one, and each policy normalized once.

The corpus has a bit of everything the report shows: findings of several guardrails, a signed exception,
workloads with and without policies, namespaces with and without a default-deny baseline, a clusterwide
policy, a List, identical documents (the verdict cache answers the second), an excluded namespace, and
documents and files that cannot be read. It is large enough for the audit to use two processes.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from webhook.cli import main
from webhook.config import from_mapping
from webhook.core import exceptions
from webhook.core.posture import default_deny, has_default_deny
from webhook.core.shape import ShapeError
from webhook.core.snapshot import ClusterSnapshot
from webhook.offline import audit as audit_mod
from webhook.offline import fanout
from webhook.offline.inventory import from_documents
from webhook.offline.sources import read_paths
from webhook.pipeline import Pipeline, build_pipeline

REPO = Path(__file__).resolve().parents[2]
POLICIES = 240
NAMESPACES = 6


def _policy(i: int, token: str) -> str:
    ns = f"ns-{i % NAMESPACES}"
    head = f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p-{i}\n  namespace: {ns}\n"
    shape = i % 10
    if shape == 0:  # allow-all egress: several findings, attributed by annotation
        return (head + "  annotations: {netguard.io/last-modified-by: bob}\n"
                "spec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - {}\n")
    if shape == 1:  # the internet on one port
        return (head + "spec:\n  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n  egress:\n"
                "  - to: [{ipBlock: {cidr: 0.0.0.0/0}}]\n    ports: [{protocol: TCP, port: 443}]\n")
    if shape == 2:  # every namespace
        return (head + "spec:\n  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Ingress]\n  ingress:\n"
                "  - from: [{namespaceSelector: {}}]\n")
    if shape == 3:  # the metadata address
        return (head + "spec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n"
                "  - to: [{ipBlock: {cidr: 169.254.169.254/32}}]\n")
    if shape == 4 and i % 20 == 4:  # default deny, in half the namespaces
        return head + "spec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"
    if shape == 5:  # a signed exception for no-allow-all-egress
        return (head.replace(f"name: p-{i}", f"name: exc-{i}")
                + f"  annotations: {{netguard.io/exception: {token}}}\n"
                "spec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - {}\n")
    if shape == 6:
        return (f"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: cnp-{i}\n"
                f"  namespace: {ns}\nspec:\n  endpointSelector: {{matchLabels: {{app: web}}}}\n  egress:\n"
                "  - toEntities: [world]\n  - toFQDNs: [{matchName: api.example.com}]\n"
                "    toPorts: [{ports: [{port: '443', protocol: TCP}]}]\n")
    if shape == 7:  # malformed: an input error
        return head + "spec:\n  podSelector: 5\n"
    return (head + f"spec:\n  podSelector: {{matchLabels: {{app: app-{i}}}}}\n  policyTypes: [Ingress]\n"
            f"  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: client-{i}}}}}}}]\n")


def write_corpus(root: Path, token: str) -> None:
    root.mkdir()
    for n in range(NAMESPACES):
        (root / f"ns-{n}.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{n}\n"
                                           f"  labels: {{team: t{n % 2}}}\n")
        (root / f"workloads-{n}.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: ns-{n}}}\n"
            "spec: {template: {metadata: {labels: {app: web}}}}\n---\n"
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: batch, namespace: ns-{n}}}\n"
            "spec: {template: {metadata: {labels: {app: batch}}}}\n")
    (root / "lonely.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: solo, namespace: lonely}\n")
    folder = root / "policies"
    folder.mkdir()
    for i in range(POLICIES):
        (folder / f"p-{i:04d}.yaml").write_text(_policy(i, token))
    (folder / "same-a.yaml").write_text(_policy(11, token).replace("p-11", "twin"))
    (folder / "same-b.yaml").write_text(_policy(11, token).replace("p-11", "twin"))
    (root / "clusterwide.yaml").write_text(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: deny-egress}\n"
        "spec:\n  endpointSelector: {matchLabels: {'k8s:io.kubernetes.pod.namespace': ns-1}}\n"
        "  egressDeny: [{toEntities: [world]}]\n")
    (root / "list.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: l1, namespace: ns-2},\n"
        "   spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}}\n"
        "- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: l2},\n"
        "   spec: {podSelector: {}, ingress: [{}]}}\n")
    (root / "kube-system.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: sys, namespace: kube-system}\n"
        "spec: {podSelector: {}, egress: [{}]}\n")
    (root / "broken.yaml").write_text("kind: NetworkPolicy\nmetadata: {name: [\n")
    (root / "latin1.yaml").write_bytes(b"kind: NetworkPolicy\nmetadata: {name: caf\xe9}\n")
    (root / "no-api-version.yaml").write_text("kind: NetworkPolicy\nmetadata: {name: x, namespace: ns-0}\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The manifests folder and a configuration that trusts the exception's signing key."""
    base = tmp_path_factory.mktemp("audit-jobs")
    key = Ed25519PrivateKey.generate()
    token = exceptions.sign(key, "sec", rules=["no-allow-all-egress"], namespace="ns-*", name="exc-*",
                            kind="NetworkPolicy", expires=date.today() + timedelta(days=60), reason="approved",
                            ticket="SEC-7")
    write_corpus(base / "manifests", token)
    config = base / "netguard.yaml"
    config.write_text(json.dumps({
        "policies_dir": str(REPO / "policies"),
        "exception_keys": [{"id": "sec", "public_key": exceptions.public_key_text(key.public_key())}]}))
    return base / "manifests", config


def run_audit(corpus: tuple[Path, Path], fmt: str, *jobs: str, capsys: pytest.CaptureFixture[str]) -> str:
    manifests, config = corpus
    assert main(["audit", "--from", str(manifests), "--config", str(config), "--format", fmt, *jobs]) == 0
    return capsys.readouterr().out


def test_two_processes_give_the_report_of_one(corpus: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert fanout.workers_for(POLICIES, 2) == 2  # the corpus is large enough to be shared out
    one = json.loads(run_audit(corpus, "json", "--jobs", "1", capsys=capsys))
    two = json.loads(run_audit(corpus, "json", "--jobs", "2", capsys=capsys))
    default = json.loads(run_audit(corpus, "json", capsys=capsys))
    for report in (one, two, default):
        del report["generated_at"]
    assert two == one and default == one
    # ...and the report has something in every part that the processes work out.
    summary, posture = one["summary"], one["posture"]
    assert summary["enforce"] and summary["audit"] and summary["errors"] >= 4
    assert {f["last_changed_by"] for f in one["findings"]} >= {"bob", "unknown"}
    assert posture["exceptions"]["count"] == 1
    assert posture["internet_egress_all_ports"]["count"] and posture["internet_egress_ports_limited"]["count"]
    assert posture["all_namespaces"]["count"] and posture["metadata"]["count"]
    assert 0 < posture["no_default_deny_ingress"]["count"] < NAMESPACES
    assert "ns-1" not in posture["no_default_deny_egress"]["namespaces"]  # the clusterwide baseline
    assert posture["workloads"]["without_ingress_policy"]
    assert posture["workloads"]["without_egress_policy"] == [{"namespace": "lonely", "kind": "Pod", "name": "solo"}]
    assert run_audit(corpus, "csv", "--jobs", "2", capsys=capsys) == run_audit(corpus, "csv", "--jobs", "1",
                                                                               capsys=capsys)


def audit_pipeline(corpus: tuple[Path, Path]) -> Pipeline:
    return build_pipeline(from_mapping(json.loads(corpus[1].read_text())))


def test_each_policy_is_modelled_once(corpus: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The posture reads the model each review built (Review.policy): Pipeline.model once per policy."""
    documents, errors = read_paths([str(corpus[0])])
    inventory = from_documents(documents, errors, "test")
    pipeline = audit_pipeline(corpus)
    calls: list[Any] = []
    model = Pipeline.model

    def counting(self: Pipeline, obj: Any, snapshot: Any) -> Any:
        calls.append(obj)
        return model(self, obj, snapshot)

    monkeypatch.setattr(Pipeline, "model", counting)
    report = audit_mod.audit(pipeline, inventory, jobs=1)
    # Reviewed ones by their review (the twins both: a review against the inventory is not cached), the one in an
    # excluded namespace for the posture; not the document without an apiVersion, which is not reviewed at all.
    no_api_version = [d for d in inventory.policies if "apiVersion" not in d.obj]
    assert len(no_api_version) == 1
    def texts(objs: Iterable[Any]) -> list[str]:
        return sorted(json.dumps(o, sort_keys=True) for o in objs)

    assert texts(calls) == texts(d.obj for d in inventory.policies if d not in no_api_version)
    assert report.policies == len(inventory.policies) - 1 - sum(1 for e in report.errors if "podSelector" in e.message)


def test_default_deny_is_judged_over_every_policy(corpus: tuple[Path, Path]) -> None:
    """The posture asks has_default_deny only about the policies that can be a baseline, each in its own
    namespace: the figures are those of asking it about every policy for every namespace."""
    documents, errors = read_paths([str(corpus[0])])
    inventory = from_documents(documents, errors, "test")
    pipeline = audit_pipeline(corpus)
    policies = []
    for doc in inventory.policies:
        try:
            policies.append(pipeline.model(doc.obj, pipeline.snapshot())[0])
        except ShapeError:  # the malformed ones
            continue
    labels = inventory.namespace_labels()
    posture = audit_mod.audit(pipeline, inventory, jobs=2).posture
    for direction, figure in (("ingress", posture.no_default_deny_ingress),
                              ("egress", posture.no_default_deny_egress)):
        assert figure == tuple(n for n in posture.namespaces
                               if not has_default_deny(n, direction, policies, labels))
    assert 0 < len(posture.no_default_deny_egress) < len(posture.namespaces)


def test_one_snapshot_of_the_inventory_serves_every_review(corpus: tuple[Path, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Built once per audit, in the parent (the workers inherit it), from what can be read; it knows the namespaces
    and their labels, not the CiliumCIDRGroups (the inventory lists none: a reference stays "cannot be judged")."""
    documents, errors = read_paths([str(corpus[0])])
    inventory = from_documents(documents, errors, "test")
    built: list[ClusterSnapshot] = []
    real = audit_mod.inventory_snapshot

    def counting(*args: Any) -> ClusterSnapshot:
        built.append(real(*args))
        return built[-1]

    monkeypatch.setattr(audit_mod, "inventory_snapshot", counting)
    audit_mod.audit(audit_pipeline(corpus), inventory, jobs=2)
    (snapshot,) = built
    assert snapshot.usable and snapshot.cidr_groups() is None
    assert snapshot.labels("ns-1") == {"kubernetes.io/metadata.name": "ns-1", "team": "t1"}
    readable = [d for d in inventory.policies if "apiVersion" in d.obj and d.obj["spec"].get("podSelector") != 5]
    assert len(snapshot.policies) == len({(d.obj["kind"], d.namespace, d.obj["metadata"]["name"]) for d in readable})


def test_the_snapshot_judges_default_deny_as_posture_does(corpus: tuple[Path, Path]) -> None:
    """ClusterSnapshot.default_deny looks only at the policies that can be a baseline: the answer is posture's
    over every policy of the namespace, also with a policy taken away or added (a request's own)."""
    documents, errors = read_paths([str(corpus[0])])
    inventory = from_documents(documents, errors, "test")
    snapshot = audit_mod.inventory_snapshot(inventory)
    labels = snapshot.namespaces
    stored = list(snapshot.policies.values())
    assert any(p.clusterwide for p in stored)
    for namespace in [*labels, "elsewhere"]:
        relevant = snapshot.relevant(namespace)
        assert snapshot.default_deny(namespace) == default_deny(namespace, relevant, labels)
        for policy in relevant:
            key = (policy.kind, policy.namespace, policy.name)
            rest = [p for p in relevant if (p.kind, p.namespace, p.name) != key]
            assert snapshot.default_deny(namespace, without=key) == default_deny(namespace, rest, labels)
            assert snapshot.default_deny(namespace, without=key, adding=policy) == \
                default_deny(namespace, [*rest, policy], labels)
    assert 0 < sum(d["ingress"] for d in map(snapshot.default_deny, labels)) < len(labels)


def test_an_error_in_a_worker_reaches_the_caller(corpus: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    documents, errors = read_paths([str(corpus[0])])
    inventory = from_documents(documents, errors, "test")
    pipeline = audit_pipeline(corpus)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(audit_mod, "review_document", broken)  # the workers are forked after this
    with pytest.raises(RuntimeError, match="boom"):
        audit_mod.audit(pipeline, inventory, jobs=2)


def test_reading_in_processes_gives_the_same_documents_and_errors(corpus: tuple[Path, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "MIN_PER_JOB", 1)
    paths = [str(corpus[0] / "broken.yaml"), str(corpus[0]), str(corpus[0] / "missing.yaml"),
             str(corpus[0] / "list.yaml")]
    docs, errors = read_paths(paths)
    parallel_docs, parallel_errors = read_paths(paths, jobs=2)
    assert parallel_errors == errors and len(errors) == 4  # broken twice, latin1, missing
    assert [(d.source, d.index, d.obj, d.line, dict(d.positions)) for d in parallel_docs] == \
        [(d.source, d.index, d.obj, d.line, dict(d.positions)) for d in docs]
    assert parallel_docs[0].position("metadata.name") == docs[0].position("metadata.name")


def test_a_document_pickles_with_its_positions_read_only(corpus: tuple[Path, Path]) -> None:
    doc = read_paths([str(corpus[0] / "list.yaml")])[0][1]
    copy = pickle.loads(pickle.dumps(doc))
    assert copy == doc and copy.position("spec.ingress[0]") == doc.position("spec.ingress[0]")
    with pytest.raises(TypeError):
        copy.positions["x"] = (1, 1)  # type: ignore[index]


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_must_be_a_positive_number(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "--from", ".", "--jobs", jobs])
    assert exit_.value.code == 2
    assert "not a positive number of processes" in capsys.readouterr().err


def test_the_default_is_capped_by_a_container_cpu_limit(tmp_path: Path) -> None:
    assert fanout._cgroup_cpu_limit(tmp_path) is None  # no cgroup files: the CPUs the process may run on
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert fanout._cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # limits.cpu: 1500m
    assert fanout._cgroup_cpu_limit(tmp_path) == 2
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert fanout._cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert fanout._cgroup_cpu_limit(tmp_path) == 1
    assert 1 <= fanout.default_jobs() <= (os.cpu_count() or 1)


def test_a_killed_worker_is_a_clear_error(corpus: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    def killed(*args: Any, **kwargs: Any) -> Any:
        os._exit(9)  # as the OOM killer would end it

    monkeypatch.setattr(audit_mod, "review_document", killed)
    manifests, config = corpus
    assert main(["audit", "--from", str(manifests), "--config", str(config), "--jobs", "2"]) == 2
    assert "audit worker process ended abruptly" in capsys.readouterr().err
