#!/usr/bin/env bash
# Lay the four folders out as the installed `optforge` package, with symlinks, in directory $1.
# mypy and import-linter cannot follow setuptools' editable-install finder (which maps agent/,
# sandbox/, tasks/, archive/ to optforge.*): without this layout mypy sees `optforge.archive` as a
# missing module, types everything imported across packages as Any, and checks nothing there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
farm="$1"
mkdir -p "$farm/optforge"
ln -sfn "$repo/agent/_root/__init__.py" "$farm/optforge/__init__.py"
for folder in agent sandbox tasks archive; do ln -sfn "$repo/$folder" "$farm/optforge/$folder"; done
