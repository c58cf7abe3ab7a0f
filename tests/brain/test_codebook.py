from __future__ import annotations

import numpy as np
import pytest

from omega.brain.codebook import (
    assign_cells,
    build_codebook,
    centroids_from_f16_bytes,
    centroids_to_f16_bytes,
    codebook_id,
)
from omega.errors import InputError
from omega.sim.synthetic import clustered_vectors


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered_vectors(2000, dim=64, clusters=30, seed=3)


def test_shape_and_unit_norm(vectors: np.ndarray) -> None:
    cells = build_codebook(vectors, 16, seed=1)
    assert cells.shape == (16, 64)
    assert cells.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cells, axis=1), 1.0, atol=1e-5)


def test_deterministic_for_a_seed(vectors: np.ndarray) -> None:
    a = build_codebook(vectors, 16, seed=1)
    b = build_codebook(vectors, 16, seed=1)
    np.testing.assert_array_equal(a, b)
    assert codebook_id(a) == codebook_id(b)
    assert codebook_id(a) != codebook_id(build_codebook(vectors, 16, seed=2))


def test_k_is_clipped_to_the_number_of_vectors(vectors: np.ndarray) -> None:
    assert build_codebook(vectors[:5], 50).shape == (5, 64)


def test_cells_fit_the_data(vectors: np.ndarray) -> None:
    cells = build_codebook(vectors, 30, seed=0)
    assigned = assign_cells(vectors, cells)
    fit = float(np.mean(np.sum(vectors * cells[assigned], axis=1)))
    random_fit = float(np.mean(vectors @ vectors[:30].T))
    assert fit > random_fit + 0.2


def test_assignment_matches_brute_force(vectors: np.ndarray) -> None:
    cells = build_codebook(vectors, 12, seed=0)
    scaled = vectors * np.linspace(0.5, 3.0, len(vectors))[:, None]  # norms don't matter
    expected = np.argmax(vectors @ cells.T, axis=1)
    got = assign_cells(scaled, cells)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    assert assign_cells(vectors[0], cells).shape == (1,)
    assert assign_cells(np.empty((0, 64), np.float32), cells).shape == (0,)


def test_f16_round_trip(vectors: np.ndarray) -> None:
    cells = build_codebook(vectors, 8, seed=0)
    data = centroids_to_f16_bytes(cells)
    assert len(data) == 8 * 64 * 2
    back = centroids_from_f16_bytes(data, 64)
    assert back.shape == (8, 64)
    np.testing.assert_allclose(back, cells, atol=1e-3)
    assert codebook_id(back) == codebook_id(cells)
    assert len(codebook_id(cells)) == 16


def test_bad_input() -> None:
    with pytest.raises(InputError):
        build_codebook(np.zeros((4, 8), np.float32), 2)
    with pytest.raises(InputError):
        build_codebook(np.ones((4, 8), np.float32), 0)
    with pytest.raises(InputError):
        centroids_from_f16_bytes(b"\x00" * 10, 4)
    with pytest.raises(InputError):
        assign_cells(np.ones((2, 5), np.float32), np.ones((3, 8), np.float32))


def test_codebook_module_does_not_need_onnxruntime() -> None:
    # The constellation uses the codebook; the module itself must not pull in the model
    # runtime. (Whether the omega.brain package does is the package __init__'s business,
    # so the module is loaded here on its own.)
    import subprocess
    import sys

    from omega.brain import codebook

    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('probe', {codebook.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted(m for m in ('onnxruntime', 'usearch', 'tokenizers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
