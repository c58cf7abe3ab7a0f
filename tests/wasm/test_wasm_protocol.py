"""The protocol in Pyodide (Node.js, the bundle of ``omega sdk wasm``) against CPython's.

One Pyodide run takes every case through ``_crossing.outcome``: frames the server-side
codec made, /sync answers sealed as the constellation seals them, and hostile frames.
Pyodide must come to what CPython comes to, case by case: the same message, the same
bytes when it encodes it again, the same keys learned, the same refusal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from _crossing import outcome
from _wasm_world import HERE, hostile_cases, message_cases, seal_cases

from omega.protocol import codec
from omega.wasm.bundle import Bundle
from omega.wasm.node import run_in_pyodide

Cases = dict[str, Any]


@pytest.fixture(scope="module")
def crossed(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> tuple[Cases, Cases]:
    """(the cases, what Pyodide made of each)."""
    io = tmp_path_factory.mktemp("io")
    cases = {**message_cases(), **seal_cases(), **hostile_cases()}
    (io / "cases.msgpack").write_bytes(msgspec.msgpack.encode(cases))
    run_in_pyodide(bundle, HERE / "_crossing.py", io=io)
    return cases, msgspec.msgpack.decode((io / "outcomes.msgpack").read_bytes())


def _agree(crossed: tuple[Cases, Cases], names: Cases) -> Cases:
    cases, pyodide = crossed
    for name in names:
        assert pyodide[name] == outcome(cases[name]), name
    return {name: pyodide[name] for name in names}


def test_it_ran_in_pyodide_without_numpy_cryptography_or_zstandard(
    crossed: tuple[Cases, Cases],
) -> None:
    where = crossed[1]["__where__"]
    assert where["platform"] == "emscripten"
    assert where["version"] == [3, 14]
    assert where["loaded"] == ["ecdsa"]  # seals checked by python-ecdsa; zstd: the stdlib's


def test_pyodide_decodes_the_servers_frames_and_encodes_them_byte_for_byte(
    crossed: tuple[Cases, Cases],
) -> None:
    messages = message_cases()
    seen = _agree(crossed, messages)
    for name, case in crossed[0].items():
        if name in messages:
            assert seen[name]["ok"], seen[name]
            # CPython reads Pyodide's frame as the message it sent, and frames it alike.
            assert seen[name]["frame"] == case["frame"], name
            assert codec.decode(seen[name]["frame"]) == codec.decode(case["frame"])
    assert codec.parts(messages["push 0"]["frame"]).flags == codec.FLAG_ZSTD  # zstd crossed


def test_pyodide_checks_seals_as_the_device_does(crossed: tuple[Cases, Cases]) -> None:
    seen = _agree(crossed, seal_cases())
    assert seen["sealed"]["ok"] and seen["sealed"]["learned"] == []
    assert seen["sealed by an endorsed new key"]["learned"] == ["k1"]
    refused = {name: r["error"] for name, r in seen.items() if not r["ok"]}
    assert refused == {
        "replayed to another request": "SignatureError",
        "body altered, checksum redone": "SignatureError",
        "sealed by an untrusted key": "SignatureError",
        "endorsement forged": "SignatureError",
        "not sealed": "SignatureError",
    }
    assert "answers another request (a replay)" in seen["replayed to another request"]["message"]


def test_pyodide_refuses_hostile_frames_as_cpython_does(crossed: tuple[Cases, Cases]) -> None:
    seen = _agree(crossed, hostile_cases())
    assert {name: r["error"] for name, r in seen.items()} == {
        "checksum broken": "RemoteProtocolError",
        "protocol version 1": "RemoteProtocolError",
        "bomb, size not declared": "PayloadTooLargeError",
        "bomb, declares 1 GiB": "PayloadTooLargeError",
        "window of 1 TiB": "RemoteProtocolError",
        "zstd body cut short": "RemoteProtocolError",
        "two zstd frames": "RemoteProtocolError",
        "f16 vector of NaN": "InvalidMessageError",
        "not msgpack": "RemoteProtocolError",
    }


def test_the_bundle_holds_what_the_page_loads(bundle: Bundle) -> None:
    sizes = bundle.sizes()
    assert sizes["pyodide/pyodide.asm.wasm"] > 1 << 20
    assert any(name.startswith("wheels/msgspec-") and "wasm32" in name for name in sizes)
    assert sizes["total"] == sum(v for k, v in sizes.items() if k != "total")
    assert Path(bundle.root / "manifest.json").is_file()
