# Sourced by scripts/omega and scripts/check: make .venv and install Omega into it once,
# again whenever pyproject.toml changes. Only Python 3.11+, pip and gcc are needed.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${OMEGA_VENV:-$root/.venv}"
stamp="$venv/.omega-installed"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "installing Omega and its dependencies into $venv (first run only)..." >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -e "$root[dev]" >&2
  touch "$stamp"
fi
