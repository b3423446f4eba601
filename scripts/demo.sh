#!/usr/bin/env bash
# `make demo`: a fresh project in demo/, its example issue built, the example list
# imported and the issue sent to the outbox (SQLite and .eml files: the embedded defaults);
# then a second issue with a local image is scheduled, sent by `mailer send --due` as cron
# would, and the web archive exported as static files.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mailer="$here/.venv/bin/mailer"
python="$here/.venv/bin/python"
rm -rf "$here/demo"
"$mailer" init "$here/demo"
cd "$here/demo"
issue=issues/2026-11-20-weekly.md
"$mailer" build "$issue"
"$mailer" subscribers import subscribers.csv.example
"$mailer" send "$issue" --yes
"$mailer" status "$issue"
"$mailer" send "$issue" --yes   # a second run sends nobody anything twice

echo
echo "== next week's issue, with a local chart, scheduled and sent by 'send --due' =="
mkdir -p issues/img
"$python" - <<'PY'
from PIL import Image, ImageDraw
img = Image.new("RGB", (1800, 900), "white")
draw = ImageDraw.Draw(img)
for i, h in enumerate((300, 520, 410, 700, 610)):
    draw.rectangle((150 + i * 320, 850 - h, 350 + i * 320, 850), fill=(11, 99, 206))
img.save("issues/img/chart.png")
PY
cat > issues/2026-11-27-next.md <<'MD'
---
subject: "下周预告 · Next week: the chart issue"
date: 2026-11-27
---
# 下周预告 · Next week

A local image, resized to 1200 px and served from `/media/`:

![Downloads by week](img/chart.png)
MD
due=$("$python" -c 'import datetime as d; print((d.datetime.now(d.UTC) - d.timedelta(minutes=1)).isoformat(timespec="seconds"))')
"$mailer" send issues/2026-11-27-next.md --at "$due"
"$mailer" schedule
"$mailer" send --due            # what cron runs every five minutes
"$mailer" send --due            # nothing due any more: quiet
"$mailer" archive export public

echo
echo "HTML and text:   demo/build/2026-11-20-weekly.html, demo/build/2026-11-20-weekly.txt"
echo "Sent messages:   demo/outbox/2026-11-20-weekly/*.eml, demo/outbox/2026-11-27-next/*.eml"
echo "Web archive:     demo/public/archive/index.html (and feed.xml, media/)"
echo "Preview it live: cd demo && ../.venv/bin/mailer preview $issue"
echo "Serve it:        cd demo && ../.venv/bin/mailer serve   (then http://127.0.0.1:8000/archive/)"
