"""Catalog files as a new user writes them: what is read, and what is refused with a
sentence that says what the file holds (its columns, the line, the delimiter used)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.brain.catalog_file import read_catalog
from omega.errors import InputError


def _file(tmp_path: Path, text: str | bytes, name: str = "catalog.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_comma_separated_file_with_a_byte_order_mark_and_quotes(tmp_path: Path) -> None:
    text = '\ufeffmovieId,title,genres\n1,"Heat, the film",Crime\n\n2,Up,Animation|Family\n'
    items = read_catalog(_file(tmp_path, text))
    assert [(i.item_id, i.title) for i in items] == [("1", "Heat, the film"), ("2", "Up")]
    assert items[1].genres == ("Animation", "Family")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "movieId;title;genres\n1;Heat;Crime\n",
            ["1 column: 'movieId;title;genres'", "separated by ';'"],
        ),
        ("movieId\ttitle\n1\tHeat\n", ["1 column", "separated by tabs"]),
        ("id,name\n1,Heat\n", ["2 columns: 'id', 'name'"]),
        ('movieId,title\n1,Heat\n2,"Up\n3,Cars\n', ["line 3", "never closed"]),
        ("movieId,title\n1,Heat, the film\n", ["line 2 has 3 fields", "movieId, title"]),
        ("", ["holds no titles"]),
        ("movieId,title,genres\n", ["holds no titles"]),
        ("\n\n", ["holds no titles"]),
    ],
)
def test_a_file_omega_cannot_read_is_refused_saying_what_it_holds(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    with pytest.raises(InputError) as caught:
        read_catalog(_file(tmp_path, text))
    for word in words:
        assert word in str(caught.value)


def test_an_empty_json_lines_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no titles"):
        read_catalog(_file(tmp_path, "\n", name="catalog.jsonl"))
