"""What benchmarks/scale.py measures: the operator's decision log, its process, its counters."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


class DecisionLog:
    """The operator's JSON log, read as it grows: when each service was decided."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.events: dict[str, list[tuple[str, float, dict[str, Any]]]] = {}

    def read(self) -> None:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or "timestamp" not in entry:
                continue
            at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
            # A line without a service's name (a healing backfill's) is kept under "".
            self.events.setdefault(entry.get("event", ""), []).append(
                (str(entry.get("name", "")), at, entry))

    def seen(self, event: str) -> set[str]:
        return {name for name, _, _ in self.events.get(event, [])}

    def times_between(self, event: str, start: float, end: float) -> dict[str, list[float]]:
        """Each service's `event` times in [start, end)."""
        times: dict[str, list[float]] = {}
        for name, at, _ in self.events.get(event, []):
            if start <= at < end:
                times.setdefault(name, []).append(at)
        return times

    def coverage(self, services: list[str], start: float, end: float,
                 sync: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for event, key in (("decision", "scaling"), ("healing decision", "healing")):
            times = self.times_between(event, start, end)
            expected = (end - start) / sync
            gaps = [b - a for ts in times.values() for a, b in itertools.pairwise(sorted(ts))]
            # Kept up: decided in every period (at most one missed at the window's edges) and
            # never waited more than half a period longer than asked.
            kept = [s for s in services if len(times.get(s, [])) >= int(expected) - 1
                    and _max_gap(times[s]) <= 1.5 * sync]
            out[f"{key}_kept_up_pct"] = round(100 * len(kept) / len(services), 1)
            made = sum(len(t) for t in times.values())
            out[f"{key}_decisions_pct"] = round(100 * made / (expected * len(services)), 1)
            out[f"{key}_gap_p50_s"] = round(_quantile(gaps, 0.5), 1)
            out[f"{key}_gap_p95_s"] = round(_quantile(gaps, 0.95), 1)
            out[f"{key}_gap_max_s"] = round(max(gaps, default=float("nan")), 1)
        return out

    def flagged(self) -> dict[str, int]:
        """Healing verdicts other than Healthy so far, and on how many services: read before
        the probes' faults, every one is a false alarm (the feed's metrics are all healthy)."""
        flags = [name for name, _, entry in self.events.get("healing decision", [])
                 if entry.get("reason") != "Healthy"]
        return {"flagged_verdicts": len(flags), "flagged_services": len(set(flags)),
                "verdicts": len(self.events.get("healing decision", []))}

    def first_after(self, event: str, names: list[str], after: float,
                    accept: Callable[[dict[str, Any]], bool]) -> dict[str, float]:
        found: dict[str, float] = {}
        for name, at, entry in self.events.get(event, []):
            if name in names and at >= after and name not in found and accept(entry):
                found[name] = at
        return found


def await_probes(timeout: float, onsets: tuple[float, float], step_probes: list[str],
                 heal_probes: list[str],
                 decisions: DecisionLog) -> tuple[dict[str, float], dict[str, float]]:
    """When each probe service first scaled up after its load step and first rolled back after
    its errors began (`onsets`), until all did or the timeout passed."""
    deadline = time.time() + timeout
    scale: dict[str, float] = {}
    heal: dict[str, float] = {}
    while time.time() < deadline and (len(scale) < len(step_probes) or
                                      len(heal) < len(heal_probes)):
        time.sleep(2)
        decisions.read()
        scale = decisions.first_after("decision", step_probes, onsets[0],
                                      lambda e: int(e.get("desired", 0)) > 1)
        heal = decisions.first_after("healing decision", heal_probes, onsets[1],
                                     lambda e: e.get("action") == "RollBack")
    return scale, heal


def _max_gap(times: list[float]) -> float:
    ordered = sorted(times)
    return max((b - a for a, b in itertools.pairwise(ordered)), default=0.0)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state first: index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[list[str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            found.append(fields)
    return found


class ProcessMeter:
    """CPU seconds (utime + stime, all threads), peak RSS and the load average, sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start_cpu, self.start = self.cpu(), time.time()
        self.start_wait = self.runqueue_wait()
        self.rss: list[float] = []
        self.load: list[float] = []
        self.stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def cpu(self) -> float:
        """The process's CPU seconds and its children's (the Lease renewals run in one): the
        live ones' own, the ended ones' as the kernel added them to the parent's."""
        fields = _stat(self.pid)
        own = sum(int(fields[index]) for index in (11, 12, 13, 14))
        return (own + sum(int(child[11]) + int(child[12])
                          for child in _children(self.pid))) / TICKS

    def runqueue_wait(self) -> float:
        """Seconds the process's threads spent runnable but waiting for a core (schedstat's
        second field): how much the shared machine starved it, apart from its own CPU use."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended meanwhile
        return total / 1e9

    def _sample(self) -> None:
        while not self.stop.wait(3.0):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.rss.append(int(line.split()[1]) / 1024)
            self.load.append(float(Path("/proc/loadavg").read_text().split()[0]))

    def sample(self) -> dict[str, float]:
        self.stop.set()
        cpu, wall = self.cpu() - self.start_cpu, time.time() - self.start
        waited = self.runqueue_wait() - self.start_wait
        return {"cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                "runqueue_wait_s": round(waited, 1),
                "cpu_cores": round(cpu / wall, 3),
                "rss_mib_max": round(max(self.rss, default=float("nan"))),
                "load1_mean": round(statistics.fmean(self.load), 2) if self.load else float("nan"),
                "load1_max": round(max(self.load, default=float("nan")), 2)}


def rates(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {f"{k}_per_s": round((after.get(k, 0.0) - before.get(k, 0.0)) / seconds, 2)
            for k in after}


def metric_sums(text: str, names: dict[str, str]) -> dict[str, float]:
    sums = dict.fromkeys(names.values(), 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        for prefix, key in names.items():
            if head.startswith(prefix) and head[len(prefix):len(prefix) + 1] in ("{", ""):
                sums[key] += float(value)
    return sums


def _by_label(text: str, name: str, key: str) -> dict[str, float]:
    """One counter's series, keyed `key:<label values joined by />`: which requests they were."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, _, value = line.rpartition(" ")
            labels = [part.partition("=")[2].strip('"') for part in
                      head[len(name) + 1:-1].split(",")]
            found[f"{key}:{'/'.join(labels)}"] = float(value)
    return found


_LABEL = re.compile(r'(\w+)="([^"]*)"')


def refusals(text: str) -> dict[str, float]:
    """The API server's answers of 400 and over (`apiserver_request_total`), keyed
    `refused:<resource>/<subresource>/<verb>/<code>`: what the cluster turned down, whoever
    asked (the operator's own counter sees only its own client's calls, not kopf's)."""
    found: dict[str, float] = {}
    prefix = "apiserver_request_total{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        head, _, value = line.rpartition(" ")
        labels = dict(_LABEL.findall(head))
        if int(labels.get("code", "0") or 0) < 400:
            continue
        key = "refused:" + "/".join(labels.get(name, "") for name in
                                    ("resource", "subresource", "verb", "code"))
        found[key] = found.get(key, 0.0) + float(value)
    return found


def own_metrics(port: int, timeout: float = 10.0) -> str:
    """The operator's /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
        return str(response.read().decode())


def gc_pauses(port: int) -> dict[str, float]:
    """The operator's seconds in the garbage collector so far, by generation ("0", "1", "2");
    NaN when it does not answer within a minute (a process stalled under a CPU quota: the
    run's other figures still count)."""
    try:
        text = own_metrics(port, timeout=60.0)
    except OSError:
        return {"0": math.nan, "1": math.nan, "2": math.nan}
    found = _by_label(text, "adaptive_gc_pause_seconds_total", "gen")
    return {key.partition(":")[2]: value for key, value in found.items()}


def counters(port: int, env: dict[str, str]) -> dict[str, float]:
    own = own_metrics(port)
    out = metric_sums(own, {"adaptive_prometheus_queries_total": "prom_queries",
                             "adaptive_prometheus_reads_total": "prom_reads",
                             "adaptive_api_requests_total": "api_requests",
                             "adaptive_reconcile_duration_seconds_sum": "sync_seconds",
                             "adaptive_reconcile_duration_seconds_count": "syncs",
                             "adaptive_worker_queue_seconds_sum": "worker_queue_seconds",
                             "adaptive_worker_run_seconds_sum": "worker_run_seconds",
                             "adaptive_worker_run_seconds_count": "worker_calls"})
    out.update(_by_label(own, "adaptive_api_requests_total", "api"))
    out.update(_by_label(own, "adaptive_worker_run_seconds_count", "worker"))
    out.update(_by_label(own, "adaptive_forecast_fits_total", "fits"))
    apiserver = subprocess.run(["kubectl", "get", "--raw", "/metrics"], env=env,
                               capture_output=True, text=True, check=False).stdout
    out.update(metric_sums(apiserver, {"apiserver_request_total": "apiserver_requests_all"}))
    out.update(refusals(apiserver))
    query = 'sum(prometheus_http_requests_total{handler=~"/api/v1/query.*"})'
    url = f"{env['PROMETHEUS_URL']}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.load(response)["data"]["result"]
    out["prometheus_served_queries"] = float(result[0]["value"][1]) if result else 0.0
    return out
