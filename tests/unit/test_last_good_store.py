"""The last good catalog store (webhook/engine/policies.py): a copy with the same revision, never a different one."""

from __future__ import annotations

import shutil
from pathlib import Path

from webhook.engine.policies import error_summary, last_good_root, load_policy_set, save_last_good

REPO = Path(__file__).resolve().parents[2]


def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    for name in ("lib", "no-allow-all-egress"):
        shutil.copytree(REPO / "policies" / name, root / name)
    return root


def test_a_saved_catalog_loads_back_with_the_same_revision(tmp_path: Path) -> None:
    policies = load_policy_set(catalog(tmp_path))
    store = tmp_path / "store"
    store.mkdir()
    assert last_good_root(store) is None
    assert save_last_good(policies, store)
    root = last_good_root(store)
    assert root is not None and load_policy_set(root).revision == policies.revision
    assert save_last_good(policies, store)  # saving the same revision again is fine


def test_a_catalog_changed_on_disk_after_loading_is_not_saved(tmp_path: Path) -> None:
    root = catalog(tmp_path)
    policies = load_policy_set(root)
    (root / "no-allow-all-egress" / "rule.rego").write_text("package broken\n", encoding="utf-8")
    store = tmp_path / "store"
    store.mkdir()
    assert not save_last_good(policies, store)
    assert last_good_root(store) is None
    assert [p.name for p in store.iterdir()] == []  # no staging copy left behind


def test_error_summary_is_file_line_and_error() -> None:
    rego = ("Rego compile error:\n--> /p/no-allow-all-egress/rule.rego:16:5\n16 |   v := \n   |     ^\n"
            "error: expecting `}` while parsing set")
    assert error_summary(rego) == "/p/no-allow-all-egress/rule.rego:16: expecting `}` while parsing set"
    assert error_summary("/p/x/policy.yaml: title: 'x' is too short") == "/p/x/policy.yaml: title: 'x' is too short"
