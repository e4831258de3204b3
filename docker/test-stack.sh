# The production Compose stack (deploy/compose/docker-compose.yml) end to end: sourced by docker/test-image.sh, which
# has by then a daemon, the base image ($BASE_REF), the service image ($IMAGE), the test's trust file and key
# ($WORK/e2e) and the helpers (log, die, docker_, client, free_port, retry).
#
#  1. compose: `docker compose` (v2) when the client has it, else docker-compose (v1; Debian's package is installed
#     when neither is there); the file, and the development docker-compose.yml, are checked by every Compose found
#     (`config --quiet`);
#  2. build: the proxy and PostgreSQL images with a plain `docker build` (no BuildKit), on the same base;
#  3. up: the stack as the file defines it, plus a test override (the proxy's HTTPS port with a self-signed
#     certificate, one replica's own port for the direct slow-client check), on free ports of 127.0.0.1; all healthy;
#  4. checks: both replicas answer on their network; the migrations run against the stack's PostgreSQL from a replica
#     with its CDS_DATABASE_URL; through the proxy: health, 401 without a token, signed discovery and patient-view
#     calls, both replicas serving; docker/proxy_checks.py (slow clients, 413, HTTPS); one replica stopped: calls
#     still answered; restarted: served again;
#  5. down: every container stops with exit code 0; containers, networks and the volume are removed.
#
#     shared state (PostgreSQL): a token replayed to the other replica is refused, a dismissal recorded through one
#     hides the card on the other, analytics through either count both.

STACK_FILE=$ROOT/deploy/compose/docker-compose.yml
STACK_PROJECT=calcinosis-e2e-$(printf '%s' "$RUN_ID" | tr -cd 'a-z0-9')
STACK_DIR=$WORK/stack
STACK_MAX_BODY=1048576          # CDS_MAX_BODY_BYTES of the test stack: small, so the 413 check sends little
STACK_CLIENT_TIMEOUT=10         # PROXY_CLIENT_TIMEOUT: the proxy's client_header_timeout
PROXY_IMAGE=calcinosis-cds-proxy:docker-test-$RUN_ID
POSTGRES_IMAGE=calcinosis-cds-postgres:docker-test-$RUN_ID
COMPOSE=()
STACK_UP=0

compose() { "${COMPOSE[@]}" --project-name "$STACK_PROJECT" --env-file "$STACK_DIR/env" \
    --file "$STACK_FILE" --file "$STACK_DIR/override.yml" "$@"; }

stack_container() { compose ps -q "$1"; }

# Called by test-image.sh's cleanup: the stack's containers, networks, volume and images.
stack_cleanup() {
    if [ "$STACK_UP" = 1 ] && [ "${1:-0}" != 0 ]; then
        local service cid
        for service in proxy cds-a cds-b postgres; do
            cid=$(stack_container "$service" 2>/dev/null) || continue
            [ -n "$cid" ] || continue
            echo "  --- docker logs $service (last 30 lines) ---" >&2
            docker_ logs --tail 30 "$cid" 2>&1 | sed 's/^/  | /' >&2
        done
    fi
    if [ "$STACK_UP" = 1 ]; then
        compose down --volumes --timeout 20 >/dev/null 2>&1
        STACK_UP=0
    fi
    # In a daemon this run did not start, its images go too (a private daemon's go with its data root).
    if [ "$OWN_DAEMON" = 0 ]; then docker_ rmi -f "$PROXY_IMAGE" "$POSTGRES_IMAGE" >/dev/null 2>&1; fi
    return 0
}

# --- 1. compose ------------------------------------------------------------------------------------------------------
step_stack_compose() {
    local tools=()
    if docker_ compose version >/dev/null 2>&1; then tools+=("$DOCKER compose"); fi
    if command -v docker-compose >/dev/null 2>&1; then tools+=("docker-compose"); fi
    if [ ${#tools[@]} = 0 ]; then
        skip "the image passed; the Compose stack needs Compose (\`docker compose\` or Debian's docker-compose), which is missing (CI: .ci/install-system-packages)"
    fi
    # shellcheck disable=SC2206
    COMPOSE=(${tools[0]})
    mkdir -p "$STACK_DIR"
    PROXY_PORT=${DOCKER_TEST_PROXY_PORT:-$(free_port)}
    TLS_PORT=$(free_port)
    DIRECT_PORT=$(free_port)
    PROXY_URL=http://127.0.0.1:$PROXY_PORT
    # Everything the file interpolates, so that nothing comes from a .env in the checkout.
    cat >"$STACK_DIR/env" <<EOF
CDS_PUBLIC_URL=$PROXY_URL
CDS_ISSUERS_FILE=$WORK/e2e/issuers.json
POSTGRES_PASSWORD=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
POSTGRES_USER=cds
POSTGRES_DB=cds
CDS_HASH_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
CDS_ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
CDS_MAX_BODY_BYTES=$STACK_MAX_BODY
PROXY_CLIENT_TIMEOUT=$STACK_CLIENT_TIMEOUT
CDS_BIND_ADDRESS=127.0.0.1
CDS_HTTP_PORT=$PROXY_PORT
CDS_IMAGE=$IMAGE
CDS_PROXY_IMAGE=$PROXY_IMAGE
CDS_POSTGRES_IMAGE=$POSTGRES_IMAGE
PYTHON_IMAGE=$BASE_REF
EOF
    chmod 0600 "$STACK_DIR/env"
    # What the test adds to the file as shipped: HTTPS with its own certificate, and cds-a's own port for the
    # direct slow-client check (in production no replica publishes a port).
    cat >"$STACK_DIR/override.yml" <<EOF
version: "2.4"
services:
  proxy:
    ports:
      - "127.0.0.1:$TLS_PORT:8443"
    volumes:
      - $WORK/e2e/tls/tls.crt:/etc/nginx/tls/tls.crt:ro
      - $WORK/e2e/tls/tls.key:/etc/nginx/tls/tls.key:ro
  cds-a:
    ports:
      - "127.0.0.1:$DIRECT_PORT:8080"
EOF
    local tool version
    for tool in "${tools[@]}"; do
        # shellcheck disable=SC2086
        version=$($tool version --short 2>/dev/null || $tool version 2>/dev/null | head -1)
        # shellcheck disable=SC2086
        $tool --project-name "$STACK_PROJECT" --env-file "$STACK_DIR/env" --file "$STACK_FILE" config --quiet \
            || die "$tool ($version) rejects $STACK_FILE"
        # The development stack (README's one-liner) too.
        # shellcheck disable=SC2086
        $tool --project-name "$STACK_PROJECT-dev" --file "$ROOT/docker-compose.yml" config --quiet \
            || die "$tool ($version) rejects the development stack, docker-compose.yml"
        log "compose: $tool ($version) accepts deploy/compose/docker-compose.yml and the development docker-compose.yml"
    done
    log "compose: running the stack with ${COMPOSE[*]}"
}

# --- 2. build --------------------------------------------------------------------------------------------------------
stack_build_one() {  # TAG DIR LOG
    DOCKER_BUILDKIT=0 timeout 900 "$DOCKER" build --build-arg "PYTHON_IMAGE=$BASE_REF" -t "$1" "$2" >"$3" 2>&1
}

step_stack_build() {
    local started=$SECONDS proxy_status=0 postgres_status=0
    log "building the proxy and PostgreSQL images (plain docker build, Debian's nginx-light and postgresql-15)"
    retry 3 "proxy image build" stack_build_one "$PROXY_IMAGE" "$ROOT/deploy/nginx" "$WORK/build-proxy.log" &
    local proxy_pid=$!
    retry 3 "PostgreSQL image build" stack_build_one "$POSTGRES_IMAGE" "$ROOT/deploy/postgres" "$WORK/build-postgres.log" \
        || postgres_status=$?
    wait "$proxy_pid" || proxy_status=$?
    [ "$proxy_status" = 0 ] || { show_tail "$WORK/build-proxy.log"; die "the proxy image did not build"; }
    [ "$postgres_status" = 0 ] || { show_tail "$WORK/build-postgres.log"; die "the PostgreSQL image did not build"; }
    log "built in $((SECONDS - started))s: $(docker_ run --rm --entrypoint nginx "$PROXY_IMAGE" -v 2>&1), $(
        docker_ run --rm --entrypoint postgres "$POSTGRES_IMAGE" --version)"
}

# --- 3. up -----------------------------------------------------------------------------------------------------------
stack_wait_healthy() {  # SECONDS
    local started=$SECONDS cid line states unhealthy
    while :; do
        states=""
        unhealthy=0
        for cid in $(compose ps -q); do
            line=$(docker_ inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$cid")
            states="$states ${line#/}"
            case $line in *" running healthy") ;; *" exited"* | *" dead"*) die "a container stopped: $line" ;; *) unhealthy=1 ;; esac
        done
        if [ "$unhealthy" = 0 ] && [ -n "$states" ]; then return 0; fi
        [ $((SECONDS - started)) -lt "$1" ] || die "the stack was not healthy within $1 s:$states"
        sleep 1
    done
}

