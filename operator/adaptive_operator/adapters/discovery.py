"""API discovery: the resource behind an (apiVersion, kind), as `kubectl api-resources` finds it.

A target's plural cannot be guessed from its kind (core-group kinds, irregular plurals, custom
resources), and whether it has a /scale subresource is the API server's to say. One discovery
read per group-version serves every service for a while; a kind not found is looked up again
sooner (a CRD just installed), never guessed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from adaptive_operator.adapters.telemetry import API_REQUESTS

TTL_SECONDS = 300.0
MISS_TTL_SECONDS = 10.0  # a kind not served: asked again this soon (its CRD may be installing)


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    scalable: bool  # has a /scale subresource

    def path(self, namespace: str, name: str, subresource: str = "") -> str:
        root = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        tail = f"/{subresource}" if subresource else ""
        return f"{root}/namespaces/{namespace}/{self.plural}/{name}{tail}"


class DiscoveryError(Exception):
    """The kind is not served, or not scalable; `reason` is CamelCase, for a condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def split(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def from_listing(api_version: str, kind: str, listing: list[dict[str, Any]]) -> Resource | None:
    """The resource of `kind` in a discovery listing (APIResourceList.resources), or None."""
    names = {str(r.get("name", "")) for r in listing}
    for entry in listing:
        name = str(entry.get("name", ""))
        if entry.get("kind") == kind and "/" not in name:
            group, version = split(api_version)
            return Resource(group, version, kind, name, bool(entry.get("namespaced")),
                            f"{name}/scale" in names)
    return None


class Discovery:
    """Listings by group-version, cached; `fetch` reads one (blocking, the API client's)."""

    def __init__(self, fetch: Any, clock: Any = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._listings: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def resolve(self, api_version: str, kind: str) -> Resource:
        """The resource, or DiscoveryError saying what is missing."""
        found = from_listing(api_version, kind, self._listing(api_version, kind))
        if found is None:
            raise DiscoveryError("UnknownKind", f"the API server serves no kind {kind} in "
                                                f"{api_version} (API discovery)")
        return found

    def _listing(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        now = self._clock()
        with self._lock:
            kept = self._listings.get(api_version)
        if kept is not None:
            has = from_listing(api_version, kind, kept[1]) is not None
            if now - kept[0] < (TTL_SECONDS if has else MISS_TTL_SECONDS):
                return kept[1]
        listing: list[dict[str, Any]] = self._fetch(api_version)
        with self._lock:
            self._listings[api_version] = (now, listing)
        return listing


def listing_fetcher(api: Any) -> Callable[[str], list[dict[str, Any]]]:
    """A group-version's listing read through `api` (a kubernetes ApiClient)."""
    def fetch_listing(api_version: str) -> list[dict[str, Any]]:
        """GET /api/v1 or /apis/GROUP/VERSION; an unserved group-version lists nothing."""
        from adaptive_operator.adapters.kube import request

        group, version = split(api_version)
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        API_REQUESTS.labels("get", "discovery").inc()
        try:
            body: Any = request(api, path, "GET")
        except ApiException as err:
            if err.status == 404:
                return []
            raise
        return [dict(r) for r in (body or {}).get("resources") or []]
    return fetch_listing


# (apiVersion, kind) -> its resource: a `Discovery`'s `resolve` (`run` builds one for the
# process: its listings serve every service).
Resolve = Callable[[str, str], Resource]
