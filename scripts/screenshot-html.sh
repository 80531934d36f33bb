#!/bin/sh
# Render the sample report (tests/report_samples.py) as HTML and screenshot it with
# headless Chromium, to check the page by eye. Usage: scripts/screenshot-html.sh [OUT.png]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/build/report-screenshot.png}
python=${PYTHON:-python3}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
    echo "error: no chromium found; install it (apt-get install -y chromium)" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
PYTHONPATH="$here/tests${PYTHONPATH:+:$PYTHONPATH}" "$python" -c '
import sys
from report_samples import sample_report
from qeguard.render import render
open(sys.argv[1], "w", encoding="utf-8").write(render(sample_report(), "html"))
' "$work/report.html"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run \
    --user-data-dir="$work/profile" --screenshot="$out" --window-size=1280,1600 \
    "file://$work/report.html" >/dev/null 2>&1
echo "$out"
