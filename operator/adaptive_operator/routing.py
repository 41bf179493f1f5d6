"""The routing client: map keys to shards with the table a ShardSet publishes in a ConfigMap.

The hash is CRC16/XMODEM of the key's UTF-8 bytes (polynomial 0x1021, initial value 0, the
checksum Redis Cluster uses; ``binascii.crc_hqx(data, 0)``), modulo the number of slots. As in
Redis Cluster, a *hash tag* pins related keys together: when a key contains ``{`` followed later by
``}`` with at least one character between, only that first tagged part is hashed
(``user:{42}:cart`` and ``user:{42}:profile`` share a slot).

The table is a ConfigMap's ``data`` (all values are strings):

- ``epoch``: increases with every change; clients keep the highest one they have seen.
- ``slots``: the number of hash slots; ``hash``: ``crc16-xmodem``.
- ``ranges``: JSON list of ``{"start", "end", "shard", "address"}``, half-open slot ranges that
  cover ``0..slots`` exactly once.
- ``migrating``: JSON list of ``{"start", "end", "from", "to"}``: ranges whose data is being
  copied. Their owner in ``ranges`` is still the source until the move completes.
"""

from __future__ import annotations

import binascii
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from adaptive_operator.domain.sharding.slots import Move, ranges_of

HASH_NAME = "crc16-xmodem"


class RoutingTableError(ValueError):
    """The routing table is malformed: refuse it rather than send keys to the wrong shard."""


def hash_part(key: bytes) -> bytes:
    """The bytes that are hashed: the first non-empty ``{tag}``, else the whole key."""
    open_at = key.find(b"{")
    if open_at < 0:
        return key
    close_at = key.find(b"}", open_at + 1)
    if close_at <= open_at + 1:
        return key
    return key[open_at + 1 : close_at]


def key_slot(key: str | bytes, slots: int) -> int:
    """The hash slot of ``key``: CRC16/XMODEM of its hash part, modulo ``slots``."""
    data = key.encode() if isinstance(key, str) else key
    if b"{" in data:  # only then can there be a hash tag: skip the call otherwise
        data = hash_part(data)
    return binascii.crc_hqx(data, 0) % slots


@dataclass(frozen=True)
class Range:
    start: int
    end: int
    shard: int
    address: str


@dataclass(frozen=True)
class RoutingTable:
    epoch: int
    slots: int
    ranges: tuple[Range, ...]
    migrating: tuple[Move, ...] = ()
    # Lookup arrays derived from the ranges: kept out of the constructor, repr and equality.
    _owners: npt.NDArray[np.int32] = field(init=False, repr=False, compare=False)
    _owner_list: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_cover(self.ranges, self.slots)
        owners = np.empty(self.slots, dtype=np.int32)
        for rng in self.ranges:
            owners[rng.start : rng.end] = rng.shard
        _check_migrating(self.migrating, owners)
        object.__setattr__(self, "_owners", owners)
        object.__setattr__(self, "_owner_list", owners.tolist())

    @property
    def owners(self) -> npt.NDArray[np.int32]:
        """The shard of each slot, as an array (read-only copy)."""
        return self._owners.copy()

    def addresses(self) -> dict[int, str]:
        return {rng.shard: rng.address for rng in self.ranges}

    def shard_for(self, key: str | bytes) -> int:
        return self._owner_list[key_slot(key, self.slots)]

    def address_for(self, key: str | bytes) -> str:
        return self.addresses()[self.shard_for(key)]

    def slots_for(self, keys: Iterable[str | bytes]) -> npt.NDArray[np.int64]:
        """Bulk hashing: the per-key work is C calls only (encode, crc_hqx), hash tags are looked
        for once in the joined keys and handled per key only when some key has a brace."""
        data = [key.encode() if isinstance(key, str) else key for key in keys]
        if b"{" in b"".join(data):
            data = [hash_part(key) for key in data]
        hashes = np.fromiter(
            map(binascii.crc_hqx, data, itertools.repeat(0)), dtype=np.int64, count=len(data)
        )
        result: npt.NDArray[np.int64] = hashes % self.slots
        return result

    def shards_for(self, keys: Iterable[str | bytes]) -> npt.NDArray[np.int32]:
        """Bulk lookup: hashing as in `slots_for`, then one vectorised slot -> shard gather."""
        result: npt.NDArray[np.int32] = self._owners[self.slots_for(keys)]
        return result

    def migration_for(self, key: str | bytes) -> Move | None:
        """The migration covering the key's slot, if any (for clients that follow moves)."""
        slot = key_slot(key, self.slots)
        return next((m for m in self.migrating if m.start <= slot < m.end), None)

    def to_config_map_data(self) -> dict[str, str]:
        ranges = [
            {"start": r.start, "end": r.end, "shard": r.shard, "address": r.address}
            for r in self.ranges
        ]
        return {
            "epoch": str(self.epoch),
            "slots": str(self.slots),
            "hash": HASH_NAME,
            "ranges": json.dumps(ranges, separators=(",", ":")),
            "migrating": json.dumps([m.to_json() for m in self.migrating], separators=(",", ":")),
        }

    @classmethod
    def from_config_map_data(cls, data: Mapping[str, str]) -> RoutingTable:
        try:
            if data.get("hash", HASH_NAME) != HASH_NAME:
                raise RoutingTableError(f"unknown hash {data['hash']!r}, expected {HASH_NAME}")
            ranges = tuple(
                Range(int(r["start"]), int(r["end"]), int(r["shard"]), str(r["address"]))
                for r in json.loads(data["ranges"])
            )
            migrating = tuple(
                Move(int(m["start"]), int(m["end"]), int(m["from"]), int(m["to"]))
                for m in json.loads(data.get("migrating", "[]"))
            )
            return cls(int(data["epoch"]), int(data["slots"]), ranges, migrating)
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, RoutingTableError):
                raise
            raise RoutingTableError(f"malformed routing table: {err!r}") from err


