#!/usr/bin/env bash
# The VQA-retention environment (.venv-eval): lmms-eval 0.7.3 layered on the default .venv.
# .venv-eval's own site-packages holds only requirements-eval.txt (installed --no-deps) and the
# project itself (editable, for lmms-eval's `lmms_eval.models` entry point); a .pth file appends
# .venv's site-packages, so torch, transformers, peft, datasets, ... keep the project's pins.
# Usage: bash .ci/setup-eval.sh [EVAL_VENV] [MAIN_VENV]   (make eval-setup). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
EVAL=${1:-.venv-eval}
MAIN=${2:-.venv}
[ -x "$MAIN/bin/python" ] || { echo "$MAIN is missing: run make setup first"; exit 1; }
[ -x "$EVAL/bin/python" ] || "$MAIN/bin/python" -m venv "$EVAL"
main_site=$("$MAIN/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
eval_site=$("$EVAL/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$(cd "$main_site" && pwd -P)" > "$eval_site/_vlm2vla_main_venv.pth"
"$EVAL/bin/pip" install -q --no-deps -r requirements-eval.txt
# setuptools comes from .venv through the .pth (the old one venv bundles on Python 3.11 cannot build
# an editable wheel without `wheel`); no build isolation, so nothing else is fetched
"$EVAL/bin/python" -m pip uninstall -q -y setuptools 2>/dev/null || true
"$EVAL/bin/pip" install -q --no-deps --no-build-isolation -e .
"$EVAL/bin/python" -c 'import lmms_eval.models as m; assert "vlm2vla" in m.list_available_models(), "entry point not registered"'
echo "== eval environment ready in $EVAL (lmms-eval 0.7.3, model plugin vlm2vla)"
