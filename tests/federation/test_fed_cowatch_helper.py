"""A round's co-watch step against a helper that cannot hand out batches: one started
without co-watch (no --trust-maker: it answers 404) is named as refusing, one whose desk
fails (500) as failing, one that is down as not reached; either way the round releases its
patterns."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fed_helpers import NOW, codebook, pattern, push
from pydantic import ValidationError

from omega.constellation.helper_client import (
    HelperSettings,
    HttpHelper,
    connect_cowatch,
    connect_helper,
    helper_settings,
)
from omega.constellation.rounds import _helper_job
from omega.constellation.settings import Settings
from omega.federation import FederationConfig, run_round
from omega.federation.cowatch import CowatchCounting, Ranking
from omega.helper import CowatchConfig, CowatchDesk
from omega.helper.service import SECRET_FILE, HelperConfig, HelperService
from omega.helper.thread import HelperThread
from omega.protocol.aggregation import auth_token
from omega.storage import Storage


@pytest.fixture
def plain_helper(tmp_path: Path) -> Iterator[HelperThread]:
    """A real helper on loopback with no co-watch desk."""
    with HelperThread(HelperService.open(tmp_path / "helper", HelperConfig())) as running:
        yield running


def _seeded(store: Storage) -> None:
    store.put_codebook(codebook())
    for i in range(4):
        push(store, f"v{i}", added=[pattern((1, 2))])


def test_a_helper_without_cowatch_is_named_as_refusing(
    fed_store: Storage,
    plain_helper: HelperThread,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    _seeded(fed_store)
    helper = HttpHelper(plain_helper.url, auth_token(plain_helper.service.secret))
    request.addfinalizer(helper.close)
    with caplog.at_level(logging.WARNING, logger="omega.federation"):
        result = run_round(
            fed_store, FederationConfig(), now=NOW, worker_id="w", cowatch=CowatchCounting(helper)
        )
    assert result.released >= 1 and result.cowatch_rows == 0
    said = caplog.text
    assert "refused" in said and "404" in said and "--trust-maker" in said
    assert "not reached" not in said


def test_a_helper_that_is_down_is_named_as_not_reached(
    fed_store: Storage, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> None:
    _seeded(fed_store)
    helper = HttpHelper("http://127.0.0.1:9", "x", timeout=2.0)
    request.addfinalizer(helper.close)
    with caplog.at_level(logging.WARNING, logger="omega.federation"):
        result = run_round(
            fed_store, FederationConfig(), now=NOW, worker_id="w", cowatch=CowatchCounting(helper)
        )
    assert result.released >= 1 and result.cowatch_rows == 0
    assert "not reached" in caplog.text and "refused this round" not in caplog.text


def test_a_helper_whose_desk_fails_is_named_as_failing(
    fed_store: Storage,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """A 500 (the desk's store broken: a full disk, here a damaged file) is the helper's
    own failure: not advice to start it with --trust-maker."""
    _seeded(fed_store)
    service = HelperService.open(tmp_path / "helper", HelperConfig())
    desk = CowatchDesk(tmp_path / "helper", service.secret, CowatchConfig())
    desk.close()
    store = next((tmp_path / "helper").glob("*cowatch*.sqlite3"))
    store.write_bytes(b"not a database" * 512)
    with HelperThread(service, cowatch=desk) as running:
        helper = HttpHelper(running.url, auth_token(service.secret))
        request.addfinalizer(helper.close)
        with caplog.at_level(logging.WARNING, logger="omega.federation"):
            result = run_round(
                fed_store,
                FederationConfig(),
                now=NOW,
                worker_id="w",
                cowatch=CowatchCounting(helper),
            )
    assert result.released >= 1 and result.cowatch_rows == 0
    said = caplog.text
    assert "failed this round's batch request" in said and "500" in said
    assert "--trust-maker" not in said and "refused" not in said


def test_the_servers_spread_setting_reaches_the_rounds_release(tmp_path: Path) -> None:
    """``OMEGA_COWATCH_SPREAD`` → the rounds' helper settings → the JSON a round child
    is started with → the co-watch step's ranking (the rule acts in the release)."""
    HelperService.open(tmp_path / "helper", HelperConfig())  # writes the shared secret
    settings = Settings(
        data_dir=tmp_path / "data",
        helper_url="http://127.0.0.1:9",
        helper_secret_file=tmp_path / "helper" / SECRET_FILE,
        cowatch_spread=4.0,
    )
    helper = HelperSettings(**_helper_job(helper_settings(settings)))
    shares = connect_helper(helper)
    assert shares is not None
    try:
        counting = connect_cowatch(helper, shares)
        assert counting is not None and counting.ranking == Ranking(20, 4.0)
    finally:
        shares.close()
    with pytest.raises(ValidationError, match="cowatch_spread"):
        Settings(data_dir=tmp_path / "data", cowatch_spread=-1)
