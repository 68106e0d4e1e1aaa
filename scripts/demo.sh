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
  .venv/bin/roost init "$DEMO_DIR" --domain example.test --port-base "${PORT_BASE:-2000}" \
    --user alice:alice-demo-password --user bob:bob-demo-password
fi
# Ports, users, passwords and mailbox paths, as `roost init` wrote them (mode 0600).
cat "$DEMO_DIR/README-demo.txt"
exec .venv/bin/roost -c "$DEMO_DIR" start-fg
