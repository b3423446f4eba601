#!/usr/bin/env bash
# `make demo`: a fresh project in demo/, its example issue built, the example list
# imported and the issue sent to the outbox (SQLite and .eml files: the embedded defaults).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mailer="$here/.venv/bin/mailer"
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
echo "HTML and text:   demo/build/2026-11-20-weekly.html, demo/build/2026-11-20-weekly.txt"
echo "Sent messages:   demo/outbox/2026-11-20-weekly/*.eml"
echo "Preview it live: cd demo && ../.venv/bin/mailer preview $issue"
