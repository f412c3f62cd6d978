#!/usr/bin/env bash
# Rebuilds agent/commands/talk/static/talk.js: src/main.js bundled with livekit-client, both pinned
# by package-lock.json and fetched from the npm registry. The bundle is committed, so
# installing the Python package needs no npm; rerun this after changing src/ or a version.
# The same lock gives the same bytes (CI can rebuild and `git diff --exit-code` it).
# Usage: build.sh [OUTFILE]   (default ../static/talk.js)
set -euo pipefail
out="$(realpath -m "${1:-$(dirname "$0")/../static/talk.js}")"
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
npx --no-install esbuild src/main.js --bundle --minify --format=esm --target=es2020 \
  --legal-comments=eof --log-level=warning --outfile="$out"
