"""One list of a namespace's HorizontalPodAutoscalers serves every service there for a while."""

from __future__ import annotations

from adaptive_operator.adapters import kube

TARGET = kube.TargetRef("apps/v1", "Deployment", "web")


class Listing:
    """The API server's HorizontalPodAutoscalers; records which namespaces were listed."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, namespace: str) -> kube.HpaTargets:
        self.made.append(namespace)
        return (("Deployment", "web", "web-hpa"), ("StatefulSet", "db", "db-hpa"))


async def test_services_of_a_namespace_share_one_list() -> None:
    listing = Listing()
    lists = kube.HpaLists(listing)
    other = kube.TargetRef("apps/v1", "Deployment", "api")
    assert await lists.conflicting("prod", TARGET, max_age=5.0) == "web-hpa"
    assert await lists.conflicting("prod", other, max_age=5.0) is None
    assert await lists.conflicting("dev", TARGET, max_age=5.0) == "web-hpa"
    assert listing.made == ["prod", "dev"]


async def test_without_an_age_every_call_lists() -> None:
    listing = Listing()
    lists = kube.HpaLists(listing)
    for _ in range(2):
        await lists.conflicting("prod", TARGET)
    assert listing.made == ["prod", "prod"]
