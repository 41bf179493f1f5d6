"""kopf's essence of an AdaptiveService, built without copying its status nor the metadata kopf
drops, is kopf's own."""

from __future__ import annotations

from typing import Any

import kopf

from adaptive_operator.handlers import settings
from adaptive_operator.handlers.settings import StatuslessDiffBase

BODY: kopf.RawBody = {
    "apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
    "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "7",  # type: ignore[typeddict-unknown-key]
                 "managedFields": [{"manager": "adaptive-operator", "operation": "Update",
                                    "fieldsV1": {"f:status": {"f:desiredReplicas": {}}}}],
                 "labels": {"team": "a"},
                 "annotations": {"note": "kept", "adaptive.dev/healing-ledger": "[]",
                                 "adaptive.dev/last-handled-configuration": "{}"}},
    "spec": {"minReplicas": 1, "maxReplicas": 5},
    "status": {"history": {"recommendations": [{"time": "t", "replicas": 3}]},
               "desiredReplicas": 3},
}


def storages() -> tuple[kopf.AnnotationsDiffBaseStorage, StatuslessDiffBase]:
    options: dict[str, Any] = {"prefix": "adaptive.dev", "key": "last-handled-configuration"}
    return kopf.AnnotationsDiffBaseStorage(**options), StatuslessDiffBase(**options)


def test_the_essence_is_the_same_as_kopfs_own() -> None:
    kopfs, ours = storages()
    body = kopf.Body(BODY)
    assert ours.build(body=body) == kopfs.build(body=body)
    assert "status" not in ours.build(body=body)


def test_a_handler_on_a_status_field_still_gets_it() -> None:
    kopfs, ours = storages()
    body, fields = kopf.Body(BODY), [("status", "desiredReplicas")]
    assert ours.build(body=body, extra_fields=fields) == kopfs.build(body=body,
                                                                    extra_fields=fields)
    assert ours.build(body=body, extra_fields=fields)["status"] == {"desiredReplicas": 3}


def test_only_what_kopf_keeps_is_handed_to_its_copy(monkeypatch: Any) -> None:
    """kopf deep-copies the body it is given, then drops the status and the metadata but its
    labels and annotations: ours is given those only (the managedFields are not copied)."""
    given: list[kopf.Body] = []
    build = kopf.AnnotationsDiffBaseStorage.build

    def recorded(self: Any, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        given.append(body)
        return build(self, body=body, extra_fields=extra_fields)

    monkeypatch.setattr(kopf.AnnotationsDiffBaseStorage, "build", recorded)
    storages()[1].build(body=kopf.Body(BODY))
    (body,) = given
    assert set(body) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(body["metadata"]) == set(settings.KEPT_METADATA)
