# Helpers for docker/test-image.sh and docker/make-base-image.sh (sourced, not run).
#
# Progress lines go to stdout as "[docker-test +SECONDS] message"; failures end with one line that says what failed
# and why, and where the full log is.

DOCKER_TEST_STARTED=${DOCKER_TEST_STARTED:-$SECONDS}

log() { printf '[docker-test +%3ds] %s\n' "$((SECONDS - DOCKER_TEST_STARTED))" "$*"; }

die() {
    printf '[docker-test +%3ds] FAILED: %s\n' "$((SECONDS - DOCKER_TEST_STARTED))" "$*" >&2
    exit 1
}

# Print the last lines of a log file, indented, to stderr (what a failing step said).
show_tail() {
    local file=$1 lines=${2:-40}
    [ -s "$file" ] || return 0
    printf '  --- last %s lines of %s ---\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" | sed 's/^/  | /' >&2
}

# retry ATTEMPTS "what" command...: run a network-dependent command until it succeeds, waiting 5 s, 15 s, 30 s, ...
# between attempts. Returns the command's last status; the caller says what failed for good.
retry() {
    local attempts=$1 what=$2 n=1 status=0 pause
    shift 2
    while :; do
        if "$@"; then return 0; else status=$?; fi
        [ "$n" -ge "$attempts" ] && break
        pause=$((n == 1 ? 5 : n == 2 ? 15 : 30))
        log "$what failed (attempt $n of $attempts, status $status); retrying in ${pause}s"
        sleep "$pause"
        n=$((n + 1))
    done
    log "$what failed $attempts times"
    return "$status"
}

# quietly LOG command...: run a command with its output appended to LOG (shown by the caller when it fails for good).
quietly() {
    local out=$1
    shift
    "$@" >>"$out" 2>&1
}

# apt-get update, once per run (apt-get install needs fresh lists on a new machine).
APT_UPDATED=${APT_UPDATED:-0}
apt_install() {
    [ "$(id -u)" = 0 ] || die "installing $* needs root (apt-get); install it yourself or run as root"
    export DEBIAN_FRONTEND=noninteractive
    local apt_log
    apt_log=$(mktemp /tmp/calcinosis-apt.XXXXXX)
    # Wait for a dpkg lock another apt holds rather than fail at once.
    if [ "$APT_UPDATED" = 0 ]; then
        if ! retry 3 "apt-get update" quietly "$apt_log" timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq; then
            show_tail "$apt_log"; rm -f "$apt_log"
            die "apt-get update failed for good: is the Debian mirror reachable? (last lines above)"
        fi
        APT_UPDATED=1
    fi
    if ! retry 3 "apt-get install $*" quietly "$apt_log" timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "$@"; then
        show_tail "$apt_log"; rm -f "$apt_log"
        die "apt-get install $* failed for good: is the Debian mirror reachable? (last lines above)"
    fi
    rm -f "$apt_log"
}
