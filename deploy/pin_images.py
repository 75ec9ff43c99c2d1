#!/usr/bin/env python3
"""Pin the third-party images netguard builds from and deploys with to their digests.

    python3 deploy/pin_images.py --check     # exit 1 listing every reference without @sha256 (CI, offline)
    python3 deploy/pin_images.py             # resolve unpinned references and write the digests in place
    python3 deploy/pin_images.py --update    # re-resolve every reference (a new patch release of the tag)
    python3 deploy/pin_images.py --verify    # compare the pinned digests with what the registry serves now

What it reads: every `FROM` of the Dockerfile (python) and every `images:` entry of the kustomizations
under deploy/ (openpolicyagent/opa, registry.k8s.io/kubectl), plus any literal `image:` in deploy/
that no `images:` entry rewrites. netguard's own image (`netguard`, set with `kustomize edit set
image`) is built by you and is not pinned here. A Dockerfile reference becomes `name:tag@sha256:...`
(the tag stays, for people; the digest decides what is pulled); a kustomization entry gets a
`digest:` next to its `newTag:` (kustomize then writes `name:tag@sha256:...`).

Resolving needs a registry: `crane digest REF` (go-containerregistry) or, failing that,
`docker buildx imagetools inspect REF --format '{{json .Manifest}}'`. Both give the digest of the
multi-platform index, so one pin serves amd64 and arm64. Nothing but the standard library: it runs
before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN_IMAGES = frozenset({"netguard"})  # built from this repository; its tag is set per release
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_FROM = re.compile(r"^(?P<head>\s*FROM\s+(?:--\S+\s+)*)(?P<ref>\S+)(?P<tail>.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Ref:
    file: Path
    line: int  # 1-based, of the FROM or of the images entry's `- name:`
    name: str  # registry/repository, as pulled
    tag: str
    digest: str  # "" when unpinned

    @property
    def tagged(self) -> str:
        return f"{self.name}:{self.tag}" if self.tag else self.name

    def where(self, root: Path) -> str:
        return f"{self.file.relative_to(root)}:{self.line}"


def _split(ref: str) -> tuple[str, str, str]:
    """name, tag, digest of `name[:tag][@digest]` (a registry port is not a tag)."""
    ref, _, digest = ref.partition("@")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:], digest
    return ref, "", digest


def dockerfile_refs(path: Path) -> list[Ref]:
    stages: set[str] = set()
    refs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _FROM.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        ref = match.group("ref")
        alias = re.search(r"\bAS\s+(\S+)", match.group("tail"), re.IGNORECASE)
        if ref not in stages and ref != "scratch" and "$" not in ref:
            refs.append(Ref(path, number, *_split(ref)))
        if alias:
            stages.add(alias.group(1))
    return refs


def _kustomizations(root: Path) -> list[Path]:
    return sorted(p for p in (root / "deploy").rglob("kustomization.yaml") if "catalog" not in p.parts)


def kustomization_refs(path: Path) -> list[Ref]:
    """The `images:` entries (line-based: the files keep their comments when rewritten)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    refs = []
    in_images = False
    for index, line in enumerate(lines):
        if re.match(r"^images:\s*$", line):
            in_images = True
            continue
        if in_images and line and not line.startswith((" ", "-", "#")):
            in_images = False
        entry = re.match(r"^\s*-\s+name:\s*(\S+)", line) if in_images else None
        if not entry or entry.group(1) in OWN_IMAGES:
            continue
        fields: dict[str, str] = {}
        for following in lines[index + 1:]:
            field = re.match(r"^\s+(newName|newTag|digest):\s*(\S+)", following)
            if not field:
                break
            fields[field.group(1)] = field.group(2).strip("\"'")
        refs.append(Ref(path, index + 1, fields.get("newName", entry.group(1)), fields.get("newTag", ""),
                        fields.get("digest", "")))
    return refs


def literal_refs(root: Path, rewritten: set[str]) -> list[Ref]:
    """`image:` values in deploy/ YAML that no images: entry rewrites (they would be pulled as written)."""
    refs = []
    for path in sorted((root / "deploy").rglob("*.yaml")):
        if "catalog" in path.parts or path.name == "kustomization.yaml":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = re.match(r"^\s*(?:-\s+)?image:\s*([^\s#]+)", line)
            if match:
                name, tag, digest = _split(match.group(1).strip("\"'"))
                if name not in rewritten and name not in OWN_IMAGES:
                    refs.append(Ref(path, number, name, tag, digest))
    return refs


