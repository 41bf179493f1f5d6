"""What the code calls on the Kubernetes API: the one source of the chart's RBAC.

Each entry is a resource the operator reads or writes, with exactly the verbs its code uses.
The Helm chart's ClusterRole (`charts/adaptive-operator/templates/clusterrole.yaml`) is written
to match this list, and `tests/test_chart.py` renders the chart and fails when the two differ in
either direction: a verb the code needs but the chart does not grant breaks the operator in a
cluster, and a verb the chart grants but the code never uses is privilege nobody asked for.

When code starts calling something new, add it here first; the test then says what the chart
lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

CORE = ""  # the API group of pods, services, configmaps, events


@dataclass(frozen=True)
class Permission:
    """One resource (or `resource/subresource`) of one API group, and the verbs used on it."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]


READ = ("get", "list", "watch")
SCALE = ("get", "patch")  # what the scaler does to a target's /scale
Triple = tuple[str, str, str]  # (API group, resource, verb)

# Every Kubernetes client method the operator's code calls, and what it needs. A test scans the
# code for client calls: a call missing here fails it, and CODE must be exactly what the called
# methods need. The informer lists and then watches what it lists.
CALLS: dict[str, tuple[Triple, ...]] = {
    "create_namespaced_config_map": ((CORE, "configmaps", "create"),),
    "read_namespaced_config_map": ((CORE, "configmaps", "get"),),
    "replace_namespaced_config_map": ((CORE, "configmaps", "update"),),
    "create_namespaced_service": ((CORE, "services", "create"),),
    "read_namespaced_service": ((CORE, "services", "get"),),
    "delete_namespaced_service": ((CORE, "services", "delete"),),
    "create_namespaced_stateful_set": (("apps", "statefulsets", "create"),),
    "read_namespaced_stateful_set": (("apps", "statefulsets", "get"),),
    "list_namespaced_stateful_set": (("apps", "statefulsets", "list"),),
    "patch_namespaced_stateful_set": (("apps", "statefulsets", "patch"),),
    "delete_namespaced_stateful_set": (("apps", "statefulsets", "delete"),),
    "create_namespaced_job": (("batch", "jobs", "create"),),
    "list_namespaced_job": (("batch", "jobs", "list"),),
    "delete_namespaced_job": (("batch", "jobs", "delete"),),
    "read_namespaced_deployment": (("apps", "deployments", "get"),),
    "patch_namespaced_deployment": (("apps", "deployments", "patch"),),
    "list_namespaced_deployment": (("apps", "deployments", "list"),
                                   ("apps", "deployments", "watch")),
    "list_namespaced_controller_revision": (("apps", "controllerrevisions", "list"),),
    "list_namespaced_replica_set": (("apps", "replicasets", "list"),
                                    ("apps", "replicasets", "watch")),
    "list_namespaced_pod": ((CORE, "pods", "list"), (CORE, "pods", "watch")),
    "read_namespaced_pod": ((CORE, "pods", "get"),),
    "list_namespaced_horizontal_pod_autoscaler": (
        ("autoscaling", "horizontalpodautoscalers", "list"),
        ("autoscaling", "horizontalpodautoscalers", "watch")),
    "create_namespaced_pod_eviction": ((CORE, "pods/eviction", "create"),),
    # Credentials of a service's Prometheus: the Secret `spec.prometheus.auth` names.
    "read_namespaced_secret": ((CORE, "secrets", "get"),),
    "create_namespaced_lease": (("coordination.k8s.io", "leases", "create"),),
    "read_namespaced_lease": (("coordination.k8s.io", "leases", "get"),),
    "list_namespaced_lease": (("coordination.k8s.io", "leases", "list"),),
    "replace_namespaced_lease": (("coordination.k8s.io", "leases", "update"),),
    # Custom objects: our own (the healing ledger and a ShardSet's records in annotations, and
    # status), and the scale subresource of the kinds a service may target.
    "get_namespaced_custom_object": (("adaptive.dev", "adaptiveservices", "get"),),
    "patch_namespaced_custom_object": (("adaptive.dev", "adaptiveservices", "patch"),
                                       ("adaptive.dev", "shardsets", "patch")),
    "patch_namespaced_custom_object_status": (
        ("adaptive.dev", "adaptiveservices/status", "patch"),
        ("adaptive.dev", "shardsets/status", "patch")),
    # The Events about our own objects (through the fenced client, not kopf's).
    "create_namespaced_event": ((CORE, "events", "create"),),
    "get_namespaced_custom_object_scale": (("apps", "deployments/scale", "get"),
                                           ("apps", "statefulsets/scale", "get")),
    "patch_namespaced_custom_object_scale": (("apps", "deployments/scale", "patch"),
                                             ("apps", "statefulsets/scale", "patch")),
}


def _grouped(triples: set[Triple]) -> tuple[Permission, ...]:
    order = ("get", "list", "watch", "create", "update", "patch", "delete")
    keys = sorted({(group, resource) for group, resource, _ in triples})
    return tuple(
        Permission(group, resource, tuple(v for v in order if (group, resource, v) in triples))
        for group, resource in keys)


# What our own code calls (derived from CALLS).
CODE: tuple[Permission, ...] = _grouped({t for needs in CALLS.values() for t in needs})

# What kopf itself calls: it lists and watches the resources it serves and patches their
# finalizer and its bookkeeping annotation, posts its own warnings as Events through the core
# API, and discovers CRDs and namespaces. It writes no status (no handler returns a result, and
# its progress is kept in annotations). The operator runs kopf standalone (leader election is
# ours), so kopf's peering objects are never used.
FRAMEWORK: tuple[Permission, ...] = (
    Permission("adaptive.dev", "adaptiveservices", ("list", "watch", "patch")),
    Permission("adaptive.dev", "shardsets", ("list", "watch", "patch")),
    # Objects a ShardSet creates carry an owner reference with blockOwnerDeletion, which
    # needs `update` on the owner's finalizers where OwnerReferencesPermissionEnforcement runs.
    Permission("adaptive.dev", "shardsets/finalizers", ("update",)),
    Permission(CORE, "events", ("create",)),
    Permission("apiextensions.k8s.io", "customresourcedefinitions", READ),
    Permission(CORE, "namespaces", ("list", "watch")),
)

# Generic reads (adapters/workload._read_object, not a client method): the ownership check
# before evicting a pod of a kind other than Deployment or StatefulSet reads each owner on the
# chain from the pod to the target: the ReplicaSets between an Argo Rollout and its pods (a
# StatefulSet between a custom resource and its pods is read already). The target itself is
# granted with its /scale (`scale_target`).
OWNER_READS: tuple[Permission, ...] = (Permission("apps", "replicasets", ("get",)),)

PERMISSIONS: tuple[Permission, ...] = _grouped(
    {(p.api_group, p.resource, verb) for p in (*CODE, *FRAMEWORK, *OWNER_READS)
     for verb in p.verbs})

# Cluster-scoped resources: granted by a ClusterRole even in a namespaced install.
CLUSTER_SCOPED = frozenset({"customresourcedefinitions", "namespaces"})


def scale_target(api_group: str, resource: str) -> tuple[Permission, ...]:
    """What the chart's `rbac.scaleTargets` entry grants for one more kind to scale: its /scale,
    and `get` on the kind itself, whose UID the ownership check before an eviction needs."""
    return (Permission(api_group, resource, ("get",)),
            Permission(api_group, f"{resource}/scale", SCALE))
