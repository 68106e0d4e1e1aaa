#!/usr/bin/env bash
# Set everything up and run roost in the foreground on the embedded demo configuration:
# loopback only, unprivileged ports (2000 + the standard port, or the next thousand where they
# are all free), state under .demo/. Stop with Ctrl-C.  Env: DEMO_DIR (default .demo),
# PORT_BASE (default: that choice).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/setup.sh
DEMO_DIR=${DEMO_DIR:-$ROOT/.demo}
if [ ! -f "$DEMO_DIR/main.cf" ]; then
  if [ -z "${PORT_BASE:-}" ]; then
    # 2000 + the standard ports, or the next thousand where all of them are free
    PORT_BASE=$(.venv/bin/python - <<'PY'
import socket
for base in range(2000, 30000, 1000):
    def free(port):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False
    if all(free(base + p) for p in (25, 587, 465, 143, 993, 110, 995, 24)):
        print(base)
        break
PY
)
  fi
  # init prints the ports, users, passwords and mailbox paths (also kept in README-demo.txt).
  .venv/bin/roost init "$DEMO_DIR" --domain example.test --port-base "$PORT_BASE" \
    --user alice:alice-demo-password --user bob:bob-demo-password
else
  cat "$DEMO_DIR/README-demo.txt"  # what init printed the first time (mode 0600)
fi
exec .venv/bin/roost -c "$DEMO_DIR" start-fg
