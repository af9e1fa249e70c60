#!/usr/bin/env bash
# import-linter (grimp) cannot follow setuptools' editable-install finder, which maps the folders
# agent/, sandbox/, tasks/, archive/ to optforge.*: lint a throwaway copy laid out as the installed
# package instead. The contracts themselves live in pyproject.toml.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/optforge"
touch "$tmp/optforge/__init__.py"
for folder in agent sandbox tasks archive; do cp -r "$repo/$folder" "$tmp/optforge/$folder"; done
cd "$tmp"
PYTHONPATH="$tmp" "$repo/.venv/bin/lint-imports" --config "$repo/pyproject.toml"
