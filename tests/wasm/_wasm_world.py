"""The WASM tests' world: the bundle (``omega sdk wasm``) built once from a cache of the
registries' files, the frames the server-side code makes (good ones, sealed ones, hostile
ones), and a real constellation on loopback for a browser TV to sync with."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import zstandard
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from omega.bench.serving import ServerProcess, bound_socket, uvicorn_command
from omega.bench.sync import synthetic_pulls, synthetic_pushes
from omega.brain import DIM
from omega.protocol import codec, signing
from omega.protocol.messages import (
    ContentUpdate,
    ItemScore,
    PullRequest,
    PullResponse,
    PushRequest,
    RegistrationResponse,
    SyncRequest,
    SyncResponse,
    Vector,
)
from omega.protocol.quantize import to_vector
from omega.wasm.bundle import Bundle

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: Pyodide's npm package and the wheels, fetched once (gitignored; CI's clone fetches anew).
CACHE = REPO / ".cache" / "wasm"
ADMIN_TOKEN = "wasm-test-admin-" + "z" * 16
CODEBOOK = "cb-wasm-test"
K = 8  # the codebook's cells


def build(out: Path) -> Bundle:
    """``omega sdk wasm --out out`` in a child process, as a web-app maker runs it."""
    command = [sys.executable, "-m", "omega.cli", "sdk", "wasm", "--out", str(out)]
    done = subprocess.run(
        [*command, "--cache", str(CACHE), "--json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return Bundle(out)


# -- frames ---------------------------------------------------------------------------


def _case(frame: bytes, *, request: bytes = b"", trusted: dict[str, bytes] | None = None) -> Any:
    return {"frame": frame, "request": request, "trusted": trusted}


def message_cases() -> dict[str, Any]:
    """Every kind of message a device decodes or sends, as the server-side codec frames it."""
    rng = np.random.default_rng(7)
    vector = rng.normal(size=DIM)
    content = PullResponse(
        version=12,
        content=[
            ContentUpdate(item_id="m1", embedding=to_vector(vector / np.linalg.norm(vector))),
            ContentUpdate(item_id="m2", embedding=to_vector(vector, "int8")),
        ],
        popular=[ItemScore(item_id="m1", score=0.75), ItemScore(item_id="m2", score=0.5)],
    )
    messages: dict[str, Any] = {
        **{f"push {n}": m for n, m in enumerate(synthetic_pushes(3, rng=rng))},
        **{f"pull {n}": m for n, m in enumerate(synthetic_pulls(3, rng=rng))},
        "pull with content": content,
        "small push (raw body)": PushRequest(viewer_id="v", batch_id="b", codebook_id="c"),
        "registration answer": RegistrationResponse(
            viewer_id="v1",
            access_token="a",
            refresh_token="r",
            expires_in=3600,
            release_keys={"k0": bytes(range(32))},
        ),
    }
    return {name: _case(codec.encode(m)) for name, m in messages.items()}


def seal_cases() -> dict[str, Any]:
    """A /sync answer sealed as the constellation seals it, and every way it can be wrong."""
    rng = np.random.default_rng(8)
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trusted = {"k0": signing.public_bytes(old)}
    request = codec.encode(
        SyncRequest(pull=PullRequest(viewer_id="v1"), nonce=b"n" * 16, release_kids=["k0"])
    )
    other = codec.encode(SyncRequest(pull=PullRequest(viewer_id="v1"), nonce=b"m" * 16))
    answer = codec.encode(SyncResponse(pull=synthetic_pulls(1, rng=rng)[0]))
    digest = signing.request_digest(request)
    sealed = signing.seal(answer, request=digest, kid="k0", key=old)
    endorsement = signing.endorse("k1", signing.public_bytes(new), by="k0", key=old)
    forged = signing.endorse("k1", signing.public_bytes(new), by="k0", key=new)
    taken = codec.parts(sealed)
    flipped = bytes([taken.body[0] ^ 1]) + taken.body[1:]

    def by_new(*endorsements: signing.Endorsement) -> bytes:
        return signing.seal(answer, request=digest, kid="k1", key=new, endorsements=endorsements)

    frames = {
        "sealed": (sealed, request),
        "sealed by an endorsed new key": (by_new(endorsement), request),
        "replayed to another request": (sealed, other),
        "body altered, checksum redone": (
            codec.frame(flipped, flags=taken.flags, seal=taken.seal),
            request,
        ),
        "sealed by an untrusted key": (by_new(), request),
        "endorsement forged": (by_new(forged), request),
        "not sealed": (answer, request),
    }
    return {
        name: _case(frame, request=req, trusted=trusted) for name, (frame, req) in frames.items()
    }


_MAGIC = struct.pack("<I", 0xFD2FB528)
_BLOCK = 128 * 1024


def _rle(total: int, *, declared: int | None, window: int = 7) -> bytes:
    """A zstd frame of RLE blocks expanding to ``total`` zeros (RFC 8878 §3.1.1.2)."""
    header = _MAGIC + (
        bytes((0x00, window << 3))
        if declared is None
        else bytes((0xC0, window << 3)) + struct.pack("<Q", declared)
    )
    n = total // _BLOCK
    blocks = b"".join(
        struct.pack("<I", (_BLOCK << 3) | (1 << 1) | (i == n - 1))[:3] + b"\x00" for i in range(n)
    )
    return header + blocks


def hostile_cases() -> dict[str, Any]:
    """Frames a device must refuse, each for its own reason."""
    body = msgspec.msgpack.encode(synthetic_pulls(1, rng=np.random.default_rng(9))[0])
    good = codec.encode(msgspec.msgpack.decode(body, type=PullResponse))
    packed = codec.parts(good).body
    nan = PullResponse(
        version=1,
        content=[
            ContentUpdate(
                item_id="m", embedding=Vector(encoding="f16", dim=DIM, data=b"\x00\x7e" * DIM)
            )
        ],
    )
    half = len(body) // 2
    two = [zstandard.ZstdCompressor().compress(part) for part in (body[:half], body[half:])]
    # Valid zstd (a stream of two frames), but a frame's body is one zstd frame.
    assert zstandard.ZstdDecompressor().decompressobj().decompress(two[0]) == body[:half]
    frames = {
        "checksum broken": good[:-1] + bytes([good[-1] ^ 0x10]),
        "protocol version 1": bytes([1]) + good[1:],
        "bomb, size not declared": codec.frame(_rle(64 << 20, declared=None), flags=1),
        "bomb, declares 1 GiB": codec.frame(_rle(1 << 20, declared=1 << 30), flags=1),
        "window of 1 TiB": codec.frame(_rle(4 * _BLOCK, declared=None, window=30), flags=1),
        "zstd body cut short": codec.frame(packed[:-4], flags=1),
        "two zstd frames": codec.frame(two[0] + two[1], flags=1),
        "f16 vector of NaN": codec.frame(msgspec.msgpack.encode(nan)),
        "not msgpack": codec.frame(b"\xc1" * 80),
    }
    return {name: _case(frame) for name, frame in frames.items()}


# -- a constellation --------------------------------------------------------------------


@dataclass(eq=False, kw_only=True)
class Constellation(ServerProcess):
    """``omega serve``'s app under uvicorn in a child process."""

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        return httpx.request(method, self.base_url + path, headers=headers, **kwargs)  # type: ignore[arg-type]


def start_constellation(data_dir: Path) -> Constellation:
    """A constellation for a closed test setup (it registers unattested devices: a browser
    cannot sign a registration, docs/sdk.md#wasm) with a codebook of K cells."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMEGA_DATA_DIR": str(data_dir),
        "OMEGA_ADMIN_TOKEN": ADMIN_TOKEN,
        "OMEGA_FEDERATION_INTERVAL": "0",
        "OMEGA_REGISTRATION_RATE_LIMIT": "0",
        "OMEGA_ALLOW_UNATTESTED": "1",
    }
    with bound_socket() as sock:
        server = Constellation(
            uvicorn_command(fd=sock.fileno()),
            env=env,
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            log_path=data_dir / "server.log",
            pass_fds=(sock.fileno(),),
        ).start()
    try:
        cells = np.random.default_rng(3).normal(size=(K, DIM)).astype(np.float32)
        cells /= np.linalg.norm(cells, axis=1, keepdims=True)
        doc = {
            "codebook_id": CODEBOOK,
            "dim": DIM,
            "k": K,
            "centroids_f16": cells.astype("<f2").tobytes(),
        }
        answer = server.admin("POST", "/api/omega/codebook", content=msgspec.json.encode(doc))
        assert answer.status_code == 201, answer.text
    except BaseException:
        server.stop()
        raise
    return server
