#!/usr/bin/env bash
# mypy over the installed layout of `optforge` (see package_farm.sh), so that types resolve across
# the four packages. Extra arguments are Python files added to the package root for this run only
# (tests/test_typecheck.py uses one to prove that a cross-package type error fails lint).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash "$repo/.ci/package_farm.sh" "$tmp"
for extra in "$@"; do cp "$extra" "$tmp/optforge/"; done
cd "$repo"
# Paths in messages point back into the repository, where the files really are.
MYPYPATH="$tmp" "$repo/.venv/bin/mypy" --config-file "$repo/pyproject.toml" -p optforge 2>&1 \
  | sed "s#^$tmp/optforge/\(agent\|sandbox\|tasks\|archive\)/#\1/#"
