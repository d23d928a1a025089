#!/usr/bin/env bash
# CI for the Docker sandbox, on a Debian machine with no image registry: install the engine, start it,
# debootstrap a base image, build the CPU grading image, run the Docker tests for real. Idempotent: every
# step is skipped when its result is already there. Needs root and .venv (make setup); prints timings.
#
#   scripts/ci-docker.sh            everything
#   scripts/ci-docker.sh --no-test  stop after the images
#
# Environment: MIRROR (Debian mirror; default: the one apt uses; required where apt names none), SUITE (bookworm), BASE_IMAGE
# (grader-base:$SUITE), IMAGE (torch-grader:cpu), GRADER_WHEELS (folder of wheels preferred over PyPI,
# e.g. a matching CPU torch + torchvision), CA_BUNDLE (for pip inside the build where TLS is intercepted;
# default: this machine's bundle), REBUILD=1 (rebuild the grading image; Docker's cache keeps torch).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=${SUITE:-bookworm}
BASE_IMAGE=${BASE_IMAGE:-grader-base:$SUITE}
IMAGE=${IMAGE:-torch-grader:cpu}
PY=${PY:-.venv/bin/python}
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
RUN_TESTS=1
[ "${1:-}" = "--no-test" ] && RUN_TESTS=0

now() { date +%s%N; }
took() {
    local ms=$(( ($(now) - $2) / 1000000 ))
    printf '%-40s %4d.%01d s\n' "$1" $((ms / 1000)) $((ms % 1000 / 100)) | tee -a "$TIMINGS"
}
TIMINGS=${TIMINGS:-/tmp/ci-docker-timings.txt}
: > "$TIMINGS"

# 1. engine and debootstrap from Debian's packages
t=$(now)
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
took "apt-get install" "$t"

# 2. the engine
t=$(now)
if ! docker info >/dev/null 2>&1; then
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
    for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $DOCKERD_LOG" >&2; tail -20 "$DOCKERD_LOG" >&2; exit 1; }
fi
took "dockerd ready" "$t"

# 3. a base image without a registry: debootstrap from the mirror apt uses, then docker import
mirror() {
    # deb822 (URIs:) or one-line (deb URL SUITE ...) sources; the first Debian archive that is not security.
    # Some of these files need not exist (cat fails on them), and grep may match nothing: neither is an error.
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
        | sed -n -E 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
        | { grep -E '/debian/?$' || true; } | { grep -v security || true; } | head -1
}
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    MIRROR=${MIRROR:-$(mirror)}
    [ -n "$MIRROR" ] || { echo "no Debian mirror in apt's sources: set MIRROR=<the mirror's URL>" >&2; exit 1; }
    rootfs=$(mktemp -d /tmp/grader-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    t=$(now)
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >/tmp/debootstrap.log 2>&1 \
        || { tail -20 /tmp/debootstrap.log >&2; exit 1; }
    took "debootstrap ($MIRROR)" "$t"
    t=$(now)
    tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
    took "docker import" "$t"
    rm -rf "$rootfs"
fi
docker image inspect -f "base image $BASE_IMAGE: {{.Size}} bytes" "$BASE_IMAGE"

# 4. the grading image
# Always rebuilt, so the image holds this checkout's grader; Docker's layer cache keeps torch (about 10 s).
if [ "${REBUILD:-1}" = 1 ] || ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    "$PY" -c 'import docker' 2>/dev/null || "$PY" -m pip install -q 'docker>=7'
    args=(--cpu --base-image "$BASE_IMAGE" --tag "$IMAGE")
    if [ -n "${GRADER_WHEELS:-}" ]; then args+=(--wheels "$GRADER_WHEELS"); else args+=(--torch-index-url ""); fi
    [ -s "$CA_BUNDLE" ] && args+=(--ca-bundle "$CA_BUNDLE")
    t=$(now)
    nice -n 10 "$PY" -m grader.image "${args[@]}" >/tmp/grader-image-build.log 2>&1 \
        || { tail -40 /tmp/grader-image-build.log >&2; exit 1; }
    took "grading image build" "$t"
fi
docker image inspect -f "grading image $IMAGE: {{.Size}} bytes" "$IMAGE"

# 5. the Docker tests, for real (they skip themselves only when the engine or image is missing)
if [ "$RUN_TESTS" = 1 ]; then
    t=$(now)
    GRADER_IMAGE="$IMAGE" "$PY" -m pytest -q -rs tests/test_sandbox_docker.py
    took "docker tests" "$t"
fi
echo "--- timings"; cat "$TIMINGS"
