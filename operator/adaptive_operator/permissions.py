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
SCALE = ("get", "patch", "update")  # what the scaler does to a target's /scale

PERMISSIONS: tuple[Permission, ...] = (
    # Our own resources: handlers read them, kopf patches its bookkeeping annotations and
    # finalizers, and status is written through the status subresource.
    Permission("adaptive.dev", "adaptiveservices", (*READ, "patch", "update")),
    Permission("adaptive.dev", "adaptiveservices/status", ("get", "patch", "update")),
    Permission("adaptive.dev", "shardsets", (*READ, "patch", "update")),
    Permission("adaptive.dev", "shardsets/status", ("get", "patch", "update")),
    # Workloads: Deployments are rolled back and restarted by patching (StatefulSets restarted);
    # a ShardSet owns one StatefulSet per shard; ReplicaSets are read to find the previous
    # revision of a rollout.
    Permission("apps", "deployments", (*READ, "patch")),
    Permission("apps", "statefulsets", (*READ, "create", "update", "patch", "delete")),
    Permission("apps", "replicasets", READ),
    Permission("apps", "controllerrevisions", READ),  # a StatefulSet's earlier templates
    Permission("apps", "deployments/scale", SCALE),
    Permission("apps", "statefulsets/scale", SCALE),
    # Healing: unhealthy pods are deleted (or evicted, which respects PodDisruptionBudgets).
    Permission(CORE, "pods", (*READ, "delete")),
    Permission(CORE, "pods/eviction", ("create",)),
    # A ShardSet's headless Services and the routing table published as a ConfigMap.
    Permission(CORE, "services", (*READ, "create", "update", "patch", "delete")),
    Permission(CORE, "configmaps", (*READ, "create", "update", "patch", "delete")),
    # Events explain every action: kopf posts through the core API, our code through
    # events.k8s.io.
    Permission(CORE, "events", ("create", "patch")),
    Permission("events.k8s.io", "events", ("create", "patch")),
    # Slot migrations of a ShardSet run as Jobs.
    Permission("batch", "jobs", (*READ, "create", "delete")),
    # An AdaptiveService refuses to fight an HPA that targets the same workload.
    Permission("autoscaling", "horizontalpodautoscalers", READ),
    # Leader election: several replicas, one active.
    Permission("coordination.k8s.io", "leases", (*READ, "create", "update")),
    # kopf itself: it discovers the CRDs it serves and the namespaces it watches.
    Permission("apiextensions.k8s.io", "customresourcedefinitions", READ),
    Permission(CORE, "namespaces", ("list", "watch")),
    # kopf peering, so that only one replica handles events at a time.
    Permission("kopf.dev", "clusterkopfpeerings", (*READ, "patch")),
)


def scale_target(api_group: str, resource: str) -> Permission:
    """What the chart's `rbac.scaleTargets` entry grants for one more kind to scale."""
    return Permission(api_group, f"{resource}/scale", SCALE)
