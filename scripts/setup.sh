#!/usr/bin/env bash
# Set up roost in .venv at the repository root.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --test   also the test tools, and (as root) the Debian packages the
#                             interoperability tests run against: postfix, dovecot, swaks.
# Idempotent and quick when nothing changed. Works as root and as an ordinary user.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WANT_TEST=0
[ "${1:-}" = --test ] && WANT_TEST=1

as_root() { [ "$(id -u)" = 0 ]; }

DEBIAN_TEST_PACKAGES="postfix postfix-pcre postfix-lmdb postfix-cdb postfix-sqlite dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd swaks fail2ban fetchmail getmail6 msmtp isync mutt pflogsumm s-nail"

apt_install() {  # apt_install PKG...  (root only; non-interactive, no services started)
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  if [ ! -f /var/lib/apt/periodic/roost-updated ] || [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -1)" ]; then
    apt-get update -qq
    mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/roost-updated
  fi
  # The tests start their own private instances: no package may start its system service
  # (postfix, dovecot, fail2ban). policy-rc.d is Debian's switch for that; ours is temporary.
  local own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null || { [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; return 1; }
  if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

# --- Python with venv (Debian ships venv separately)
if ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "roost needs Python >= 3.11 (python3 is $(python3 --version 2>&1))" >&2
  if as_root; then apt_install python3 python3-venv; else exit 1; fi
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if as_root; then apt_install python3-venv
  else echo "python3-venv is missing: run 'sudo apt-get install python3-venv' once" >&2; exit 1; fi
fi

# --- Debian packages for the interoperability tests
if [ "$WANT_TEST" = 1 ]; then
  missing=""
  for p in $DEBIAN_TEST_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    if as_root; then
      echo "installing Debian packages for the tests:$missing"
      apt_install $missing
    else
      echo "warning: interop tests need these Debian packages:$missing" >&2
      echo "warning: install them once with: sudo scripts/setup.sh --test" >&2
    fi
  fi
fi

# --- the virtual environment
[ -x .venv/bin/python ] || python3 -m venv .venv
EXTRA=""
[ "$WANT_TEST" = 1 ] && EXTRA="[test]"
STAMP=".venv/.roost-installed$EXTRA"
SUM=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$SUM" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$EXTRA"
  echo "$SUM" >"$STAMP"
fi
