#!/usr/bin/env bash
# Set everything up (as root also the Debian packages the tests talk to) and run the
# whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/setup.sh --test
# Both cores: every test uses its own tmp dirs and free ports, so they run in parallel.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 "$@"
