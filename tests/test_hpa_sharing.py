"""One list of a namespace's HorizontalPodAutoscalers serves every service there for a while."""

from __future__ import annotations

import pytest

from adaptive_operator.adapters import kube

TARGET = kube.TargetRef("apps/v1", "Deployment", "web")


@pytest.fixture
def lists(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []

    def fake_list(namespace: str) -> kube.HpaTargets:
        made.append(namespace)
        return (("Deployment", "web", "web-hpa"), ("StatefulSet", "db", "db-hpa"))

    monkeypatch.setattr(kube, "_list_hpas", fake_list)
    monkeypatch.setattr(kube, "_hpa_lists", {})
    return made


async def test_services_of_a_namespace_share_one_list(lists: list[str]) -> None:
    other = kube.TargetRef("apps/v1", "Deployment", "api")
    assert await kube.conflicting_hpa("prod", TARGET, max_age=5.0) == "web-hpa"
    assert await kube.conflicting_hpa("prod", other, max_age=5.0) is None
    assert await kube.conflicting_hpa("dev", TARGET, max_age=5.0) == "web-hpa"
    assert lists == ["prod", "dev"]


async def test_without_an_age_every_call_lists(lists: list[str]) -> None:
    for _ in range(2):
        await kube.conflicting_hpa("prod", TARGET)
    assert lists == ["prod", "prod"]