def _check_cover(ranges: Sequence[Range], slots: int) -> None:
    """Ranges must cover ``0..slots`` exactly once, in order: no slot unowned or owned twice."""
    expected = 0
    for rng in ranges:
        if rng.start != expected or rng.end <= rng.start:
            raise RoutingTableError(f"range {rng.start}..{rng.end} does not start at {expected}")
        expected = rng.end
    if expected != slots:
        raise RoutingTableError(f"ranges end at slot {expected}, the table has {slots} slots")


def _check_migrating(migrating: Sequence[Move], owners: npt.NDArray[np.int32]) -> None:
    """A migrating range lies within the slots and is still owned by its source."""
    for move in migrating:
        if not 0 <= move.start < move.end <= len(owners):
            raise RoutingTableError(f"migrating range {move.start}..{move.end} is out of bounds")
        if not bool(np.all(owners[move.start : move.end] == move.source)):
            raise RoutingTableError(
                f"migrating range {move.start}..{move.end} is not owned by its source {move.source}"
            )


def build_table(
    assignment: Sequence[int],
    addresses: Mapping[int, str],
    epoch: int,
    migrating: Sequence[Move] = (),
) -> RoutingTable:
    """The table for an assignment (pure: the handler writes it as a ConfigMap)."""
    missing = sorted({shard for shard in assignment} - set(addresses))
    if missing:
        raise RoutingTableError(f"no service address for shards {missing}")
    ranges = tuple(Range(s, e, shard, addresses[shard]) for s, e, shard in ranges_of(assignment))
    return RoutingTable(epoch, len(assignment), ranges, tuple(migrating))


def load_config_map(config_map: Any) -> RoutingTable:
    """From a ConfigMap: a `kubernetes` client V1ConfigMap or a plain manifest dict."""
    data = config_map.get("data") if isinstance(config_map, Mapping) else config_map.data
    if not isinstance(data, Mapping):
        raise RoutingTableError("the ConfigMap has no data")
    return RoutingTable.from_config_map_data(data)


def load_file(path: str | Path) -> RoutingTable:
    """From a JSON or YAML file holding either a ConfigMap manifest or just its data."""
    import yaml  # YAML is a superset of JSON, so one parser reads both

    document = yaml.safe_load(Path(path).read_text())
    if not isinstance(document, Mapping):
        raise RoutingTableError(f"{path}: expected a mapping")
    if "data" in document:
        return load_config_map(document)
    return RoutingTable.from_config_map_data(document)


def load_from_api(core_v1: Any, name: str, namespace: str) -> RoutingTable:
    """From the API server, given a `kubernetes.client.CoreV1Api` (or anything alike)."""
    return load_config_map(core_v1.read_namespaced_config_map(name, namespace))
