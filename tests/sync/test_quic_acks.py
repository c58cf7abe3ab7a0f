"""ACKs ride with the next packet (omega.sync.quic_acks), on two real aioquic connections
exchanging their datagrams in memory on a clock the test sets."""

from __future__ import annotations

from pathlib import Path

import pytest
from aioquic import tls
from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import HandshakeCompleted, StreamDataReceived

from omega.bench.certs import self_signed
from omega.sync.quic_acks import ACK_DELAY_S, ack_with_next_packet, delay_acks, on_stream_data

CLIENT_ADDRESS = ("127.0.0.1", 40000)
SERVER_ADDRESS = ("127.0.0.1", 4433)


def _carry(sender: QuicConnection, receiver: QuicConnection, now: float) -> int:
    """Deliver every datagram ``sender`` has to send; how many there were."""
    datagrams = sender.datagrams_to_send(now=now)
    source = CLIENT_ADDRESS if sender._is_client else SERVER_ADDRESS
    for data, _ in datagrams:
        receiver.receive_datagram(data, source, now=now)
    return len(datagrams)


def _connected(directory: Path) -> tuple[QuicConnection, QuicConnection, float]:
    """A client and a server connection with the handshake done (and the ACK delay set
    there, as both ends of Omega's HTTP/3 do), and the clock's time."""
    made = self_signed(directory)
    server_config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    server_config.load_cert_chain(made.cert, made.key)
    client_config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    client_config.load_verify_locations(cafile=str(made.cert))
    client = QuicConnection(configuration=client_config)
    now = 1.0
    client.connect(SERVER_ADDRESS, now=now)
    server = QuicConnection(
        configuration=server_config,
        original_destination_connection_id=client.original_destination_connection_id,
    )
    done = set()
    for _ in range(10):
        now += 0.001
        _carry(client, server, now)
        _carry(server, client, now)
        for side, connection in (("client", client), ("server", server)):
            while (event := connection.next_event()) is not None:
                if isinstance(event, HandshakeCompleted):
                    delay_acks(connection)
                    done.add(side)
    assert done == {"client", "server"}
    for _ in range(3):  # the handshake's last ACKs and HANDSHAKE_DONE settle
        now += 0.030
        _carry(client, server, now)
        _carry(server, client, now)
    return client, server, now


def _owed(connection: QuicConnection) -> float | None:
    """When the connection means to acknowledge 1-RTT packets (None: nothing owed)."""
    at: float | None = connection._spaces[tls.Epoch.ONE_RTT].ack_at
    return at


@pytest.mark.parametrize("ride", [True, False], ids=["ack-rides", "aioquic-alone"])
def test_the_answer_carries_the_ack_of_its_request(tmp_path: Path, ride: bool) -> None:
    client, server, now = _connected(tmp_path)
    stream = client.get_next_available_stream_id()
    client.send_stream_data(stream, b"a request", end_stream=True)
    assert _carry(client, server, now) == 1
    assert _owed(server) == pytest.approx(now + ACK_DELAY_S)  # not aioquic's 1 ms

    now += 0.003  # the app answers
    server.send_stream_data(stream, b"its answer", end_stream=True)
    if ride:
        ack_with_next_packet(server, now)
    assert _carry(server, client, now) == 1
    if ride:
        assert _owed(server) is None  # the answer's packet carried the ACK
        assert server.get_timer() is None or server.get_timer() > now + ACK_DELAY_S
    else:
        # Without it the ACK stays owed, for a packet of its own when the delay is up.
        assert _owed(server) == pytest.approx(now - 0.003 + ACK_DELAY_S)
        assert _carry(server, client, now - 0.003 + ACK_DELAY_S) == 1


def test_nothing_owed_is_left_alone(tmp_path: Path) -> None:
    _, server, now = _connected(tmp_path)
    assert _owed(server) is None
    ack_with_next_packet(server, now)
    assert _owed(server) is None
    assert server.datagrams_to_send(now=now) == []


def _upload(directory: Path, size: int, *, ack_long_streams: bool) -> float:
    """Seconds of the test's clock a ``size``-byte request body takes to arrive whole,
    0.5 ms each way, with ACKs delayed on both ends; the server acknowledging a stream
    still arriving at once (as the door does) when ``ack_long_streams``."""
    client, server, now = _connected(directory)
    start = now
    client.send_stream_data(client.get_next_available_stream_id(), b"x" * size, end_stream=True)
    wire: list[tuple[float, QuicConnection, bytes, tuple[str, int]]] = []
    got = 0
    while now - start < 5.0:
        for sender, receiver, source in (
            (client, server, CLIENT_ADDRESS),
            (server, client, SERVER_ADDRESS),
        ):
            for data, _ in sender.datagrams_to_send(now=now):
                wire.append((now + 0.0005, receiver, data, source))
        timers = [t for t in (client.get_timer(), server.get_timer()) if t is not None]
        now = min([at for at, *_ in wire] + timers)
        for item in [w for w in wire if w[0] <= now]:
            wire.remove(item)
            _, receiver, data, source = item
            receiver.receive_datagram(data, source, now=now)
            while (event := receiver.next_event()) is not None:
                if receiver is server and ack_long_streams:
                    on_stream_data(server, event, now)
                if isinstance(event, StreamDataReceived) and receiver is server:
                    got += len(event.data)
                    if event.end_stream:
                        assert got == size
                        return now - start
        for connection in (client, server):
            timer = connection.get_timer()
            if timer is not None and timer <= now:
                connection.handle_timer(now=now)
    raise AssertionError(f"{size} bytes did not arrive in 5 s of the test's clock")


def test_a_body_larger_than_the_window_is_acknowledged_as_it_arrives(tmp_path: Path) -> None:
    """With every ACK delayed 20 ms, a 256 KB body stalls on the sender's congestion
    window each time; acknowledged while it arrives, it takes a few round trips."""
    acked = _upload(tmp_path / "acked", 256 * 1024, ack_long_streams=True)
    delayed = _upload(tmp_path / "delayed", 256 * 1024, ack_long_streams=False)
    assert acked < 0.030
    assert delayed > 3 * acked
