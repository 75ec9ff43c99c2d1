"""The image: the Dockerfile's final stage run as the container would run it, and the build context it gets.

There is no container engine here (only the docker client, no daemon), so the image is never built.
Instead the Dockerfile is parsed and its final stage's ENTRYPOINT + CMD run with exactly its ENV and
USER against a stand-in root filesystem: the paths the image COPYs are laid out under a temporary
root (the venv is the test venv, which has the same packages from the same constraints.txt), the TLS
Secret is mounted the way kubelet mounts one (0440, group 65532, `..data` symlinks), and the
Deployment's read-only root filesystem is approximated by running as the image's numeric USER (when
the tests run as root, through setpriv, keeping only CAP_DAC_READ_SEARCH to read this machine's
Python under /root) in a root-owned tree: only $TMPDIR, like the emptyDir at /tmp, is writable.
Without root, the tree is made read-only by mode instead.

What this does not test: the base image, the builder stage's `pip install`, the layer contents.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.conftest import REPO
from tests.deploy.dockerfile import DOCKERFILE, final_stage, parse_dockerfile
from tests.manifests import ALLOW_ALL_EGRESS, WEB_INGRESS
from webhook.pki.certs import generate

DOCKERIGNORE = REPO / ".dockerignore"
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PEM_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


def test_the_image_is_two_stages_on_python_311_slim_and_the_final_one_installs_nothing() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    assert len(stages) == 2
    builder, final = stages
    assert builder.base == final.base == "python:3.11-slim"
    pip = [args for ins, args in builder.instructions if ins == "RUN" and "pip install" in args]
    assert len(pip) == 1 and "-c constraints.txt ." in pip[0] and "[dev]" not in pip[0]
    # No RUN at all in the final stage: no package manager, no compilers, nothing built there.
    assert [ins for ins, _ in final.instructions if ins == "RUN"] == []
    from_builder = [(flags, sources, dest) for flags, sources, dest in final.copies if "from" in flags]
    assert from_builder == [({"from": builder.name or ""}, ["/opt/netguard/venv"], "/opt/netguard/venv")]
    assert sorted(s for flags, sources, _ in final.copies if "from" not in flags for s in sources) == [
        "deploy/base/config.yaml", "policies/"]


def test_the_final_stage_runs_netguard_serve_as_a_numeric_non_root_user_on_8443() -> None:
    stage = final_stage()
    # The image is the netguard command: `serve` by default, any other subcommand when given (it replaces CMD).
    assert stage.entrypoint == ["netguard"] and stage.cmd == ["serve"]
    assert stage.user is not None and re.fullmatch(r"[0-9]+:[0-9]+", stage.user)
    assert int(stage.user.split(":")[0]) != 0 and int(stage.user.split(":")[1]) != 0
    assert stage.expose == ["8443", "8444"]  # admission; POST /v1/check (server.check_bind)
    assert {k: v for k, v in stage.env.items() if k != "PATH"} == {
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "NETGUARD_POLICIES_DIR": "/etc/netguard/policies", "NETGUARD_CONFIG": "/etc/netguard/config.yaml",
        "NETGUARD_TLS_CERT": "/etc/netguard/tls/tls.crt", "NETGUARD_TLS_KEY": "/etc/netguard/tls/tls.key"}
    assert stage.env["PATH"].startswith("/opt/netguard/venv/bin:")
    assert not any(ins == "HEALTHCHECK" for ins, _ in stage.instructions)  # Kubernetes probes instead


def test_no_certificate_or_key_is_copied_into_any_stage() -> None:
    for stage in parse_dockerfile(DOCKERFILE.read_text()):
        for flags, sources, _ in stage.copies:
            if "from" in flags:
                continue
            for source in sources:
                assert not source.startswith(("certs", "./certs")), source
                assert not source.endswith((".key", ".pem", ".crt")), source


# -- the build context (.dockerignore) --------------------------------------------------------------------


def _pattern(text: str) -> tuple[bool, re.Pattern[str], str]:
    """One .dockerignore line as Docker reads it: `!` re-includes, `*`/`?` stop at `/`, `**` spans folders."""
    negate = text.startswith("!")
    path = os.path.normpath(text[1:] if negate else text).lstrip("/")
    out, i = "", 0
    while i < len(path):
        if path.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif path.startswith("**", i):
            out, i = out + ".*", i + 2
        elif path[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif path[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(path[i]), i + 1
    return negate, re.compile(f"^{out}$"), path


def _patterns() -> list[tuple[bool, re.Pattern[str], str]]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [_pattern(line) for line in lines if line and not line.startswith("#")]


def _excluded(rel: str, patterns: list[tuple[bool, re.Pattern[str], str]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex, _ in patterns:
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


def build_context() -> list[str]:
    """The files `docker build .` would send, as paths relative to the repository."""
    patterns = _patterns()
    reincluding = [p for negate, _, p in patterns if negate]
    files = []
    for dirpath, dirnames, filenames in os.walk(REPO):
        rel_dir = os.path.relpath(dirpath, REPO)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Skip folders that are excluded and that no `!` pattern reaches into (as Docker does).
        dirnames[:] = [d for d in dirnames if not (_excluded(rel_dir + d, patterns) and not any(
            p.startswith(rel_dir + d + "/") or p.startswith("**") for p in reincluding))]
        files += [rel_dir + f for f in filenames if not _excluded(rel_dir + f, patterns)]
    return sorted(files)


def test_the_build_context_holds_only_what_the_image_needs_and_no_key_material() -> None:
    context = build_context()
    tops = {path.split("/")[0] for path in context}
    assert tops == {"pyproject.toml", "README.md", "constraints.txt", "webhook", "policies", "deploy"}
    assert [p for p in context if p.startswith("deploy/")] == ["deploy/base/config.yaml"]
    for path in context:
        assert not path.startswith(("certs/", ".venv/", ".git/", "tests/")), path
        assert "__pycache__" not in path and not path.endswith((".pyc", ".key", ".pem")), path
        assert not PEM_KEY.search((REPO / path).read_bytes()), path
    # Everything the Dockerfile copies is in the context.
    for stage in parse_dockerfile(DOCKERFILE.read_text()):
        for flags, sources, _ in stage.copies:
            for source in sources if "from" not in flags else ():
                source = source.rstrip("/")
                assert any(p == source or p.startswith(source + "/") for p in context), source


def test_the_context_rules_are_not_vacuous() -> None:
    """The matcher itself: a key anywhere, certs/, the venv and tests are out; the allow-listed files are in."""
    patterns = _patterns()
    for path in ("certs/ca.key", "certs/tls.crt", ".venv/bin/python", "tests/deploy/conftest.py",
                 "webhook/__pycache__/cli.cpython-311.pyc", "policies/lib/leaked.key", ".git/HEAD", "bench/x.py"):
        assert _excluded(path, patterns), path
    for path in ("webhook/cli.py", "webhook/schemas/config.schema.json", "policies/lib/helpers.rego",
                 "pyproject.toml", "deploy/base/config.yaml"):
        assert not _excluded(path, patterns), path


# -- running the final stage --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ids(user: str | None) -> tuple[int, int]:
    uid, _, gid = (user or "0:0").partition(":")
    return int(uid), int(gid or uid)


def _mount_secret(target: Path, files: dict[str, bytes], gid: int, generation: int) -> None:
    """A Secret volume as kubelet writes it (defaultMode 0440, fsGroup): `..data` swapped atomically."""
    stamp = f"..2026_01_01_00_00_0{generation}.{generation:09d}"
    payload = target / stamp
    payload.mkdir(parents=True)
    for name, data in files.items():
        path = payload / name
        path.write_bytes(data)
        os.chmod(path, 0o440)
        if os.geteuid() == 0:
            os.chown(path, 0, gid)
        link = target / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    tmp_link = target / "..data_tmp"
    tmp_link.symlink_to(stamp)
    os.replace(tmp_link, target / "..data")
    os.chmod(payload, 0o755)


@dataclass
class Container:
    """The final stage, running: where its root is, its TLS mount and how to reach it."""

    root: Path
    tmpdir: Path
    tls: Path
    port: int
    ca: Path
    log: Path
    proc: subprocess.Popen[bytes]
    uid: int
    gid: int
    started: float

    def context(self, ca: Path | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(ca or self.ca))

    def get(self, path: str, ca: Path | None = None) -> tuple[int, bytes, bytes]:
        """(status, body, the serving certificate in DER) on a new connection."""
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.context(ca), timeout=10)
        try:
            conn.request("GET", path)
            with conn.getresponse() as resp:
                assert conn.sock is not None
                peer = conn.sock.getpeercert(binary_form=True) or b""
                return resp.status, resp.read(), peer
        finally:
            conn.close()

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.context(), timeout=10)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            with conn.getresponse() as resp:
                return resp.status, resp.read()
        finally:
            conn.close()


def _as_image_user(uid: int, gid: int) -> list[str]:
    """A command prefix running as the image's USER (when the tests run as root; else as themselves).

    The one capability kept, CAP_DAC_READ_SEARCH, lets that user read and traverse everything (this
    machine's Python lives under /root, mode 0700) and grants no write: writes still need ownership
    or a world-writable place, which leaves $TMPDIR (and the host's /tmp, checked separately).
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): cannot run as the image's USER")
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search", "--"]


def _readonly_tree(root: Path) -> None:
    """Without root, make the stand-in root read-only by mode (as root, the image's USER cannot write it)."""
    if os.geteuid() == 0:
        return
    for dirpath, _, _ in os.walk(root):
        if Path(dirpath).is_relative_to(root / "etc/netguard/tls"):
            continue
        os.chmod(dirpath, 0o555)


def _tree_listing(root: Path) -> set[str]:
    return {str(Path(d, f).relative_to(root)) for d, dirs, files in os.walk(root) for f in [*files, *dirs]}


@dataclass
class Image:
    """The final stage laid out under a stand-in root, with the environment its processes get."""

    top: Path
    root: Path
    tmpdir: Path
    tls: Path
    ca: Path
    env: dict[str, str]
    workdir: Path
    uid: int
    gid: int

    def command(self, args: list[str]) -> list[str]:
        """`docker run IMAGE ARGS`: ENTRYPOINT + (ARGS or CMD), as the image's USER."""
        stage = final_stage()
        executable = shutil.which(stage.entrypoint[0], path=self.env["PATH"])
        assert executable and executable.startswith(str(self.root)), executable
        return [*_as_image_user(self.uid, self.gid), executable, *stage.entrypoint[1:], *(args or stage.cmd)]


@contextlib.contextmanager
def final_stage_root() -> Iterator[Image]:
    stage = final_stage()
    uid, gid = _ids(stage.user)
    top = Path(tempfile.mkdtemp(prefix="netguard-image-"))
    os.chmod(top, 0o755)  # traversable by the image's user
    try:
        root = top / "root"
        # COPY sources at their image paths; the builder's venv is this test's venv.
        for flags, sources, dest in stage.copies:
            target = root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if "from" in flags:
                target.symlink_to(Path(sys.prefix))
                continue
            for source in sources:
                src = REPO / source
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy2(src, target)
        pki = generate("netguard", "netguard", top / "pki")
        tls = root / Path(stage.env["NETGUARD_TLS_CERT"]).parent.relative_to("/")
        _mount_secret(tls, {"tls.crt": pki.cert.read_bytes(), "tls.key": pki.key.read_bytes()}, gid, 1)
        for dirpath, _, _ in os.walk(top / "pki"):
            os.chmod(dirpath, 0o755)
        tmpdir = top / "tmp"  # the emptyDir at /tmp: the only writable path
        tmpdir.mkdir(mode=0o1777)
        os.chmod(tmpdir, 0o1777)
        workdir = root / stage.workdir.lstrip("/")
        _readonly_tree(root)

        def remap(value: str) -> str:
            image_paths = ("/etc/netguard", "/opt/netguard")
            return ":".join(str(root) + entry if entry.startswith(image_paths) else entry
                            for entry in value.split(":"))

        env = {key: remap(value) for key, value in stage.env.items()}
        env["PATH"] = env["PATH"].replace("$PATH", "").rstrip(":") + ":/usr/bin:/bin"
        port = _free_port()
        env.update(NETGUARD_BIND=f"127.0.0.1:{port}", NETGUARD_CHECK_BIND=f"127.0.0.1:{_free_port()}",
                   TMPDIR=str(tmpdir), HOME=str(root))
        yield Image(top, root, tmpdir, tls, pki.ca_cert, env, workdir, uid, gid)
    finally:
        for dirpath, _, _ in os.walk(top):
            with contextlib.suppress(OSError):
                os.chmod(dirpath, 0o755)
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def run_final_stage() -> Iterator[Container]:
    with final_stage_root() as image:
        env, root, tmpdir, tls, uid, gid = image.env, image.root, image.tmpdir, image.tls, image.uid, image.gid
        port = int(env["NETGUARD_BIND"].rpartition(":")[2])
        log = image.top / "container.log"
        started = time.time()
        with open(log, "ab") as handle:
            proc = subprocess.Popen(image.command([]), cwd=image.workdir, env=env, stdin=subprocess.DEVNULL,
                                    stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        container = Container(root, tmpdir, tls, port, image.ca, log, proc, uid, gid, started)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if container.get("/readyz")[0] == 200:
                        break
                assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text(errors='replace')}"
                assert time.monotonic() < deadline, f"not ready in {STARTUP_TIMEOUT}s:\n{log.read_text()}"
                time.sleep(0.1)
            yield container
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=STOP_TIMEOUT)


