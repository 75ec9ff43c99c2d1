"""Terminal manners: colour only on a terminal and never with NO_COLOR, --color, --quiet, shell completion."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_kubectl_plugin import BAD, GOOD
from webhook.cli import main
from webhook.terminal import ANSI, Paint, color_enabled, strip

BIN = Path(sys.prefix) / "bin"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "_ARGCOMPLETE", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", **extra)
    return env


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with standard output on a pseudo-terminal, as in an interactive shell; (exit code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=slave, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the child has closed its end
        while chunk := os.read(master, 65536):
            chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode().replace("\r\n", "\n")


# -- the decision ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("choice", "env", "tty", "expected"), [
    ("auto", {}, True, True),
    ("auto", {}, False, False),
    ("auto", {"NO_COLOR": "1"}, True, False),
    ("auto", {"NO_COLOR": "0"}, True, False),  # any non-empty value (no-color.org)
    ("auto", {"NO_COLOR": ""}, True, True),  # empty is unset
    ("auto", {"TERM": "dumb"}, True, False),
    ("always", {"NO_COLOR": "1"}, False, True),  # a flag for this run beats the environment
    ("never", {}, True, False),
])
def test_colour_is_decided_by_flag_then_no_color_then_the_terminal(choice: str, env: dict[str, str], tty: bool,
                                                                   expected: bool) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert color_enabled(stream, choice, env) is expected


def test_paint_only_adds_codes() -> None:
    on, off = Paint(True), Paint(False)
    assert on.error("error[x]") == "\x1b[1;31merror[x]\x1b[0m" and off.error("error[x]") == "error[x]"
    assert strip(on.warning("w") + " " + on.note("n")) == "w n"


# -- check's text output ---------------------------------------------------------------------------------------

def test_no_colour_when_standard_output_is_not_a_terminal(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(files / "bad.yaml")]) == 1
    assert not ANSI.search(capsys.readouterr().out)


def test_colour_on_a_terminal_and_none_with_no_color(files: Path) -> None:
    args = [str(BIN / "netguard"), "check", str(files / "bad.yaml"), str(files / "good.yaml")]
    code, coloured = _on_a_terminal(args, _env())
    assert code == 1
    assert "\x1b[1;31merror[no-allow-all-egress]\x1b[0m" in coloured
    assert "\x1b[1;31m3 errors\x1b[0m, 0 warnings" in coloured  # a zero count stays plain
    plain = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=120, check=False).stdout
    assert not ANSI.search(plain) and strip(coloured) == plain  # the same text, only coloured
    code, no_color = _on_a_terminal(args, _env(NO_COLOR="1"))
    assert code == 1 and no_color == plain
    assert _on_a_terminal([*args, "--color", "never"], _env())[1] == plain
    forced = subprocess.run([*args, "--color=always"], capture_output=True, text=True, env=_env(NO_COLOR="1"),
                            timeout=120, check=False).stdout
    assert ANSI.search(forced) and strip(forced) == plain


def test_color_before_or_after_the_subcommand(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--color", "always", "check", str(files / "bad.yaml")]) == 1
    assert ANSI.search(capsys.readouterr().out)
    assert main(["--color", "always", "check", str(files / "bad.yaml"), "--color", "never"]) == 1
    assert not ANSI.search(capsys.readouterr().out)


def test_a_report_file_is_never_coloured_unless_asked(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", _Tty())
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert main(["check", str(files / "bad.yaml"), "-o", str(files / "r.txt")]) == 1
    assert not ANSI.search((files / "r.txt").read_text())


# -- --quiet ---------------------------------------------------------------------------------------------------

def test_quiet_check_prints_only_findings(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(files / "bad.yaml"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "error[no-allow-all-egress]" in out and "fix:" in out and " in 1 policy" not in out
    assert main(["check", "-q", str(files / "good.yaml")]) == 0
    assert capsys.readouterr().out == ""
    assert main(["-q", "check", str(files / "good.yaml")]) == 0
    assert capsys.readouterr().out == ""
    assert main(["check", str(files / "good.yaml")]) == 0
    assert "0 errors, 0 warnings, 0 notes in 1 policy" in capsys.readouterr().out


def test_quiet_certs_keep_only_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "generate", "--out", str(tmp_path / "certs"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.strip()  # the caBundle only
    assert main(["certs", "generate", "--out", str(tmp_path / "more")]) == 0
    assert "wrote" in capsys.readouterr().err


def test_quiet_audit_has_no_progress_bar(files: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert main(["audit", "--from", str(files), "--format", "json", "-o", str(files / "r.json"), "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert (files / "r.json").read_text().startswith("{")


# -- shell completion ------------------------------------------------------------------------------------------

def _complete(script: str, line: str) -> list[str]:
    """Ask `script` for completions the way the bash hook argcomplete registers does: _ARGCOMPLETE=1, the
    line and cursor in COMP_LINE/COMP_POINT, the answer on file descriptor 8, separated by _ARGCOMPLETE_IFS."""
    read, write = os.pipe()
    env = _env(_ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\013", COMP_LINE=line, COMP_POINT=str(len(line)),
               COMP_TYPE="9")
    try:
        # fd 8 is made in the child (dup2 leaves it inheritable); close_fds would close it after preexec_fn.
        proc = subprocess.run([str(BIN / script)], env=env, close_fds=False, capture_output=True, timeout=60,
                              check=False, preexec_fn=lambda: os.dup2(write, 8))
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as handle:
        answer = handle.read().decode()
    assert proc.returncode == 0, proc.stderr
    return answer.split("\013") if answer else []


def test_completion_of_subcommands_and_options() -> None:
    assert {"check", "explain", "audit", "doctor"} <= set(_complete("netguard", "netguard "))
    assert _complete("netguard", "netguard ch") == ["check "]
    assert "--format " in _complete("netguard", "netguard check --fo")
    assert set(_complete("netguard", "netguard check --format s")) == {"sarif "}
    assert "--quiet " in _complete("netguard", "netguard audit --qu")
    assert {"bash", "zsh", "fish"} <= {c.strip() for c in _complete("netguard", "netguard completion ")}


def test_the_kubectl_plugin_completes_too() -> None:
    if not (BIN / "kubectl-netguard").exists():
        pytest.skip("kubectl-netguard is not installed in this venv")
    assert "check " in _complete("kubectl-netguard", "kubectl-netguard ch")


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete "), ("zsh", "#compdef netguard"),
                                               ("fish", "complete --command netguard")])
def test_completion_prints_the_shell_registration(shell: str, marker: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert marker in out and "kubectl-netguard" in out


def test_the_entry_modules_carry_the_argcomplete_marker() -> None:
    """Global completion (activate-global-python-argcomplete) looks for it at the top of an entry point's module."""
    root = Path(__file__).resolve().parents[2] / "webhook"
    for module in ("cli.py", "kubectl_plugin.py"):
        assert "PYTHON_ARGCOMPLETE_OK" in (root / module).read_text()[:1024], module


