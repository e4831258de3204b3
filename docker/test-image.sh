#!/usr/bin/env bash
# `make docker-test`: build the production image and prove it works as a hospital would run it.
#
#  1. docker: Debian's docker.io (dockerd, /usr/bin/docker), docker-compose and debootstrap are installed by
#     .ci/install-system-packages in CI; the test installs nothing, and says SKIPPED with the reason when one is missing;
#  2. daemon: use a running one, else start a private dockerd (its own socket, data and exec roots under a scratch
#     directory) and stop it by its PID at the end;
#  3. base: use the base image when the daemon has it, else build a local stand-in with debootstrap
#     (docker/make-base-image.sh): no container registry is needed;
#  4. build: the Dockerfile with a plain `docker build` (the classic builder: no BuildKit needed), from a copy of the
#     checkout with the host's CA bundle at docker/build-ca/ca-bundle.pem (for pip behind a TLS-inspecting proxy;
#     the build stage only, never the image), and check the image: non-root user, no pip, no CA bundle, no sources
#     or tests;
#  5. run: production defaults (CDS_AUTH=required), a generated EC P-384 trust file mounted read-only, CDS_PUBLIC_URL,
#     a port on 127.0.0.1; wait for the HEALTHCHECK to say healthy;
#  6. call: docker/e2e_client.py (run from the image itself, so the host needs no Python packages) checks 401 without
#     a token and a signed patient-view call whose cards include R18; logs are JSON on stdout;
#  7. stop: processes run as non-root, `docker stop` ends gunicorn with exit code 0; invalid settings refuse to start;
#  8. stack: the production Compose stack (deploy/compose/docker-compose.yml: nginx, two replicas, PostgreSQL) built
#     and run, and checked through the proxy (docker/test-stack.sh: slow clients, 413, HTTPS, fail-over);
#  9. clean: remove the containers, images, scratch files; stop the daemon only if this run started it.
#
# Environment: DOCKER (client, default /usr/bin/docker: Debian's), DOCKER_TEST_BASE_IMAGE
# (default python:3.11-slim), DOCKER_TEST_CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt, if it exists),
# DOCKER_TEST_PORT (default: a free port), DEBIAN_MIRROR, DOCKER_TEST_KEEP=1 (keep image and scratch files to look at).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=docker/lib.sh
source "$ROOT/docker/lib.sh"

DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER
BASE_IMAGE=${DOCKER_TEST_BASE_IMAGE:-python:3.11-slim}
CA_BUNDLE=${DOCKER_TEST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
KEEP=${DOCKER_TEST_KEEP:-0}
RUN_ID=$(date +%s)-$$
IMAGE=calcinosis-cds:docker-test-$RUN_ID
CONTAINER=calcinosis-cds-docker-test-$RUN_ID
SCRATCH_PREFIX=/var/tmp/calcinosis-docker-test.
WORK=$(mktemp -d "${SCRATCH_PREFIX}XXXXXX")
# Scratch space (the private daemon's data root, debootstrap's root file system) on a tmpfs when we may mount one:
# no disk I/O to wait for, and removing it is an unmount.
WORK_TMPFS=0
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o "size=${DOCKER_TEST_TMPFS_SIZE:-6g},mode=0700" calcinosis-docker-test "$WORK" 2>/dev/null; then
    WORK_TMPFS=1
fi
echo $$ >"$WORK/run.pid"

OWN_DAEMON=0      # this run started dockerd (then it stops it, and everything in its data root goes with it)
DAEMON_PID=
CREATED_BRIDGE=0  # docker0 did not exist before this run's dockerd made it
CREATED_BASE=     # a stand-in base tag this run added to a daemon it did not start
CONTAINERS=()     # containers this run created
# The Compose stack's steps (8.), with its names built from RUN_ID and WORK.
# shellcheck source=docker/test-stack.sh
source "$ROOT/docker/test-stack.sh"

docker_() { "$DOCKER" "$@"; }

# Unmount everything mounted at or below a path, deepest first ("DIR/" for below only).
unmount_under() {
    command -v findmnt >/dev/null || return 0
    findmnt -rn -o TARGET | awk -v p="$1" 'index($0, p) == 1' | sort -r | while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    done
}

stop_daemon() {
    [ "$OWN_DAEMON" = 1 ] && [ -n "$DAEMON_PID" ] || return 0
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        log "stopping the dockerd this run started (PID $DAEMON_PID)"
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 60); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$DAEMON_PID" 2>/dev/null; then
            log "dockerd $DAEMON_PID did not stop within 30 s; killing it"
            kill -KILL "$DAEMON_PID" 2>/dev/null || true
            sleep 1
        fi
    fi
    unmount_under "$WORK/"  # mounts a killed daemon may leave behind
    if [ "$CREATED_BRIDGE" = 1 ] && command -v ip >/dev/null && ip link show docker0 >/dev/null 2>&1; then
        ip link delete docker0 2>/dev/null || true
    fi
    OWN_DAEMON=0
}

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    if [ "$status" != 0 ] && [ ${#CONTAINERS[@]} -gt 0 ]; then
        for c in "${CONTAINERS[@]}"; do
            if docker_ inspect "$c" >/dev/null 2>&1; then
                echo "  --- docker logs $c (last 40 lines) ---" >&2
                docker_ logs --tail 40 "$c" 2>&1 | sed 's/^/  | /' >&2
            fi
        done
    fi
    if [ "$KEEP" = 1 ]; then
        log "DOCKER_TEST_KEEP=1: keeping image $IMAGE, containers, the stack $STACK_PROJECT, daemon and $WORK"
        exit "$status"
    fi
    stack_cleanup "$status"
    for c in "${CONTAINERS[@]}"; do docker_ rm -f "$c" >/dev/null 2>&1; done
    if [ "$OWN_DAEMON" = 1 ]; then
        stop_daemon  # its data root (images, build cache, containers) is removed with $WORK below
        log "removing $WORK"
    else
        docker_ rmi -f "$IMAGE" >/dev/null 2>&1
        [ -n "$CREATED_BASE" ] && docker_ rmi -f "$CREATED_BASE" >/dev/null 2>&1
    fi
    unmount_under "$WORK/"
    if [ "$WORK_TMPFS" = 1 ]; then umount "$WORK" 2>/dev/null || umount -l "$WORK"; fi
    rm -rf "$WORK"
    if [ "$status" = 0 ]; then log "cleaned up"; else log "cleaned up after failure (exit $status)"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Scratch directories of earlier runs that died without cleaning up (a killed CI job): stop their private dockerd,
# identified by the PID file in that directory and by its command line naming that directory, then remove them.
reap_stale_runs() {
    local dir pid
    for dir in "$SCRATCH_PREFIX"*; do
        [ -d "$dir" ] && [ "$dir" != "$WORK" ] || continue
        pid=$(cat "$dir/run.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then continue; fi  # another run still going
        if [ -s "$dir/dockerd.pid" ]; then
            pid=$(cat "$dir/dockerd.pid")
            if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/"; then
                log "stopping dockerd $pid left by an earlier run in $dir"
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        unmount_under "$dir/"
        unmount_under "$dir"
        rm -rf "$dir"
    done
}

# --- 1. docker -------------------------------------------------------------------------------------------------------
step_install() {
    if [ -x "$DOCKER" ] && command -v dockerd >/dev/null 2>&1 || { [ -x "$DOCKER" ] && timeout 20 "$DOCKER" info >/dev/null 2>&1; }; then
        log "docker: $("$DOCKER" --version)"
        return
    fi
    skip "no docker client ($DOCKER) with a daemon or dockerd: install Debian's docker.io (CI: .ci/install-system-packages)"
}

# --- 2. daemon -------------------------------------------------------------------------------------------------------
step_daemon() {
    if timeout 20 "$DOCKER" info >/dev/null 2>&1; then
        log "using the running docker daemon (${DOCKER_HOST:-default socket}); it is left running"
        return
    fi
    [ "$(id -u)" = 0 ] || die "no docker daemon answers and starting one needs root"
    command -v dockerd >/dev/null || die "no docker daemon answers and dockerd is not installed"
    ip link show docker0 >/dev/null 2>&1 || CREATED_BRIDGE=1
    mkdir -p "$WORK/data" "$WORK/exec"
    log "starting a private dockerd (socket, data and exec roots in $WORK)"
    dockerd --host "unix://$WORK/docker.sock" --data-root "$WORK/data" --exec-root "$WORK/exec" \
        --pidfile "$WORK/dockerd.pid" >"$WORK/dockerd.log" 2>&1 &
    DAEMON_PID=$!
    OWN_DAEMON=1
    export DOCKER_HOST="unix://$WORK/docker.sock"
    for _ in $(seq 120); do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            show_tail "$WORK/dockerd.log"
            die "dockerd exited at start (log above)"
        fi
        if timeout 5 "$DOCKER" info >/dev/null 2>&1; then
            log "dockerd $DAEMON_PID is up: $("$DOCKER" info --format 'storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}, {{.ServerVersion}}')"
            return
        fi
        sleep 0.5
    done
    show_tail "$WORK/dockerd.log"
    die "dockerd did not answer within 60 s (log above)"
}

# --- 3. base image ---------------------------------------------------------------------------------------------------
step_base() {
    BUILD_BASE_ARGS=()
    if docker_ image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        local standin
        standin=$(docker_ image inspect -f '{{index .Config.Labels "org.calcinosis-cds.base-stand-in"}}' "$BASE_IMAGE" 2>/dev/null || true)
        log "base image $BASE_IMAGE is present${standin:+ (local stand-in: $standin)}"
        BASE_REF=$BASE_IMAGE
        [ "$BASE_IMAGE" = python:3.11-slim ] || BUILD_BASE_ARGS=(--build-arg "PYTHON_IMAGE=$BASE_IMAGE")
        return
    fi
    local tag=$BASE_IMAGE
    if [ "$OWN_DAEMON" = 0 ]; then
        # Never shadow a real python:3.11-slim in someone's daemon: the stand-in gets its own name there.
        tag=calcinosis-cds-ci/base-standin:$RUN_ID
        CREATED_BASE=$tag
    fi
    command -v debootstrap >/dev/null 2>&1 || \
        skip "no $BASE_IMAGE in the daemon and no debootstrap to build a stand-in: install Debian's debootstrap (CI: .ci/install-system-packages)"
    log "no $BASE_IMAGE in the daemon and no registry needed: building a local stand-in with debootstrap"
    BASE_WORK_DIR="$WORK/base" DOCKER_TEST_STARTED=$((DOCKER_TEST_STARTED - SECONDS)) \
        bash "$ROOT/docker/make-base-image.sh" "$tag" || die "could not build the stand-in base image"
    BASE_REF=$tag
    [ "$tag" = python:3.11-slim ] || BUILD_BASE_ARGS=(--build-arg "PYTHON_IMAGE=$tag")
}

# --- 4. build --------------------------------------------------------------------------------------------------------
# The build context is a copy of the checkout (what .dockerignore lets through is then sent by the client as usual),
# so that the CA bundle goes to docker/build-ca/ of the copy, never into the developer's working tree.
stage_context() {
    CONTEXT=$WORK/context
    rm -rf "$CONTEXT"
    mkdir -p "$CONTEXT"
    tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./bench/results -cf - . | tar -C "$CONTEXT" -xf -
    if [ -s "$CA_BUNDLE" ]; then cp "$CA_BUNDLE" "$CONTEXT/docker/build-ca/ca-bundle.pem"; fi
}

build_once() {
    # DOCKER_BUILDKIT=0: the classic builder, as docker-compose v1 and Docker without buildx build; the Dockerfile
    # must need nothing more.
    DOCKER_BUILDKIT=0 timeout 900 "$DOCKER" build "${BUILD_BASE_ARGS[@]}" -t "$IMAGE" "$CONTEXT" >"$WORK/build.log" 2>&1
}

step_build() {
    stage_context
    if [ -s "$CA_BUNDLE" ]; then
        log "building $IMAGE (plain docker build; CA bundle $CA_BUNDLE at docker/build-ca/ca-bundle.pem of the context)"
    else
        log "building $IMAGE (plain docker build; no CA bundle at $CA_BUNDLE, pip uses its own)"
    fi
    local started=$SECONDS
    if ! retry 3 "docker build" build_once; then
        show_tail "$WORK/build.log" 60
        die "docker build failed for good (last lines above): is PyPI reachable from inside the build?"
    fi
    log "built in $((SECONDS - started))s: $(docker_ image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
}

step_inspect_image() {
    local user exposed health
    user=$(docker_ image inspect -f '{{.Config.User}}' "$IMAGE")
    exposed=$(docker_ image inspect -f '{{range $p, $_ := .Config.ExposedPorts}}{{$p}} {{end}}' "$IMAGE")
    health=$(docker_ image inspect -f '{{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}}' "$IMAGE")
    case $user in "" | root | 0 | 0:* | root:*) die "the image runs as root (USER '$user')" ;; esac
    [[ $exposed == *8080/tcp* ]] || die "the image does not EXPOSE 8080 ($exposed)"
    [[ $health == *healthcheck.py* ]] || die "the image has no HEALTHCHECK against /healthz ($health)"
    # What must not be in the runtime image: the build's CA bundle (by content), pip, a compiler, the source tree,
    # the tests. Checked from inside, as root, with the base image's own tools.
    local ca_sum=none ca_note="no build CA bundle"
    [ -s "$CA_BUNDLE" ] && ca_sum=$(sha256sum "$CA_BUNDLE" | cut -d' ' -f1)
    # Where the host's bundle is just the distribution's stock one, the base image may ship the same file: then it is
    # nothing the build added, and the content check has nothing to find.
    if [ "$ca_sum" != none ] && docker_ run --rm --user 0 --network none --entrypoint sh "$BASE_REF" -c \
        "find / -xdev -type f -size +50k -size -4096k -exec sha256sum {} + 2>/dev/null | grep -q '^$ca_sum '"; then
        ca_sum=none
        ca_note="the host CA bundle is the base image's own (content check skipped)"
    fi
    docker_ run --rm --user 0 --network none --entrypoint sh -e CA_SUM="$ca_sum" "$IMAGE" -c '
        set -u
        bad=0
        for f in /opt/venv/bin/pip /opt/venv/bin/pip3 /src /tests /home/cds/tests /run/secrets/ca_bundle; do
            if [ -e "$f" ]; then echo "  image contains $f"; bad=1; fi
        done
        for tool in gcc cc make; do
            if command -v "$tool" >/dev/null 2>&1; then echo "  image contains a build tool: $tool"; bad=1; fi
        done
        if [ -d /opt/venv/lib ] && find /opt/venv/lib -path "*site-packages/tests/*" -name "test_*.py" | grep -q .; then
            echo "  image contains the project tests"; bad=1
        fi
        if [ "$CA_SUM" != none ]; then
            found=$(find / -xdev -type f -size +50k -size -4096k -exec sha256sum {} + 2>/dev/null | grep "^$CA_SUM " || true)
            if [ -n "$found" ]; then echo "  image contains the build CA bundle: $found"; bad=1; fi
        fi
        exit $bad
    ' || die "the runtime image contains what it must not (listed above)"
    log "image: USER $user, EXPOSE $exposed, HEALTHCHECK $health; no pip, compiler, sources or tests; $ca_note"
}

# --- 5. run ----------------------------------------------------------------------------------------------------------
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    die "found no free port on 127.0.0.1"
}

client() {  # docker/e2e_client.py, run with the image's Python (PyJWT, cryptography) on the host network
    docker_ run --rm --user 0 --network host --entrypoint python \
        -v "$ROOT/docker/e2e_client.py:/opt/e2e_client.py:ro" -v "$WORK/e2e:/e2e" "$IMAGE" /opt/e2e_client.py "$@"
}

step_run() {
    mkdir -p "$WORK/e2e"
    client keygen /e2e | sed 's/^/  /' || die "could not generate the test key pair"
    chmod 0644 "$WORK/e2e/issuers.json"
    PORT=${DOCKER_TEST_PORT:-$(free_port)}
    BASE_URL=http://127.0.0.1:$PORT
    log "starting $CONTAINER on $BASE_URL (image defaults: CDS_AUTH=required, CDS_FHIR_ALLOW_HTTP=false)"
    CONTAINERS+=("$CONTAINER")
    docker_ run -d --name "$CONTAINER" -p "127.0.0.1:$PORT:8080" \
        -v "$WORK/e2e/issuers.json:/etc/calcinosis-cds/issuers.json:ro" \
        -e CDS_ISSUERS=/etc/calcinosis-cds/issuers.json -e "CDS_PUBLIC_URL=$BASE_URL" \
        -e "CDS_HASH_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        "$IMAGE" >/dev/null || die "docker run failed"
    local status started=$SECONDS
    while :; do
        status=$(docker_ inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$CONTAINER")
        case $status in
            "running healthy") break ;;
            "running unhealthy") die "the container became unhealthy: $(docker_ inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$CONTAINER" | tail -3)" ;;
            running*) ;;
            *) die "the container stopped before it became healthy ($status, exit $(docker_ inspect -f '{{.State.ExitCode}}' "$CONTAINER"))" ;;
        esac
        [ $((SECONDS - started)) -lt 90 ] || die "the container was not healthy within 90 s ($status)"
        sleep 1
    done
    log "container is healthy after $((SECONDS - started))s (HEALTHCHECK: GET /healthz)"
}

