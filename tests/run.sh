#!/usr/bin/env bash
# Quick start: install what the tests need, then lint and run the whole test suite.
#
#   bash tests/run.sh                      # everything
#   bash tests/run.sh -q -x tests/test_docs.py   # extra arguments go to pytest
#
# Installs the Debian packages the tests use for real (mosquitto, mosquitto_sub, NUT's upsd, socat
# for serial ptys, the sqlite3 CLI for tamper tests, Chromium for the console's browser tests, poppler's
# pdftoppm to render reports), creates .venv/ with `.[dev]`, then runs
# `ruff check .` and `pytest -n 2`. Works unattended (CI=true, no stdin). Exit status is pytest's.
set -euo pipefail

# shellcheck source=hardware/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/../hardware/setup.sh"

ensure_apt_packages mosquitto mosquitto-clients nut-server socat sqlite3 fonts-dejavu-core chromium poppler-utils
ensure_venv dev,face

cd "$DCGATE_ROOT"
echo "tests/run.sh: ruff check ." >&2
"$DCGATE_VENV/bin/ruff" check .
echo "tests/run.sh: pytest -n 2 $*" >&2
exec "$DCGATE_VENV/bin/pytest" -n 2 "$@"
