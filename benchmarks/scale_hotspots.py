"""The per-service, per-sync costs the scale benchmark's profile pointed at, before and after.

    .venv/bin/python benchmarks/scale_hotspots.py          # detector only
    KUBECONFIG=... .venv/bin/python benchmarks/scale_hotspots.py --namespace NS --deployment D

CPU milliseconds (process time, robust to the shared machine) per call of:
- the live detector's verdict with the operator's settings (`detector_settings_from_spec`), as
  a sync does it (`domain.healing.watch.score`: a row appended to the `HealthHistory`, its
  2,103-row tail, the verdict): the whole window scored (`AnomalyDetector.score`, what every
  sync once did) vs the newest row only (`score_latest`), for 2 metrics and for the 5 of the
  default `HealingSpec`; and a sync a period late (`watch.add_row` makes up the row due, then
  `watch.score`): both rows' window scored whole vs continued a row at a time;
- the forest's scores of one row: scikit-learn's `score_samples` vs the trees walked in numpy
  (and, under the table, the memory its node tables take: every service keeps one);
- one API read (the scale subresource): a new client per call (as before) vs one shared client;
- kopf's essence of one watch event of a live AdaptiveService
  (`fixtures/adaptive_service_live.json`, as the operator left one on the benchmark cluster,
  managedFields included): kopf's own build on the body without its status (as before) vs on
  the parts kopf keeps (`StatuslessDiffBase`).
Results: benchmarks/results/scale_hotspots.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from adaptive_operator.api.healing import HealingSpec  # noqa: E402
from adaptive_operator.domain.healing import watch  # noqa: E402
from adaptive_operator.domain.healing.anomaly import (  # noqa: E402
    DetectorSettings,
    feature_matrix,
    fit_forest,
)
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector  # noqa: E402
from adaptive_operator.domain.healing.inputs import HealthHistory  # noqa: E402
from adaptive_operator.domain.healing.ladder import detector_settings_from_spec  # noqa: E402

CYCLE = 40  # rows: a garbage collector's sawtooth every 10 minutes at a 15 s sync


def cpu_ms(call: Callable[[], object], repeat: int) -> float:
    call()
    start = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - start) / repeat * 1000


def table_kib(fast: object) -> float:
    """The bytes of a fitted forest's numpy tables, in KiB."""
    arrays = [v for v in vars(fast).values() if isinstance(v, np.ndarray)]
    return sum(a.nbytes for a in arrays) / 1024


def forest_memory() -> str:
    """Mean over 10 seeds of the node tables of the operator's forest on 2 metrics."""
    settings = detector_settings_from_spec(HealingSpec())
    rng = np.random.default_rng(0)
    history = {name: list(rng.normal(0, 1, 2000)) for name in ("e", "l")}
    sizes = []
    for seed in range(10):
        model = AnomalyDetector(settings, seed).fit(history)._model
        assert model is not None
        sizes += [table_kib(fast) for fast in model.fast]
    return (f"A live service's forest ({settings.n_estimators} trees of "
            f"{settings.max_samples} rows, 2 metrics, 2,000 rows of noise) keeps "
            f"{np.mean(sizes):.0f} KiB of node tables (mean of 10 seeds).")


def detector_rows() -> list[str]:
    rows = []
    for metrics, cycle in ((2, 0), (5, 0), (5, CYCLE)):
        names = [f"m{i}" for i in range(metrics)]
        settings = detector_settings_from_spec(HealingSpec(enabled=True,
                                                           metrics=dict.fromkeys(names, "")))
        window_rows = settings.baseline_rows + settings.persistence_n + (
            settings.cooldown_rows + settings.record_rows)
        full = syncing(settings, names, window_rows, whole=True, cycle=cycle)
        live = syncing(settings, names, window_rows, whole=False, cycle=cycle)
        seasonal = f", each with a {cycle}-row cycle (differenced)" if cycle else ""
        rows.append(f"| live detector verdict, {window_rows}-row window of {metrics} metrics"
                    f"{seasonal} (whole window vs newest row) | {cpu_ms(full, 20):.1f} | "
                    f"{cpu_ms(live, 200):.2f} |")
    rows.append(late_row())
    settings = detector_settings_from_spec(HealingSpec())
    rng = np.random.default_rng(0)
    history = {name: list(rng.normal(0, 1, 600)) for name in ("e", "l")}
    model = AnomalyDetector(settings, 0).fit(history)._model  # to time its numpy scorer
    assert model is not None and len(model.fast) == 1
    # The model keeps no scikit-learn forest: scikit-learn's scorer is timed on one fitted alike.
    features = feature_matrix(history, settings)
    forest, one = fit_forest(features[:-1], settings, 0), features[-1:]
    rows.append(f"| forest scores of one row (30 trees) | "
                f"{cpu_ms(lambda: forest.score_samples(one), 50):.2f} | "
                f"{cpu_ms(lambda: model.fast[0].scores(one), 200):.3f} |")
    return rows


