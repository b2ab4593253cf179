#!/usr/bin/env bash
# Provide a private Docker engine plus a tiny "Redis + RedisJSON" image for tests.
#
# Usage: bash .ci/docker-redis.sh /path/to/rejson.so
#
#  1. installs docker.io (Debian) if `dockerd` is missing;
#  2. starts a private dockerd on unix:///tmp/ctc-docker/docker.sock unless one
#     already answers there (state under /tmp/ctc-docker, no iptables, no bridge:
#     containers must use host networking);
#  3. builds the image civic-trivia-redisjson:test with `docker import` from a
#     minimal rootfs: the host's /usr/bin/redis-server, the shared libraries it
#     and rejson.so need (per ldd), the dynamic loader, and rejson.so at
#     /opt/rejson.so. Rebuilt only if missing or if rejson.so/redis-server changed.
#  4. prints DOCKER_HOST=unix:///tmp/ctc-docker/docker.sock on stdout (last line).
#
# Everything else is logged to stderr. Idempotent: safe to run repeatedly.
# Run the image with e.g.
#   /usr/bin/redis-server --port N --loadmodule /opt/rejson.so --save "" --appendonly no --dir /tmp
# and network_mode=host (never use port 6379 here).
set -euo pipefail

REJSON_SO="${1:-}"
STATE_DIR=/tmp/ctc-docker
SOCK_PATH="$STATE_DIR/docker.sock"
export DOCKER_HOST="unix://$SOCK_PATH"
IMAGE=civic-trivia-redisjson:test
REDIS_BIN=/usr/bin/redis-server
START_TIMEOUT="${CTC_DOCKER_START_TIMEOUT:-60}"
# Optional: force a storage driver (e.g. vfs). Default: let dockerd pick
# (overlay2), falling back to vfs if dockerd dies on a storage-driver error.
STORAGE_DRIVER="${CTC_DOCKER_STORAGE_DRIVER:-}"

log() { echo "[docker-redis] $*" >&2; }
die() { echo "[docker-redis] ERROR: $*" >&2; exit 1; }

[ -n "$REJSON_SO" ] || die "usage: $0 /path/to/rejson.so"
[ -f "$REJSON_SO" ] || die "rejson.so not found: $REJSON_SO"
REJSON_SO="$(readlink -f "$REJSON_SO")"
[ -x "$REDIS_BIN" ] || die "$REDIS_BIN missing (apt-get install -y redis-server)"

# --- 1. docker engine + client ----------------------------------------------
if ! command -v dockerd >/dev/null 2>&1; then
    log "dockerd missing: installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y docker.io >&2
fi
command -v docker >/dev/null 2>&1 || die "docker client not found after install"

engine_up() { docker info >/dev/null 2>&1; }

