#!/usr/bin/env bash
# A private Docker engine for CI, and its teardown.
#
#   bash .ci/engine.sh start   start dockerd (and the containerd it runs) unless one answers on
#                              the socket already; prints DOCKER_HOST=unix://... as the last line
#   bash .ci/engine.sh stop    stop the engine that `start` started (recorded PID), its containerd
#                              and its containers, then check that nothing of it is left
#   bash .ci/engine.sh check   list processes this CI run left behind (see below); exit 1 if any
#
# CTC_DOCKER_DIR (default /tmp/ctc-docker) holds everything of one engine: data root, exec root,
# socket, pidfile and log. Two engines with different directories never meet, so a developer can
# run one beside CI's. The data root survives `stop`, so a later run reuses its images.
#
# No iptables and no default bridge (--iptables=false --bridge=none): this machine's firewall is
# not the engine's to change. User-defined bridge networks (compose's) still work: containers
# reach each other on the bridge and Docker's embedded DNS answers inside them, and a published
# port is served by docker-proxy on the host. Containers just cannot reach beyond the host.
#
# Leftovers: `start` exports CTC_RUN_MARK into dockerd's environment, and .ci/run exports it to
# every step, so `check` finds exactly the dockerd, containerd, containerd-shim, redis-server,
# haproxy and uvicorn processes started by this run (/proc/PID/environ), never anyone else's.
set -euo pipefail

STATE_DIR="${CTC_DOCKER_DIR:-/tmp/ctc-docker}"
SOCK="$STATE_DIR/docker.sock"
export DOCKER_HOST="unix://$SOCK"
START_TIMEOUT="${CTC_DOCKER_START_TIMEOUT:-60}"
# Optional: force a storage driver (e.g. vfs). Default: dockerd's choice (overlay2), falling back
# to vfs if dockerd dies on a storage-driver error.
STORAGE_DRIVER="${CTC_DOCKER_STORAGE_DRIVER:-}"
STARTED_FILE="$STATE_DIR/started-by"  # the CTC_RUN_MARK of the run that started the engine

log() { echo "[engine] $*" >&2; }
die() { echo "[engine] ERROR: $*" >&2; exit 1; }

# True if PID runs (a zombie does not count: `kill -0` succeeds on zombies).
alive() {
    local state
    state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# PID from a pidfile, if that process still runs under the expected name.
pid_of() {  # $1 pidfile, $2 comm
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}
dockerd_pid() { pid_of "$STATE_DIR/docker.pid" dockerd; }
containerd_pid() { pid_of "$STATE_DIR/exec/containerd/containerd.pid" containerd; }

engine_up() { docker info >/dev/null 2>&1; }

install_docker() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update >&2
        apt-get install -y "${missing[@]}" >&2
    fi
    command -v docker >/dev/null 2>&1 || die "docker client not found after install"
}

launch() {  # $1: storage driver ("" = dockerd's default)
    local extra=()
    [ -n "$1" ] && extra=(--storage-driver "$1")
    mkdir -p "$STATE_DIR/data" "$STATE_DIR/exec"
    rm -f "$STATE_DIR/docker.pid" "$SOCK"
    # A dockerd killed hard leaves exec/containerd/containerd.pid behind; if that PID is gone or
    # reused, dockerd would wait for it ("containerd is still running") and die after ~15 s.
    containerd_pid >/dev/null || rm -f "$STATE_DIR/exec/containerd/containerd.pid"
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

wait_engine() {  # 0 when up, 1 on timeout, 2 if dockerd died
    local deadline=$((SECONDS + START_TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        engine_up && return 0
        alive "$DOCKERD_PID" || return 2
        sleep 0.5
    done
    return 1
}

start() {
    export CTC_RUN_MARK="${CTC_RUN_MARK:-engine-$$}"
    install_docker
    if engine_up; then
        log "an engine already answers on $DOCKER_HOST (not started by this run: left running)"
        echo "DOCKER_HOST=$DOCKER_HOST"
        return
    fi
    mkdir -p "$STATE_DIR"
    if DOCKERD_PID="$(dockerd_pid)"; then
        log "dockerd (pid $DOCKERD_PID) of $STATE_DIR is starting; waiting for it"
    else
        launch "$STORAGE_DRIVER"
        echo "$CTC_RUN_MARK" >"$STARTED_FILE"
    fi
    local rc=0
    wait_engine || rc=$?
    # overlay2 can be unusable (e.g. the state directory on overlayfs): if dockerd died on a
    # storage-driver error, retry once with vfs.
    if [ $rc -eq 2 ] && [ -z "$STORAGE_DRIVER" ] &&
        tail -c +"$((${LOG_OFFSET:-0} + 1))" "$STATE_DIR/dockerd.log" |
        grep -qiE 'error initializing graphdriver|storage.driver .*(fail|not supported)|driver not supported'; then
        log "dockerd failed on its storage driver; retrying with --storage-driver vfs"
        launch vfs
        rc=0
        wait_engine || rc=$?
    fi
    if [ $rc -ne 0 ]; then
        tail -n 40 "$STATE_DIR/dockerd.log" >&2 || true
        die "no engine on $DOCKER_HOST within ${START_TIMEOUT}s (see $STATE_DIR/dockerd.log)"
    fi
    log "engine up (dockerd pid $(dockerd_pid)): $(docker info --format \
        '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupDriver}}/v{{.CgroupVersion}}')"
    echo "DOCKER_HOST=$DOCKER_HOST"
}

# Processes of the kinds this project starts whose environment carries the run's mark.
marked_processes() {  # $1: mark
    local pid comm cmd
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        comm="$(cat "$dir/comm" 2>/dev/null)" || continue
        cmd="$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline")" || continue
        case "$comm $cmd" in
            dockerd* | containerd* | docker-proxy* | haproxy* | redis-server* | *uvicorn*) ;;
            *) continue ;;
        esac
        [ "$pid" = "$$" ] && continue
        if tr '\0' '\n' 2>/dev/null <"$dir/environ" | grep -qxF "CTC_RUN_MARK=$1"; then
            alive "$pid" && echo "$pid $cmd"
        fi
    done
}