def test_the_entrypoint_serves_over_tls_with_only_tmpdir_writable() -> None:
    review = (REPO / "examples/review-allow-all-egress.json").read_bytes()
    with run_final_stage() as container:
        before = _tree_listing(container.root)
        if os.geteuid() == 0:
            # The premise: the image's user cannot write its working directory, HOME or the image paths.
            denied = subprocess.run([*_as_image_user(container.uid, container.gid), sys.executable, "-c",
                                     f"open({str(container.root / 'x')!r}, 'w')"],
                                    capture_output=True, timeout=30, check=False)
            assert denied.returncode != 0 and b"PermissionError" in denied.stderr
        status, body, _ = container.get("/readyz")
        ready = json.loads(body)
        assert status == 200 and ready["status"] == "ready" and ready["guardrails"] > 0
        status, body = container.post("/validate", review)
        assert status == 200 and json.loads(body)["response"]["allowed"] is False
        status, body, _ = container.get("/metrics")
        assert status == 200 and b"netguard_" in body
        # Workers share metrics through files under $TMPDIR, written by the image's user.
        metrics_dirs = [p for p in container.tmpdir.iterdir() if p.name.startswith("netguard-metrics-")]
        assert metrics_dirs and all(p.stat().st_uid == container.uid for p in metrics_dirs)
        assert any(metrics_dirs[0].iterdir())
        assert _tree_listing(container.root) == before  # nothing written to the image's paths or HOME
        # Nothing new in the host's /tmp outside $TMPDIR (the other world-writable place).
        strays = [p for p in Path(tempfile.gettempdir()).iterdir()
                  if p.lstat().st_uid == container.uid and p.lstat().st_mtime >= container.started
                  and not container.tmpdir.is_relative_to(p) and p != container.tmpdir]
        if os.geteuid() == 0:
            assert strays == []
        log = container.log.read_text(errors="replace")
        assert "Traceback" not in log and "Permission denied" not in log and "Read-only" not in log


