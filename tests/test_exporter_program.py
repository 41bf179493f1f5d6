"""The exporter pod's program (e2e/exporter_program.py), the e2e's metrics source as a pod:
gauges set over HTTP come back as Prometheus text that Prometheus' own parser reads (NaN and
infinities included)."""

from __future__ import annotations

import json
import math
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from script_loader import load_script

exporter = load_script("e2e/exporter_program.py", "exporter_program")


@pytest.fixture
def url() -> Iterator[str]:
    server = exporter.serve(0, host="127.0.0.1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def call(url: str, path: str, body: object = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if data is None else "POST"
    request = urllib.request.Request(url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def set_gauges(url: str) -> None:
    """A gauge set twice, and hostile values with a label that needs escaping: each accepted."""
    assert call(url, "/set", {"metric": "e2e_load", "value": 29})[0] == 200
    assert call(url, "/set", {"metric": "e2e_load", "value": 31.5})[0] == 200  # replaces
    for kind, value in (("nan", "NaN"), ("inf", "+Inf"), ("neg", -3)):
        assert call(url, "/set", {"metric": "e2e_hostile", "value": value,
                                  "labels": {"kind": kind, "note": 'a "quoted"\\ value'}})[0] == 200


def test_set_gauges_are_served_as_prometheus_text(url: str) -> None:
    set_gauges(url)
    code, text = call(url, "/metrics")
    assert code == 200
    found = samples(text)
    assert found[("e2e_load", ())] == 31.5
    check_hostile_values(found)


def check_hostile_values(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    note = ("note", 'a "quoted"\\ value')
    assert math.isnan(found[("e2e_hostile", (("kind", "nan"), note))])
    assert found[("e2e_hostile", (("kind", "inf"), note))] == math.inf
    assert found[("e2e_hostile", (("kind", "neg"), note))] == -3


@pytest.mark.parametrize("body", [
    {"value": 1}, {"metric": "x", "value": "many"}, {"metric": "bad-name", "value": 1},
    {"metric": "x", "value": 1, "labels": {"bad-label": "v"}}, ["not", "an", "object"],
])
def test_bad_sets_are_refused_and_change_nothing(url: str, body: object) -> None:
    code, _ = call(url, "/set", body)
    assert code == 400
    assert call(url, "/metrics") == (200, "\n")


def test_ready_and_unknown_paths(url: str) -> None:
    assert call(url, "/ready") == (200, "ok\n")
    assert call(url, "/nowhere")[0] == 404
    assert call(url, "/nowhere", {"metric": "x", "value": 1})[0] == 404
