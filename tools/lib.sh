# Shared helpers for tools/run, tools/test and tools/bench/http. Source it; do not execute it.
#
# Callers set EG_TOOL (a short name used as the log prefix) before sourcing.
# shellcheck shell=bash disable=SC2034

EG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EG_TOOL="${EG_TOOL:-tools}"

# The packages every tool needs: build chain, libraries, Redis, curl.
EG_BASE_PACKAGES=(build-essential meson ninja-build pkgconf libuv1-dev node-llhttp libcjson-dev
    libhiredis-dev libmbedtls-dev libcriterion-dev redis-server curl libpoppler-glib-dev)

eg_log() { printf '[%s] %s\n' "$EG_TOOL" "$*" >&2; }
eg_die() {
    printf '[%s] error: %s\n' "$EG_TOOL" "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, through sudo otherwise.
eg_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        eg_die "need root (or sudo) to run: $*"
    fi
}

eg_pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Install whichever of the named Debian packages are missing; apt-get update only if needed.
eg_ensure_packages() {
    local missing=() p
    for p in "$@"; do
        eg_pkg_installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    eg_log "installing missing packages: ${missing[*]}"
    eg_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
        eg_die "apt-get update failed"
    eg_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" || eg_die "apt-get install failed for: ${missing[*]}"
}

# Configure (first time only, or always with EG_RECONFIGURE=1) and build one meson build
# directory. Holds a lock so two tools sharing a build directory do not run ninja at once.
#   eg_build DIR [meson setup options...]
eg_build() {
    local dir="$1"
    shift
    mkdir -p "$EG_ROOT/var"
    (
        flock 9
        cd "$EG_ROOT" || exit 1
        if [[ ! -f "$dir/build.ninja" ]]; then
            eg_log "configuring $dir"
            meson setup "$dir" "$@" >&2 || exit 1
        elif [[ "${EG_RECONFIGURE:-0}" == 1 ]]; then
            meson setup --reconfigure "$dir" "$@" >&2 ||
                meson setup --wipe "$dir" "$@" >&2 || exit 1
        fi
        eg_log "building $dir"
        ninja -C "$dir" >&2 || exit 1
    ) 9>"$EG_ROOT/var/.lock-$(basename "$dir")" || eg_die "build of $dir failed"
}

# True when a process id is alive (a zombie waiting to be reaped counts as gone).
eg_alive() {
    local pid="$1" state
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
    state="$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null)"
    [[ -n "$state" && "$state" != Z ]]
}

# Send SIGTERM, wait up to SECONDS (default 15) for the process to go, then SIGKILL.
#   eg_stop PID NAME [SECONDS]
eg_stop() {
    local pid="$1" name="$2" secs="${3:-15}" i
    eg_alive "$pid" || {
        wait "$pid" 2>/dev/null || true
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        eg_alive "$pid" || break
        sleep 0.1
    done
    if eg_alive "$pid"; then
        eg_log "$name (pid $pid) did not stop in ${secs}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
eg_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Print the first port >= START on which nothing listens.
eg_free_port() {
    local p="$1"
    while ((p < 65535)); do
        if ! eg_port_busy "$p"; then
            echo "$p"
            return 0
        fi
        p=$((p + 1))
    done
    return 1
}

# A random starting point for throwaway services, so parallel runs rarely race for a port.
eg_random_port_base() {
    echo $((20000 + (RANDOM % 400) * 100))
}

eg_redis_ping() {
    [[ "$(redis-cli -u "$1" --no-auth-warning ping 2>/dev/null)" == PONG ]]
}

# Start redis-server in the background in its own session (so a terminal's Ctrl-C reaches only
# us, and we stop it after engramd). Tries ports from START upward until one binds.
# Sets EG_REDIS_PID and EG_REDIS_PORT.
#   eg_start_redis START DIR LOGFILE [extra redis-server options...]
eg_start_redis() {
    local port="$1" dir="$2" logfile="$3" tries i
    shift 3
    mkdir -p "$dir"
    for ((tries = 0; tries < 20; tries++)); do
        port="$(eg_free_port "$port")" || eg_die "no free port for Redis"
        setsid redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
            --dir "$dir" --daemonize no --logfile "$logfile" "$@" </dev/null &
        EG_REDIS_PID=$!
        EG_REDIS_PORT="$port"
        for ((i = 0; i < 100; i++)); do
            if eg_redis_ping "redis://127.0.0.1:$port/0"; then
                return 0
            fi
            eg_alive "$EG_REDIS_PID" || break
            sleep 0.1
        done
        if eg_alive "$EG_REDIS_PID"; then
            eg_stop "$EG_REDIS_PID" redis-server 5
            eg_die "redis-server on port $port did not answer PING in 10s (log: $logfile)"
        fi
        wait "$EG_REDIS_PID" 2>/dev/null || true
        eg_log "redis-server could not start on port $port; trying the next one"
        port=$((port + 1))
    done
    eg_die "could not start redis-server (log: $logfile)"
}

# Wait until URL answers 2xx, or the process PID exits, or SECONDS (default 20) pass.
#   eg_wait_http URL PID [SECONDS]
eg_wait_http() {
    local url="$1" pid="$2" secs="${3:-20}" i
    for ((i = 0; i < secs * 10; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        eg_alive "$pid" || return 1
        sleep 0.1
    done
    return 1
}

# HTTP status of GET URL with an optional bearer token ("000" when nothing answered).
#   eg_http_status URL [TOKEN]
eg_http_status() {
    local args=(-s -o /dev/null -w '%{http_code}' --max-time 5)
    [[ -n "${2:-}" ]] && args+=(-H "Authorization: Bearer $2")
    curl "${args[@]}" "$1" 2>/dev/null || true
}

# Create an API key with `engramd keys create`; prints the key (the last stdout line).
#   eg_create_key ENGRAMD REDIS_URL NAME [--publishable]
eg_create_key() {
    local out key
    out="$("$1" keys create --redis-url "$2" --name "$3" ${4:+"$4"})" || return 1
    key="$(printf '%s\n' "$out" | awk 'NF { last = $0 } END { print last }')"
    key="${key//[[:space:]]/}"
    [[ -n "$key" ]] || return 1
    printf '%s\n' "$key"
}
