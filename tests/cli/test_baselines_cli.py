"""``omega baselines``: the reference rows on a MovieLens directory, tuning on validation,
and bad input as one sentence naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli_world import omega


@pytest.fixture(scope="module")
def movielens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ml-latest directory: 12 viewers walking the same chain of 20 titles, each
    from its own starting point, so co-watch has pairs to find."""
    root = tmp_path_factory.mktemp("ml")
    titles = [f"{i},Movie {i} (2001),Drama" for i in range(1, 21)]
    (root / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(titles) + "\n")
    rows = [
        f"{user},{(user + step) % 20 + 1},4.0,{1000 + step}"
        for user in range(1, 13)
        for step in range(8)
    ]
    (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    return root


def test_json_has_every_figure_of_each_row(movielens: Path) -> None:
    done = omega(
        "baselines", "--dataset", str(movielens), "--names", "popularity,cowatch", "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["holdout"] == "last"
    assert set(report["baselines"]) == {"popularity", "cowatch"}
    cowatch = report["baselines"]["cowatch"]
    for name in ("ndcg@10", "ndcg@10_pessimistic", "hr@10", "mrr", "map@10", "coverage@20"):
        assert 0.0 <= cowatch[name] <= 1.0, name
    # The chain: every viewer's held-out title follows its last one.
    assert cowatch["hr@10"] > 0.9
    assert cowatch["ndcg@10"] > report["baselines"]["popularity"]["ndcg@10"]


def test_a_share_of_the_viewers_and_the_synthetic_log(movielens: Path) -> None:
    done = omega(
        "baselines", "--dataset", str(movielens), "--names", "popularity",
        "--viewer-share", "0.5", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["viewers"] == 6
    synthetic = omega("baselines", "--synthetic", "60,8,3", "--names", "transitions", "--json")
    assert synthetic.returncode == 0, synthetic.stderr
    report = json.loads(synthetic.stdout)
    assert (report["items"], report["viewers"], report["format"]) == (60, 8, "synthetic")


def test_tune_on_validation_lists_the_best_settings(movielens: Path) -> None:
    done = omega(
        "baselines",
        "--dataset",
        str(movielens),
        "--names",
        "cowatch_k3",
        "--tune",
        "--validation",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["holdout"] == "second-to-last (validation)"
    rows = result["cowatch_k3"]
    assert len(rows) == 900
    assert rows[0]["ndcg@10"] >= rows[-1]["ndcg@10"]
    assert {"window", "recent", "decay", "degree_exponent", "distance_exponent"} <= set(rows[0])
    table = omega("baselines", "--dataset", str(movielens), "--tune", "--names", "cowatch")
    assert table.returncode == 0, table.stderr
    assert "best of 900 settings" in table.stdout
    assert "--validation" in table.stdout  # tuning on the test split is flagged


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--names", "magic"), "--names"),
        (("--names", ""), "--names"),
        (("--tune", "--names", "popularity"), "--names cowatch"),
        (("--viewer-share", "0"), "--viewer-share"),
        (("--synthetic", "600,400"), "--synthetic"),
        (("--synthetic", "0,10,3"), "titles"),
    ],
)
def test_bad_input_is_one_sentence(movielens: Path, args: tuple[str, ...], words: str) -> None:
    done = omega("baselines", "--dataset", str(movielens), *args)
    assert done.returncode == 2
    assert words in done.stderr
    assert "Traceback" not in done.stderr
