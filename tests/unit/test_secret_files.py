"""webhook.pki.secret_files: private keys are written atomically, 0600 from creation, never through a symlink."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from webhook.pki.secret_files import SecretExistsError, write_private_key


def test_a_new_key_is_0600_and_no_temp_file_is_left(tmp_path: Path) -> None:
    write_private_key(tmp_path / "k", b"secret")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_force_over_a_world_readable_file_leaves_0600(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_bytes(b"old")
    key.chmod(0o644)
    with pytest.raises(SecretExistsError, match="--force"):
        write_private_key(key, b"new")
    assert key.read_bytes() == b"old"
    write_private_key(key, b"new", force=True)
    assert key.read_bytes() == b"new" and stat.S_IMODE(key.stat().st_mode) == 0o600


@pytest.mark.parametrize("dangling", [True, False])
def test_a_symlink_at_the_path_is_replaced_never_followed(tmp_path: Path, dangling: bool) -> None:
    target, key = tmp_path / "target", tmp_path / "k"
    if not dangling:
        target.write_bytes(b"precious")
    key.symlink_to(target)
    with pytest.raises(SecretExistsError):
        write_private_key(key, b"new")
    write_private_key(key, b"new", force=True)
    assert not key.is_symlink() and key.read_bytes() == b"new"
    assert (not target.exists()) if dangling else target.read_bytes() == b"precious"
