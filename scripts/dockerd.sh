#!/bin/sh
# Start a dockerd for nbremote's tests and benchmarks unless one already answers; print the
# DOCKER_HOST to use. Idempotent: a second call finds the first one's daemon and says so.
#
# The daemon runs without a bridge or iptables rules (containers get network_mode "none" or the
# host's), with overlay2 under NBREMOTE_DOCKERD_ROOT, so that base images built once stay cached
# across runs. Needs root and Debian's docker.io (apt-get install docker.io).
#
#   export DOCKER_HOST=$(scripts/dockerd.sh)
set -eu

ROOT=${NBREMOTE_DOCKERD_ROOT:-/var/lib/nbremote-docker}
RUN=${NBREMOTE_DOCKERD_RUN:-/run/nbremote-docker}
OURS="unix://$RUN/docker.sock"

answers() {  # $1: a DOCKER_HOST; true when a daemon answers there
    DOCKER_HOST=$1 timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

for host in ${DOCKER_HOST:-} "$OURS"; do
    if answers "$host"; then
        echo "$host"
        exit 0
    fi
done

if ! command -v dockerd >/dev/null 2>&1; then
    echo "dockerd.sh: no dockerd on this machine: apt-get install docker.io" >&2
    exit 1
fi
mkdir -p "$ROOT" "$RUN"
# One starter at a time (two test sessions starting at once): the second waits, then finds it.
exec 9>"$RUN/start.lock"
flock 9
if ! answers "$OURS"; then
    rm -f "$RUN/docker.sock" "$RUN/docker.pid"
    setsid dockerd \
        --host "$OURS" \
        --data-root "$ROOT" \
        --exec-root "$RUN/exec" \
        --pidfile "$RUN/docker.pid" \
        --storage-driver overlay2 \
        --iptables=false --ip-masq=false --bridge=none \
        >"$RUN/dockerd.log" 2>&1 </dev/null &
    tries=0
    until answers "$OURS"; do
        tries=$((tries + 1))
        if [ "$tries" -gt 120 ]; then
            echo "dockerd.sh: dockerd did not answer within 60 s; its log:" >&2
            tail -20 "$RUN/dockerd.log" >&2
            exit 1
        fi
        sleep 0.5
    done
fi
echo "$OURS"
