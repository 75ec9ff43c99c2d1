"""The largest count of each thing webhook/core/limits.py limits, over a folder of real policies.

    .venv/bin/python bench/corpus_limits.py /work/shared/corpus

Prints a Markdown table (limit, default, corpus maximum, where): the source of the corpus column in
docs/configuration.md. Defaults should stay at least 10x the corpus maximum.
"""

from __future__ import annotations

import argparse

from webhook.core.limits import Limits, counts
from webhook.offline.sources import read_paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs="*", default=["/work/shared/corpus"])
    args = parser.parse_args()
    documents, errors = read_paths(args.paths)
    best: dict[str, tuple[int, str]] = {name: (0, "") for name in Limits.names()}
    policies = 0
    for doc in documents:
        seen = False
        for c in counts(doc.obj):
            seen = True
            if c.count > best[c.limit][0]:
                best[c.limit] = (c.count, f"{doc.source}:{doc.line} {c.path}")
        policies += seen
    defaults = Limits()
    print(f"{policies} policies in {len(documents)} documents ({len(errors)} unreadable)\n")
    print("| limit | default | corpus max | ratio | where |")
    print("|---|---|---|---|---|")
    for name in Limits.names():
        count, where = best[name]
        default = getattr(defaults, name)
        ratio = f"{default / count:.0f}x" if count else "-"
        print(f"| `{name}` | {default} | {count} | {ratio} | {where} |")


if __name__ == "__main__":
    main()
