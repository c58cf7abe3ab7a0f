"""``omega helper serve --trust-maker``: the manufacturer keys the co-watch desk trusts."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega.cli.helper import parse_maker
from omega.errors import InputError
from omega.protocol.attestation import Manufacturer


def test_a_maker_key_is_read_from_text_or_a_file(tmp_path: Path) -> None:
    maker = Manufacturer.generate("acme", "2026")
    (name, key) = parse_maker(f"acme/2026={maker.public_key.hex()}")
    assert name == ("acme", "2026") and key.public_bytes_raw() == maker.public_key
    pem = tmp_path / "acme.pub"
    pem.write_bytes(maker.public_key.hex().encode())
    assert parse_maker(f"acme/2026={pem}")[1].public_bytes_raw() == maker.public_key


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("acme=00", "MAKER/KEY_ID=PUBLIC_KEY"),
        ("acme/2026", "MAKER/KEY_ID=PUBLIC_KEY"),
        ("ac me/2026=00", "manufacturer id must be"),
        ("acme/2026=zz", "an Ed25519 public key is"),
    ],
)
def test_a_bad_maker_entry_is_one_sentence(entry: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_maker(entry)
