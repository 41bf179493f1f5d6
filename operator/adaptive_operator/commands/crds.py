"""`adaptive-operator crds`: write the CRDs and the CRD reference generated from the models, or
check them."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import Any

# crds/ at the repository root (operator/adaptive_operator/commands/crds.py is 4 levels down),
# and the Helm chart's copy, which its CRD template ships.
ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OUTS = (ROOT / "crds", ROOT / "charts" / "adaptive-operator" / "files" / "crds")
DEFAULT_REFERENCE = ROOT / "docs" / "crd-reference.md"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("crds", help="write the CRDs generated from the models")
    parser.add_argument("--out", type=Path, action="append", default=None,
                        help="directory (repeatable; default: crds/ and the chart's files/crds/)")
    parser.add_argument("--reference", type=Path, default=None,
                        help="the Markdown CRD reference (default: docs/crd-reference.md when "
                             "--out is not given; with --out, only when given)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files differ"
    )
    parser.set_defaults(func=run)


def drift(out: Path, rendered: dict[str, str]) -> list[str]:
    """One summary line per file that is missing or differs from what the models generate."""
    lines = []
    for name, text in sorted(rendered.items()):
        path = out / name
        if not path.exists():
            lines.append(f"{path}: missing")
            continue
        old = path.read_text(encoding="utf-8").splitlines()
        diff = list(difflib.unified_diff(old, text.splitlines(), lineterm="", n=0))
        changed = [d for d in diff[2:] if d[:1] in "+-"]
        if changed:
            lines.append(f"{path}: {len(changed)} line(s) differ, first: {changed[0]}")
    return lines


def targets(args: argparse.Namespace) -> list[tuple[Path, dict[str, str]]]:
    """(directory, file name -> text) for everything the command writes or checks."""
    from adaptive_operator.api.crd import render_all
    from adaptive_operator.api.reference import render_reference

    rendered = render_all()
    outs: list[Path] = args.out or list(DEFAULT_OUTS)
    found = [(out, rendered) for out in outs]
    reference: Path | None = args.reference or (None if args.out else DEFAULT_REFERENCE)
    if reference is not None:
        found.append((reference.parent, {reference.name: render_reference()}))
    return found


def run(args: argparse.Namespace) -> int:
    found = targets(args)
    if args.check:
        return check(found)
    write(found)
    return 0


def check(found: list[tuple[Path, dict[str, str]]]) -> int:
    """Print what differs from what the models generate; 1 when anything does, else 0."""
    problems = [line for out, rendered in found for line in drift(out, rendered)]
    for line in problems:
        print(line)
    if problems:
        print("run `adaptive-operator crds` to regenerate")
    return 1 if problems else 0


def write(found: list[tuple[Path, dict[str, str]]]) -> None:
    """Write every file, printing each path."""
    from adaptive_operator.cli import UsageError

    for out, rendered in found:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        for name, text in sorted(rendered.items()):
            (out / name).write_text(text, encoding="utf-8")
            print(out / name)
