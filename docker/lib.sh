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

# skip REASON: a part this test needs is not on the machine. The test installs nothing itself (.ci/run installs what CI
# needs: .ci/install-system-packages); it says what is missing and exits 0 without claiming to have passed.
skip() {
    printf '[docker-test +%3ds] SKIPPED: %s\n' "$((SECONDS - DOCKER_TEST_STARTED))" "$*"
    exit 0
}
