"""`adaptive-operator explain NAMESPACE/NAME`: why the service has the replicas it has.

Reads only the AdaptiveService (a `get`: no other permission is needed) and Prometheus: the
service's own first query, and the operator's forecast and ready-replica gauges for the plot.
Works from a laptop with a kubeconfig; an unreachable Prometheus leaves the plot out, not the rest.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path
from typing import Any

NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("explain", help="why a service has the replicas it has")
    parser.add_argument("target", metavar="NAMESPACE/NAME")
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="kubeconfig (default: $KUBECONFIG, ~/.kube/config or in-cluster)")
    parser.add_argument("--prometheus-url", default=os.environ.get("PROMETHEUS_URL"),
                        help="Prometheus for the plot (default: $PROMETHEUS_URL, else the "
                        "service's spec.prometheus.url)")
    parser.add_argument("--rows", type=int, default=60, help="syncs to plot (default 60)")
    parser.set_defaults(func=run)


def _usage_error(message: str) -> Exception:
    from adaptive_operator.cli import UsageError

    return UsageError(message)


def parse_target(text: str) -> tuple[str, str]:
    namespace, _, name = text.partition("/")
    if not (NAME.match(namespace) and NAME.match(name)):
        raise _usage_error(f"target {text!r} must be NAMESPACE/NAME")
    return namespace, name


def read_object(kubeconfig: Path | None, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    from adaptive_operator.adapters import kube
    from adaptive_operator.api.adaptive_service import PLURAL
    from adaptive_operator.api.base import GROUP, VERSION

    unreachable: tuple[type[Exception], ...] = (config.ConfigException, *kube.API_ERRORS)
    try:
        if kubeconfig is not None:
            config.load_kube_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        else:
            kube.load_config()
        # Timed (a silent API server ends it too), and it only reads.
        found: Any = client.CustomObjectsApi(kube.reading_client()).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as err:
        raise _usage_error(f"cannot read AdaptiveService {namespace}/{name}: {err.status} "
                           f"{err.reason}") from None
    except unreachable as err:
        raise _usage_error(f"cannot reach the cluster: {err}") from None
    return dict(found)


def series_queries(body: dict[str, Any]) -> dict[str, str]:
    """The plot's PromQL: the load (the service's first query), the forecast median drawn at
    the time it is for (offset by the look-ahead), and the capacity (ready pods x target)."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    labels = f'namespace="{meta["namespace"]}",name="{meta["name"]}"'
    metric = (spec.get("metrics") or [{}])[0]
    queries = {"load": str(metric.get("query", "")),
               "capacity": f"adaptive_ready_replicas{{{labels}}} * "
                           f"{float(metric.get('targetPerReplica', 1)):g}"}
    ahead = (status.get("forecast") or {}).get("lookAheadSeconds")
    if ahead:
        queries["forecast"] = (f'adaptive_forecast_value{{{labels},metric="{metric.get("name")}",'
                               f'quantile="0.5"}} offset {round(float(ahead))}s')
    return queries


def read_series(url: str, body: dict[str, Any], rows: int,
                now: float) -> dict[str, list[float | None]]:
    from adaptive_operator.adapters.prometheus import PrometheusError, query_range

    step = float((body.get("spec") or {}).get("syncPeriodSeconds", 15))
    start = now - (rows - 1) * step
    found: dict[str, list[float | None]] = {}
    for name, query in series_queries(body).items():
        try:
            found[name] = query_range(url, query, start, now, step).values
        except PrometheusError:
            if name == "load":
                raise
            found[name] = []  # the operator's gauges are not scraped there: no line
    return found


def run(args: argparse.Namespace) -> int:
    from adaptive_operator.adapters.prometheus import PrometheusError
    from adaptive_operator.commands.explain_render import explain

    if not 2 <= args.rows <= 500:
        raise _usage_error("--rows must be between 2 and 500")
    namespace, name = parse_target(args.target)
    body = read_object(args.kubeconfig, namespace, name)
    url = args.prometheus_url or ((body.get("spec") or {}).get("prometheus") or {}).get("url")
    series, error = None, "no Prometheus URL: pass --prometheus-url"
    if url:
        try:
            series = read_series(url, body, args.rows, time.time())
        except PrometheusError as err:
            error = str(err)
    print(explain(body, series, error), end="")
    return 0
