# PYTHON_ARGCOMPLETE_OK
"""`kubectl netguard ...`: the netguard command as a kubectl plugin (the `kubectl-netguard` entry point).

kubectl runs the first executable named `kubectl-netguard` on PATH with the words that follow
`kubectl netguard`, in kubectl's environment ($KUBECONFIG included), and passes none of its own flags:
the plugin reads kubectl's conventions itself and translates them into a `netguard` command line, then
runs `webhook.cli.main` with it:

  -f, --filename FILE|DIR|-   the manifests, repeatable (`-` is standard input, folders are read
                              recursively): check/explain's paths; for audit, `--from` instead of the cluster
  -n, --namespace NS          check/explain: namespace for manifests without one; audit: only this
                              namespace; doctor: where the dry-run probes go; baseline: the namespace
  --context, --kubeconfig     the cluster (audit, doctor, certs install); without them, the current
                              context of $KUBECONFIG or ~/.kube/config, as kubectl would use
  -o, --output FORMAT         the report format (kubectl's -o json): check's and audit's --format;
                              redirect standard output to write a file
  -R, --recursive             accepted for kubectl's habit; folders are always read recursively

A flag that does not apply to a command (--context for check, which never contacts a cluster; -n for
`policies list`) is accepted and ignored, as kubectl's global flags are. Every other word is netguard's
own and passes through unchanged: `kubectl netguard check -f p.yaml --group team-a` is
`netguard check p.yaml --group team-a`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

PROG = "kubectl netguard"
EXIT_USAGE = 2

USAGE = f"""\
usage: {PROG} COMMAND [-f FILE]... [-n NAMESPACE] [--context CONTEXT] [--kubeconfig FILE] [-o FORMAT] [OPTIONS]

Network policy guardrails for Kubernetes, as a kubectl plugin.

  {PROG} check -f policy.yaml [-f k8s/] [-n team-a]   check manifests before applying them (exit 1: denied)
  {PROG} explain -f policy.yaml                       what a policy really allows, in plain English
  {PROG} audit [-n team-a] [-o html] > report.html    the current context's cluster against the guardrails
  {PROG} audit -f manifests/                          manifests on disk instead of a cluster
  {PROG} doctor [--context prod]                      check netguard's installation in the cluster