step_stack_up() {
    mkdir -p "$WORK/e2e/tls"
    client tls-cert /e2e/tls | sed 's/^/  /' || die "could not make the test certificate"
    chmod 0644 "$WORK/e2e/tls/tls.key"  # the test's throw-away key, for nginx's uid 33
    log "starting the stack (project $STACK_PROJECT): proxy on $PROXY_URL and https://127.0.0.1:$TLS_PORT"
    STACK_UP=1
    local started=$SECONDS
    compose up -d --no-build >"$WORK/compose-up.log" 2>&1 || { show_tail "$WORK/compose-up.log"; die "compose up failed"; }
    stack_wait_healthy 150
    log "stack healthy after $((SECONDS - started))s: $(compose ps --services | sort | tr '\n' ' ')"
}

# --- 4. checks -------------------------------------------------------------------------------------------------------
# The e2e client inside the stack's own network, where the replicas are reachable by name (as the proxy sees them).
client_on_edge() {
    docker_ run --rm --user 0 --network "${STACK_PROJECT}_edge" --entrypoint python \
        -v "$ROOT/docker/e2e_client.py:/opt/e2e_client.py:ro" -v "$WORK/e2e:/e2e" "$IMAGE" "$@"
}

check_replicas_answer() {
    client_on_edge -c '
import sys, urllib.request
for replica in ("cds-a", "cds-b"):
    with urllib.request.urlopen(f"http://{replica}:8080/readyz", timeout=5) as response:
        print(f"  ok   {replica}: /readyz {response.status}")
' || die "a replica does not answer on the stack network"
}

check_migrations() {
    local cid out
    cid=$(stack_container cds-a)
    # From a replica, with the CDS_DATABASE_URL the stack gives it: the network path, the password, the driver and
    # the schema all work against the stack's PostgreSQL. Idempotent: the service may already have run them.
    # The command the Kubernetes migration Job runs (deploy/kubernetes/migration-job.yaml).
    out=$(docker_ exec "$cid" python -m cds_service.service.cli db upgrade 2>&1) \
        || die "migrations failed against the stack's PostgreSQL: $out"
    # stdout alone is "REVISION (head HEAD)"; Alembic's INFO lines go to stderr.
    out=$(docker_ exec "$cid" python -m cds_service.service.cli db current 2>"$WORK/migrations.log") \
        || die "the stack's database is not at the newest revision after the upgrade: $out $(tail -3 "$WORK/migrations.log")"
    log "migrations: the stack's PostgreSQL is at revision $out, upgraded from a replica with its CDS_DATABASE_URL"
}

check_through_proxy() {
    log "calling through the proxy as an EHR would (signed ES384 JWT)"
    client check "$PROXY_URL" /e2e || die "the end-to-end checks through the proxy failed (see FAIL lines above)"
    local upstreams
    upstreams=$(docker_ logs "$(stack_container proxy)" 2>/dev/null | grep -o '"upstream":"[0-9.]*:8080"' | sort -u | wc -l)
    [ "$upstreams" -ge 2 ] || die "the proxy sent every call to one replica ($upstreams upstream address in its log)"
    log "the proxy spread the calls over both replicas; its log is JSON lines"
}

check_proxy_limits() {
    log "slow clients, body limit and HTTPS (docker/proxy_checks.py on the host's Python)"
    client plan "$PROXY_URL" /e2e 60 | sed 's/^/  /' || die "could not prepare the signed calls"
    local started=$SECONDS
    timeout 180 python3 "$ROOT/docker/proxy_checks.py" --proxy "$PROXY_URL" --plan "$WORK/e2e/plan.json" \
        --max-body "$STACK_MAX_BODY" --client-timeout "$STACK_CLIENT_TIMEOUT" \
        --direct "http://127.0.0.1:$DIRECT_PORT" --replica-threads 8 \
        --tls "https://127.0.0.1:$TLS_PORT" --tls-ca "$WORK/e2e/tls/tls.crt" \
        || die "the proxy checks failed (see FAIL lines above)"
    log "proxy checks passed in $((SECONDS - started))s"
}

