"""``omega bench server --profile``: each sampled stack lands in the stage it belongs to,
whichever door the request came through."""

from __future__ import annotations

from pathlib import Path

from omega.bench.profile import stage_report

_LOOP = "MainThread;<module> (<string>:1);Runner.run (asyncio/runners.py:118)"
_QUIC_IN = (
    "QuicServer.datagram_received (aioquic/asyncio/server.py:214);"
    "QuicConnection.receive_datagram (aioquic/quic/connection.py:1000)"
)
_H3_APP = (
    "_DoorProtocol._answer (omega/constellation/doors/http3.py:300);"
    "call_app (omega/constellation/doors/asgi.py:110);"
    "MetricsMiddleware.__call__ (omega/constellation/metrics.py:305)"
)
_H3_DECODE = _H3_APP + ";sync (omega/constellation/routes/sync.py:60);read_request (omega/x.py:1)"
_HTTP_APP = "RequestResponseCycle.run_asgi (uvicorn/protocols/http/httptools_impl.py:401)"


def test_every_door_s_samples_go_to_their_stages(tmp_path: Path) -> None:
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        "\n".join(
            [
                f"{_LOOP};{_QUIC_IN} 6",  # aioquic parsing a datagram
                f"{_LOOP};{_H3_APP} 3",  # the middleware, under the HTTP/3 door
                f"{_LOOP};{_H3_DECODE} 2",  # decoding the request, whichever door
                f"{_LOOP};{_HTTP_APP} 1",  # the middleware, under uvicorn
                f"{_LOOP} 4",  # the event loop itself
                "",
            ]
        )
    )
    report = stage_report(raw, syncs=10, server_cpu_ms_per_sync=1.6)
    stages = {row["stage"]: row for row in report["stages"]}
    assert report["samples"] == 16
    assert stages["QUIC and HTTP/3: packets, their crypto, QPACK (aioquic)"]["samples"] == 6
    assert stages["framework: routing, middleware, dependencies"]["samples"] == 4
    assert stages["decode request"]["samples"] == 2
    assert stages["event loop, HTTP parsing, sockets"]["samples"] == 4
    # A stage's cost per sync is its share of the measured CPU per sync.
    assert stages["decode request"]["ms_per_sync"] == round(2 / 16 * 1.6, 3)
