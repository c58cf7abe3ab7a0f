"""``omega bench cowatch``: the protocol's costs, and a new TV's download of a real table."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.bench.cowatch import cowatch_table, run_cowatch_bench
from omega.errors import InputError


def _ratings(path: Path, histories: dict[int, list[int]]) -> Path:
    lines = ["userId,movieId,rating,timestamp"]
    for user, movies in histories.items():
        lines += [f"{user},{m},4.0,{1000 + t}" for t, m in enumerate(movies)]
    path.mkdir(parents=True, exist_ok=True)
    (path / "ratings.csv").write_text("\n".join(lines) + "\n")
    return path


def test_a_pair_is_in_the_table_only_when_k_viewers_watched_it(tmp_path: Path) -> None:
    data = _ratings(tmp_path, {1: [10, 20, 30], 2: [10, 20], 3: [10, 20], 4: [30, 40]})
    table, viewers, pairs = cowatch_table(data / "ratings.csv", k=3, window=1)
    # positions follow first appearance in the (shuffled) fleet: look the pair up by count
    assert viewers == 4 and pairs == 1
    assert [n for row in table.values() for n in row] == [(table_neighbour(table), 3)]
    with pytest.raises(InputError, match="no ratings file"):
        cowatch_table(tmp_path / "missing.csv")


def table_neighbour(table: dict[int, list[tuple[int, int]]]) -> int:
    [row] = table.values()
    return row[0][0]


def test_the_bench_pulls_whole_tables_in_answers_of_at_most_5_kb(tmp_path: Path) -> None:
    histories = {u: [(u * 7 + i) % 40 for i in range(12)] for u in range(60)}
    result = run_cowatch_bench(dataset=_ratings(tmp_path, histories), fractions=(1.0,), catalog=300)
    star = result["star"]
    assert star["report_bytes"] < 256 and star["server_oprf_eval_ms"] > 0
    [fleet] = result["fleets"]
    assert fleet["rows"] == fleet["titles_with_rows"] > 0 and fleet["answer_bytes_max"] <= 5120
    full = result["full_table"]
    assert full["rows"] == 300 and full["answers"] > 1 and full["answer_bytes_max"] <= 5120
    assert result["poplar"]["nodes_per_report"] > 0
