"""``python -m omega.cli`` runs the ``omega`` command."""

from omega.cli.main import run

run()
