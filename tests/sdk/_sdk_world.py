"""The SDK tests' world: the library built once by ``omega sdk build`` (as a TV maker
runs it), C programs compiled against it, brains made from Python with synthetic vectors
(no model: many titles in seconds), and a real constellation on loopback that trusts one
TV maker and has published a codebook."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import numpy as np

from omega.bench.serving import ServerProcess, bound_socket, uvicorn_command
from omega.brain import DIM, Brain, CatalogItem
from omega.protocol.attestation import Manufacturer, private_key_pem
from omega.sdk import compile_program

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "sdk" / "examples" / "tv.c"
CATALOG = REPO / "sdk" / "examples" / "catalog.csv"
HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "sdk-test-admin-" + "z" * 16
MAKER = Manufacturer.generate("sdk-test-maker", "k1")
K = 8  # the codebook's cells


def build(out: Path) -> Path:
    """``omega sdk build --out out`` in a child process, as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "omega.cli", "sdk", "build", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def program(sdk: Path, source: Path, out: Path) -> Path:
    return compile_program(source, out / source.stem, sdk)


def run(
    command: list[str], *, timeout: float = 240, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )


def synthetic_brain(directory: Path, titles: int, *, seed: int = 0) -> Path:
    """A brain holding titles m1 … mN with random unit vectors (no model involved)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(titles, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [
        CatalogItem(
            item_id=f"m{n + 1}",
            title=f"Title {n + 1}",
            genres=("Drama",) if n % 2 else ("Comedy",),
            runtime_min=90 + n % 60,
            embedding=vectors[n],
        )
        for n in range(titles)
    ]
    with Brain.open(directory) as brain:
        brain.upsert_items(items)
    return directory


def certify(out: Path, device_id: str = "tv-0042") -> tuple[Path, Path]:
    """The files ``omega attest device`` writes, for a TV of the test maker."""
    identity = MAKER.device(device_id, model="sdk-tv")
    out.mkdir(parents=True, exist_ok=True)
    (out / "device.cert").write_bytes(msgspec.json.encode(identity.certificate))
    (out / "device.key").write_bytes(private_key_pem(identity.key))
    return out / "device.cert", out / "device.key"


@dataclass(eq=False, kw_only=True)
class Constellation(ServerProcess):
    """``omega serve``'s app under uvicorn in a child process."""

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        return httpx.request(method, self.base_url + path, headers=headers, **kwargs)  # type: ignore[arg-type]


def start_constellation(data_dir: Path) -> Constellation:
    """A constellation that requires attestation, trusts MAKER and has a codebook."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMEGA_DATA_DIR": str(data_dir),
        "OMEGA_ADMIN_TOKEN": ADMIN_TOKEN,
        "OMEGA_FEDERATION_INTERVAL": "0",
        "OMEGA_REGISTRATION_RATE_LIMIT": "0",
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
        maker = {
            "manufacturer_id": MAKER.manufacturer_id,
            "key_id": MAKER.key_id,
            "public_key": MAKER.public_key.hex(),
        }
        trusted = server.admin(
            "POST", "/api/omega/manufacturers", content=msgspec.json.encode(maker)
        )
        assert trusted.status_code in (200, 201), trusted.text
        answer = server.admin("POST", "/api/omega/codebook", content=_codebook())
        assert answer.status_code == 201, answer.text
    except BaseException:
        server.stop()
        raise
    return server


def _codebook() -> bytes:
    rng = np.random.default_rng(3)
    cells = rng.normal(size=(K, DIM)).astype(np.float32)
    cells /= np.linalg.norm(cells, axis=1, keepdims=True)
    doc = {
        "codebook_id": "cb-sdk-test",
        "dim": DIM,
        "k": K,
        "centroids_f16": cells.astype("<f2").tobytes(),
    }
    return msgspec.json.encode(doc)
