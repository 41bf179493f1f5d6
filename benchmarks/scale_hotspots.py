"""The per-service, per-sync costs the scale benchmark's profile pointed at, before and after.

    .venv/bin/python benchmarks/scale_hotspots.py          # detector only
    KUBECONFIG=... .venv/bin/python benchmarks/scale_hotspots.py --namespace NS --deployment D

CPU milliseconds (process time, robust to the shared machine) per call of:
- the live detector's verdict: the whole 2,103-row window scored (`AnomalyDetector.score`, what
  every sync did) vs the newest row only (`score_latest`, what it does now);
- the forest's scores of one row: scikit-learn's `score_samples` vs the trees walked in numpy;
- one API read (the scale subresource): a new client per call (as before) vs one shared client.
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
from adaptive_operator.domain.anomaly import feature_matrix  # noqa: E402
from adaptive_operator.domain.anomaly_live import AnomalyDetector  # noqa: E402
from adaptive_operator.domain.healing import detector_settings_from_spec  # noqa: E402


def cpu_ms(call: Callable[[], object], repeat: int) -> float:
    call()
    start = time.process_time()
    for _ in range(repeat):
        call()
    return (time.process_time() - start) / repeat * 1000


def detector_rows() -> list[str]:
    settings = detector_settings_from_spec(HealingSpec(enabled=True, metrics={"e": "", "l": ""}))
    rows = settings.baseline_rows + settings.persistence_n + settings.cooldown_rows + (
        settings.record_rows)
    rng = np.random.default_rng(0)
    history = {"e": list(0.01 + rng.normal(0, 0.002, rows + 200)),
               "l": list(0.1 + rng.normal(0, 0.01, rows + 200))}
    full = AnomalyDetector(settings, 0).fit({k: v[:600] for k, v in history.items()})
    live = AnomalyDetector(settings, 0).fit({k: v[:600] for k, v in history.items()})
    ends = iter(range(rows, rows + 200))

    def latest() -> None:
        end = next(ends)
        live.score_latest({k: v[end - rows:end] for k, v in history.items()})

    window = {k: v[-rows:] for k, v in history.items()}
    model = full._model  # the fitted forest, to time its two scorers
    assert model is not None and model.fast is not None
    one = feature_matrix(window, settings)[-1:]
    return [
        f"| live detector verdict, {rows}-row window of 2 metrics | "
        f"{cpu_ms(lambda: full.score(window), 20):.1f} | {cpu_ms(latest, 100):.2f} |",
        f"| forest scores of one row (30 trees) | "
        f"{cpu_ms(lambda: model.forest.score_samples(one), 50):.2f} | "
        f"{cpu_ms(lambda: model.fast.scores(one), 200):.3f} |",
    ]


def api_rows(namespace: str, deployment: str) -> list[str]:
    from kubernetes import client

    from adaptive_operator.adapters import kube

    kube.load_config()

    def read(api: client.ApiClient) -> None:
        client.AppsV1Api(api).read_namespaced_deployment_scale(deployment, namespace)

    before = cpu_ms(lambda: read(client.ApiClient()), 20)
    after = cpu_ms(lambda: read(kube.api_client()), 20)
    return [f"| one API read (a Deployment's scale) | {before:.1f} | {after:.1f} |"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespace")
    parser.add_argument("--deployment")
    args = parser.parse_args()
    rows = detector_rows()
    if args.namespace and args.deployment:
        rows += api_rows(args.namespace, args.deployment)
    text = "\n".join([
        "# Scale hot spots: CPU ms per call, before and after", "",
        "`.venv/bin/python benchmarks/scale_hotspots.py [--namespace NS --deployment D]` "
        "(process time on the shared 2-core machine).", "",
        "| per service and sync | before | after |", "|---|---|---|", *rows]) + "\n"
    (ROOT / "benchmarks" / "results" / "scale_hotspots.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
