#!/usr/bin/env bash
# CI set-up for the Docker sandbox, as root on a machine that may have no image registry: install
# the engine and debootstrap when missing, start dockerd when no engine answers, then build the
# sandbox image offline (debootstrap base + a wheelhouse from the host's pip) and check it with a
# real container run. Needs .venv (run after `make lint`, which creates it).
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/optforge-dockerd.log}"

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

if ! docker info >/dev/null 2>&1; then
  echo "docker_setup: starting dockerd (log: $DOCKERD_LOG)"
  nohup dockerd >"$DOCKERD_LOG" 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "docker_setup: dockerd did not answer within 60 s; its log ends with:" >&2
    tail -n 20 "$DOCKERD_LOG" >&2
    exit 1
  fi
fi

.venv/bin/optforge sandbox build --offline
.venv/bin/optforge sandbox check
