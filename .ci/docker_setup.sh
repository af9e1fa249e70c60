#!/usr/bin/env bash
# CI set-up for the Docker sandbox, as root on a machine that may have no image registry: install
# the engine and debootstrap when missing, start dockerd when no engine answers, then build the
# sandbox image offline (debootstrap base + a wheelhouse from the host's pip) and check it with a
# real container run. Needs .venv (run after `make lint`, which creates it).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "docker_setup: run as root (it installs packages and starts dockerd)" >&2
  exit 2
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "docker_setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

bash .ci/start_dockerd.sh

.venv/bin/optforge sandbox build --offline
.venv/bin/optforge sandbox check