def test_a_renewed_certificate_is_served_without_a_restart() -> None:
    """cert-manager renews the Secret and kubelet swaps the volume's ..data link: every worker serves the
    new certificate within seconds (webhook/serve/tls.py watches the files), with no restart."""
    with run_final_stage() as container:
        _, _, old = container.get("/healthz")
        renewed = generate("netguard", "netguard", container.tmpdir.parent / "renewed")
        for dirpath, _, _ in os.walk(renewed.ca_cert.parent):
            os.chmod(dirpath, 0o755)
        _mount_secret(container.tls, {"tls.crt": renewed.cert.read_bytes(), "tls.key": renewed.key.read_bytes()},
                      container.gid, 2)
        deadline = time.monotonic() + 15
        in_a_row = 0
        while in_a_row < 8:  # new connections spread over the workers: all of them have switched
            assert time.monotonic() < deadline, "the renewed certificate was not served by every worker"
            try:
                status, _, new = container.get("/healthz", ca=renewed.ca_cert)
                assert status == 200 and new != old
                in_a_row += 1
            except ssl.SSLCertVerificationError:
                in_a_row = 0
                time.sleep(0.2)
        # The old CA no longer verifies what is served, by any worker: eight refusals in a row (a run of new
        # connections can all land on one worker, so the loop above alone does not prove every worker switched).
        refused = 0
        while refused < 8:
            assert time.monotonic() < deadline, "a worker still served the old certificate"
            try:
                container.get("/healthz")
                refused = 0
                time.sleep(0.2)
            except ssl.SSLCertVerificationError:
                refused += 1
        assert container.proc.poll() is None


