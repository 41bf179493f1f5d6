"""kopf's essence of an AdaptiveService, built without copying its status, is kopf's own."""

from __future__ import annotations

from typing import Any

import kopf

from adaptive_operator.handlers.settings import StatuslessDiffBase

BODY: kopf.RawBody = {
    "apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
    "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "7",
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