# --- 6. call ---------------------------------------------------------------------------------------------------------
step_call() {
    log "calling the service as an EHR would (signed ES384 JWT, calcinosis patient in prefetch)"
    client check "$BASE_URL" /e2e || die "the end-to-end checks failed (see FAIL lines above)"
    local out
    out=$(docker_ logs "$CONTAINER" 2>/dev/null)
    [ -n "$out" ] || die "the service wrote nothing to stdout"
    if grep -qv '^{' <<<"$out"; then
        die "stdout has lines that are not JSON: $(grep -v '^{' <<<"$out" | head -3)"
    fi
    # One JSON object a line, written compactly (orjson) or not: match the fields whatever the spacing.
    grep -Eq '"logger":[[:space:]]*"cds_service\.http".*"event":[[:space:]]*"request"' <<<"$out" \
        || die "the service logged no request on stdout"
    log "logs: $(wc -l <<<"$out") JSON lines on stdout, request log present"
}

# --- 7. non-root, clean stop, refusal of invalid settings ------------------------------------------------------------
step_stop() {
    local uid users
    uid=$(docker_ exec "$CONTAINER" id -u)
    [ "$uid" != 0 ] || die "the service runs as root inside the container"
    users=$(docker_ top "$CONTAINER" -o uid,pid,args | awk 'NR > 1 {print $1}' | sort -u | tr '\n' ' ')
    case " $users" in *" 0 "*) die "a process in the container runs as uid 0 (uids: $users)" ;; esac
    log "non-root: id -u is $uid inside; process uids: $users"
    log "docker stop (SIGTERM, graceful shutdown)"
    local started=$SECONDS code oom
    docker_ stop -t 30 "$CONTAINER" >/dev/null
    code=$(docker_ inspect -f '{{.State.ExitCode}}' "$CONTAINER")
    oom=$(docker_ inspect -f '{{.State.OOMKilled}}' "$CONTAINER")
    [ "$code" = 0 ] && [ "$oom" = false ] || die "the container did not stop cleanly (exit code $code, OOM killed $oom)"
    docker_ logs "$CONTAINER" 2>/dev/null | tail -1 | grep -q "Shutting down: Master" ||
        die "gunicorn did not log its shutdown"
    log "stopped cleanly in $((SECONDS - started))s: exit code 0"

    local refusal
    refusal=$(docker_ run --rm -e CDS_AUTH=maybe "$IMAGE" 2>&1) && die "the image started with CDS_AUTH=maybe"
    grep -q "refusing to start, invalid settings: CDS_AUTH must be one of" <<<"$refusal" ||
        die "invalid CDS_AUTH did not give the clear message: $refusal"
    refusal=$(docker_ run --rm -e CDS_ISSUERS=/nonexistent.json "$IMAGE" 2>&1) && die "the image started with a missing issuers file"
    grep -q "refusing to start, invalid settings: CDS_ISSUERS" <<<"$refusal" ||
        die "a missing issuers file did not give the clear message: $refusal"
    log "invalid settings refuse to start with a clear message (unknown CDS_AUTH, missing issuers file)"
}

main() {
    log "docker image test of $ROOT (scratch $WORK$([ "$WORK_TMPFS" = 1 ] && echo ', tmpfs'))"
    reap_stale_runs
    step_install
    step_daemon
    step_base
    step_build
    step_inspect_image
    step_run
    step_call
    step_stop
    step_stack_compose
    step_stack_build
    step_stack_up
    step_stack_checks
    step_stack_down
    log "PASSED: the image builds with a plain docker build, starts healthy as non-root, answers a signed patient-view call and stops cleanly; the Compose stack serves through its proxy under slow clients, refuses oversized bodies, speaks HTTPS and survives a replica's loss"
}

main "$@"