check_failover() {
    local cid_b address
    log "stopping replica cds-b: the proxy must answer from cds-a alone"
    compose stop --timeout 15 cds-b >/dev/null 2>&1 || die "could not stop cds-b"
    client check "$PROXY_URL" /e2e >"$WORK/failover.log" 2>&1 || { cat "$WORK/failover.log"; die "with cds-b stopped, calls through the proxy failed"; }
    log "with cds-b stopped every call was answered; starting it again"
    compose start cds-b >/dev/null 2>&1 || die "could not start cds-b"
    stack_wait_healthy 90
    cid_b=$(stack_container cds-b)
    address=$(docker_ inspect -f "{{(index .NetworkSettings.Networks \"${STACK_PROJECT}_edge\").IPAddress}}" "$cid_b")
    # nginx learns a changed address within 10 s (the entry point's watcher); then calls reach cds-b again.
    local started=$SECONDS
    while :; do
        client_on_edge -c "
import urllib.request
for _ in range(4):
    urllib.request.urlopen('http://proxy:8080/readyz', timeout=5).read()
" >/dev/null 2>&1 || true
        if docker_ logs --since 5s "$(stack_container proxy)" 2>/dev/null | grep -q "\"upstream\":\"$address:8080\""; then break; fi
        [ $((SECONDS - started)) -lt 40 ] || die "the proxy sends nothing to the restarted cds-b ($address) after 40 s"
        sleep 2
    done
    log "cds-b ($address) serves calls through the proxy again after $((SECONDS - started))s"
}

# --- shared state across replicas ----------------------------------------------------------------------------------
# The replicas keep every state a second one needs in CDS_DATABASE_URL (PostgreSQL): the JWT replay store, cards,
# feedback and dismissals (docs/deployment.md). Each check calls cds-a and cds-b by name on the stack network and the
# proxy (client_on_edge); the tokens are for CDS_PUBLIC_URL, as an EHR's are.
shared_check() {  # KIND WHAT
    local admin
    admin=$(sed -n 's/^CDS_ADMIN_TOKEN=//p' "$STACK_DIR/env")
    log "shared state: $2"
    client_on_edge /opt/e2e_client.py shared "$1" "$PROXY_URL" /e2e "$admin" http://cds-a:8080 http://cds-b:8080 \
        http://proxy:8080 || die "shared state across replicas: $2 (see FAIL lines above)"
}

# A token accepted by cds-a is refused (401) by cds-b and through the proxy: the replay store is in PostgreSQL.
check_replay_refused_by_other_replica() {
    shared_check replay "a token accepted by cds-a is refused by cds-b and through the proxy"
}

# A card overridden through cds-a (decision A22: R17 here) is held back for that patient by cds-b and the proxy.
check_dismissal_seen_by_other_replica() {
    shared_check dismissal "a dismissal recorded through cds-a hides the card on cds-b and through the proxy"
}

# GET /analytics/rules (CDS_ADMIN_TOKEN of the stack's env file) through cds-a, cds-b and the proxy: the same figures,
# counting the calls and the feedback sent through both.
check_analytics_count_both_replicas() {
    shared_check analytics "analytics read through either replica or the proxy count the calls and feedback of both"
}

step_stack_checks() {
    check_replicas_answer
    check_migrations
    check_through_proxy
    check_proxy_limits
    check_failover
    check_replay_refused_by_other_replica
    check_dismissal_seen_by_other_replica
    check_analytics_count_both_replicas
}

# --- 5. down ---------------------------------------------------------------------------------------------------------
step_stack_down() {
    local started=$SECONDS cid service code bad=""
    compose stop --timeout 30 >/dev/null 2>&1 || die "compose stop failed"
    for service in proxy cds-a cds-b postgres; do
        cid=$(stack_container "$service")
        code=$(docker_ inspect -f '{{.State.ExitCode}}' "$cid")
        [ "$code" = 0 ] || bad="$bad $service:$code"
    done
    [ -z "$bad" ] || die "containers did not stop cleanly (service:exit code):$bad"
    compose down --volumes >/dev/null 2>&1 || die "compose down failed"
    STACK_UP=0
    log "stack stopped cleanly in $((SECONDS - started))s (every exit code 0) and removed with its volume"
}