def find_refs(root: Path = ROOT) -> list[Ref]:
    refs = dockerfile_refs(root / "Dockerfile") if (root / "Dockerfile").is_file() else []
    images: list[Ref] = []
    rewritten: set[str] = set()
    for path in _kustomizations(root):
        for ref in kustomization_refs(path):
            images.append(ref)
            entry = re.match(r"^\s*-\s+name:\s*(\S+)", path.read_text(encoding="utf-8").splitlines()[ref.line - 1])
            rewritten.add(entry.group(1) if entry else ref.name)
    return refs + images + literal_refs(root, rewritten)


def unpinned(refs: list[Ref]) -> list[Ref]:
    return [r for r in refs if not DIGEST.match(r.digest)]


# -- resolving ----------------------------------------------------------------------------------------

Resolver = Callable[[str], str]


def registry_resolver() -> Resolver:
    """`crane digest`, else `docker buildx imagetools inspect`; RuntimeError when neither is installed."""
    crane, docker = shutil.which("crane"), shutil.which("docker")
    if crane is None and docker is None:
        raise RuntimeError("neither crane nor docker is installed: install one (crane: "
                           "go install github.com/google/go-containerregistry/cmd/crane@latest)")

    def resolve(ref: str) -> str:
        if crane is not None:
            command = [crane, "digest", ref]
        else:
            command = [str(docker), "buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip() or result.returncode}")
        out = result.stdout.strip()
        digest = out if crane is not None else str(json.loads(out).get("digest", ""))
        if not DIGEST.match(digest):
            raise RuntimeError(f"{' '.join(command)} answered {out!r}, not a sha256 digest")
        return digest

    return resolve


def write_pin(ref: Ref, digest: str) -> None:
    """Write `digest` for `ref` into its file, in place."""
    lines = ref.file.read_text(encoding="utf-8").splitlines(keepends=True)
    index = ref.line - 1
    if ref.file.name == "kustomization.yaml":
        end = index + 1
        while end < len(lines) and re.match(r"^\s+(newName|newTag|digest):", lines[end]):
            end += 1
        block = [line for line in lines[index + 1:end] if not re.match(r"^\s+digest:", line)]
        indent = re.match(r"^(\s*)-", lines[index])
        pad = " " * (len(indent.group(1)) + 2 if indent else 4)
        lines[index + 1:end] = [*block, f"{pad}digest: {digest}\n"]
    else:
        match = _FROM.match(lines[index].rstrip("\n"))
        if match is None:  # a literal image: line
            lines[index] = re.sub(r"(image:\s*)[^\s#]+", lambda m: f"{m.group(1)}{ref.tagged}@{digest}", lines[index])
        else:
            lines[index] = f"{match.group('head')}{ref.tagged}@{digest}{match.group('tail')}\n"
    ref.file.write_text("".join(lines), encoding="utf-8")


def pin(root: Path, resolve: Resolver, *, update: bool = False) -> list[tuple[Ref, str]]:
    """Resolve and write the digest of every unpinned reference (every one with update); what changed."""
    changed = []
    for ref in find_refs(root):
        if update or not DIGEST.match(ref.digest):
            digest = resolve(ref.tagged)
            if digest != ref.digest:
                changed.append((ref, digest))
    for ref, digest in sorted(changed, key=lambda c: (str(c[0].file), -c[0].line)):
        write_pin(ref, digest)  # bottom-up per file: earlier line numbers stay valid
    return changed


def verify(root: Path, resolve: Resolver) -> list[tuple[Ref, str]]:
    """Pinned references whose tag now resolves to another digest (a rebuilt tag: review, then --update)."""
    return [(ref, now) for ref in find_refs(root) if DIGEST.match(ref.digest)
            and (now := resolve(ref.tagged)) != ref.digest]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="list unpinned references; exit 1 if any (offline)")
    mode.add_argument("--update", action="store_true", help="re-resolve every reference")
    mode.add_argument("--verify", action="store_true", help="compare pinned digests with the registry")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.check:
        missing = unpinned(find_refs(root))
        for ref in missing:
            print(f"{ref.where(root)}: {ref.tagged} is not pinned by digest; run deploy/pin_images.py "
                  "where a registry is reachable", file=sys.stderr)
        return 1 if missing else 0
    try:
        resolve = registry_resolver()
        if args.verify:
            stale = verify(root, resolve)
            for ref, now in stale:
                print(f"{ref.where(root)}: {ref.tagged} is pinned to {ref.digest}, the registry now serves {now}")
            return 1 if stale else 0
        for ref, digest in pin(root, resolve, update=args.update):
            print(f"{ref.where(root)}: {ref.tagged}@{digest}")
    except RuntimeError as exc:
        print(f"pin_images: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