def test_explain_headings_are_bold_only_when_colour_is_on(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(files / "good.yaml")]) == 0
    plain = capsys.readouterr().out
    assert main(["explain", str(files / "good.yaml"), "--color", "always"]) == 0
    coloured = capsys.readouterr().out
    assert not ANSI.search(plain) and strip(coloured) == plain
    assert coloured.startswith("\x1b[1mdefault/web (NetworkPolicy")


def test_doctor_colours_its_states_and_quiet_prints_only_the_failures(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An installation whose webhook the API server cannot call (tests/cli/test_doctor.py's healthy objects,
    no admission answering): FAIL lines in red, and with --quiet nothing but them."""
    from tests.cli.test_doctor import healthy
    from tests.kube_standin import KubeStandIn
    from webhook.pki.certs import generate

    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    made = generate("netguard", "netguard", tmp_path / "doctor-pki")
    objects = healthy({"ca": made.ca_cert.read_bytes(), "cert": made.cert.read_bytes()})
    with KubeStandIn(tmp_path, objects=objects) as standin:
        standin.admission = None
        kubeconfig = str(standin.kubeconfig)
        assert main(["doctor", "--kubeconfig", kubeconfig, "--color", "always"]) == 1
        everything = capsys.readouterr().out
        assert main(["doctor", "--kubeconfig", kubeconfig, "-q", "--color", "always"]) == 1
        quiet = capsys.readouterr().out
    assert "\x1b[32mok  \x1b[0m" in everything and "\x1b[1;31mFAIL\x1b[0m dry-run-review" in everything
    states = [line.split(" ", 1)[0] for line in strip(quiet).splitlines() if line[:4] in ("ok  ", "FAIL", "skip")]
    assert states and set(states) == {"FAIL"}


@pytest.mark.parametrize("command", ["policies list", "check k8s.yaml", "check k8s.yaml --format json"])
def test_a_reader_that_goes_away_ends_the_command_quietly(command: str, tmp_path: Path) -> None:
    """`netguard check k8s/ | head`: no "Broken pipe" message, SIGPIPE's exit status. `true` leaves without
    reading, before netguard has imported itself, so every write meets a closed pipe (deterministic)."""
    (tmp_path / "k8s.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: team-a}\n"
        "spec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}\n")
    script = f"{sys.executable} -m webhook.cli {command} | true; echo ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.stderr == ""
    assert done.stdout.strip() == "141"
