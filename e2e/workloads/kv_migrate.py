#!/usr/bin/env python3
"""kv-migrate: a ShardSet migration Job's program; moves one slot range between kv-servers.

The operator runs it with, in the environment, ``SHARD_RANGE_START`` and ``SHARD_RANGE_END``
(slots START <= slot < END), ``SHARD_SLOTS``, ``SOURCE_ADDRESS``, ``TARGET_ADDRESS`` (a shard's
Service, ``NAME-I.NAMESPACE.svc``, no port: ``--port`` adds it) and ``MIGRATION_ATTEMPT``
(1 for the first run). Flags of the same names override them.

It copies every key of the range from the source to the target, then deletes each from the
source only if its value is still the one copied (``If-Match``; a changed one is copied again).
A run that stops anywhere can simply be run again: copies overwrite with the same value and
deletes of keys already gone are no-ops. ``--fail-half-way`` exits 1 after copying half of the
keys, on the attempts up to ``--fail-attempts`` (default 1), to test the operator's retries.

The slot of a key is that of ``adaptive_operator.routing``: CRC16/XMODEM of the key's UTF-8
bytes, or of its first non-empty ``{tag}``, modulo the slot count (tests check they agree).
Standard library only.
"""

from __future__ import annotations

import argparse
import binascii
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

COPY_AGAIN_LIMIT = 5  # a key rewritten this often during one move is left for the next run


class MigrationError(Exception):
    """The move cannot go on; the message says why. Running again resumes it."""


def hash_part(key: bytes) -> bytes:
    """The bytes that are hashed: the first non-empty ``{tag}``, else the whole key."""
    open_at = key.find(b"{")
    if open_at < 0:
        return key
    close_at = key.find(b"}", open_at + 1)
    if close_at <= open_at + 1:
        return key
    return key[open_at + 1 : close_at]


def key_slot(key: str, slots: int) -> int:
    return binascii.crc_hqx(hash_part(key.encode()), 0) % slots


