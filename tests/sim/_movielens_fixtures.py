"""Write tiny MovieLens datasets in both layouts (ml-latest CSV and ml-100k) for tests."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

# ml-100k's u.genre, in order (index = flag column).
GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

Movie = tuple[int, str, tuple[str, ...]]
Rating = tuple[int, int, float, int]
Tag = tuple[int, int, str, int]

MOVIES: tuple[Movie, ...] = (
    (1, "Toy Story (1995)", ("Animation", "Children's", "Comedy")),
    (2, "Heat (1995)", ("Action", "Crime", "Thriller")),
    (9, "Sudden Death (1995)", ("Action",)),
    (10, "GoldenEye (1995)", ("Action", "Adventure", "Thriller")),
    (42, "Big Bang Theory, The (2007-)", ("Comedy",)),
    (77, "Café au lait (1993)", ("Comedy", "Romance")),
    (99, "Nameless", ()),
)

# (user, movie, rating, timestamp). User 1 rated 9 and 10 in the same second.
RATINGS: tuple[Rating, ...] = (
    (1, 1, 4.0, 100),
    (1, 2, 3.5, 200),
    (1, 10, 5.0, 300),
    (1, 9, 2.0, 300),
    (2, 42, 1.0, 50),
    (2, 1, 4.5, 60),
    (10, 77, 3.0, 10),
    (10, 2, 5.0, 5),
)

TAGS: tuple[Tag, ...] = (
    (1, 1, "pixar", 101),
    (2, 1, "pixar", 102),
    (2, 1, "toys", 103),
    (10, 42, "nerds", 104),
)


def write_ml_latest(
    root: Path,
    movies: Sequence[Movie] = MOVIES,
    ratings: Sequence[Rating] = RATINGS,
    tags: Sequence[Tag] | None = TAGS,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "movies.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["movieId", "title", "genres"])
        for movie_id, title, genres in movies:
            writer.writerow([movie_id, title, "|".join(genres) or "(no genres listed)"])
    with (root / "ratings.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["userId", "movieId", "rating", "timestamp"])
        for user, movie_id, rating, ts in ratings:
            writer.writerow([user, movie_id, f"{rating:g}", ts])
    if tags is not None:
        with (root / "tags.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["userId", "movieId", "tag", "timestamp"])
            writer.writerows(tags)
    return root


def write_ml100k(
    root: Path, movies: Sequence[Movie] = MOVIES, ratings: Sequence[Rating] = RATINGS
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    genre_lines = [f"{name}|{index}\n" for index, name in enumerate(GENRES_100K)]
    (root / "u.genre").write_text("".join(genre_lines) + "\n", encoding="latin-1")
    item_lines = []
    for movie_id, title, genres in movies:
        flags = ["1" if name in genres else "0" for name in GENRES_100K]
        if not genres:
            flags[0] = "1"
        fields = [str(movie_id), title, "01-Jan-1995", "", "http://example.invalid/", *flags]
        item_lines.append("|".join(fields) + "\n")
    (root / "u.item").write_text("".join(item_lines), encoding="latin-1")
    data_lines = [f"{u}\t{m}\t{int(r)}\t{ts}\n" for u, m, r, ts in ratings]
    (root / "u.data").write_text("".join(data_lines), encoding="latin-1")
    return root


def blocks(n_per_block: int = 10, viewers_per_block: int = 6) -> tuple[list[Movie], list[Rating]]:
    """Two taste blocks: block-A viewers watch only items 1..n, block-B only n+1..2n.

    Viewer v of a block watches the block's items starting at its v-th item and wrapping
    around, all but one, so held-out items differ between viewers, each held-out item is
    watched by the block's other viewers, and the block's items stay unseen for the rest.
    """
    movies: list[Movie] = [
        (i, f"Movie {i} (2000)", ("Drama",)) for i in range(1, 2 * n_per_block + 1)
    ]
    ratings: list[Rating] = []
    for block in range(2):
        first = block * n_per_block + 1
        for v in range(viewers_per_block):
            user = block * viewers_per_block + v + 1
            order = [first + (v + j) % n_per_block for j in range(n_per_block)]
            ratings.extend((user, item, 4.0, 1000 + t) for t, item in enumerate(order[1:]))
    return movies, ratings
