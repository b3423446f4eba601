#!/usr/bin/env bash
# `make demo`: a fresh project in demo/, its example issue built, the example list
# imported and the issue sent to the outbox (SQLite and .eml files: the embedded defaults);
# then a second issue with a local image is scheduled, sent by `mailer send --due` as cron
# would; a bilingual issue goes to one topic's readers, each in their language; and the web
# archive is exported as static files.
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

echo
echo "== a bilingual issue: one file per language, each reader gets theirs, to one topic =="
cat >> mailer.toml <<'TOML'
languages = ["zh-CN", "en"]

[topics]
ai = { zh-CN = "人工智能", en = "AI" }
tools = { zh-CN = "工具", en = "Tools" }
TOML
cat > readers.csv <<'CSV'
email,name,language,topics
li.lei@example.cn,李雷,zh-CN,"ai,tools"
han.meimei@example.cn,韩梅梅,,ai
ann@example.com,Ann,en,ai
bob@example.com,Bob,en-GB,tools
CSV
"$mailer" subscribers import readers.csv
cat > issues/2026-12-04-digest.md <<'MD'
---
date: 2026-12-04
audience: topic:ai
---
# 本周 AI 周报

> 小模型追上来了，工具链也在变快。

## 🚀 模型

- **小模型追上来了**：新的 3B 模型在常用基准上接近去年的 70B。[阅读全文](https://example.com/small-models)
MD
cat > issues/2026-12-04-digest.en.md <<'MD'
# This week in AI

> Small models catch up, and the tools get faster.

## 🚀 Models

- **Small models catch up**: a new 3B model nears last year's 70B on common benchmarks. [Read more](https://example.com/small-models)
MD
"$mailer" send issues/2026-12-04-digest.md --dry-run
"$mailer" send issues/2026-12-04-digest.md --yes
"$mailer" status issues/2026-12-04-digest.md
"$mailer" archive export public

echo
echo "HTML and text:   demo/build/2026-11-20-weekly.html, demo/build/2026-11-20-weekly.txt"
echo "Sent messages:   demo/outbox/2026-11-20-weekly/*.eml, demo/outbox/2026-11-27-next/*.eml,"
echo "                 demo/outbox/2026-12-04-digest/*.eml (Chinese and English editions)"
echo "Web archive:     demo/public/archive/index.html (and feed.xml, media/)"
echo "Preview it live: cd demo && ../.venv/bin/mailer preview $issue"
echo "Serve it:        cd demo && ../.venv/bin/mailer serve   (then http://127.0.0.1:8000/archive/)"
