#!/usr/bin/env bash
# Set everything up and run roost in the foreground on the embedded demo configuration:
# loopback only, unprivileged ports (2000 + the standard port), state under .demo/.
# Stop with Ctrl-C.  Env: DEMO_DIR (default .demo), PORT_BASE (default 2000).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/setup.sh
DEMO_DIR=${DEMO_DIR:-$ROOT/.demo}
if [ ! -f "$DEMO_DIR/main.cf" ]; then
  # init prints the ports, users, passwords and mailbox paths (also kept in README-demo.txt).
  .venv/bin/roost init "$DEMO_DIR" --domain example.test --port-base "${PORT_BASE:-2000}" \
    --user alice:alice-demo-password --user bob:bob-demo-password
else
  cat "$DEMO_DIR/README-demo.txt"  # what init printed the first time (mode 0600)
fi
exec .venv/bin/roost -c "$DEMO_DIR" start-fg