kubectl flags: -f/--filename (repeatable, - for stdin), -n/--namespace, --context, --kubeconfig,
-o/--output FORMAT, -R/--recursive (folders are always recursive). Every other option is netguard's:
`{PROG} COMMAND --help` lists them (netguard's help: read `netguard` as `{PROG}`).
"""


class UsageError(Exception):
    """A command line the plugin cannot translate; the message says why."""


# The plugin's flags: name -> canonical key. All take a value.
_LONG = {"--filename": "f", "--namespace": "n", "--context": "context", "--kubeconfig": "kubeconfig",
         "--output": "o"}
_SHORT = {"-f": "f", "-n": "n", "-o": "o"}
_SWITCHES = {"-R", "--recursive"}


@dataclass
class _Scan:
    files: list[str] = field(default_factory=list)  # -f values
    flags: dict[str, str] = field(default_factory=dict)  # the other plugin flags
    words: list[str] = field(default_factory=list)  # netguard's options (with their values) and command words
    args: list[str] = field(default_factory=list)  # positional words after the command (check's paths)
    command: list[str] = field(default_factory=list)  # e.g. ["check"], ["certs", "install"]
    parser: argparse.ArgumentParser | None = None  # the (sub)command's parser
    help: bool = False


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _plugin_flag(word: str) -> tuple[str, str | None] | None:
    """(key, attached value or None) when `word` is one of the plugin's flags that take a value."""
    if word.startswith("--"):
        name, eq, value = word.partition("=")
        return (_LONG[name], value if eq else None) if name in _LONG else None
    if len(word) >= 2 and word[:2] in _SHORT:
        rest = word[2:]
        return _SHORT[word[:2]], (rest.removeprefix("=") if rest else None)
    return None


def _scan(argv: Sequence[str], root: argparse.ArgumentParser) -> _Scan:
    scan = _Scan(parser=root)
    current = root
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":  # the rest is positional, literally
            scan.args += argv[i:]
            break
        flag = _plugin_flag(word)
        if flag is not None:
            key, value = flag
            if value is None:
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: {word}")
                value, i = argv[i], i + 1
            if key == "f":
                scan.files.append(value)
            else:
                scan.flags[key] = value
            continue
        if word in _SWITCHES:
            continue
        if word.startswith("-") and word != "-":
            scan.help = scan.help or word in ("-h", "--help")
            scan.words.append(word)
            # One of netguard's options: its values pass through with it, whatever they look like.
            action = current._option_string_actions.get(word)
            nargs = action.nargs if action is not None else 0
            if nargs is None or isinstance(nargs, int):
                count = 1 if nargs is None else nargs
                scan.words += argv[i:i + count]
                i += count
            else:  # "?", "*", "+": the words up to the next option
                while i < len(argv) and not argv[i].startswith("-"):
                    scan.words.append(argv[i])
                    i += 1
                    if nargs == "?":
                        break
            continue
        children = _subparsers(current)
        if children and word in children and not scan.args:
            scan.command.append(word)
            scan.words.append(word)
            current = scan.parser = children[word]
        elif not scan.command and word == "version":
            scan.command.append(word)
        else:
            scan.args.append(word)
    return scan


def _options(parser: argparse.ArgumentParser | None) -> dict[str, argparse.Action]:
    return dict(parser._option_string_actions) if parser is not None else {}


def _takes_paths(parser: argparse.ArgumentParser | None) -> bool:
    return parser is not None and any(a.dest == "paths" and not a.option_strings for a in parser._actions)


class _Help(Exception):
    """The plugin's own usage was asked for (or no command given)."""


def translate(argv: Sequence[str], root: argparse.ArgumentParser | None = None) -> list[str]:
    """The `netguard` command line for `kubectl netguard ARGV`; UsageError when there is none.

    netguard's options keep their order; the plugin's flags become netguard's options after them; the
    positional words and the -f paths come last, after `--` (argparse takes a command's paths in one run).
    """
    if root is None:
        from webhook.cli import _parser

        root = _parser()
    scan = _scan(argv, root)
    if not scan.command:
        if scan.help or not (scan.words or scan.args):
            raise _Help()
        if scan.args:
            raise UsageError(f"unknown command {scan.args[0]!r}")
        return scan.words  # top-level options only (--version): netguard answers them
    if scan.command == ["version"]:
        if "--version" in _options(root):
            return ["--version"]
        raise UsageError("unknown command 'version'")
    options = _options(scan.parser)
    name = " ".join(scan.command)
    extra: list[str] = []
    if "n" in scan.flags and "--namespace" in options:
        extra += ["--namespace", scan.flags["n"]]
    for key in ("context", "kubeconfig"):
        if key in scan.flags and f"--{key}" in options:
            extra += [f"--{key}", scan.flags[key]]
    if "o" in scan.flags:
        fmt = options.get("--format")
        if fmt is None:
            raise UsageError(f"-o/--output: `{PROG} {name}` has a single output format")
        if fmt.choices is not None and scan.flags["o"] not in fmt.choices:
            raise UsageError(f"-o/--output takes a format ({', '.join(map(str, fmt.choices))}), got "
                             f"{scan.flags['o']!r}; redirect standard output to write a file")
        extra += ["--format", scan.flags["o"]]
    paths = list(scan.args)
    if scan.files:
        if "--from" in options:  # audit: manifests instead of the cluster
            for path in scan.files:
                extra += ["--from", path]
        elif _takes_paths(scan.parser):
            paths += scan.files
        else:
            raise UsageError(f"-f/--filename: `{PROG} {name}` reads no manifests")
    elif _takes_paths(scan.parser) and not paths and not scan.help:
        raise UsageError(f"must specify -f/--filename for `{PROG} {name}` (a file, a folder, or - for "
                         "standard input)")
    return [*scan.words, *extra, *(["--", *paths] if paths else [])]


def main(argv: Sequence[str] | None = None) -> int:
    from webhook import cli

    if "_ARGCOMPLETE" in os.environ:  # `kubectl-netguard <TAB>`: netguard's own commands and options
        return cli.main(argv)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        translated = translate(args)
    except _Help:
        if not args:  # no command: as argparse answers `netguard` alone
            sys.stderr.write(USAGE)
            return EXIT_USAGE
        sys.stdout.write(USAGE)
        return 0
    except UsageError as exc:
        print(f"error: {exc}\nSee '{PROG} --help' for usage.", file=sys.stderr)
        return EXIT_USAGE
    return cli.main(translated)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
