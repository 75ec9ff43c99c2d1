"""The README's quick start works as written: `make run`, then the curl command it shows.

Runs the real `make run` (venv already present, certificates generated into certs/ if missing) on a
free loopback port instead of 8443, so it cannot collide with a developer's running instance.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _readme_curl() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- quickstart-curl -->\s*```sh\n(.*?)```", text, re.S)
    assert match, "README lost its quick-start curl block"
    return match.group(1).replace("\\\n", " ").strip()


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("make") is None, reason="needs curl and make")
def test_make_run_then_the_readme_curl_gets_a_denial() -> None:
    port = _free_port()
    env = dict(os.environ, NETGUARD_BIND=f"127.0.0.1:{port}", NETGUARD_CHECK_BIND=f"127.0.0.1:{_free_port()}",
               NETGUARD_WORKERS="1", NETGUARD_LOG_FORMAT="json")
    proc = subprocess.Popen(["make", "run"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        context = ssl.create_default_context(cafile=str(REPO / "certs" / "ca.crt")) if (
            REPO / "certs" / "ca.crt").exists() else None
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "make run exited"
            try:
                if context is None:
                    context = ssl.create_default_context(cafile=str(REPO / "certs" / "ca.crt"))
                with urllib.request.urlopen(f"https://localhost:{port}/readyz", context=context, timeout=2) as r:
                    if r.status == 200:
                        break
            except (OSError, ssl.SSLError):
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.3)
        command = _readme_curl().replace("localhost:8443", f"localhost:{port}")
        result = subprocess.run(["bash", "-c", command], cwd=REPO, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        review = json.loads(result.stdout)
        assert review["kind"] == "AdmissionReview"
        assert review["response"]["allowed"] is False
        assert "[no-allow-all-egress] spec.egress[0]" in review["response"]["status"]["message"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
