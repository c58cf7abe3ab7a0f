"""What a web page serves to run Omega's browser part, fetched from the registries.

:func:`build_bundle` (``omega sdk wasm --out DIR``) writes::

    DIR/pyodide/     the files of Pyodide's npm package that loading it needs
    DIR/wheels/      the WebAssembly and pure-Python wheels the protocol imports (WHEELS)
    DIR/omega.zip    Omega's modules that run in Pyodide (MODULES), unpacked at load
    DIR/omega.mjs    the loader: ``loadOmega()`` → a Pyodide with all of it installed
    DIR/manifest.json

The parts come through the ordinary clients: ``npm install pyodide@PYODIDE_VERSION`` and
``pip download`` of wheels built for Pyodide's Python (PyPI's ``pyemscripten`` platform
tag, PEP 783), kept in a cache directory so that later bundles need no network.

Pyodide's npm package carries the interpreter and the standard library only: its other
packages (numpy, cryptography, zstandard …) are listed in its ``pyodide-lock.json`` but
served from Pyodide's own distribution, so offline they load only from PyPI, and PyPI
has WebAssembly builds of msgspec, not of numpy, cryptography, zstandard, onnxruntime,
usearch nor tokenizers (docs/sdk.md#wasm). zstd is Python 3.14's own ``compression.zstd``
(in Pyodide's standard library), Ed25519 checks python-ecdsa's (``omega.protocol._ed25519``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import omega
from omega.errors import ConfigError

__all__ = [
    "MODULES",
    "PLATFORM",
    "PYODIDE_FILES",
    "PYODIDE_PYTHON",
    "PYODIDE_VERSION",
    "WHEELS",
    "Bundle",
    "Parts",
    "build_bundle",
    "fetch_parts",
]

PYODIDE_VERSION = "314.0.8"
#: Pyodide 314's Python and its wheels' platform tag: a compiled wheel must match both.
PYODIDE_PYTHON = "3.14"
PLATFORM = "pyemscripten_2026_0_wasm32"
#: msgspec (compiled for Pyodide), python-ecdsa and what it needs (pure Python).
WHEELS = ("msgspec==0.23.0", "ecdsa==0.19.2", "six==1.17.0")
PYODIDE_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)
#: Omega's modules that run in Pyodide: the protocol but its numpy and key-holding parts
#: (quantize, noise, frequency, dpf, shares, attestation, aggregation), and omega.wasm.
MODULES = (
    "__init__.py",
    "errors.py",
    "py.typed",
    "protocol/__init__.py",
    "protocol/_ed25519.py",
    "protocol/_fast.py",
    "protocol/_field_checks.py",
    "protocol/_lenient.py",
    "protocol/_limits.py",
    "protocol/_part_checks.py",
    "protocol/_rules.py",
    "protocol/codec.py",
    "protocol/messages.py",
    "protocol/signing.py",
    "protocol/validation.py",
    "wasm/__init__.py",
    "wasm/device.py",
)
_LOADER = "omega.mjs"
_NPM_INSTALL = ["--no-save", "--no-audit", "--no-fund", "--no-package-lock"]
#: Wheels for Pyodide's Python and platform only; pure-Python ones match any platform.
_PIP_DOWNLOAD = ["--quiet", "--no-deps", "--only-binary=:all:", "--platform", PLATFORM]
_PIP_DOWNLOAD += ["--python-version", PYODIDE_PYTHON, "--implementation", "cp"]
_PIP_DOWNLOAD += ["--abi", "cp314", "--abi", "none"]


@dataclass(frozen=True, slots=True)
class Parts:
    """Pyodide's npm package and the wheels, as fetched into a cache."""

    pyodide: Path  # …/node_modules/pyodide
    wheels: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class Bundle:
    """A directory a page serves (or Node.js loads) Omega's browser part from."""

    root: Path

    @property
    def loader(self) -> Path:
        return self.root / _LOADER

    def sizes(self) -> dict[str, int]:
        """Bytes of each part: what a TV downloads (uncompressed) before its first sync."""
        wheels = sorted((self.root / "wheels").glob("*.whl"))
        parts = {
            **{f"pyodide/{name}": self.root / "pyodide" / name for name in PYODIDE_FILES},
            **{f"wheels/{w.name}": w for w in wheels},
            "omega.zip": self.root / "omega.zip",
            _LOADER: self.loader,
        }
        sizes = {name: path.stat().st_size for name, path in parts.items()}
        return {**sizes, "total": sum(sizes.values())}


def fetch_parts(cache: Path) -> Parts:
    """Pyodide and the wheels in ``cache``, fetched when missing (npm and pip, online)."""
    npm_root = cache / f"pyodide-{PYODIDE_VERSION}"
    package = npm_root / "node_modules" / "pyodide"
    if not all((package / name).is_file() for name in PYODIDE_FILES):
        npm = shutil.which("npm")
        if npm is None:
            raise ConfigError(
                "npm is not installed: it fetches Pyodide (Debian: apt-get install nodejs npm)"
            )
        npm_root.mkdir(parents=True, exist_ok=True)
        package_spec = f"pyodide@{PYODIDE_VERSION}"
        command = [npm, "install", "--prefix", str(npm_root), *_NPM_INSTALL, package_spec]
        _run(command, "npm install")
    wheels = cache / "wheels"
    if len(_wheels(wheels)) < len(WHEELS):
        pip = [sys.executable, "-m", "pip", "download", "--dest", str(wheels)]
        _run([*pip, *_PIP_DOWNLOAD, *WHEELS], "pip download")
    found = _wheels(wheels)
    if len(found) < len(WHEELS):
        raise ConfigError(f"pip download left {len(found)} of the wheels {', '.join(WHEELS)}")
    return Parts(package, found)


def build_bundle(out: Path, *, cache: Path) -> Bundle:
    """Write the bundle into ``out`` (made if missing; its parts replaced)."""
    try:
        for sub in ("pyodide", "wheels"):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot make {out} ({exc.strerror})") from None
    parts = fetch_parts(cache)
    for name in PYODIDE_FILES:
        shutil.copyfile(parts.pyodide / name, out / "pyodide" / name)
    for stale in (out / "wheels").glob("*.whl"):
        stale.unlink()
    for wheel in parts.wheels:
        shutil.copyfile(wheel, out / "wheels" / wheel.name)
    _write_modules(out / "omega.zip")
    loader = resources.files("omega.wasm").joinpath("js", _LOADER).read_bytes()
    (out / _LOADER).write_bytes(loader)
    manifest = {
        "pyodide": PYODIDE_VERSION,
        "omega": omega.__version__,
        "wheels": [w.name for w in parts.wheels],
        "modules": "omega.zip",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Bundle(out)


def _write_modules(path: Path) -> None:
    """Omega's modules (:data:`MODULES`) as ``omega/…`` in a zip, unpacked into Pyodide's
    site-packages by the loader."""
    source = Path(omega.__file__).resolve().parent
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in MODULES:
            archive.write(source / name, f"omega/{name}")


def _wheels(directory: Path) -> tuple[Path, ...]:
    """The wheels of :data:`WHEELS` found in ``directory``, one per requirement."""
    found = []
    for requirement in WHEELS:
        name, version = requirement.split("==")
        found.extend(sorted(directory.glob(f"{name}-{version}-*.whl"))[:1])
    return tuple(found)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-3:]
        raise ConfigError(f"{what} failed (exit {done.returncode}): {' '.join(detail)}")
