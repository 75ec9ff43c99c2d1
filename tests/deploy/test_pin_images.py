"""Third-party images are pinned by digest (issue 11, point 7), and deploy/pin_images.py keeps them so.

No registry is reachable where the tests run, so resolving is tested with a stand-in resolver; the
script's `crane digest` / `docker buildx imagetools inspect` calls run only where a registry is.
The python base of the Dockerfile is not pinned yet (no registry here to resolve its digest, and a
digest is never typed in by hand): `deploy/pin_images.py --check` reports it, and the test below
allows that one reference only, so any new unpinned image still fails.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.conftest import BUILDS, DEPLOY, REPO, build, containers, pod_specs
from tests.deploy.dockerfile import parse_dockerfile


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pin_images", DEPLOY / "pin_images.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["pin_images"] = module
    spec.loader.exec_module(module)
    return module


pin_images = _script()
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def test_every_third_party_image_the_manifests_deploy_is_pinned_by_digest() -> None:
    """netguard's own image is set per release (kustomize edit set image) and is not third-party."""
    seen = set()
    for target in BUILDS:
        for name, pod in pod_specs(build(target)):
            for container in containers(pod):
                image = container["image"]
                if container["name"] in ("netguard", "audit"):
                    continue
                seen.add(image.partition("@")[0])
                assert "@sha256:" in image, f"deploy/{target} {name}: {image} is not pinned by digest"
                assert pin_images.DIGEST.match(image.partition("@")[2]), image
    assert seen == {"openpolicyagent/opa:1.4.2-static", "registry.k8s.io/kubectl:v1.34.1"}


def test_the_repository_has_no_unpinned_reference_but_the_python_base_it_could_not_resolve() -> None:
    missing = {(r.file.name, r.tagged) for r in pin_images.unpinned(pin_images.find_refs(REPO))}
    assert missing <= {("Dockerfile", "python:3.11-slim")}


def _tree(root: Path) -> None:
    (root / "deploy/overlays/x").mkdir(parents=True)
    (root / "deploy/base").mkdir(parents=True)
    (root / "Dockerfile").write_text("# build\nFROM python:3.11-slim AS builder\nRUN true\n\n"
                                     "FROM --platform=linux/amd64 python:3.11-slim\nCOPY --from=builder /a /a\n"
                                     "FROM builder AS again\n")
    (root / "deploy/overlays/x/kustomization.yaml").write_text(
        "resources:\n  - ../../base\n# pinned\nimages:\n  - name: netguard\n    newTag: 0.1.0\n"
        "  - name: openpolicyagent/opa\n    newTag: 1.4.2-static\n  - name: registry.k8s.io/kubectl\n"
        f"    newTag: v1.34.1\n    digest: {DIGEST_B}\npatches:\n  - path: p.yaml\n")
    (root / "deploy/base/job.yaml").write_text(
        "spec:\n  containers:\n    - name: a\n      image: openpolicyagent/opa\n    - name: b\n"
        "      image: busybox:1.36  # literal\n    - name: c\n      image: netguard\n")


def test_check_lists_each_unpinned_reference_with_its_place(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _tree(tmp_path)
    assert pin_images.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" is not")[0] for line in err] == [
        "Dockerfile:2: python:3.11-slim", "Dockerfile:5: python:3.11-slim",
        "deploy/overlays/x/kustomization.yaml:7: openpolicyagent/opa:1.4.2-static",
        "deploy/base/job.yaml:6: busybox:1.36"]


def test_pin_writes_the_resolved_digests_in_place_and_check_then_passes(tmp_path: Path) -> None:
    _tree(tmp_path)
    asked: list[str] = []

    def resolve(ref: str) -> str:
        asked.append(ref)
        return DIGEST_A

    changed = pin_images.pin(tmp_path, resolve)
    assert sorted(asked) == ["busybox:1.36", "openpolicyagent/opa:1.4.2-static", "python:3.11-slim",
                             "python:3.11-slim"]
    assert len(changed) == 4
    assert pin_images.unpinned(pin_images.find_refs(tmp_path)) == []
    dockerfile = (tmp_path / "Dockerfile").read_text()
    assert f"FROM python:3.11-slim@{DIGEST_A} AS builder\n" in dockerfile
    assert f"FROM --platform=linux/amd64 python:3.11-slim@{DIGEST_A}\n" in dockerfile
    assert parse_dockerfile(dockerfile)[0].base == f"python:3.11-slim@{DIGEST_A}"  # as docker reads it
    kustomization = (tmp_path / "deploy/overlays/x/kustomization.yaml").read_text()
    assert f"  - name: openpolicyagent/opa\n    newTag: 1.4.2-static\n    digest: {DIGEST_A}\n" in kustomization
    assert f"    newTag: v1.34.1\n    digest: {DIGEST_B}\npatches:" in kustomization  # already pinned: kept
    assert "# pinned\n" in kustomization
    assert f"image: busybox:1.36@{DIGEST_A}  # literal" in (tmp_path / "deploy/base/job.yaml").read_text()
    assert pin_images.pin(tmp_path, resolve) == []  # nothing left to do


def test_update_replaces_a_digest_and_verify_reports_a_rebuilt_tag(tmp_path: Path) -> None:
    _tree(tmp_path)
    pin_images.pin(tmp_path, lambda ref: DIGEST_A)
    stale = pin_images.verify(tmp_path, lambda ref: DIGEST_B)
    assert {r.tagged for r, _ in stale} == {"python:3.11-slim", "openpolicyagent/opa:1.4.2-static", "busybox:1.36"}
    pin_images.pin(tmp_path, lambda ref: DIGEST_B, update=True)
    assert pin_images.verify(tmp_path, lambda ref: DIGEST_B) == []
    kustomization = (tmp_path / "deploy/overlays/x/kustomization.yaml").read_text()
    assert kustomization.count("digest:") == 2 and DIGEST_A not in kustomization


def test_resolving_without_crane_or_docker_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(pin_images.shutil, "which", lambda name: None)
    _tree(tmp_path)
    assert pin_images.main(["--root", str(tmp_path)]) == 2
    assert "neither crane nor docker" in capsys.readouterr().err
