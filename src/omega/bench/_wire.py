"""Bytes on the wire between the fleet and one TCP port, read from the kernel.

``ss -tinH state established ( dport = :PORT )`` (iproute2) lists every connection this
machine holds to ``PORT`` with its ``tcp_info`` counters; a step's bytes are the growth of
``bytes_sent + bytes_received`` over those connections (the fleet's side: both ways), and
of ``segs_out + segs_in``. That is the TCP payload, so every protocol's framing is in it
(HTTP/1.1 headers; HTTP/2 frames, HPACK and gRPC's message prefix) and nothing is
estimated; the IP and TCP headers are not (add ~52 bytes a segment on IPv4 with
timestamps). Where ``ss`` is missing or fails, every figure is ``None``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["WireMeter", "WireSnapshot", "parse_ss"]

#: (local address, peer address) → (payload bytes both ways, segments both ways)
WireSnapshot = dict[tuple[str, str], tuple[int, int]]


def _counter(fields: list[str], name: str) -> int:
    prefix = name + ":"
    for field in fields:
        if field.startswith(prefix):
            value = field[len(prefix) :]
            return int(value) if value.isdigit() else 0
    return 0


def parse_ss(text: str) -> WireSnapshot:
    """Connections and their counters from ``ss -tinH`` output (a line of addresses, then
    an indented line of tcp_info per connection)."""
    found: WireSnapshot = {}
    key: tuple[str, str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            parts = line.split()
            key = (parts[-2], parts[-1]) if len(parts) >= 2 else None
            continue
        if key is None:
            continue
        fields = line.split()
        sent = _counter(fields, "bytes_sent") + _counter(fields, "bytes_received")
        segments = _counter(fields, "segs_out") + _counter(fields, "segs_in")
        found[key] = (sent, segments)
        key = None
    return found


@dataclass(frozen=True, slots=True)
class WireMeter:
    """The fleet's traffic to ``port`` on this machine (see the module docstring)."""

    port: int

    def snapshot(self) -> WireSnapshot | None:
        ss = shutil.which("ss")
        if ss is None:
            return None
        command = [ss, "-tinH", "state", "established", f"( dport = :{self.port} )"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return parse_ss(done.stdout)

    @staticmethod
    def per_request(
        start: WireSnapshot | None, end: WireSnapshot | None, requests: int
    ) -> dict[str, float | None]:
        """Payload bytes and segments per request between two snapshots."""
        if start is None or end is None or requests <= 0:
            return {"wire_bytes_per_sync": None, "wire_segments_per_sync": None}
        grown = [
            (b - start.get(k, (0, 0))[0], s - start.get(k, (0, 0))[1]) for k, (b, s) in end.items()
        ]
        total_bytes = sum(b for b, _ in grown)
        total_segments = sum(s for _, s in grown)
        return {
            "wire_bytes_per_sync": round(total_bytes / requests, 1),
            "wire_segments_per_sync": round(total_segments / requests, 2),
        }
