"""The ``omega`` command: one Typer app; each part contributes a sub-app."""

from __future__ import annotations

import sys
from enum import IntEnum

import typer

from omega.cli._output import err_console
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
    """Console entry point: run the app and turn Omega errors into one sentence + exit code."""
    try:
        app(standalone_mode=False)
    except OmegaError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(int(exit_code_for(exc)))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(int(ExitCode.ERROR))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):  # an OMEGA_* variable that does not parse
            for error in exc.errors():
                name = ".".join(str(part) for part in error["loc"])
                err_console.print(
                    f"[bold red]error:[/] setting {name} (OMEGA_{name.upper()}): {error['msg']}"
                )
            sys.exit(int(ExitCode.USAGE))
        # Typer ships its own copy of click (typer._click): match usage errors by shape.
        show = getattr(exc, "show", None)
        code = getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise
