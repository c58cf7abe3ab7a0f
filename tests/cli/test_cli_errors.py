"""What a new user meets at the command line: errors that name the flag typed (not the
library's parameter), one JSON object on stderr with ``--json``, and help that reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli_world import omega
from typer.testing import CliRunner

from omega.cli.main import app

#: The library's names for what the commands below call --fraction, --at, -k, …
LIBRARY_NAMES = ("watch_fraction", "duration_s", "at_seconds", "max_runtime_min", "error: k ")


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (("track", "view", "m1", "--fraction", "1.5"), "--fraction must be within [0, 1]"),
        (("track", "view", "m1", "--fraction", "nan"), "--fraction must be finite"),
        (("track", "view", "m1", "--duration", "-5"), "--duration must not be negative"),
        (("track", "view", "m1"), "a view needs --fraction, --duration or --completed"),
        (("track", "skip", "m1", "--at", "-5"), "--at must not be negative"),
        (("track", "rating", "m1", "--stars", "9"), "--stars must be within [0.5, 5]"),
        (("recommend", "-k", "0"), "-k must be within [1, 1000], got 0"),
        (("recommend", "--max-runtime", "-5"), "--max-runtime must be at least 1 minute"),
        (("export", "--min-quality", "2"), "--min-quality must be within [0, 1]"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_flag(
    brain: Path, args: tuple[str, ...], sentence: str
) -> None:
    command, *rest = args
    done = omega("brain", command, str(brain), *rest)
    assert done.returncode == 2, done.stderr
    assert sentence in done.stderr
    assert not any(name in done.stderr for name in LIBRARY_NAMES), done.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("bench", "sync", "--pushes", "0"), "'--pushes'"),
        (("bench", "brain", "--catalog", "10"), "'--catalog'"),
        (("bench", "sdk", "-k", "0"), "'-k'"),
        (("bench", "wasm", "--loads", "0"), "'--loads'"),
        (("bench", "server", "--pull-only", "2"), "'--pull-only'"),
        (("helper", "serve", "--min-batch", "0"), "'--min-batch'"),
    ],
)
def test_bench_and_helper_options_name_the_flag(args: tuple[str, ...], flag: str) -> None:
    done = CliRunner().invoke(app, list(args))
    assert done.exit_code == 2
    assert flag in done.output


def test_recommend_says_when_there_is_nothing_to_recommend(brain: Path) -> None:
    done = omega("brain", "recommend", str(brain), "--genre", "Western")
    assert done.returncode == 0, done.stderr
    assert "nothing to recommend" in done.stdout
    assert "┏" not in done.stdout  # no empty table


@pytest.mark.parametrize(
    ("args", "code", "kind", "words"),
    [
        (("brain", "recommend", "/nonexistent/tv"), 2, "usage", "brain init"),
        (("brain", "recommend", "{brain}", "-k", "abc"), 2, "usage", "'-k'"),
        (
            ("brain", "track", "{brain}", "view", "m1", "--fraction", "1.5"),
            2,
            "usage",
            "--fraction",
        ),
        (("brain", "track", "{brain}", "view", "nope", "--fraction", "1"), 3, "input", "'nope'"),
        (("sync", "{brain}", "--server", "http://127.0.0.1:9"), 6, "network", "connection"),
        (("helper", "key", "--data-dir", "/proc/omega-helper"), 2, "usage", "/proc/omega-helper"),
    ],
)
def test_with_json_an_error_is_one_json_object_on_stderr(
    brain: Path, args: tuple[str, ...], code: int, kind: str, words: str
) -> None:
    done = omega(*(a.format(brain=brain) for a in args), "--json")
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    error = json.loads(done.stderr)  # one object, nothing else
    assert error["code"] == code and error["kind"] == kind
    assert words in error["error"]


def test_help_has_no_bool_placeholders_and_keeps_sentences_whole() -> None:
    runner = CliRunner()
    track = runner.invoke(app, ["brain", "track", "--help"])
    assert track.exit_code == 0
    assert "<bool>" not in track.output
    assert "--completed / --no-completed" in track.output
    wide = runner.invoke(app, ["sync", "--help"], terminal_width=400, max_content_width=400)
    # the docstring's own line breaks are not kept: a paragraph is one line when it fits
    assert "--certificate and --device-key (credentials and the release keys" in wide.output
