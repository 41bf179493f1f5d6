"""The `shard-plan` contract: exact JSON on stdout, one-line errors with exit code 2."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from adaptive_operator.cli import main
from adaptive_operator.domain.sharding.slots import initial_assignment, is_balanced, minimum_moves


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["shard-plan", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_three_to_four_shards_exact_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--slots", "10", "--shards-from", "3", "--shards-to", "4"], capsys)
    assert code == 0
    assert out == (
        '{"before": [0, 0, 0, 0, 1, 1, 1, 2, 2, 2], "after": [0, 0, 0, 3, 1, 1, 1, 2, 2, 3], '
        '"moves": [{"start": 3, "end": 4, "from": 0, "to": 3}, '
        '{"start": 9, "end": 10, "from": 2, "to": 3}]}\n'
    )


@pytest.mark.parametrize(
    ("shards_from", "shards_to"),
    [
        pytest.param(3, 4, id="scale-up"),
        pytest.param(4, 2, id="scale-down"),
        pytest.param(5, 5, id="no-change"),
        pytest.param(1, 7, id="from-one-shard"),
    ],
)
def test_redis_sized_plans_are_balanced_and_minimal(
    capsys: pytest.CaptureFixture[str], shards_from: int, shards_to: int
) -> None:
    argv = ["--slots", "16384", "--shards-from", str(shards_from), "--shards-to", str(shards_to)]
    code, out, _ = run(argv, capsys)
    result = json.loads(out)
    assert code == 0
    assert set(result) == {"before", "after", "moves"}
    assert result["before"] == list(initial_assignment(shards_from, 16384))
    assert is_balanced(result["after"], shards_to)
    moved = sum(m["end"] - m["start"] for m in result["moves"])
    assert moved == minimum_moves(result["before"], shards_to)
    assert_moves_explain_the_change(result)


def assert_moves_explain_the_change(result: dict[str, Any]) -> None:
    """Replaying the moves over `before` gives `after`, each move from the slots' owner."""
    owners = list(result["before"])
    for move in result["moves"]:
        assert set(move) == {"start", "end", "from", "to"}
        span = range(move["start"], move["end"])
        assert {owners[s] for s in span} == {move["from"]}
        owners[move["start"] : move["end"]] = [move["to"]] * len(span)
    assert owners == result["after"]


def test_same_input_same_output(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--slots", "1000", "--shards-from", "7", "--shards-to", "3"]
    assert run(argv, capsys)[1] == run(argv, capsys)[1]


def test_from_assignment_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "assignment.json"
    path.write_text("[1, 1, 1, 1]")
    code, out, _ = run(["--slots", "4", "--from-assignment", str(path), "--shards-to", "2"], capsys)
    assert code == 0
    assert json.loads(out) == {
        "before": [1, 1, 1, 1],
        "after": [1, 1, 0, 0],
        "moves": [{"start": 2, "end": 4, "from": 1, "to": 0}],
    }


def test_from_assignment_on_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("[0, 0, 1]"))
    code, out, _ = run(["--slots", "3", "--from-assignment", "-", "--shards-to", "1"], capsys)
    assert code == 0
    assert json.loads(out)["after"] == [0, 0, 0]


@pytest.mark.parametrize(
    ("argv", "content", "message"),
    [
        pytest.param(["--slots", "0", "--shards-from", "1"], None, "--slots", id="no-slots"),
        pytest.param(["--slots", "4", "--shards-from", "0"], None, "--shards-from",
                     id="no-source-shards"),
        pytest.param(["--slots", "4", "--shards-from", "2", "--shards-to", "0"], None,
                     "--shards-to", id="no-target-shards"),
        pytest.param(["--slots", "4", "--shards-from", "2", "--shards-to", str(1 << 21)], None,
                     "--shards-to", id="absurd-target-shards"),
        pytest.param(["--slots", "4"], "[0, 0, 1]", "assigns 3 slots", id="wrong-length"),
        pytest.param(["--slots", "2"], "[0, -1]", "negative", id="negative-shard-id"),
        pytest.param(["--slots", "2"], "[0, 1.5]", "not an integer", id="fractional-shard-id"),
        pytest.param(["--slots", "2"], "[0, true]", "not an integer", id="boolean-shard-id"),
        pytest.param(["--slots", "2"], "[0, 1", "not JSON", id="not-json"),
        pytest.param(["--slots", "2"], '{"0": 1}', "JSON list", id="object-not-list"),
    ],
)
def test_bad_input_is_a_usage_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    content: str | None,
    message: str,
) -> None:
    if content is not None:
        path = tmp_path / "assignment.json"
        path.write_text(content)
        argv = [*argv, "--from-assignment", str(path)]
    if "--shards-to" not in argv:
        argv = [*argv, "--shards-to", "2"]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.startswith("adaptive-operator shard-plan: error:")
    assert err.count("\n") == 1


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--slots", "2", "--from-assignment", str(tmp_path / "nope.json"), "--shards-to", "2"]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "cannot read" in err


def test_both_starts_are_refused_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["shard-plan", "--slots", "2", "--shards-from", "1", "--from-assignment", "x",
              "--shards-to", "2"])
    assert exit_info.value.code == 2
