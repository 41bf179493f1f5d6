"""`adaptive-operator run`: start the operator (settings from flags, else the environment)."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adaptive_operator.adapters.lease_process import LeaseProcess
    from adaptive_operator.domain.common.namespaces import WatchScope
    from adaptive_operator.handlers.runtime import Runtime


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
    parser.add_argument("--lease-shards", type=lease_shards,
                        default=lease_shards(env("LEASE_SHARDS", "1")),
                        help="share the services out across replicas over this many shard "
                             "Leases (2 to 16), each replica acting on the services of the "
                             "shards it holds; 1: one active replica, the others stand by "
                             "(env LEASE_SHARDS; needs --leader-election true)")
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
    parser.set_defaults(func=run_and_exit)


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


def leader_lease(args: argparse.Namespace) -> LeaseProcess | None:
    """The leader's Lease with --leader-election, renewed by a process of its own (as the
    shard Leases), else None (this process always acts)."""
    from adaptive_operator.adapters.lease_process import LeaseProcess, LeaseSpec

    if args.leader_election != "true":
        return None
    return LeaseProcess(LeaseSpec(args.lease_namespace, args.lease_name, identity(), 1,
                                  args.log_level, args.log_format == "json", leader=True))


def lease_shards(text: str) -> int:
    """--lease-shards: 1 (one active replica) up to MAX_LEASE_SHARDS."""
    from adaptive_operator.domain.common.lease_shards import MAX_LEASE_SHARDS

    value = int(text)
    if not 1 <= value <= MAX_LEASE_SHARDS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_LEASE_SHARDS}, got {value}")
    return value


def sharded_leases(args: argparse.Namespace) -> LeaseProcess:
    """The shard and member Leases of --lease-shards K (K > 1), renewed by a process of their
    own."""
    from adaptive_operator.adapters.lease_process import LeaseProcess, LeaseSpec

    return LeaseProcess(LeaseSpec(args.lease_namespace, args.lease_name, identity(),
                                  args.lease_shards, args.log_level, args.log_format == "json"))


Fence = tuple[Any, Callable[[], bool]]  # a client whose writes a lease fences, and that check


def build_runtime(args: argparse.Namespace, patterns: tuple[str, ...], reads: Any,
                  fences: tuple[Fence, ...], pool: Any, io: Any) -> Runtime:
    """The runtime every handler finds in kopf's memo, built once. `reads` serves the reads
    every service shares (watch caches, API discovery, Secrets, HPA lists); each of `fences`
    the writes of one lease: with one, the runtime's own; with K > 1, one runtime per shard."""
    from dataclasses import replace

    from adaptive_operator.adapters import (
        cluster_cache,
        discovery,
        kube,
        prometheus,
        prometheus_access,
        query_batch,
    )
    from adaptive_operator.adapters.range_batch import RangeBatcher
    from adaptive_operator.adapters.shard_cluster import ShardCluster
    from adaptive_operator.handlers import runtime, warmup
    from adaptive_operator.handlers.ports import ClusterWorkloads, OwnRecords

    access = prometheus_access.PrometheusAccess(prometheus_access.AccessSettings(
        url=args.prometheus_url, allowed=allowed_urls(args),
        credentials_dir=args.prometheus_credentials_dir,
        insecure_skip_verify=args.prometheus_insecure_skip_verify == "true",
        scope=args.query_scope), prometheus_access.secret_reader(reads))
    cache = cluster_cache.ClusterCache(enabled=args.watch_cache == "true",
                                       starter=cluster_cache.informers(reads))
    resolve = discovery.Discovery(discovery.listing_fetcher(reads)).resolve

    def fenced(api: Any, may_act: Callable[[], bool]) -> dict[str, Any]:
        records = OwnRecords(kube.OwnObjects(api))
        return {"shards": ShardCluster(api), "may_act": may_act, "status": records,
                "events": records, "workloads": ClusterWorkloads(cache, resolve, api=api)}

    batch = args.batch_queries == "true"
    instant, ranged = prometheus.runners(io)
    built = runtime.Runtime(
        **fenced(*(fences[0] if len(fences) == 1 else (reads, runtime.never))),
        prometheus=access, prometheus_pool=pool, hpas=kube.HpaLists(kube.hpa_lister(reads)),
        read_load=runtime.OperatorLoad(access, pool, io),
        totals=query_batch.QueryBatcher(instant, enabled=batch, pool=pool),
        warmups=warmup.WarmUps(ranges=RangeBatcher(ranged, enabled=batch, pool=pool)),
        settings=runtime.OperatorSettings(namespace_patterns=patterns))
    if len(fences) == 1:
        return built
    return replace(built, lease_shards=tuple(replace(built, **fenced(*fence))
                                             for fence in fences))


def start_kopf(scope: WatchScope, built: Runtime) -> None:
    import kopf

    # Our own identity: kopf's default asks the passwd database for the user, which has
    # no entry for the image's numeric non-root uid (every real pod crashed on it).
    kopf.run(clusterwide=scope.clusterwide, namespaces=list(scope.namespaces),
             standalone=True, identity=kopf_identity(), memo=kopf.Memo(runtime=built),
             stop_flag=built.lifecycle.stop)  # raised on a stop signal (`follow_signals`)


