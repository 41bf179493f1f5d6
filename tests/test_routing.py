"""The routing client: a stable, stated hash and a table that refuses to be inconsistent."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.domain.sharding.slots import Move, initial_assignment, plan
from adaptive_operator.routing import (
    RoutingTable,
    RoutingTableError,
    build_table,
    hash_part,
    key_slot,
    load_config_map,
    load_file,
    load_from_api,
)

ADDRESSES = {s: f"cache-{s}.cache.default.svc" for s in range(8)}


def table(shards: int = 3, slots: int = 16384, epoch: int = 1) -> RoutingTable:
    return build_table(initial_assignment(shards, slots), ADDRESSES, epoch)


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        # CRC16/XMODEM check value of "123456789" is 0x31C3 = 12739.
        pytest.param("123456789", 0x31C3 % 16384, id="crc16-xmodem-check-value"),
        pytest.param("foo", 12182, id="redis-cluster-keyslot-foo"),
        pytest.param("bar", 5061, id="redis-cluster-keyslot-bar"),
        pytest.param("", 0, id="empty-key"),
    ],
)
def test_key_slot_matches_redis_cluster(key: str, slot: int) -> None:
    assert key_slot(key, 16384) == slot


@pytest.mark.parametrize(
    ("key", "hashed"),
    [
        pytest.param(b"{user1000}.following", b"user1000", id="tag-is-hashed"),
        pytest.param(b"foo{}{bar}", b"foo{}{bar}", id="empty-first-tag-hashes-whole-key"),
        pytest.param(b"foo{{bar}}zap", b"{bar", id="first-brace-pair-wins"),
        pytest.param(b"foo{bar", b"foo{bar", id="unclosed-brace"),
        pytest.param(b"plain", b"plain", id="no-braces"),
    ],
)
def test_hash_tags_follow_redis_rules(key: bytes, hashed: bytes) -> None:
    assert hash_part(key) == hashed


def test_tagged_keys_share_a_slot() -> None:
    assert key_slot("{user1000}.following", 16384) == key_slot("{user1000}.followers", 16384)


def test_shard_for_uses_the_owner_of_the_slot() -> None:
    routing = table()
    assert routing.shard_for("foo") == 2  # slot 12182 is in 10923..16384
    assert routing.shard_for(b"bar") == 0  # slot 5061 is in 0..5462
    assert routing.address_for("foo") == ADDRESSES[2]


@settings(max_examples=50, deadline=None)
@given(keys=st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=20)), max_size=50))
def test_bulk_lookup_agrees_with_single_lookup(keys: list[str | bytes]) -> None:
    routing = table(5, 1000)
    assert routing.shards_for(keys).tolist() == [routing.shard_for(k) for k in keys]


def test_bulk_lookup_handles_tagged_and_plain_keys_together() -> None:
    routing = table(7, 16384)
    keys: list[str | bytes] = ["{user1000}.following", b"foo", "bar", b"{a}b", "{}x"]
    assert routing.shards_for(keys).tolist() == [routing.shard_for(k) for k in keys]
    assert routing.slots_for(keys).tolist() == [key_slot(k, 16384) for k in keys]


def test_config_map_round_trip_keeps_the_table() -> None:
    before = initial_assignment(3, 12)
    moves = plan(before, 4).moves
    routing = build_table(before, ADDRESSES, 7, moves[:1])
    data = routing.to_config_map_data()
    assert all(isinstance(value, str) for value in data.values())
    assert RoutingTable.from_config_map_data(data) == routing
    assert json.loads(data["migrating"]) == [moves[0].to_json()]


def test_migrating_range_is_still_routed_to_its_source() -> None:
    before = initial_assignment(1, 16384)
    move = Move(0, 16384, 0, 1)
    routing = build_table(before, ADDRESSES, 2, [move])
    assert routing.shard_for("foo") == 0
    assert routing.migration_for("foo") == move
    assert table().migration_for("foo") is None


def config_map(routing: RoutingTable) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": routing.to_config_map_data()}


def test_load_from_manifest_client_object_and_api() -> None:
    routing = table()
    manifest = config_map(routing)
    assert load_config_map(manifest) == routing
    client_object = SimpleNamespace(data=manifest["data"])
    assert load_config_map(client_object) == routing
    api = SimpleNamespace(read_namespaced_config_map=lambda name, namespace: client_object)
    assert load_from_api(api, "cache-routing", "default") == routing


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("manifest", id="configmap-manifest"),
        pytest.param("data", id="bare-data"),
    ],
)
def test_load_file(tmp_path: Path, document: str) -> None:
    routing = table()
    manifest = config_map(routing)
    path = tmp_path / "routing.json"
    path.write_text(json.dumps(manifest if document == "manifest" else manifest["data"]))
    assert load_file(path) == routing


def test_load_file_refuses_a_list(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("- 1\n")
    with pytest.raises(RoutingTableError, match="mapping"):
        load_file(path)


def test_config_map_without_data_is_refused() -> None:
    with pytest.raises(RoutingTableError, match="no data"):
        load_config_map({"kind": "ConfigMap"})


def good_data() -> dict[str, str]:
    return build_table((0, 0, 1, 1), ADDRESSES, 1).to_config_map_data()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"hash": "crc32"}, "unknown hash", id="other-hash"),
        pytest.param({"epoch": "x"}, "malformed", id="epoch-not-a-number"),
        pytest.param({"ranges": "not json"}, "malformed", id="ranges-not-json"),
        pytest.param({"slots": "5"}, "end at slot 4", id="slot-left-unowned"),
        pytest.param(
            {"ranges": '[{"start":0,"end":3,"shard":0,"address":"a"},'
             '{"start":2,"end":4,"shard":1,"address":"b"}]'},
            "does not start at 3",
            id="overlapping-ranges",
        ),
        pytest.param(
            {"ranges": '[{"start":0,"end":4,"shard":0}]'}, "malformed", id="range-without-address"
        ),
        pytest.param(
            {"migrating": '[{"start":0,"end":2,"from":1,"to":2}]'}, "not owned by its source",
            id="migration-from-a-shard-that-does-not-own-the-range",
        ),
        pytest.param(
            {"migrating": '[{"start":3,"end":9,"from":1,"to":2}]'}, "out of bounds",
            id="migration-beyond-the-slots",
        ),
    ],
)
def test_malformed_tables_are_refused(change: dict[str, str], message: str) -> None:
    data = good_data() | change
    with pytest.raises(RoutingTableError, match=message):
        RoutingTable.from_config_map_data(data)


def test_build_table_needs_every_address() -> None:
    with pytest.raises(RoutingTableError, match=r"\[9\]"):
        build_table((0, 9), {0: "a"}, 1)


def test_owners_is_a_copy() -> None:
    routing = table(2, 4)
    owners = routing.owners
    owners[:] = 5
    assert routing.owners.tolist() == [0, 0, 1, 1]
    assert routing.addresses() == {0: ADDRESSES[0], 1: ADDRESSES[1]}
