"""MovieLens loaders: both layouts on generated fixtures, and every kind of bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _movielens_fixtures import RATINGS, write_ml100k, write_ml_latest

from omega.errors import InputError
from omega.sim import Dataset, load_dataset


def _rating_rows(dataset: Dataset) -> list[tuple[str, str, float, int]]:
    return [
        (
            dataset.user_ids[int(u)],
            dataset.items[int(i)].item_id,
            float(r),
            int(t),
        )
        for u, i, r, t in zip(
            dataset.users, dataset.items_idx, dataset.ratings, dataset.timestamps, strict=True
        )
    ]


def test_ml_latest_catalog_ratings_and_tags(tmp_path: Path) -> None:
    dataset = load_dataset(write_ml_latest(tmp_path / "ml"))
    assert dataset.format == "ml-latest"
    assert [item.item_id for item in dataset.items] == ["1", "2", "9", "10", "42", "77", "99"]
    toy = dataset.items[dataset.item_index["1"]]
    assert toy.title == "Toy Story (1995)"
    assert toy.genres == ("Animation", "Children's", "Comedy")
    assert toy.year == 1995
    assert toy.tags == ("pixar", "toys")  # distinct, first-seen order
    show = dataset.items[dataset.item_index["42"]]
    assert (show.title, show.year, show.tags) == ("Big Bang Theory, The (2007-)", 2007, ("nerds",))
    nameless = dataset.items[dataset.item_index["99"]]
    assert (nameless.genres, nameless.year, nameless.tags) == ((), None, ())
    assert dataset.items[dataset.item_index["77"]].title == "Café au lait (1993)"
    # Users ordered by numeric id ("2" before "10"); rating rows keep file order.
    assert dataset.user_ids == ("1", "2", "10")
    assert dataset.user_index == {"1": 0, "2": 1, "10": 2}
    assert _rating_rows(dataset) == [(str(u), str(m), r, t) for u, m, r, t in RATINGS]
    assert dataset.ratings.dtype == np.float32
    assert dataset.timestamps.dtype == np.int64
    assert dataset.item_keys.tolist() == [1, 2, 9, 10, 42, 77, 99]
    assert (dataset.n_users, dataset.n_items, dataset.n_ratings) == (3, 7, len(RATINGS))


def test_ml_latest_without_tags(tmp_path: Path) -> None:
    dataset = load_dataset(write_ml_latest(tmp_path / "ml", tags=None))
    assert all(item.tags == () for item in dataset.items)


def test_ml100k_reads_the_same_log(tmp_path: Path) -> None:
    latest = load_dataset(write_ml_latest(tmp_path / "latest", tags=None))
    old = load_dataset(write_ml100k(tmp_path / "100k"))
    assert old.format == "ml-100k"
    # Titles (latin-1), genres, years, no tags; only 'Nameless' gets a year (release date).
    assert old.items[:-1] == latest.items[:-1]
    assert old.items[-1].year == 1995
    assert latest.items[-1].year is None
    assert old.user_ids == latest.user_ids
    np.testing.assert_array_equal(old.users, latest.users)
    np.testing.assert_array_equal(old.items_idx, latest.items_idx)
    np.testing.assert_array_equal(old.timestamps, latest.timestamps)
    # The 100k writer stores whole stars.
    np.testing.assert_array_equal(old.ratings, np.floor(latest.ratings))


def test_ml100k_year_falls_back_to_release_date(tmp_path: Path) -> None:
    dataset = load_dataset(write_ml100k(tmp_path / "100k"))
    assert dataset.items[dataset.item_index["99"]].year == 1995  # "01-Jan-1995"


def _replace_line(path: Path, number: int, text: str, encoding: str = "utf-8") -> None:
    lines = path.read_text(encoding=encoding).splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


Breaker = Callable[[Path], object]

LATEST_CASES: list[tuple[str, Breaker, str]] = [
    ("missing movies", lambda r: (r / "movies.csv").unlink(), r"movies\.csv: file is missing"),
    ("missing ratings", lambda r: (r / "ratings.csv").unlink(), r"ratings\.csv: file is missing"),
    (
        "bad column count",
        lambda r: _replace_line(r / "ratings.csv", 3, "1,2,3.5"),
        r"ratings\.csv, line 3: 3 columns, expected 4",
    ),
    (
        "non-numeric rating",
        lambda r: _replace_line(r / "ratings.csv", 4, "1,10,five,300"),
        r"ratings\.csv, line 4: rating 'five' is not a number",
    ),
    (
        "rating out of range",
        lambda r: _replace_line(r / "ratings.csv", 2, "1,1,nan,100"),
        r"ratings\.csv, line 2: rating 'nan' is not between 0 and 5",
    ),
    (
        "bad timestamp",
        lambda r: _replace_line(r / "ratings.csv", 5, "1,9,2,soon"),
        r"ratings\.csv, line 5: timestamp 'soon' is not an integer",
    ),
    (
        "unknown movie",
        lambda r: _replace_line(r / "ratings.csv", 6, "2,12345,1,50"),
        r"ratings\.csv, line 6: movie id 12345 is not in the catalog",
    ),
    (
        "bad header",
        lambda r: _replace_line(r / "ratings.csv", 1, "user,movie,rating,timestamp"),
        r"ratings\.csv, line 1: header is",
    ),
    (
        "duplicate movie",
        lambda r: _replace_line(r / "movies.csv", 3, "1,Again (1999),Drama"),
        r"movies\.csv, line 3: movie id 1 appears twice",
    ),
    (
        "non-integer movie id",
        lambda r: _replace_line(r / "movies.csv", 2, "tt01,Toy Story (1995),Comedy"),
        r"movies\.csv, line 2: movie id 'tt01' is not an integer",
    ),
    (
        "tag for unknown movie",
        lambda r: _replace_line(r / "tags.csv", 2, "1,555,oops,1"),
        r"tags\.csv, line 2: movie id 555 is not in the catalog",
    ),
    (
        "not utf-8",
        lambda r: (r / "movies.csv").write_bytes(
            b"movieId,title,genres\n1,Caf\xe9 (1995),Comedy\n"
        ),
        r"movies\.csv: not valid utf-8",
    ),
    (
        "empty ratings",
        lambda r: (r / "ratings.csv").write_text(""),
        r"ratings\.csv, line 1: the file is empty",
    ),
]


@pytest.mark.parametrize(
    ("breaker", "message"), [c[1:] for c in LATEST_CASES], ids=[c[0] for c in LATEST_CASES]
)
def test_ml_latest_bad_input_names_file_and_line(
    tmp_path: Path, breaker: Breaker, message: str
) -> None:
    root = write_ml_latest(tmp_path / "ml")
    breaker(root)
    with pytest.raises(InputError, match=message):
        load_dataset(root)


ML100K_CASES: list[tuple[str, Breaker, str]] = [
    ("missing u.data", lambda r: (r / "u.data").unlink(), r"u\.data: file is missing"),
    ("missing u.genre", lambda r: (r / "u.genre").unlink(), r"u\.genre: file is missing"),
    (
        "bad column count",
        lambda r: _replace_line(r / "u.data", 2, "1\t2\t3", "latin-1"),
        r"u\.data, line 2: 3 columns, expected 4",
    ),
    (
        "non-numeric rating",
        lambda r: _replace_line(r / "u.data", 3, "1\t10\tx\t300", "latin-1"),
        r"u\.data, line 3: rating 'x' is not a number",
    ),
    (
        "unknown movie",
        lambda r: _replace_line(r / "u.data", 1, "1\t4242\t4\t100", "latin-1"),
        r"u\.data, line 1: movie id 4242 is not in the catalog",
    ),
    (
        "u.item column count",
        lambda r: _replace_line(r / "u.item", 2, "2|Heat (1995)|01-Jan-1995", "latin-1"),
        r"u\.item, line 2: 3 columns, expected 24",
    ),
    (
        "u.item bad flag",
        lambda r: _replace_line(
            r / "u.item", 1, "1|Toy (1995)|||x|" + "|".join("2" * 19), "latin-1"
        ),
        r"u\.item, line 1: genre flags must be 0 or 1",
    ),
]


@pytest.mark.parametrize(
    ("breaker", "message"), [c[1:] for c in ML100K_CASES], ids=[c[0] for c in ML100K_CASES]
)
def test_ml100k_bad_input_names_file_and_line(
    tmp_path: Path, breaker: Breaker, message: str
) -> None:
    root = write_ml100k(tmp_path / "100k")
    breaker(root)
    with pytest.raises(InputError, match=message):
        load_dataset(root)


def test_missing_or_unrecognised_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no MovieLens dataset found"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="expected a directory"):
        load_dataset(tmp_path / "file")