def run_and_exit(args: argparse.Namespace) -> int:
    """`run`, then the process ends at once (`end_process`)."""
    code = run(args)
    end_process(code)
    return code  # not reached: os._exit does not return


def end_process(code: int, exit_with: Callable[[int], object] = os._exit,
                at_exit: Callable[[], None] = atexit._run_exitfuncs) -> None:
    """End the process with `code` without the interpreter's teardown. By the time `run`
    returns, all a restart needs is done: kopf has stopped every handler, the calls in flight
    have finished (or had `workers.STOP_GRACE_SECONDS`), the lease is given back. What the
    teardown adds is a last garbage collection over every service's histories and models,
    growing with their number: 6 s of a 17-s stop with 1,000 services (1.4 GB resident), seen
    in py-spy as `gc_collect_main` after the last Python frame. Log lines are flushed as they
    are written (structlog's WriteLogger, logging's StreamHandler); what else is buffered is
    flushed here, and what was registered to run at exit still runs (coverage saves its data
    there when the e2e suite measures this process)."""
    at_exit()
    sys.stdout.flush()
    sys.stderr.flush()
    exit_with(code)


def run(args: argparse.Namespace) -> int:
    from adaptive_operator import logs
    from adaptive_operator.adapters import collector, health, kube, leader, telemetry, workers
    from adaptive_operator.adapters.prometheus_http import IoLoop
    from adaptive_operator.domain.common.namespaces import watch_scope
    from adaptive_operator.handlers import (  # noqa: F401 (importing registers the handlers)
        adaptive_service,
        healing,
        settings,
        shard_set,
    )

    logs.configure(args.log_level, json_output=args.log_format == "json")
    collector.configure()
    scope = watch_scope(namespaces(args))
    kube.load_config()
    health.serve(args.health_port)
    if args.metrics_port:
        telemetry.serve(args.metrics_port)
    if args.lease_shards > 1:
        if args.leader_election != "true":  # without Leases there is nothing to share out
            raise SystemExit("--lease-shards above 1 needs --leader-election true")
        return run_sharded(args, scope)
    stop, lost = threading.Event(), threading.Event()
    lease = leader_lease(args)
    may_act = leader.may_act(None if lease is None else lease.may_write(0))
    # Every call to the cluster goes through this client, handed to each port below: its
    # writes are refused while not leading.
    api = kube.fenced_client(may_act)
    pool = workers.prometheus_pool()
    io = IoLoop()  # Prometheus's connection pool, on its own thread
    built = build_runtime(args, scope.patterns, api, ((api, may_act),), pool, io)
    try:
        if lease is not None and not lead(lease, stop, lost):
            return 1
        health.set_role("leader")
        start_kopf(scope, built)
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)  # a query queued has no one to answer
        io.close()
        if lease is not None:
            lease.release()  # after kopf's stop: no write of ours is left to fence
    return 1 if lost.is_set() else 0


def lead(lease: LeaseProcess, stop: threading.Event, lost: threading.Event) -> bool:
    """Wait as a standby until this replica holds the leader's Lease, then keep an eye on it
    (`stop_as_on_sigterm` once it is lost); False when its process ended before it was won."""
    from adaptive_operator.adapters import health

    health.set_role("standby")
    lease.start()
    if not lease.wait_held(stop):
        return False
    threading.Thread(target=lease.keep, daemon=True, name="lease",
                     args=(stop, stop_as_on_sigterm(lost))).start()
    return True


def stop_as_on_sigterm(lost: threading.Event) -> Callable[[], None]:
    """What a replica does once nothing renews its lease (or leases) any more: it says so in
    `lost` (its exit code is then 1) and stops as on SIGTERM, kopf's graceful stop, the daemons
    told at once (`runtime.follow_signals`)."""
    def stop() -> None:
        lost.set()
        os.kill(os.getpid(), signal.SIGTERM)

    return stop


def run_sharded(args: argparse.Namespace, scope: WatchScope) -> int:
    """Every replica runs, and acts on the services of the shard Leases it holds: each
    shard's writes go through a client fenced by that shard's Lease. Losing a shard does not
    end the process; stopping gives every Lease back at once."""
    from adaptive_operator.adapters import health, kube, workers
    from adaptive_operator.adapters.prometheus_http import IoLoop

    leases = sharded_leases(args)
    fences = tuple((kube.fenced_client(leases.may_write(shard)), leases.may_write(shard))
                   for shard in range(args.lease_shards))
    pool, io = workers.prometheus_pool(), IoLoop()
    # The shared reads go through a client that refuses every write.
    built = build_runtime(args, scope.patterns, kube.reading_client(), fences, pool, io)
    stop, lost = threading.Event(), threading.Event()
    health.set_role("standby")
    leases.start()
    renewing = threading.Thread(target=leases.keep, daemon=True, name="leases",
                                args=(stop, stop_as_on_sigterm(lost)))
    renewing.start()
    try:
        start_kopf(scope, built)
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)  # a query queued has no one to answer
        io.close()
        leases.release()  # after kopf's stop: no write of ours is left to fence
    return 1 if lost.is_set() else 0
