"""The documentation's bars: links resolve, and the README names every dependency and flag."""

import argparse
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from prometheus_client import Counter
from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel

from adaptive_operator.adapters import telemetry
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.shard_set import ShardSetSpec
from adaptive_operator.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "charts/adaptive-operator/README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "benchmarks/results").glob("*.md"),
    ]
)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`\n]*`")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
SPECS: dict[str, type[BaseModel]] = {
    "AdaptiveService": AdaptiveServiceSpec,
    "ShardSet": ShardSetSpec,
}


def prose(text: str) -> str:
    """The text without code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("code", FENCE.sub("", text))


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, no punctuation, -N on repeats."""
    seen: dict[str, int] = {}
    for line in FENCE.sub("", text).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            if count:
                seen[f"{slug}-{count}"] = 1
    return set(seen)


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved.read_text()):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A `code` heading, twice\n\n# A code heading, twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#a-code-heading-twice-1) [web](https://example.com) `[not](a-link.md)`\n"
        "[gone](missing.md) [no heading](there.md#nowhere) [self](#here)\n\n## Here\n"
    )
    assert broken_links(page) == ["missing.md: no such file", "there.md#nowhere: no such heading"]


def dependency_names() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0] for spec in specs]


def test_the_readme_says_why_each_dependency_is_there() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Dependencies\n", 1)[1].split("\n## ", 1)[0].lower()
    missing = [name for name in dependency_names() if name.lower() not in section]
    assert missing == [], f"dependencies the README's Dependencies section omits: {missing}"


def manifests() -> list[tuple[str, dict[str, object]]]:
    """The examples, and every resource the README shows in a YAML block."""
    texts = [(path.name, path.read_text()) for path in sorted((ROOT / "examples").glob("*.yaml"))]
    readme = (ROOT / "README.md").read_text()
    texts += [("README.md", block) for block in YAML_BLOCK.findall(readme)]
    found = [(where, doc) for where, text in texts for doc in yaml.safe_load_all(text)]
    return [(where, doc) for where, doc in found if doc and doc.get("kind") in SPECS]


@pytest.mark.parametrize(
    "manifest",
    [doc for _, doc in manifests()],
    ids=[f"{where}-{doc['kind']}" for where, doc in manifests()],
)
def test_the_shown_resources_are_valid(manifest: dict[str, object]) -> None:
    SPECS[str(manifest["kind"])].model_validate(manifest["spec"])


def test_the_readme_shows_both_resources() -> None:
    assert {doc["kind"] for where, doc in manifests() if where == "README.md"} == set(SPECS)


def run_flags() -> list[str]:
    """Every option of `adaptive-operator run`, from its parser."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = subparsers.choices["run"]
    flags = [flag for action in run._actions for flag in action.option_strings]
    return [flag for flag in flags if flag.startswith("--") and flag != "--help"]


def test_the_readme_lists_every_run_flag() -> None:
    readme = (ROOT / "README.md").read_text()
    operations = readme.split("\n## Operations\n", 1)[1].split("\n## ", 1)[0]
    missing = [flag for flag in run_flags() if f"`{flag}" not in operations]
    assert missing == [], f"flags of `run` the README's Operations section omits: {missing}"


def operator_metric_names() -> list[str]:
    names = []
    for value in vars(telemetry).values():
        if isinstance(value, MetricWrapperBase):
            suffix = "_total" if isinstance(value, Counter) else ""
            names.append(f"{value._name}{suffix}")
    return names


def test_the_operations_page_lists_every_operator_metric() -> None:
    page = (ROOT / "docs/operations.md").read_text()
    names = operator_metric_names()
    assert "adaptive_gc_pause_seconds_total" in names
    missing = [name for name in names if f"| `{name}` |" not in page]
    assert missing == [], f"metrics docs/operations.md's table omits: {missing}"
