#!/usr/bin/env bash
# Start dockerd as root when no engine answers, and wait until it does. A machine whose processes
# were stopped without a shutdown (a restored snapshot, an ended session) keeps dockerd's and its
# containerd's pid files; dockerd then refuses to start ("pid file found, ensure docker is not
# running"). A pid file whose process is not the named daemon is stale and is removed; a live
# dockerd that is still starting is waited for (and replaced if it dies), never started twice.
set -euo pipefail
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/optforge-dockerd.log}"
DOCKERD_PIDFILE=/var/run/docker.pid
CONTAINERD_PIDFILE=/var/run/docker/containerd/containerd.pid

engine_answers() { docker info >/dev/null 2>&1; }

# Prints the pid in $1 when that process is alive and named $2.
live_daemon_pid() {
  local pidfile=$1 name=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  # A killed daemon can linger as a zombie until its parent reaps it: that is not alive.
  [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ] && echo "$pid"
}

remove_if_stale() {
  local pidfile=$1 name=$2
  if [ -f "$pidfile" ] && ! live_daemon_pid "$pidfile" "$name" >/dev/null; then
    echo "start_dockerd: removing stale $pidfile (no live $name has its pid)"
    rm -f "$pidfile"
  fi
}

engine_answers && exit 0
started=""
for _ in $(seq 60); do
  engine_answers && exit 0
  if [ -z "$started" ] && ! live_daemon_pid "$DOCKERD_PIDFILE" dockerd >/dev/null; then
    remove_if_stale "$DOCKERD_PIDFILE" dockerd
    remove_if_stale "$CONTAINERD_PIDFILE" containerd
    echo "start_dockerd: starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
    started=yes
  fi
  sleep 1
done
echo "start_dockerd: dockerd did not answer within 60 s; its log ends with:" >&2
tail -n 20 "$DOCKERD_LOG" >&2
exit 1