# Leftovers of this run: every marked process but the engine that is meant to run.
check() {
    local mark="${CTC_RUN_MARK:-$(cat "$STARTED_FILE" 2>/dev/null || true)}" engine="" left
    [ -n "$mark" ] || { log "no CTC_RUN_MARK: nothing to check"; return 0; }
    if [ "${1:-}" != --engine-too ]; then
        engine="$(dockerd_pid || true) $(containerd_pid || true)"
    fi
    left="$(marked_processes "$mark" | while read -r pid cmd; do
        case " $engine " in *" $pid "*) continue ;; esac
        echo "$pid $cmd"
    done)"
    if engine_up && [ -n "$(docker ps -q 2>/dev/null)" ]; then
        log "containers still running:"
        docker ps --format '  {{.ID}} {{.Image}} {{.Names}} {{.Status}}' >&2
        left="${left}${left:+$'\n'}containers"
    fi
    if [ -n "$left" ]; then
        log "left behind by this run:"
        sed 's/^/  /' <<<"$left" >&2
        return 1
    fi
    log "no leftover processes of this run"
}

stop() {
    local pid cpid mark
    mark="$(cat "$STARTED_FILE" 2>/dev/null || true)"
    if ! pid="$(dockerd_pid)"; then
        log "no dockerd of $STATE_DIR runs"
        return 0
    fi
    if [ -n "${CTC_RUN_MARK:-}" ] && [ "$mark" != "$CTC_RUN_MARK" ]; then
        log "dockerd $pid was not started by this run: left running"
        return 0
    fi
    check || true
    # Remove containers first, so no shim or container process outlives the engine, and what
    # they leave when a run was cut short (networks, volumes). Images stay for the next run.
    if engine_up; then
        # shellcheck disable=SC2046
        [ -z "$(docker ps -aq)" ] || docker rm -f $(docker ps -aq) >/dev/null
        docker network prune -f >/dev/null
        docker volume prune -f >/dev/null
    fi
    cpid="$(containerd_pid || true)"
    log "stopping dockerd $pid${cpid:+ and its containerd $cpid}"
    kill -TERM "$pid"
    for _ in $(seq 300); do
        alive "$pid" || { [ -n "$cpid" ] && alive "$cpid"; } || break
        sleep 0.1
    done
    if alive "$pid"; then log "dockerd $pid ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$pid"; fi
    if [ -n "$cpid" ] && alive "$cpid"; then log "containerd $cpid still runs: SIGKILL"; kill -KILL "$cpid"; fi
    sleep 0.2
    rm -f "$STARTED_FILE"
    # Anything of the engine's still mounted under the state directory would block a later rm.
    awk -v d="$STATE_DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
    if [ -n "$mark" ]; then CTC_RUN_MARK="$mark" check --engine-too; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    check) check ;;
    *) die "usage: $0 start|stop|check" ;;
esac