@dataclass(frozen=True)
class Shard:
    """A kv-server's base URL."""

    url: str
    timeout: float = 10.0

    @classmethod
    def at(cls, address: str, port: int) -> Shard:
        host = address if ":" in address else f"{address}:{port}"
        return cls(f"http://{host}")

    def request(self, method: str, path: str, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, str | None]:
        """(status, body, ETag); 4xx answers are returned, not raised."""
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return response.status, response.read(), response.headers.get("ETag")
        except urllib.error.HTTPError as err:
            if err.code >= 500:
                raise MigrationError(f"{method} {self.url}{path}: HTTP {err.code}") from err
            return err.code, err.read(), None
        except OSError as err:
            raise MigrationError(f"{method} {self.url}{path}: {err}") from err

    def list_keys(self) -> list[str]:
        status, body, _ = self.request("GET", "/keys")
        keys = json.loads(body) if status == 200 else None
        if not isinstance(keys, list):
            raise MigrationError(f"{self.url}/keys answered {status}, not a list of keys")
        return [str(key) for key in keys]

    def get(self, key: str) -> tuple[bytes, str] | None:
        status, body, tag = self.request("GET", "/keys/" + quote(key, safe=""))
        return (body, tag or "") if status == 200 else None

    def put(self, key: str, value: bytes) -> None:
        status, _, _ = self.request("PUT", "/keys/" + quote(key, safe=""), value)
        if status != 204:
            raise MigrationError(f"PUT {key!r} to {self.url} answered {status}")

    def delete_if(self, key: str, tag: str) -> bool:
        """Delete ``key`` if its value is still ``tag``; False when it changed meanwhile."""
        status, _, _ = self.request("DELETE", "/keys/" + quote(key, safe=""),
                                    headers={"If-Match": tag})
        return status in (204, 404)  # 404: an earlier run, or a client, deleted it already

    def wait_ready(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                status = self.request("GET", "/ready")[0]
                if status == 200:
                    return
                problem = f"/ready answered {status}"
            except MigrationError as err:
                problem = str(err)
            if time.monotonic() >= deadline:
                raise MigrationError(f"{self.url} not ready after {seconds:.0f}s: {problem}")
            time.sleep(1.0)


@dataclass(frozen=True)
class Plan:
    start: int
    end: int
    slots: int
    attempt: int
    fail_half_way: bool = False
    fail_attempts: int = 1

    def owns(self, key: str) -> bool:
        return self.start <= key_slot(key, self.slots) < self.end

    def fails(self) -> bool:
        return self.fail_half_way and self.attempt <= self.fail_attempts


def copy_keys(plan: Plan, source: Shard, target: Shard) -> dict[str, str]:
    """Copy the range's keys; the ETag each had on the source when it was read."""
    keys = [key for key in source.list_keys() if plan.owns(key)]
    copied: dict[str, str] = {}
    for key in keys:
        if plan.fails() and len(copied) >= len(keys) // 2:
            raise MigrationError(f"failing half-way as asked (attempt {plan.attempt}): "
                                 f"{len(copied)} of {len(keys)} keys copied")
        entry = source.get(key)
        if entry is None:
            continue  # deleted by a client since the listing: nothing to move
        target.put(key, entry[0])
        copied[key] = entry[1]
    return copied


def delete_copied(copied: dict[str, str], source: Shard, target: Shard) -> None:
    """Delete what was copied; a key written since is copied again first."""
    for key, tag in copied.items():
        for _ in range(COPY_AGAIN_LIMIT):
            if source.delete_if(key, tag):
                break
            entry = source.get(key)
            if entry is None:
                break
            target.put(key, entry[0])
            tag = entry[1]
        else:
            raise MigrationError(f"{key!r} kept changing on the source; run again")


def migrate(plan: Plan, source: Shard, target: Shard) -> int:
    """Move the range; the number of keys moved."""
    copied = copy_keys(plan, source, target)
    delete_copied(copied, source, target)
    return len(copied)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kv-migrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    parser.add_argument("--start", type=int, default=env("SHARD_RANGE_START"))
    parser.add_argument("--end", type=int, default=env("SHARD_RANGE_END"))
    parser.add_argument("--slots", type=int, default=env("SHARD_SLOTS"))
    parser.add_argument("--source", default=env("SOURCE_ADDRESS"))
    parser.add_argument("--target", default=env("TARGET_ADDRESS"))
    parser.add_argument("--attempt", type=int, default=env("MIGRATION_ATTEMPT", "1"))
    parser.add_argument("--port", type=int, default=8080, help="the kv-servers' port")
    parser.add_argument("--ready-timeout", type=float, default=120.0,
                        help="seconds to wait for both shards to answer /ready")
    parser.add_argument("--fail-half-way", action="store_true")
    parser.add_argument("--fail-attempts", type=int, default=1)
    args = parser.parse_args(argv)
    missing = [name for name in ("start", "end", "slots", "source", "target")
               if getattr(args, name) is None]
    if missing:
        parser.error("missing " + ", ".join(missing) + " (flags, or the Job's environment)")
    if not 0 <= args.start < args.end <= args.slots:
        parser.error(f"need 0 <= start < end <= slots, got {args.start}, {args.end}, {args.slots}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(args.start, args.end, args.slots, args.attempt, args.fail_half_way,
                args.fail_attempts)
    source, target = Shard.at(args.source, args.port), Shard.at(args.target, args.port)
    what = f"slots {plan.start}..{plan.end - 1} from {source.url} to {target.url}"
    try:
        source.wait_ready(args.ready_timeout)
        target.wait_ready(args.ready_timeout)
        moved = migrate(plan, source, target)
    except MigrationError as err:
        print(f"kv-migrate: {what}, attempt {plan.attempt}: {err}", file=sys.stderr, flush=True)
        return 1
    print(f"kv-migrate: moved {moved} keys, {what}, attempt {plan.attempt}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
