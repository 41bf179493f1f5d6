"""How the e2e suite shares one cluster between pytest-xdist workers: the readers-writer lock
(e2e/cluster_lock.py) and the groups that decide which worker runs which module
(e2e/xdist_groups.py)."""

from __future__ import annotations

import fcntl
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))
import xdist_groups  # a script folder (standard library only), not a package
from cluster_lock import ClusterLock, flocked
from xdist_groups import LAST, OTHERS, REAL, E2ETest

WAIT = 30  # seconds: only a broken lock waits this long


def can_lock(path: Path, mode: int) -> bool:
    """Whether another open file could lock `path` now (not waiting)."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


class Holder(threading.Thread):
    """Holds a lock in its own thread (its own open file) until released."""

    def __init__(self, lock: AbstractContextManager[None]) -> None:
        super().__init__(daemon=True)
        self.lock = lock
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self) -> None:
        with self.lock:
            self.entered.set()
            self.release.wait(WAIT)

    def __enter__(self) -> Holder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.join(WAIT)


@pytest.fixture
def lock(tmp_path: Path) -> ClusterLock:
    return ClusterLock(tmp_path / "locks")


def wait_for(condition: threading.Event) -> None:
    assert condition.wait(WAIT), "the lock was not granted"


def test_readers_share_the_cluster(lock: ClusterLock) -> None:
    with Holder(lock.shared()) as first, Holder(lock.shared()) as second:
        wait_for(first.entered)
        wait_for(second.entered)  # while the first still holds it
        assert not can_lock(lock.resource, fcntl.LOCK_EX)


def test_a_writer_has_the_cluster_to_itself(lock: ClusterLock) -> None:
    with Holder(lock.exclusive()) as writer:
        wait_for(writer.entered)
        assert not can_lock(lock.resource, fcntl.LOCK_SH)
        assert not can_lock(lock.turnstile, fcntl.LOCK_EX)  # new readers wait
    assert can_lock(lock.resource, fcntl.LOCK_EX) and can_lock(lock.turnstile, fcntl.LOCK_EX)


def turnstile_taken(lock: ClusterLock) -> bool:
    return not can_lock(lock.turnstile, fcntl.LOCK_EX)


def wait_until_taken(lock: ClusterLock) -> None:
    """Until the waiting writer holds the turnstile (probes never wait, so they cannot block
    it: a probe that takes the turnstile for a moment only makes the writer retry)."""
    done = threading.Event()
    for _ in range(WAIT * 100):
        if turnstile_taken(lock):
            return
        done.wait(0.01)
    raise AssertionError("the writer never took the turnstile")


def test_a_waiting_writer_goes_before_readers_that_come_after_it(lock: ClusterLock) -> None:
    with Holder(lock.shared()) as reader:
        wait_for(reader.entered)
        writer = Holder(lock.exclusive())
        writer.start()
        wait_until_taken(lock)
        late = Holder(lock.shared())
        late.start()
        assert not writer.entered.is_set()  # the first reader still holds the cluster
    wait_for(writer.entered)  # the first reader left: the writer, not the late reader, goes
    assert not late.entered.is_set()
    writer.release.set()
    wait_for(late.entered)
    late.release.set()
    writer.join(WAIT)
    late.join(WAIT)


def test_flocked_excludes_another_open_file_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "up.lock"
    with flocked(path):
        assert not can_lock(path, fcntl.LOCK_SH)
    assert can_lock(path, fcntl.LOCK_EX)


def collected(*specs: tuple[str, bool, bool]) -> list[E2ETest]:
    return [E2ETest(*spec) for spec in specs]


def test_modules_of_the_real_node_share_a_group_and_the_others_another() -> None:
    found = xdist_groups.groups(collected(
        ("test_real_healing", False, False),  # its operator fixture needs the real node
        ("test_real_healing", True, False),
        ("test_faults", False, False),
        ("test_predictive_scaling", False, False),  # moved to balance the groups
        ("test_cluster", True, False),
        ("test_cluster", False, True)))
    assert found == [REAL, REAL, OTHERS, REAL, REAL, LAST]


def test_a_module_is_never_split_between_the_groups() -> None:
    specs = [("test_a", i == 3, False) for i in range(5)] + [("test_b", False, False)]
    found = xdist_groups.groups(collected(*specs))
    assert found[:5] == [REAL] * 5 and found[5] == OTHERS


def test_grouped_e2e_tests_and_unit_tests_pass_the_guard() -> None:
    assert xdist_groups.misplaced([
        "tests/test_cli.py::test_x", f"e2e/test_a.py::test_y@{OTHERS}",
        f"e2e/test_real_b.py::test_z[one]@{REAL}"]) is None
    assert xdist_groups.misplaced([f"e2e/test_cluster.py::test_down@{LAST}",
                                   "tests/test_cli.py::test_x"]) is None


@pytest.mark.parametrize("loose", ["e2e/test_a.py::test_y", "e2e/test_a.py::test_y@mine"])
def test_e2e_tests_outside_the_groups_are_refused(loose: str) -> None:
    problem = xdist_groups.misplaced([f"e2e/test_b.py::test_x@{OTHERS}", loose])
    assert problem is not None and "did not group 1 e2e tests" in problem and loose in problem


def test_a_test_marked_last_beside_other_e2e_tests_is_refused() -> None:
    problem = xdist_groups.misplaced([f"e2e/test_b.py::test_x@{REAL}",
                                      f"e2e/test_cluster.py::test_down@{LAST}"])
    assert problem is not None and "test_down" in problem and "-m last" in problem


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        if isinstance(thread, Holder):
            thread.release.set()
            thread.join(WAIT)
