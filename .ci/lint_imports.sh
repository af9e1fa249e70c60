#!/usr/bin/env bash
# import-linter (grimp) cannot follow setuptools' editable-install finder: lint the installed
# layout instead (package_farm.sh). The contracts themselves live in pyproject.toml.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash "$repo/.ci/package_farm.sh" "$tmp"
cd "$tmp"
PYTHONPATH="$tmp" "$repo/.venv/bin/lint-imports" "$repo/pyproject.toml"
