# Source with a requirements file: makes .venv if missing and installs that file when it changed.
# Usage: source scripts/lib/venv.sh requirements-dev.txt
set -euo pipefail
requirements="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "creating .venv with $($python --version)" >&2
  "$python" -m venv "$root/.venv"
fi
# The stamp covers the file and everything it includes with -r.
digest="$(cat "$root"/requirements*.txt | sha256sum | cut -c1-16)"
stamp="$root/.venv/.installed-$(basename "$requirements" .txt)-$digest"
if [ ! -f "$stamp" ]; then
  echo "installing $requirements into .venv (pinned versions; the first time takes up to a minute)" >&2
  "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/$requirements"
  touch "$stamp"
fi
