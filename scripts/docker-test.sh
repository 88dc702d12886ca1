#!/usr/bin/env bash
# End-to-end test of the gradecast container image (`make docker-test`, CI).
#
# 1. installs podman & co from Debian's packages if missing (needs root);
# 2. makes the local Debian + Python base image (scripts/make-base-image.sh);
# 3. builds the image, with the host's CA bundle mounted for pip (never baked in);
# 4. runs it on loopback with a named volume at /data and GRADECAST_* settings,
#    waits for /readyz, checks that the service does not run as root;
# 5. walks through the README against it with curl: upload examples/cohort.csv,
#    list cohorts, train a model, poll the job, predict;
# 6. replaces the container by a new one on the same volume and checks that the
#    cohort, the model version and the key survived, and that settings come from
#    GRADECAST_* variables.
# Prints one PASS/FAIL line per check; exits non-zero on any failure.
#
# Environment (all optional):
#   BASE_IMAGE        base image; default localhost/debian-python:bookworm, made here.
#                     Set BASE_IMAGE=python:3.12-slim where a registry is reachable.
#   IMAGE             tag to build                 (default localhost/gradecast:test)
#   PODMAN_RUNTIME    OCI runtime for podman       (default runc; crun fails on cgroup v1 hosts)
#   HOST_CA           CA bundle for pip in the build (default /etc/ssl/certs/ca-certificates.crt)
#   READY_TIMEOUT     seconds to wait for /readyz  (default 90)
#   JOB_TIMEOUT       seconds to wait for training (default 180)
#   LEARNING_RATE, ITERATIONS   training parameters of the walk-through
#   KEEP=1            keep the container and volume for inspection
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT="$(pwd)"

BASE_IMAGE="${BASE_IMAGE:-localhost/debian-python:bookworm}"
IMAGE="${IMAGE:-localhost/gradecast:test}"
PODMAN_RUNTIME="${PODMAN_RUNTIME:-runc}"
HOST_CA="${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
READY_TIMEOUT="${READY_TIMEOUT:-90}"
JOB_TIMEOUT="${JOB_TIMEOUT:-180}"
LEARNING_RATE="${LEARNING_RATE:-0.01}"
ITERATIONS="${ITERATIONS:-1000}"
COHORT_CSV="$ROOT/examples/cohort.csv"

RUN_ID="$$-$RANDOM"
VOLUME="gradecast-test-data-$RUN_ID"
CONTAINERS=()
WORK="$(mktemp -d /tmp/gradecast-docker-test.XXXXXX)"
PASSED=0
FAILED=0
T0=$(date +%s)
TIMINGS=()

