"""`adaptive-operator run`: start the operator (settings from flags, else the environment)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adaptive_operator.adapters.leader import LeaderElector
    from adaptive_operator.handlers.ports import ClusterWorkloads


def register(subparsers: Any) -> None:
    env = os.environ.get
    parser = subparsers.add_parser("run", help="run the operator")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", action="append", default=None, dest="namespaces",
                       help="serve only this namespace, or a pattern in kopf's syntax "
                            "('team-*', '!*-pr-*'; a pattern watches cluster-wide and filters) "
                            "(repeatable; env WATCH_NAMESPACES, comma-separated); "
                            "default: all namespaces")
    # The chart says so explicitly, so that an empty WATCH_NAMESPACES cannot be misread.
    scope.add_argument("--all-namespaces", action="store_true",
                       help="serve every namespace, whatever WATCH_NAMESPACES says")
    parser.add_argument("--prometheus-url", default=env("PROMETHEUS_URL", "http://127.0.0.1:9090"),
                        help="default Prometheus for services that name none (env PROMETHEUS_URL)")
    parser.add_argument("--prometheus-allowed-url", action="append", default=None,
                        dest="allowed_urls",
                        help="a Prometheus endpoint services may name in spec.prometheus.url, "
                             "besides --prometheus-url (that URL or below its path; '*' allows "
                             "any) (repeatable; env PROMETHEUS_ALLOWED_URLS, comma-separated)")
    parser.add_argument("--prometheus-credentials-dir",
                        default=env("PROMETHEUS_CREDENTIALS_DIR") or None,
                        help="a mounted Secret with the credentials of --prometheus-url: files "
                             "token (bearer), username and password (basic), ca.crt, and "
                             "header-<Name> (a header, e.g. header-X-Scope-OrgID) "
                             "(env PROMETHEUS_CREDENTIALS_DIR)")
    parser.add_argument("--prometheus-insecure-skip-verify",
                        default=env("PROMETHEUS_INSECURE_SKIP_VERIFY", "false"),
                        choices=["true", "false"],
                        help="do not verify the TLS certificate of --prometheus-url "
                             "(env PROMETHEUS_INSECURE_SKIP_VERIFY)")
    parser.add_argument("--query-scope", default=env("QUERY_SCOPE", "none"),
                        choices=["none", "namespace"],
                        help="namespace: add namespace=\"<the service's namespace>\" to every "
                             "selector of every query, refusing what cannot be scoped; none: "
                             "queries read what they name (env QUERY_SCOPE)")
    parser.add_argument("--metrics-port", type=int, default=int(env("METRICS_PORT", "8080")),
                        help="port of /metrics (env METRICS_PORT; 0 turns it off)")
    parser.add_argument("--health-port", type=int, default=int(env("HEALTH_PORT", "8081")),
                        help="port of /healthz (env HEALTH_PORT)")
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default=env("LOG_FORMAT", "json"),
                        choices=["json", "console"])
    parser.add_argument("--leader-election", default=env("LEADER_ELECTION", "true"),
                        choices=["true", "false"],
                        help="run one active replica among several, through a Lease "
                             "(env LEADER_ELECTION)")
    parser.add_argument("--lease-namespace", default=env("POD_NAMESPACE", "default"),
                        help="namespace of the leader Lease (env POD_NAMESPACE)")
    parser.add_argument("--lease-name", default=env("LEASE_NAME", "adaptive-operator"))
    parser.add_argument("--batch-queries", default=env("BATCH_QUERIES", "true"),
                        choices=["true", "false"],
                        help="share Prometheus queries between services: one answer per shape "
                             "of query and a third of a sync period, and one range query per "
                             "shape for the history backfills (env BATCH_QUERIES)")
    parser.add_argument("--watch-cache", default=env("WATCH_CACHE", "true"),
                        choices=["true", "false"],
                        help="read the targets' Deployments, ReplicaSets, pods and "
                             "HorizontalPodAutoscalers from watches instead of per-sync reads "
                             "(env WATCH_CACHE)")
    parser.set_defaults(func=run)


def namespaces(args: argparse.Namespace) -> list[str]:
    if args.all_namespaces:
        return []
    if args.namespaces:
        return list(args.namespaces)
    listed = os.environ.get("WATCH_NAMESPACES", "")
    return [ns.strip() for ns in listed.split(",") if ns.strip()]


def allowed_urls(args: argparse.Namespace) -> tuple[str, ...]:
    listed = args.allowed_urls or os.environ.get("PROMETHEUS_ALLOWED_URLS", "").split(",")
    return tuple(url.strip() for url in listed if url.strip())


def kopf_identity() -> Any:
    """kopf's identity type (a NewType of str) is not exported; a plain str is what it holds."""
    return identity()


def identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def elector_for(args: argparse.Namespace) -> LeaderElector | None:
    """The Lease elector with --leader-election, else None (this process always acts)."""
    from adaptive_operator.adapters.leader import LeaderElector

    if args.leader_election != "true":
        return None
    return LeaderElector(args.lease_namespace, args.lease_name, identity())


def cluster_workloads(args: argparse.Namespace, api: Any) -> ClusterWorkloads:
    """The services' workloads: watch caches (with --watch-cache), API discovery and the
    writes, all through `api`."""
    from adaptive_operator.adapters import cluster_cache, discovery
    from adaptive_operator.handlers.ports import ClusterWorkloads

    cache = cluster_cache.ClusterCache(enabled=args.watch_cache == "true",
                                       starter=cluster_cache.informers(api))
    return ClusterWorkloads(cache, discovery.Discovery(discovery.listing_fetcher(api)).resolve,
                            api=api)


def run(args: argparse.Namespace) -> int:
    import kopf

    from adaptive_operator import logs
    from adaptive_operator.adapters import (
        health,
        kube,
        leader,
        prometheus,
        prometheus_access,
        query_batch,
        telemetry,
        workers,
    )
    from adaptive_operator.adapters.prometheus_http import IoLoop
    from adaptive_operator.adapters.range_batch import RangeBatcher
    from adaptive_operator.adapters.shard_cluster import ShardCluster
    from adaptive_operator.domain.common.namespaces import watch_scope
    from adaptive_operator.handlers import (  # noqa: F401 (importing registers the handlers)
        adaptive_service,
        healing,
        runtime,
        settings,
        shard_set,
        warmup,
    )
    from adaptive_operator.handlers.ports import OwnRecords

    logs.configure(args.log_level, json_output=args.log_format == "json")
    scope = watch_scope(namespaces(args))
    access_settings = prometheus_access.AccessSettings(
        url=args.prometheus_url, allowed=allowed_urls(args),
        credentials_dir=args.prometheus_credentials_dir,
        insecure_skip_verify=args.prometheus_insecure_skip_verify == "true",
        scope=args.query_scope)
    kube.load_config()
    health.serve(args.health_port)
    if args.metrics_port:
        telemetry.serve(args.metrics_port)
    stop_renewing, lost = threading.Event(), threading.Event()
    elector = elector_for(args)
    may_act = leader.may_act(elector)
    # Every call to the cluster goes through this client, handed to each port below: its
    # writes are refused while not leading.
    api = kube.fenced_client(may_act)
    access = prometheus_access.PrometheusAccess(access_settings,
                                                prometheus_access.secret_reader(api))
    records = OwnRecords(kube.OwnObjects(api))
    # Built once: every handler finds it in kopf's memo.
    pool, batch = workers.prometheus_pool(), args.batch_queries == "true"
    io = IoLoop()  # Prometheus's connection pool, on its own thread
    instant, ranged = prometheus.runners(io)
    memo = kopf.Memo(runtime=runtime.Runtime(
        shards=ShardCluster(api), may_act=may_act, prometheus=access, prometheus_pool=pool,
        workloads=cluster_workloads(args, api),
        hpas=kube.HpaLists(kube.hpa_lister(api)), status=records, events=records,
        read_load=runtime.OperatorLoad(access, pool, io),
        totals=query_batch.QueryBatcher(instant, enabled=batch, pool=pool),
        warmups=warmup.WarmUps(ranges=RangeBatcher(ranged, enabled=batch, pool=pool)),
        settings=runtime.OperatorSettings(namespace_patterns=scope.patterns)))
    if elector is not None:
        health.set_role("standby")
        elector.wait_for_leadership(threading.Event())

        def step_down() -> None:
            lost.set()
            # kopf's own graceful stop. (Its `stop_flag` is waited on in an executor thread,
            # which would keep the process alive after a plain SIGTERM.)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=elector.keep_leading, daemon=True, name="lease",
                         args=(stop_renewing, step_down)).start()
    health.set_role("leader")
    try:
        # Our own identity: kopf's default asks the passwd database for the user, which has
        # no entry for the image's numeric non-root uid (every real pod crashed on it).
        kopf.run(clusterwide=scope.clusterwide, namespaces=list(scope.namespaces),
                 standalone=True, identity=kopf_identity(), memo=memo)
    finally:
        stop_renewing.set()
        pool.shutdown(wait=False)
        io.close()
        if elector is not None and not lost.is_set():
            elector.release()
    return 1 if lost.is_set() else 0
