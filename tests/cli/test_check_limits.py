"""`netguard check` and `netguard audit` report an object over a size limit (webhook/core/limits.py) at its
line, with the limit named, the same way the webhook denies it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webhook.cli import main

REPO = Path(__file__).resolve().parents[2]
OVERSIZED = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: many-excepts
  namespace: team-a
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/8
            except: [10.1.0.0/16, 10.2.0.0/16, 10.3.0.0/16]
      ports:
        - {protocol: TCP, port: 443}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "netguard.yaml"
    path.write_text(f"policies_dir: {REPO / 'policies'}\nlimits:\n  max_excepts_per_peer: 2\n")
    return path


def test_check_reports_the_limit_at_the_line_of_the_field(tmp_path: Path, config: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "oversized.yaml"
    path.write_text(OVERSIZED)
    code = main(["check", "--config", str(config), str(path)])
    out, _ = capsys.readouterr()
    assert code == 1  # denied, like any enforced finding
    # spec.egress[0].to[0].ipBlock.except is the `except:` key on line 13, column 13.
    assert (f"{path}:13:13: error[limits] spec.egress[0].to[0].ipBlock.except: 3 except entries in this peer, "
            "more than limits.max_excepts_per_peer (2)") in out
    assert "fix: split the policy (or the rule) into smaller ones that stay within 2" in out
    assert "error[no-" not in out  # nothing else was judged

    assert main(["check", "--config", str(config), "--format", "json", str(path)]) == 1
    (finding,) = json.loads(capsys.readouterr()[0])["results"][0]["findings"]
    assert (finding["rule"], finding["line"], finding["mode"]) == ("limits", 13, "enforce")


def test_audit_lists_the_limit_finding(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cluster"
    root.mkdir()
    (root / "oversized.yaml").write_text(OVERSIZED)
    assert main(["audit", "--config", str(config), "--from", str(root), "--no-workloads", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr()[0])
    text = json.dumps(report)
    assert "limits.max_excepts_per_peer" in text
