"""A mounted Secret's files, written the way the kubelet writes them, for certificate-rotation tests.

No kubelet runs here, so this is NOT the kubelet: it reproduces the on-disk layout and update
sequence of its AtomicWriter (pkg/volume/util/atomic_writer.go), which is all the server sees:

  <dir>/..2026_01_01_00_00_00.123/tls.crt   the payload, in a fresh timestamped directory
  <dir>/..data -> ..2026_01_01_00_00_00.123 the current payload
  <dir>/tls.crt -> ..data/tls.crt           the names the pod opens

An update writes the new payload into a new timestamped directory, points a temporary
`..data_tmp` symlink at it and renames that over `..data` (one atomic rename switches every
file at once), then removes the old directory.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

_serial = itertools.count(1)


class SecretVolume:
    def __init__(self, root: Path, files: Mapping[str, bytes]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._current = self._write_payload(files)
        (root / "..data").symlink_to(self._current.name)
        for name in files:
            (root / name).symlink_to(Path("..data") / name)

    def path(self, name: str) -> Path:
        """The path the pod uses (a symlink through ..data)."""
        return self.root / name

    def _write_payload(self, files: Mapping[str, bytes]) -> Path:
        payload = self.root / f"..2026_01_01_00_00_00.{next(_serial)}"
        payload.mkdir(mode=0o755)
        for name, data in files.items():
            (payload / name).write_bytes(data)
        return payload

    def update(self, files: Mapping[str, bytes]) -> None:
        """Swap in the new payload atomically, as the kubelet does when the Secret changes."""
        old, new = self._current, self._write_payload(files)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(new.name)
        os.rename(tmp, self.root / "..data")
        self._current = new
        shutil.rmtree(old)