def late_row() -> str:
    """Every sync a period late, 2 metrics: `watch.add_row` makes up the row due, then the
    sync's own; `watch.score` with the catch-up off (the window scored whole, as before) and
    on (each row continues the last window)."""
    cost = []
    for catch_up, repeat in ((0, 20), (watch.CATCH_UP_ROWS, 200)):
        late = late_syncs()
        late()  # the clock's first row: nothing made up yet
        watch.CATCH_UP_ROWS, saved = catch_up, watch.CATCH_UP_ROWS
        try:
            cost.append(cpu_ms(late, repeat))
        finally:
            watch.CATCH_UP_ROWS = saved
    return (f"| live detector verdict of a sync a period late, 2 metrics (a row made up: whole "
            f"window vs a row at a time) | {cost[0]:.1f} | {cost[1]:.2f} |")


def late_syncs() -> Callable[[], object]:
    """A watcher with a full history of noise and a fitted detector; each call, a sync 30 s
    after the last at a 15-s period (its row and the verdict)."""
    settings = detector_settings_from_spec(HealingSpec(enabled=True,
                                                       metrics={"m0": "", "m1": ""}))
    rng = np.random.default_rng(0)
    watcher = watch.new_watcher({"m0": "", "m1": ""}, {}, settings)
    rows = watcher.history.limit
    watch.backfilled(watcher, {name: list(rng.normal(1, 0.1, rows)) for name in ("m0", "m1")})
    watcher.detector.fit(watch.fit_rows(watcher))
    clock = iter(range(0, 10**9, 30))

    def late() -> object:
        now = float(next(clock))
        watch.add_row(watcher, {name: float(rng.normal(1, 0.1)) for name in ("m0", "m1")}, now,
                      15.0)
        return watch.score(watcher, now)

    return late


def syncing(settings: DetectorSettings, names: list[str], window_rows: int,
            whole: bool, cycle: int = 0) -> Callable[[], object]:
    """One sync's detector work per call (`domain.healing.watch.score` without the refits): a
    new row of noise (on a sawtooth of `cycle` rows, which the fit finds and differences) into
    a full history, its tail, the verdict (whole or newest row)."""
    rng = np.random.default_rng(0)
    limit = settings.train_rows + settings.baseline_rows + settings.record_rows + (
        settings.cooldown_rows)
    rows = iter(range(10**9))

    def new_row() -> dict[str, float]:
        row = next(rows)
        level = 1.0 + ((row % cycle) / cycle if cycle else 0.0)
        return {name: level + float(rng.normal(0, 0.1)) for name in names}

    history = HealthHistory(limit)
    backfill = [new_row() for _ in range(limit)]
    history.backfill({name: [row[name] for row in backfill] for name in names})
    detector = AnomalyDetector(settings, 0).fit(history.rows)
    model = detector._model
    assert (model is not None and model.periods == dict.fromkeys(names, cycle)) or not cycle
    verdict = detector.score if whole else detector.score_latest

    def sync() -> object:
        history.append(new_row())
        return verdict(history.tail(window_rows))

    return sync


def api_rows(namespace: str, deployment: str) -> list[str]:
    from kubernetes import client

    from adaptive_operator.adapters import kube

    kube.load_config()

    def read(api: client.ApiClient) -> None:
        client.AppsV1Api(api).read_namespaced_deployment_scale(deployment, namespace)

    before = cpu_ms(lambda: read(client.ApiClient()), 20)
    shared = kube.reading_client()  # one client for every call, as run builds it
    after = cpu_ms(lambda: read(shared), 20)
    return [f"| one API read (a Deployment's scale) | {before:.1f} | {after:.1f} |"]


def essence_rows() -> list[str]:
    import json

    import kopf

    from adaptive_operator.handlers.settings import StatuslessDiffBase

    raw = json.loads((ROOT / "benchmarks" / "fixtures" / "adaptive_service_live.json").read_text())
    body = kopf.Body(raw)
    storage = StatuslessDiffBase(prefix="adaptive.dev", key="last-handled-configuration")
    statusless = kopf.Body({k: v for k, v in raw.items() if k != "status"})  # type: ignore[arg-type]
    before = cpu_ms(lambda: kopf.AnnotationsDiffBaseStorage.build(storage, body=statusless), 2000)
    after = cpu_ms(lambda: storage.build(body=body), 2000)
    return [f"| kopf's essence of one watch event (a live AdaptiveService, {len(json.dumps(raw))}"
            f" bytes) | {before:.3f} | {after:.3f} |"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespace")
    parser.add_argument("--deployment")
    args = parser.parse_args()
    rows = detector_rows() + essence_rows()
    if args.namespace and args.deployment:
        rows += api_rows(args.namespace, args.deployment)
    text = "\n".join([
        "# Scale hot spots: CPU ms per call, before and after", "",
        "`.venv/bin/python benchmarks/scale_hotspots.py [--namespace NS --deployment D]` "
        "(process time on the shared 2-core machine).", "",
        "| per service and sync | before | after |", "|---|---|---|", *rows, "",
        forest_memory()]) + "\n"
    (ROOT / "benchmarks" / "results" / "scale_hotspots.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
