#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian/Ubuntu machine with Python 3.11:
# the Debian packages (offscreen MuJoCo rendering, Chromium for the browser tests)
# and a virtual environment with requirements.txt. Safe to run again.
set -euo pipefail
VENV=${1:-.venv}
APT_PACKAGES="libegl1 libgl1 libosmesa6 chromium fonts-noto-core fonts-noto-cjk"

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages:$missing"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
  else
    echo "Missing Debian packages:$missing"
    echo "Install them with:  sudo apt-get install -y$missing"
    echo "then run make again."
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "VLM2VLA needs Python 3.11+, found " + sys.version' 
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# torch first and alone: torch==2.13.0 resolves to the local CPU build; asking for it
# together with other packages could pull the registry's CUDA build instead.
"$VENV/bin/pip" install -q torch==2.13.0
"$VENV/bin/pip" install -q -r requirements.txt
echo "== environment ready in $VENV"
