"""What one side makes of a frame: the same function on CPython and in Pyodide.

``outcome(case)`` decodes a frame (and checks its seal when the case says so) with
``omega.protocol`` and returns what came of it: the message as JSON and as this side
encodes it again, the keys an endorsement taught, or the error's class and sentence.
The test runs it over every case here and, through this very file as the script, in
Pyodide (``__main__``: reads ``/io/cases.msgpack``, writes ``/io/outcomes.msgpack``);
the two sides must agree case by case, byte for byte.
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec

from omega.errors import OmegaError
from omega.protocol import codec, signing


def outcome(case: dict[str, Any]) -> dict[str, Any]:
    try:
        learned: list[str] = []
        if case["trusted"] is not None:
            digest = signing.request_digest(case["request"])
            found = signing.verify(case["frame"], request=digest, trusted=case["trusted"])
            learned = [e.kid for e in found]
        message = codec.decode(case["frame"])
        return {
            "ok": True,
            "json": msgspec.json.encode(message),
            "frame": codec.encode(message),
            "learned": learned,
        }
    except OmegaError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}


if __name__ == "__main__":
    with open("/io/cases.msgpack", "rb") as given:
        cases = msgspec.msgpack.decode(given.read())
    outcomes = {name: outcome(case) for name, case in cases.items()}
    loaded = ("ecdsa", "cryptography", "numpy", "zstandard", "backports")
    outcomes["__where__"] = {
        "platform": sys.platform,
        "version": list(sys.version_info[:2]),
        "loaded": sorted(name for name in loaded if name in sys.modules),
    }
    with open("/io/outcomes.msgpack", "wb") as out:
        out.write(msgspec.msgpack.encode(outcomes))
