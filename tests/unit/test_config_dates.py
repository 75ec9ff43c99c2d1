"""Unquoted dates in the configuration: YAML reads `expires: 2027-01-01` as a date, not a string.

A date where a date is meant (an exception's `expires`) is accepted as that date; a date and time, or a
day that does not exist, is a configuration error naming the key (or the line) and telling to quote it.
Never a TypeError traceback at start-up: `netguard serve --check-only` exits 2 with one line.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from webhook.config import load
from webhook.core.settings import ConfigError

REPO = Path(__file__).resolve().parents[2]

EXCEPTION = """exceptions:
  - rules: [no-allow-all-egress]
    namespace: team-a
    name: legacy
    expires: {expires}
    reason: migration
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "netguard.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_an_unquoted_expiry_date_is_read_as_that_date(tmp_path: Path) -> None:
    settings = load(write(tmp_path, EXCEPTION.format(expires="2027-01-01")), env={})
    assert settings.exceptions[0].expires == date(2027, 1, 1)


def test_an_unquoted_expiry_date_is_the_same_with_environment_overrides(tmp_path: Path) -> None:
    settings = load(write(tmp_path, EXCEPTION.format(expires="2027-01-01")), env={"NETGUARD_WORKERS": "3"})
    assert settings.exceptions[0].expires == date(2027, 1, 1) and settings.server.workers == 3


def test_a_quoted_expiry_date_still_works(tmp_path: Path) -> None:
    settings = load(write(tmp_path, EXCEPTION.format(expires='"2027-01-01"')), env={})
    assert settings.exceptions[0].expires == date(2027, 1, 1)


def test_an_unquoted_date_and_time_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, EXCEPTION.format(expires="2027-01-01 10:00:00")), env={})
    message = str(err.value)
    assert "exceptions.0.expires" in message
    assert 'quote the date: "2027-01-01 10:00:00"' in message


def test_an_unquoted_date_where_text_is_meant_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, "namespace_labels:\n  team-a:\n    since: 2027-01-01T08:00:00Z\n"), env={})
    assert "namespace_labels.team-a.since" in str(err.value)
    assert "quote the date" in str(err.value)


def test_a_day_that_does_not_exist_is_an_error_with_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, EXCEPTION.format(expires="2027-02-30"))
    with pytest.raises(ConfigError) as err:
        load(path, env={})
    message = str(err.value)
    assert message.startswith(f"{path}:5:")
    assert "2027-02-30" in message and "quote the date" in message


def test_a_date_as_a_mapping_key_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, "namespace_labels:\n  2027-01-01: {a: b}\n"), env={})
    assert "namespace_labels.2027-01-01" in str(err.value)


@pytest.mark.parametrize(("expires", "code", "expected"), [
    ("2027-01-01", 0, "guardrails"),
    ("2027-01-01 10:00:00", 2, "exceptions.0.expires"),
    ("2027-02-30", 2, "quote the date"),
])
def test_serve_check_only_exits_cleanly_on_dates(tmp_path: Path, expires: str, code: int, expected: str) -> None:
    path = write(tmp_path, EXCEPTION.format(expires=expires))
    env = {"PATH": "/usr/bin:/bin", "NETGUARD_CONFIG": path, "NETGUARD_POLICIES_DIR": str(REPO / "policies"),
           "NETGUARD_TLS_CERT": __file__, "NETGUARD_TLS_KEY": __file__}
    result = subprocess.run([sys.executable, "-m", "webhook.cli", "serve", "--check-only"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr


def test_an_unquoted_expiry_date_in_the_granted_form_is_read_as_that_date(tmp_path: Path) -> None:
    text = ("exceptions:\n  granted:\n    - {rules: [no-allow-all-egress], namespace: a, name: b, reason: r,\n"
            "       expires: 2027-03-04}\n")
    assert load(write(tmp_path, text), env={}).exceptions[0].expires == date(2027, 3, 4)
