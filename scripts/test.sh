#!/usr/bin/env bash
# Set everything up (as root also the Debian packages the tests talk to) and run the
# whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/setup.sh --test
# Both cores: every test uses its own tmp dirs and free ports, so they run in parallel.
# Workers run uvloop (roost.net.eventloop) and so do the in-process handlers of tests/net;
# without extra arguments tests/net runs a second time on asyncio's own loop, the one a
# server without uvloop runs.
if [ "$#" -eq 0 ]; then
  .venv/bin/python -m pytest -q -p no:cacheprovider -n 2
  exec env ROOST_EVENT_LOOP=asyncio .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 tests/net
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 "$@"
