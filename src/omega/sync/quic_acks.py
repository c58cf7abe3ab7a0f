"""When both ends of an HTTP/3 connection acknowledge what they received: in the next
packet they send anyway, not in a packet of its own.

aioquic acknowledges an ack-eliciting packet ``K_GRANULARITY`` (1 ms) after it arrives,
and writes an ACK frame into a 1-RTT packet only once that time has come. A request the
server answers in a few milliseconds therefore cost two packets back — the ACK alone at
1 ms, then the answer without it — and each packet costs a build, an AEAD seal, a
``sendto``, the peer's decrypt and a turn of both event loops. The same on the device's
side for a sync of several requests.

RFC 9000 §13.2.1 lets an endpoint delay acknowledging 1-RTT packets up to the
``max_ack_delay`` it advertised (aioquic advertises 25 ms) and asks it to acknowledge
Initial and Handshake packets at once. So, once the handshake is complete, both ends
of Omega's HTTP/3 connections:

- wait up to :data:`ACK_DELAY_S` before an ACK of its own (:func:`delay_acks`), and
- put whatever ACK is pending into the packet they are about to send
  (:func:`ack_with_next_packet`: the answer on the door, the next request on a device),
- but acknowledge at once while a stream is still arriving (:func:`on_stream_data`): a
  body or answer larger than the sender's congestion window (about 12 KB at first: the
  codebook, a raised pull budget) would otherwise stall every 20 ms waiting for an ACK —
  8–10× slower at 64 KB–1 MB on loopback. aioquic does not acknowledge every second
  packet (RFC 9000 §13.2.2); this does it for the packets that matter here.

The peer's RTT estimate is unharmed: each ACK frame carries the delay it waited, which
the peer subtracts (RFC 9002 §5.3). aioquic offers no setting for either, so these two
functions set its connection's ACK state; ``tests/sync/test_quic_acks.py`` fails if an
aioquic release moves it.
"""

from __future__ import annotations

from aioquic import tls
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent, StreamDataReceived

__all__ = ["ACK_DELAY_S", "ack_with_next_packet", "delay_acks", "on_stream_data"]

#: How long an endpoint may wait for a packet to carry its ACK: under the 25 ms aioquic
#: advertises as ``max_ack_delay``, with room for the event loop's lateness.
ACK_DELAY_S = 0.020


def delay_acks(quic: QuicConnection) -> None:
    """Acknowledge 1-RTT packets up to :data:`ACK_DELAY_S` late (call once the handshake
    is complete: Initial and Handshake packets are acknowledged at once)."""
    quic._ack_delay = ACK_DELAY_S


def ack_with_next_packet(quic: QuicConnection, now: float) -> None:
    """Let the next 1-RTT packet ``quic`` builds (at ``now`` or later, on the event loop's
    clock) carry the ACK it owes, instead of a packet of its own later."""
    space = quic._spaces.get(tls.Epoch.ONE_RTT)
    if space is not None and space.ack_at is not None and space.ack_at > now:
        space.ack_at = now


def on_stream_data(quic: QuicConnection, event: QuicEvent, now: float) -> None:
    """Call for each event the connection reports: a stream that has more to come is
    acknowledged with the packets sent right after this datagram, not 20 ms later."""
    if isinstance(event, StreamDataReceived) and not event.end_stream:
        ack_with_next_packet(quic, now)
