"""The ``omega`` command: one Typer app; each part contributes a sub-app."""

from __future__ import annotations

import sys
from enum import IntEnum
from typing import NoReturn

import typer

from omega.cli._output import print_error
from omega.errors import OmegaError, error_code

__all__ = ["ExitCode", "app", "run"]


class ExitCode(IntEnum):
    """Exit codes scripts can rely on."""

    OK = 0
    ERROR = 1
    USAGE = 2  # Typer/Click's own code for bad options
    INPUT = 3
    STORE = 4
    MODEL = 5
    NETWORK = 6
    AUTH = 7
    PROTOCOL = 8
    INTERRUPTED = 130  # Ctrl-C, or SIGTERM where a long command unwinds on it (128 + SIGINT)


def exit_code_for(error: OmegaError) -> ExitCode:
    return ExitCode(error_code(error))


app = typer.Typer(
    name="omega",
    help=(
        "Omega: a federated, privacy-first recommender for TVs.\n\n"
        "Each TV runs a brain that learns from its household; only quality-filtered "
        "patterns go to the constellation, which fuses them and sends knowledge back."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Click's plain help, for every sub-app: it rewraps each paragraph to the terminal
    # (Rich's keeps the docstrings' line breaks) and shows flags without a "<bool>".
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"omega {version('exogenesis-omega')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print Omega's version and exit.",
    ),
) -> None:
    """Omega: a federated, privacy-first recommender for TVs.

    Each TV runs a brain that learns from its household; only quality-filtered patterns
    go to the constellation, which fuses them and sends knowledge back."""


def _register() -> None:
    # Sub-apps are imported here, not at module import, so `omega --help` stays fast
    # and one part's missing optional dependency cannot break the others' commands.
    from omega.cli import bench, brain, demo

    app.add_typer(brain.app, name="brain")
    app.add_typer(bench.app, name="bench")
    demo.register(app)
    for optional in (
        "serve",
        "worker",
        "helper",
        "sync",
        "simulate",
        "baselines",
        "admin",
        "attest",
        "sdk",
        "mcp",
        "cost",
    ):
        try:
            module = __import__(f"omega.cli.{optional}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"omega.cli.{optional}":
                raise
            continue
        module.register(app)


_register()


def run() -> None:
    """Console entry point: run the app and turn errors into one sentence + exit code.

    With ``--json`` anywhere among the options, an error is one JSON object on stderr,
    ``{"error": sentence, "code": exit code, "kind": "input" | "usage" | …}``, so a script
    reading the JSON never has to parse prose."""
    as_json = wants_json(sys.argv[1:])
    try:
        returned = app(standalone_mode=False)
    except OmegaError as exc:
        _fail(str(exc), exit_code_for(exc), as_json=as_json)
    except typer.Abort:
        _fail("aborted", ExitCode.ERROR, as_json=as_json)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # Click's usage errors (Typer ships its own Click)
        show = getattr(exc, "show", None)  # usage, a hint and the sentence
        if as_json or not callable(show):
            _fail(exc.format_message(), ExitCode(exc.exit_code), as_json=as_json)
        show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        # an OMEGA_* variable that does not parse
        sentences = [
            f"setting {name} (OMEGA_{name.upper()}): {error['msg']}"
            for error in exc.errors()
            if (name := ".".join(str(part) for part in error["loc"]))
        ]
        _fail("; ".join(sentences), ExitCode.USAGE, as_json=as_json)
    # Outside standalone mode Typer returns the code of a ``typer.Exit`` (130 for Ctrl-C)
    # instead of exiting with it: exit with it here, or a failed run would exit 0.
    if returned == ExitCode.INTERRUPTED:
        _fail("interrupted", ExitCode.INTERRUPTED, as_json=as_json)
    if isinstance(returned, int) and not isinstance(returned, bool) and returned:
        sys.exit(returned)


def wants_json(args: list[str]) -> bool:
    """Whether ``--json`` is among the options (before a ``--``)."""
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


def _fail(message: str, code: ExitCode, *, as_json: bool) -> NoReturn:
    print_error(message, code=int(code), kind=code.name.lower(), as_json=as_json)
    sys.exit(int(code))