# True if PID runs (a zombie does not count: `kill -0` succeeds on zombies, and
# a killed dockerd may stay a zombie for a while if nobody reaps it).
alive() {
    local state
    state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# PID of a live dockerd recorded in our pidfile, if any.
dockerd_pid() {
    local pid
    [ -f "$STATE_DIR/docker.pid" ] || return 1
    pid="$(cat "$STATE_DIR/docker.pid" 2>/dev/null || true)"
    [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && echo "$pid"
}

start_dockerd() {  # $1: storage driver ("" = dockerd's default)
    local extra=()
    [ -n "$1" ] && extra=(--storage-driver "$1")
    mkdir -p "$STATE_DIR/data" "$STATE_DIR/exec"
    rm -f "$STATE_DIR/docker.pid" "$SOCK_PATH"
    # A dockerd killed hard leaves exec/containerd/containerd.pid behind; if that
    # PID is gone, a zombie, or reused by something else, dockerd would wait for
    # it ("containerd is still running") and die after ~15 s. Drop it then.
    local cpidf="$STATE_DIR/exec/containerd/containerd.pid" cpid
    if [ -f "$cpidf" ]; then
        cpid="$(cat "$cpidf" 2>/dev/null || true)"
        if [ -z "$cpid" ] || ! alive "$cpid" || [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" != containerd ]; then
            rm -f "$cpidf"
        fi
    fi
    LOG_OFFSET="$(stat -c %s "$STATE_DIR/dockerd.log" 2>/dev/null || echo 0)"
    log "starting dockerd ${1:+(storage driver $1) }(log: $STATE_DIR/dockerd.log)"
    setsid nohup dockerd \
        --data-root "$STATE_DIR/data" \
        --exec-root "$STATE_DIR/exec" \
        --pidfile "$STATE_DIR/docker.pid" \
        --host "$DOCKER_HOST" \
        --iptables=false \
        --bridge=none \
        "${extra[@]}" \
        </dev/null >>"$STATE_DIR/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
}

wait_engine() {  # returns 0 when up, 1 on timeout, 2 if dockerd died
    local deadline=$((SECONDS + START_TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        engine_up && return 0
        if [ -n "${DOCKERD_PID:-}" ] && ! alive "$DOCKERD_PID"; then
            return 2
        fi
        sleep 0.5
    done
    return 1
}

if engine_up; then
    log "engine already answering on $DOCKER_HOST"
else
    mkdir -p "$STATE_DIR"
    if pid="$(dockerd_pid)"; then
        log "dockerd (pid $pid) already running; waiting for it"
        DOCKERD_PID="$pid"
    else
        start_dockerd "$STORAGE_DRIVER"
    fi
    rc=0; wait_engine || rc=$?
    # overlay2 can be unusable (e.g. /tmp on overlayfs or an odd kernel): if our
    # dockerd died on a storage-driver error, retry once with vfs.
    if [ $rc -eq 2 ] && [ -z "$STORAGE_DRIVER" ] && [ -n "${LOG_OFFSET:-}" ] &&
        tail -c +"$((LOG_OFFSET + 1))" "$STATE_DIR/dockerd.log" | grep -qiE 'error initializing graphdriver|storage.driver .*(fail|not supported)|driver not supported'; then
        log "dockerd failed on its storage driver; retrying with --storage-driver vfs"
        tail -c +"$((LOG_OFFSET + 1))" "$STATE_DIR/dockerd.log" | tail -n 10 >&2 || true
        start_dockerd vfs
        rc=0; wait_engine || rc=$?
    fi
    if [ $rc -ne 0 ]; then
        tail -n 40 "$STATE_DIR/dockerd.log" >&2 || true
        die "docker engine did not answer on $DOCKER_HOST within ${START_TIMEOUT}s (see $STATE_DIR/dockerd.log)"
    fi
    log "engine up: $(docker info --format '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupDriver}}/v{{.CgroupVersion}}' 2>/dev/null || true)"
fi

# --- 2. image -----------------------------------------------------------------
want_sum="$(sha256sum "$REJSON_SO" "$(readlink -f "$REDIS_BIN")" | awk '{print $1}' | sha256sum | cut -c1-64)"
have_sum="$(docker image inspect --format '{{index .Config.Labels "ctc.inputs-sha256"}}' "$IMAGE" 2>/dev/null || true)"

if [ "$have_sum" = "$want_sum" ]; then
    log "image $IMAGE up to date"
else
    [ -n "$have_sum" ] && log "image $IMAGE is stale; rebuilding"
    log "building $IMAGE from a minimal rootfs"
    ROOTFS="$(mktemp -d /tmp/ctc-rootfs.XXXXXX)"
    trap 'rm -rf "$ROOTFS"' EXIT

    # Every library ldd lists (resolved paths), including the loader.
    libs="$( { ldd "$REDIS_BIN"; ldd "$REJSON_SO"; } | awk '
        /not found/ { print "MISSING:" $1; next }
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }' | sort -u)"
    if grep -q '^MISSING:' <<<"$libs"; then
        die "unresolved libraries: $(grep '^MISSING:' <<<"$libs" | tr '\n' ' ')"
    fi
    # ELF interpreter as named inside the binary (e.g. /lib64/ld-linux-x86-64.so.2).
    interp="$(ldd "$REDIS_BIN" | awk '$1 ~ /^\/.*ld-linux/ {print $1; exit}')"
    [ -n "$interp" ] || die "could not find the dynamic loader for $REDIS_BIN"
    libs="$(printf '%s\n%s\n' "$libs" "$interp" | sort -u)"

    while IFS= read -r lib; do
        [ -n "$lib" ] || continue
        mkdir -p "$ROOTFS$(dirname "$lib")"
        cp -L "$lib" "$ROOTFS$lib"           # follow symlinks: store real file under ldd's name
    done <<<"$libs"

    mkdir -p "$ROOTFS/usr/bin" "$ROOTFS/opt" "$ROOTFS/etc" "$ROOTFS/dev" "$ROOTFS/proc" "$ROOTFS/sys"
    # redis-server is a symlink to redis-check-rdb on Debian; redis picks its mode
    # from argv[0], so store the real binary under the redis-server name.
    cp -L "$REDIS_BIN" "$ROOTFS/usr/bin/redis-server"
    cp -L "$REJSON_SO" "$ROOTFS/opt/rejson.so"
    chmod 0755 "$ROOTFS/usr/bin/redis-server" "$ROOTFS/opt/rejson.so"
    install -d -m 1777 "$ROOTFS/tmp"
    printf 'root:x:0:0:root:/root:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$ROOTFS/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOTFS/etc/group"

    tar --numeric-owner --owner=0 --group=0 -C "$ROOTFS" -cf - . |
        docker import \
            --change "LABEL ctc.inputs-sha256=$want_sum" \
            --change 'ENV LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu' \
            --change 'WORKDIR /tmp' \
            --change 'CMD ["/usr/bin/redis-server","--port","6390","--loadmodule","/opt/rejson.so","--save","","--appendonly","no","--dir","/tmp"]' \
            - "$IMAGE" >&2
    rm -rf "$ROOTFS"; trap - EXIT
    docker image prune -f >/dev/null 2>&1 || true   # drop the untagged previous build
    log "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE") bytes)"
fi

echo "DOCKER_HOST=$DOCKER_HOST"
