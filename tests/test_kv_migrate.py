"""kv-migrate, the ShardSet e2e's migration Job: the same slot hash as the routing client, keys
moved copy-then-delete between two real kv-servers, and a run that failed half-way resumed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_operator import routing
from script_loader import load_workload

kv = load_workload("kv_server")
migrate = load_workload("kv_migrate")

SLOTS = 12
KEYS = [f"key-{i}" for i in range(60)] + [f"user:{{{i}}}:cart" for i in range(20)]


@given(st.text(max_size=40), st.integers(min_value=1, max_value=1 << 20))
def test_slot_hash_is_the_routing_clients(key: str, slots: int) -> None:
    # surrogates cannot be encoded as UTF-8: no key the routing client accepts has them
    if any("\ud800" <= ch <= "\udfff" for ch in key):
        return
    assert migrate.key_slot(key, slots) == routing.key_slot(key, slots)


@given(st.text(alphabet="ab{}", max_size=12), st.integers(min_value=1, max_value=16384))
def test_slot_hash_agrees_on_hash_tags(key: str, slots: int) -> None:
    assert migrate.key_slot(key, slots) == routing.key_slot(key, slots)


@pytest.mark.parametrize("key", ["", "{}", "{", "}{a}", "a{b}c{d}", "{{x}}", "user:{42}:cart"])
def test_slot_hash_edge_cases(key: str) -> None:
    assert migrate.key_slot(key, 16384) == routing.key_slot(key, 16384)


class Server:
    """A kv-server on a free loopback port, in a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.store = kv.Store(data_dir)
        self.http = kv.serve(self.store, 0, "127.0.0.1")
        self.address = f"127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.store.close()


@pytest.fixture
def shards(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    source, target = Server(tmp_path / "source"), Server(tmp_path / "target")
    for key in KEYS:
        source.store.put(key, f"value of {key}".encode())
    yield source, target
    source.stop()
    target.stop()


def in_range(key: str, start: int, end: int) -> bool:
    return start <= routing.key_slot(key, SLOTS) < end


def assert_moved(source: Server, target: Server, start: int, end: int) -> None:
    """Every key is on exactly one shard, the right one, with its value."""
    assert sorted(source.store.keys() + target.store.keys()) == sorted(KEYS)
    assert target.store.keys() == sorted(k for k in KEYS if in_range(k, start, end))
    for key in KEYS:
        owner = target if in_range(key, start, end) else source
        assert owner.store.get(key) == f"value of {key}".encode()


def plan(start: int, end: int, attempt: int = 1, fail: bool = False) -> object:
    return migrate.Plan(start, end, SLOTS, attempt, fail_half_way=fail)


def test_moves_the_range_and_nothing_else(shards: tuple[Server, Server]) -> None:
    source, target = shards
    moved = migrate.migrate(plan(3, 8), migrate.Shard.at(source.address, 0),
                            migrate.Shard.at(target.address, 0))
    assert moved == sum(1 for k in KEYS if in_range(k, 3, 8)) > 0
    assert_moved(source, target, 3, 8)


def test_a_run_that_failed_half_way_is_resumed_by_the_next(
        shards: tuple[Server, Server]) -> None:
    source, target = shards
    src, dst = migrate.Shard.at(source.address, 0), migrate.Shard.at(target.address, 0)
    with pytest.raises(migrate.MigrationError, match="half-way"):
        migrate.migrate(plan(0, 6, attempt=1, fail=True), src, dst)
    # The source still has everything (it owns the range until the Job completes); half copied.
    assert sorted(source.store.keys()) == sorted(KEYS)
    assert len(target.store.keys()) == sum(1 for k in KEYS if in_range(k, 0, 6)) // 2
    migrate.migrate(plan(0, 6, attempt=2, fail=True), src, dst)  # attempt 2 is not failed
    assert_moved(source, target, 0, 6)
    assert migrate.migrate(plan(0, 6, attempt=3), src, dst) == 0  # nothing left: a no-op


def test_a_key_rewritten_after_its_copy_is_copied_again(shards: tuple[Server, Server]) -> None:
    source, target = shards
    src, dst = migrate.Shard.at(source.address, 0), migrate.Shard.at(target.address, 0)
    key = KEYS[0]
    stale = kv.etag(source.store.get(key))
    source.store.put(key, b"newer")
    migrate.delete_copied({key: stale}, src, dst)
    assert source.store.get(key) is None
    assert target.store.get(key) == b"newer"


def test_main_reads_the_jobs_environment(shards: tuple[Server, Server],
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    source, target = shards
    env = {"SHARD_RANGE_START": "6", "SHARD_RANGE_END": "12", "SHARD_RANGE_LAST": "11",
           "SOURCE": "0", "TARGET": "1", "SOURCE_ADDRESS": source.address,
           "TARGET_ADDRESS": target.address, "SHARD_SLOTS": str(SLOTS), "MIGRATION_ATTEMPT": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert migrate.main(["--fail-half-way"]) == 1
    assert "failing half-way as asked (attempt 1)" in capsys.readouterr().err
    monkeypatch.setenv("MIGRATION_ATTEMPT", "2")
    assert migrate.main(["--fail-half-way"]) == 0
    assert "moved" in capsys.readouterr().out
    assert_moved(source, target, 6, 12)


def test_address_without_a_port_gets_the_servers_port() -> None:
    assert migrate.Shard.at("kv-1.ns.svc", 8080).url == "http://kv-1.ns.svc:8080"
    assert migrate.Shard.at("127.0.0.1:9000", 8080).url == "http://127.0.0.1:9000"


def test_an_unreachable_shard_fails_the_run_with_its_address(
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--start", "0", "--end", "1", "--slots", "4", "--source", "127.0.0.1:1",
            "--target", "127.0.0.1:1", "--ready-timeout", "0"]
    assert migrate.main(argv) == 1
    assert "http://127.0.0.1:1 not ready after 0s" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param([], "missing start, end, slots, source, target", id="nothing-given"),
    pytest.param(["--start", "4", "--end", "4", "--slots", "8", "--source", "a", "--target", "b"],
                 "need 0 <= start < end <= slots", id="empty-range"),
    pytest.param(["--start", "0", "--end", "9", "--slots", "8", "--source", "a", "--target", "b"],
                 "need 0 <= start < end <= slots", id="past-the-slots"),
])
def test_bad_arguments_are_refused(argv: list[str], message: str,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("SHARD_RANGE_START", "SHARD_RANGE_END", "SHARD_SLOTS", "SOURCE_ADDRESS",
                 "TARGET_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        migrate.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
