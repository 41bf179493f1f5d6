"""A Prometheus that is slow is told apart from one that is away, in the condition's reason,
against real sockets: one that accepts and never answers, and a port nobody listens on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from adaptive_operator.adapters import prometheus


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections (the kernel's backlog does) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_server_slower_than_the_timeout_is_a_timeout(
        silent_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "DEFAULT_TIMEOUT_SECONDS", 0.3)
    with pytest.raises(prometheus.MetricError) as caught:
        prometheus._raw_query(silent_server, "up")
    assert caught.value.reason == "PrometheusTimeout"
    assert "did not answer within" in caught.value.message


def test_nobody_listening_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        with pytest.raises(prometheus.MetricError) as caught:
            prometheus._raw_query(url, "up")
    assert caught.value.reason == "PrometheusUnreachable"
    assert url in caught.value.message