log() { printf '==> %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'PASS: %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL: %s\n' "$*"; }
# A failure after which nothing else can be checked.
abort() {
    fail "$*"
    dump_logs
    exit 1
}
timing() { TIMINGS+=("$1: $2 s"); log "$1 took $2 s"; }

summary() {
    local rc=$1
    [[ $FAILED -gt 0 && $rc -eq 0 ]] && rc=1
    echo
    for t in "${TIMINGS[@]}"; do echo "    $t"; done
    echo "    total: $(( $(date +%s) - T0 )) s"
    echo "docker-test: $PASSED passed, $FAILED failed"
    return "$rc"
}

cleanup() {
    local rc=$?
    if [[ "${KEEP:-0}" == 1 ]]; then
        log "KEEP=1: leaving containers ${CONTAINERS[*]:-none} and volume $VOLUME"
    else
        local c
        for c in "${CONTAINERS[@]}"; do
            podman rm -f -t 5 "$c" >/dev/null 2>&1 || true
        done
        podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    summary "$rc"
    exit $?
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# podman with a runtime and limits that work on these hosts (per call, /etc untouched).
P() { podman --runtime "$PODMAN_RUNTIME" "$@"; }
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=8192:8192)

CURRENT=""
dump_logs() {
    if [[ -n "$CURRENT" ]]; then
        echo "---- last 60 lines of the logs of $CURRENT ----"
        podman logs --tail 60 "$CURRENT" 2>&1 | grep -v 'unable to get systemd connection' || true
        echo "----"
    fi
}

# ---------------------------------------------------------------------------
# JSON with python3 (always there on Debian; jq may not be). jget FILE 'EXPR'
# with EXPR like '.id // .cohort_id // .items[0].id': prints the first
# alternative that exists and is not null/false (strings bare, the rest as
# JSON), or nothing.
jget() {
    python3 - "$1" "$2" <<'PY' 2>/dev/null
import json, re, sys
data = json.load(open(sys.argv[1]))
for alt in sys.argv[2].split("//"):
    cur = data
    try:
        for key, idx in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", alt.strip()):
            cur = cur[key] if key else cur[int(idx)]
    except (KeyError, IndexError, TypeError):
        continue
    if cur is not None and cur is not False:
        print(cur if isinstance(cur, str) else json.dumps(cur, sort_keys=True))
        break
PY
}

# api METHOD PATH [curl args...]: sets CODE, and BODY (a file) to the response.
CODE=""
BODY=""
N_REQ=0
api() {
    local method=$1 path=$2
    shift 2
    N_REQ=$((N_REQ + 1))
    BODY="$WORK/resp-$N_REQ.json"
    CODE=$(curl -sS -o "$BODY" -w '%{http_code}' --max-time 60 -X "$method" \
        "http://127.0.0.1:$PORT$path" "$@" 2>"$WORK/curl.err") || CODE="000"
}
show_body() { head -c 600 "$BODY" 2>/dev/null; echo; }
auth() { printf 'Authorization: Bearer %s' "$1"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() {
    local deadline=$(( $(date +%s) + READY_TIMEOUT ))
    while (( $(date +%s) < deadline )); do
        if [[ "$(podman inspect -f '{{.State.Running}}' "$CURRENT" 2>/dev/null)" != "true" ]]; then
            echo "container $CURRENT is not running"
            return 1
        fi
        api GET /readyz
        [[ "$CODE" == 200 ]] && return 0
        sleep 1
    done
    echo "no 200 from /readyz within ${READY_TIMEOUT}s (last: HTTP $CODE $(head -c 200 "$BODY" 2>/dev/null))"
    return 1
}

# start_container NAME ADMIN_KEY: a new container on the test volume.
start_container() {
    local name=$1 key=$2
    CONTAINERS+=("$name")
    CURRENT="$name"
    PORT=$(free_port)
    # podman logs harmless errors about systemd health-check timers on hosts
    # without systemd: keep them out of the output unless the run fails.
    if ! P run -d "${ULIMITS[@]}" --name "$name" \
        -p "127.0.0.1:$PORT:8000" \
        -v "$VOLUME:/data" \
        -e GRADECAST_BOOTSTRAP_ADMIN_KEY="$key" \
        -e GRADECAST_LOG_LEVEL=INFO \
        "$IMAGE" >"$WORK/run.out" 2>"$WORK/run.err"; then
        cat "$WORK/run.err"
        abort "podman run $name"
    fi
}

# ---------------------------------------------------------------------------
log "1/6 tools"
t=$(date +%s)
missing=()
for cmd in podman curl python3; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
[[ "$PODMAN_RUNTIME" == runc ]] && ! command -v runc >/dev/null 2>&1 && missing+=(runc)
[[ "$BASE_IMAGE" == localhost/debian-python:* ]] && ! command -v debootstrap >/dev/null 2>&1 && missing+=(debootstrap)
if (( ${#missing[@]} )); then
    log "missing: ${missing[*]}; installing with apt-get"
    [[ "$(id -u)" == 0 ]] || abort "not root: install podman buildah fuse-overlayfs slirp4netns uidmap debootstrap runc first"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q podman buildah fuse-overlayfs slirp4netns uidmap \
        debootstrap runc curl python3 ca-certificates; } >"$WORK/apt.log" 2>&1 ||
        { tail -n 30 "$WORK/apt.log"; abort "apt-get install podman & co"; }
fi
podman --version >/dev/null 2>&1 || abort "podman does not work"
pass "tools: $(podman --version), runtime $PODMAN_RUNTIME"
timing "tools" $(( $(date +%s) - t ))

log "2/6 base image $BASE_IMAGE"
t=$(date +%s)
if [[ "$BASE_IMAGE" == localhost/debian-python:* ]]; then
    BASE_IMAGE="$BASE_IMAGE" bash "$ROOT/scripts/make-base-image.sh" || abort "make base image $BASE_IMAGE"
fi
pass "base image $BASE_IMAGE"
timing "base image" $(( $(date +%s) - t ))

log "3/6 build $IMAGE"
t=$(date +%s)
BUILD_ARGS=(--format docker "${ULIMITS[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE")
if [[ -f "$HOST_CA" ]]; then
    # The CA is mounted for the build only; pip finds it through PIP_CERT.
    BUILD_ARGS+=(-v "$HOST_CA:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
fi
if ! P build "${BUILD_ARGS[@]}" "$ROOT" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log"
    abort "podman build"
fi
pass "image $IMAGE built"
timing "image build" $(( $(date +%s) - t ))

# The image must carry neither the proxy CA nor the build-time pip settings.
if P run --rm "${ULIMITS[@]}" --entrypoint sh "$IMAGE" -c \
    '! test -s /run/host-ca.crt && ! env | grep -q "^PIP_CERT="' >/dev/null 2>&1; then
    pass "no build-time CA or PIP_CERT in the image"
else
    fail "build-time CA or PIP_CERT left in the image"
fi
if [[ "$(podman image inspect -f '{{.Config.User}}' "$IMAGE")" =~ ^(root|0)?(:.*)?$ ]]; then
    fail "image USER is root or unset"
else
    pass "image USER is $(podman image inspect -f '{{.Config.User}}' "$IMAGE")"
fi

log "4/6 run"
t=$(date +%s)
podman volume create "$VOLUME" >/dev/null || abort "podman volume create"
KEY1="gc_dockertest_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
start_container "gradecast-test-$RUN_ID-a" "$KEY1"
wait_ready || abort "/readyz on 127.0.0.1:$PORT"
pass "/readyz answers 200 on 127.0.0.1:$PORT ($(( $(date +%s) - t )) s after start)"
timing "start to ready" $(( $(date +%s) - t ))

uid=$(podman exec "$CURRENT" id -u 2>/dev/null)
if [[ -n "$uid" && "$uid" != 0 ]]; then
    pass "container process runs as uid $uid, not root"
else
    fail "container process runs as uid '${uid}' (root or unknown)"
fi
pid1_user=$(podman top "$CURRENT" huser 2>/dev/null | awk 'NR == 2 { print $1 }')
if [[ -n "$pid1_user" && "$pid1_user" != 0 && "$pid1_user" != root ]]; then
    pass "server process (PID 1) runs as host uid $pid1_user"
else
    fail "server process (PID 1) runs as '${pid1_user}'"
fi
if podman exec "$CURRENT" sh -c 'test -s /data/gradecast.db && test -O /data/gradecast.db' 2>/dev/null; then
    pass "database file /data/gradecast.db on the volume, owned by the service user"
else
    fail "no /data/gradecast.db owned by the service user"
fi
if P healthcheck run "$CURRENT" >"$WORK/hc.out" 2>&1; then
    pass "HEALTHCHECK (GET /healthz) reports healthy"
else
    fail "HEALTHCHECK: $(grep -v 'systemd connection' "$WORK/hc.out" | head -3)"
fi

log "5/6 README walk-through"
api GET /cohorts -H "$(auth gc_not_a_valid_key_000000000000000000)"
if [[ "$CODE" == 401 || "$CODE" == 403 ]]; then
    pass "a wrong API key is refused (HTTP $CODE)"
else
    fail "a wrong API key gives HTTP $CODE (expected 401 or 403)"
fi

[[ -s "$COHORT_CSV" ]] || abort "missing example cohort $COHORT_CSV"
COHORT_NAME="docker-test-$RUN_ID"
api POST "/cohorts?name=$COHORT_NAME" -H "$(auth "$KEY1")" -H 'Content-Type: text/csv' \
    --data-binary "@$COHORT_CSV"
COHORT_ID=$(jget "$BODY" '.id // .cohort_id // .cohort.id')
if [[ "$CODE" =~ ^20[01]$ && -n "$COHORT_ID" ]]; then
    pass "upload examples/cohort.csv with GRADECAST_BOOTSTRAP_ADMIN_KEY: cohort $COHORT_ID (HTTP $CODE)"
else
    show_body
    abort "upload examples/cohort.csv: HTTP $CODE"
fi

api GET /cohorts -H "$(auth "$KEY1")"
if [[ "$CODE" == 200 ]] && grep -q -- "$COHORT_ID" "$BODY"; then
    pass "GET /cohorts lists cohort $COHORT_ID"
else
    show_body
    fail "GET /cohorts: HTTP $CODE, cohort $COHORT_ID not listed"
fi

JOB_JSON=$(printf '{"cohort_id": "%s", "model": "concours", "algorithm": "gd", "learning_rate": %s, "iterations": %s, "standardize": true}' \
    "$COHORT_ID" "$LEARNING_RATE" "$ITERATIONS")
api POST /jobs -H "$(auth "$KEY1")" -H 'Content-Type: application/json' -d "$JOB_JSON"
JOB_ID=$(jget "$BODY" '.id // .job_id // .job.id')
if [[ "$CODE" =~ ^20[012]$ && -n "$JOB_ID" ]]; then
    pass "POST /jobs: training job $JOB_ID (HTTP $CODE)"
else
    show_body
    abort "POST /jobs: HTTP $CODE"
fi

t=$(date +%s)
deadline=$(( t + JOB_TIMEOUT ))
status=""
while (( $(date +%s) < deadline )); do
    api GET "/jobs/$JOB_ID" -H "$(auth "$KEY1")"
    status=$(jget "$BODY" '.status // .state')
    case "$status" in
    succeeded | failed | cancelled | canceled | error) break ;;
    esac
    sleep 1
done
if [[ "$status" == succeeded ]]; then
    pass "job $JOB_ID succeeded ($(( $(date +%s) - t )) s)"
else
    show_body
    abort "job $JOB_ID ended as '${status:-?}' (HTTP $CODE, ${JOB_TIMEOUT}s timeout)"
fi
timing "training job" $(( $(date +%s) - t ))
JOB_VERSION=$(jget "$BODY" '.model_version // .version // .result.model_version // .result.version // .model_version_id // .result.model_version_id')

PREDICT_JSON='{"model": "concours", "students": [{"id": "n1", "maths": 13, "info": 14, "francais": 11}]}'
predict() {
    api POST /predict -H "$(auth "$1")" -H 'Content-Type: application/json' -d "$PREDICT_JSON"
}
predictions() { jget "$BODY" '.predictions // .results // .students'; }
prediction_version() { jget "$BODY" '.model_version // .version // .model.version // .predictions[0].model_version'; }

predict "$KEY1"
PRED1=$(predictions)
VERSION1=$(prediction_version)
if [[ "$CODE" == 200 && -n "$PRED1" && "$PRED1" == *n1* ]]; then
    pass "POST /predict: ${PRED1:0:200}${VERSION1:+ (model version $VERSION1)}"
else
    show_body
    fail "POST /predict: HTTP $CODE"
fi
if [[ -n "$JOB_VERSION" ]]; then log "job produced model version $JOB_VERSION"; fi

log "6/6 new container on the same volume"
t=$(date +%s)
OLD="$CURRENT"
if P stop -t 20 "$OLD" >/dev/null 2>"$WORK/stop.err"; then
    exit_code=$(podman inspect -f '{{.State.ExitCode}}' "$OLD")
    # uvicorn as PID 1 (exec in CMD) stops cleanly on SIGTERM.
    if [[ "$exit_code" == 0 ]]; then
        pass "container stopped cleanly on SIGTERM ($(( $(date +%s) - t )) s, exit 0)"
    else
        fail "container exit code $exit_code after SIGTERM ($(( $(date +%s) - t )) s)"
    fi
else
    fail "podman stop: $(head -3 "$WORK/stop.err")"
fi
P rm -f "$OLD" >/dev/null 2>&1

# A different bootstrap key: the new one must work (read from GRADECAST_*),
# the first one too (kept in the database on the volume).
KEY2="gc_dockertest_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
t=$(date +%s)
start_container "gradecast-test-$RUN_ID-b" "$KEY2"
wait_ready || abort "/readyz after the restart (migrations on an existing database)"
pass "new container ready on the same volume ($(( $(date +%s) - t )) s; migrate is idempotent)"
timing "restart to ready" $(( $(date +%s) - t ))

api GET /cohorts -H "$(auth "$KEY2")"
if [[ "$CODE" == 200 ]] && grep -q -- "$COHORT_ID" "$BODY"; then
    pass "after restart: GRADECAST_BOOTSTRAP_ADMIN_KEY of the new container works, cohort $COHORT_ID still listed"
else
    show_body
    fail "after restart: GET /cohorts with the new key: HTTP $CODE, cohort $COHORT_ID not listed"
fi
api GET /cohorts -H "$(auth "$KEY1")"
if [[ "$CODE" == 200 ]]; then
    pass "after restart: the first key still works (kept on the volume)"
else
    fail "after restart: the first key gives HTTP $CODE"
fi

api GET "/jobs/$JOB_ID" -H "$(auth "$KEY2")"
if [[ "$CODE" == 200 && "$(jget "$BODY" '.status // .state')" == succeeded &&
    "$(jget "$BODY" '.model_version // .version // .result.model_version // .result.version // .model_version_id // .result.model_version_id')" == "$JOB_VERSION" ]]; then
    pass "after restart: job $JOB_ID still recorded as succeeded${JOB_VERSION:+, with model version $JOB_VERSION}"
else
    show_body
    fail "after restart: GET /jobs/$JOB_ID: HTTP $CODE"
fi

if [[ -n "$JOB_VERSION" ]]; then
    api GET "/models/concours/versions/$JOB_VERSION" -H "$(auth "$KEY2")"
    if [[ "$CODE" == 200 && "$(jget "$BODY" '.version')" == "$JOB_VERSION" ]]; then
        pass "after restart: GET /models/concours/versions/$JOB_VERSION finds the trained version"
    else
        show_body
        fail "after restart: GET /models/concours/versions/$JOB_VERSION: HTTP $CODE"
    fi
fi

predict "$KEY2"
PRED2=$(predictions)
VERSION2=$(prediction_version)
if [[ "$CODE" == 200 && -n "$PRED2" && "$PRED2" == "$PRED1" && "$VERSION2" == "$VERSION1" ]]; then
    pass "after restart: same model version${VERSION2:+ $VERSION2} and same prediction"
else
    show_body
    fail "after restart: POST /predict HTTP $CODE, version '$VERSION2' vs '$VERSION1', prediction '${PRED2:0:200}' vs '${PRED1:0:200}'"
fi

CURRENT=""
