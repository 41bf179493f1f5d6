"""API discovery of scale targets: plural and /scale from the API server, cached, not guessed."""

from __future__ import annotations

import pytest

from adaptive_operator.adapters import discovery, kube
from adaptive_operator.adapters.discovery import Discovery, DiscoveryError, Resource

LISTINGS = {
    "apps/v1": [{"name": "deployments", "kind": "Deployment", "namespaced": True},
                {"name": "deployments/scale", "kind": "Scale", "namespaced": True},
                {"name": "statefulsets", "kind": "StatefulSet", "namespaced": True},
                {"name": "statefulsets/scale", "kind": "Scale", "namespaced": True},
                {"name": "controllerrevisions", "kind": "ControllerRevision",
                 "namespaced": True}],
    "v1": [{"name": "replicationcontrollers", "kind": "ReplicationController",
            "namespaced": True},
           {"name": "replicationcontrollers/scale", "kind": "Scale", "namespaced": True}],
    "e2e.adaptive.dev/v1": [{"name": "widgetries", "kind": "Widget", "namespaced": True},
                            {"name": "widgetries/scale", "kind": "Scale", "namespaced": True}],
}


class Server:
    def __init__(self) -> None:
        self.listings = {k: list(v) for k, v in LISTINGS.items()}
        self.fetches: list[str] = []
        self.now = 0.0

    def fetch(self, api_version: str) -> list[dict[str, object]]:
        self.fetches.append(api_version)
        return list(self.listings.get(api_version, []))


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.mark.parametrize(("api_version", "kind", "path"), [
    pytest.param("apps/v1", "StatefulSet", "/apis/apps/v1/namespaces/ns/statefulsets/db/scale",
                 id="statefulset"),
    pytest.param("v1", "ReplicationController",
                 "/api/v1/namespaces/ns/replicationcontrollers/db/scale", id="core-group"),
    pytest.param("e2e.adaptive.dev/v1", "Widget",
                 "/apis/e2e.adaptive.dev/v1/namespaces/ns/widgetries/db/scale",
                 id="irregular-plural-custom-resource"),
])
def test_the_path_comes_from_discovery(server: Server, api_version: str, kind: str,
                                       path: str) -> None:
    found = Discovery(server.fetch, lambda: server.now).resolve(api_version, kind)
    assert found.scalable and found.namespaced
    assert found.path("ns", "db", "scale") == path


def test_a_kind_without_scale_is_known_but_not_scalable(server: Server) -> None:
    found = Discovery(server.fetch).resolve("apps/v1", "ControllerRevision")
    assert found == Resource("apps", "v1", "ControllerRevision", "controllerrevisions", True,
                             False)


def test_an_unknown_kind_is_refused_and_asked_again_soon(server: Server) -> None:
    cache = Discovery(server.fetch, lambda: server.now)
    with pytest.raises(DiscoveryError, match="serves no kind Gadget in apps/v1") as caught:
        cache.resolve("apps/v1", "Gadget")
    assert caught.value.reason == "UnknownKind"
    server.listings["apps/v1"].append({"name": "gadgets", "kind": "Gadget", "namespaced": True})
    server.now = discovery.MISS_TTL_SECONDS - 1
    with pytest.raises(DiscoveryError):
        cache.resolve("apps/v1", "Gadget")  # the miss is kept a little while
    server.now = discovery.MISS_TTL_SECONDS + 1
    assert cache.resolve("apps/v1", "Gadget").plural == "gadgets"  # its CRD was installed


def test_a_found_kind_is_served_from_the_cache_until_the_ttl(server: Server) -> None:
    cache = Discovery(server.fetch, lambda: server.now)
    for _ in range(3):
        cache.resolve("apps/v1", "Deployment")
    assert server.fetches == ["apps/v1"]
    server.now = discovery.TTL_SECONDS + 1
    cache.resolve("apps/v1", "StatefulSet")
    assert server.fetches == ["apps/v1", "apps/v1"]


def test_a_group_version_not_served_lists_nothing(server: Server) -> None:
    with pytest.raises(DiscoveryError, match=r"argoproj\.io/v1alpha1"):
        Discovery(server.fetch).resolve("argoproj.io/v1alpha1", "Rollout")


def test_the_scaler_refuses_a_kind_without_scale(server: Server) -> None:
    resolve = Discovery(server.fetch).resolve
    with pytest.raises(kube.TargetError, match="no /scale subresource") as caught:
        kube._resource(kube.TargetRef("apps/v1", "ControllerRevision", "x"), resolve)
    assert caught.value.reason == "NotScalable"
    with pytest.raises(kube.TargetError) as unknown:
        kube._resource(kube.TargetRef("apps/v1", "Gadget", "x"), resolve)
    assert unknown.value.reason == "UnknownKind"
