"""Every file in examples/ is accepted by the API server as it stands."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Cluster

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(crds: Cluster, namespace: str, example: Path) -> None:
    out = crds.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(example))
    assert "created (server dry run)" in out
