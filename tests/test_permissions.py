"""The operator's RBAC is derived from the Kubernetes client calls its code makes: every client
method the code calls is in `permissions.CALLS`, and the code's permissions are exactly what
those methods need, so an unused verb or a missing one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from kubernetes import client

from adaptive_operator import permissions

SOURCE = Path(permissions.__file__).parent
CLIENT_CLASSES = (client.CoreV1Api, client.AppsV1Api, client.BatchV1Api, client.AutoscalingV2Api,
                  client.CoordinationV1Api, client.CustomObjectsApi, client.PolicyV1Api)
VERBS = ("get_", "list_", "read_", "create_", "patch_", "replace_", "delete_")
CLIENT_METHODS = {name for api in CLIENT_CLASSES for name in dir(api)
                  if name.startswith(VERBS) and not name.endswith("_with_http_info")}


def called_client_methods() -> set[str]:
    """Names of client methods the code calls, directly or named in a table (as strings)."""
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in CLIENT_METHODS:
                found.add(node.attr)
            elif isinstance(node, ast.Constant) and node.value in CLIENT_METHODS:
                found.add(str(node.value))
    return found


def test_every_client_call_of_the_code_is_declared() -> None:
    called = called_client_methods()
    assert called, "the scan found no client call at all"
    assert called - set(permissions.CALLS) == set()


def test_nothing_is_declared_that_the_code_does_not_call() -> None:
    assert set(permissions.CALLS) - called_client_methods() == set()


def test_the_permissions_are_the_calls_and_kopfs_needs() -> None:
    def triples(items: tuple[permissions.Permission, ...]) -> set[permissions.Triple]:
        return {(p.api_group, p.resource, verb) for p in items for verb in p.verbs}

    assert triples(permissions.CODE) == {t for needs in permissions.CALLS.values() for t in needs}
    assert triples(permissions.PERMISSIONS) == (triples(permissions.CODE)
                                                | triples(permissions.FRAMEWORK)
                                                | triples(permissions.OWNER_READS))


def test_verbs_granted_but_unused_before_are_gone_and_statefulset_patch_is_granted() -> None:
    granted = {(p.api_group, p.resource, verb) for p in permissions.PERMISSIONS
               for verb in p.verbs}
    assert ("apps", "statefulsets", "patch") in granted  # ShardSet template updates
    assert ("adaptive.dev", "shardsets/finalizers", "update") in granted  # blockOwnerDeletion
    for unused in [("", "pods", "delete"), ("kopf.dev", "clusterkopfpeerings", "patch"),
                   ("", "configmaps", "patch"), ("", "configmaps", "delete")]:
        assert unused not in granted