# -- the image as the netguard command ------------------------------------------------------------------------

GOOD_POLICY, BAD_POLICY = WEB_INGRESS, ALLOW_ALL_EGRESS


def test_a_subcommand_given_to_the_image_runs_instead_of_serve() -> None:
    """`docker run --rm -v "$PWD:/src" IMAGE check /src`: the arguments replace CMD, the ENTRYPOINT stays, and
    check reads the image's catalog (/etc/netguard/policies) and configuration through the image's ENV."""
    from webhook.engine.policies import load_policy_set

    with final_stage_root() as image:
        src = image.top / "src"  # the bind mount: the user's files, readable by the image's user
        src.mkdir(mode=0o755)
        os.chmod(src, 0o755)
        (src / "good.yaml").write_text(GOOD_POLICY)
        (src / "bad.yaml").write_text(BAD_POLICY)
        for path in src.iterdir():
            os.chmod(path, 0o644)

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(image.command(list(args)), cwd=image.workdir, env=image.env, text=True,
                                  capture_output=True, stdin=subprocess.DEVNULL, timeout=120, check=False)

        checked = run("check", str(src))
        assert checked.returncode == 1, checked.stderr
        assert f"{src / 'bad.yaml'}:7:12: error[no-allow-all-egress]" in checked.stdout
        assert "good.yaml" not in checked.stdout and "in 2 policies" in checked.stdout
        assert "\x1b[" not in checked.stdout  # not a terminal (docker run without -t): no colour
        assert run("check", str(src / "good.yaml")).returncode == 0
        report = json.loads(run("check", str(src), "--format", "json").stdout)
        catalog = load_policy_set(image.root / "etc/netguard/policies")
        assert report["netguard"]["policy_revision"] == catalog.revision  # the image's catalog
        listed = run("policies", "list", "--policies", image.env["NETGUARD_POLICIES_DIR"])
        assert listed.returncode == 0 and "no-allow-all-egress" in listed.stdout
        assert run("--help").returncode == 0
        assert list(image.tmpdir.iterdir()) == []  # a one-shot command writes nothing, not even to $TMPDIR
