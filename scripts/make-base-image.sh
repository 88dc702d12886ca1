#!/usr/bin/env bash
# Build a local Debian 12 (bookworm) + Python 3 base image for machines that
# cannot pull python:3.x-slim from a registry.
#
# The image is made with debootstrap from this machine's own apt mirror and
# loaded with `podman import`. It carries Debian's python3 (3.11),
# python3-venv, python3-pip and ca-certificates, nothing else.
#
# Idempotent: if the image already exists, nothing is done.
#
# Usage: scripts/make-base-image.sh            (as root)
# Environment:
#   BASE_IMAGE   image name to create   (default localhost/debian-python:bookworm)
#   SUITE        Debian suite           (default bookworm)
#   MIRROR       Debian mirror URL      (default: read from /etc/apt/sources.list*)
#   FORCE=1      rebuild even if the image exists
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-localhost/debian-python:bookworm}"
SUITE="${SUITE:-bookworm}"
PACKAGES="python3,python3-venv,python3-pip,ca-certificates"

log() { printf '[make-base-image] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v podman >/dev/null 2>&1 || die "podman is not installed (apt-get install -y podman)"

if [[ "${FORCE:-0}" != 1 ]] && podman image exists "$BASE_IMAGE"; then
    log "$BASE_IMAGE already exists; nothing to do"
    exit 0
fi

[[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install -y debootstrap)"

# Find the Debian mirror of this machine: the first "deb" source whose URI is
# not a security mirror, from one-line *.list files or deb822 *.sources files.
find_mirror() {
    local f
    local files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] && files+=("$f")
    done
    for f in "${files[@]}"; do
        case "$f" in
        *.sources)
            # deb822: stanzas separated by blank lines; keep Types/URIs/Suites.
            awk -v suite="$SUITE" '
                function flush() {
                    if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
                        n = split(suites, s, /[ \t]+/)
                        ok = 0
                        for (i = 1; i <= n; i++) if (s[i] == suite) ok = 1
                        if (ok) { m = split(uris, u, /[ \t]+/); for (i = 1; i <= m; i++) if (u[i] != "") print u[i] }
                    }
                    types = ""; uris = ""; suites = ""; enabled = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                {
                    line = $0
                    key = tolower(line); sub(/:.*/, "", key)
                    val = line; sub(/^[^:]*:[ \t]*/, "", val)
                    if (key == "types") types = val
                    else if (key == "uris") uris = val
                    else if (key == "suites") suites = val
                    else if (key == "enabled") enabled = tolower(val)
                }
                END { flush() }
            ' "$f"
            ;;
        *)
            # one-line: deb [opts] URI SUITE COMPONENTS...
            awk -v suite="$SUITE" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == suite) print $i
                }
            ' "$f"
            ;;
        esac
    done | grep -v -i -E 'security' | head -n 1
}

if [[ -z "${MIRROR:-}" ]]; then
    MIRROR="$(find_mirror || true)"
    if [[ -z "$MIRROR" ]]; then
        MIRROR="http://deb.debian.org/debian"
        log "no '$SUITE' source found in /etc/apt; falling back to $MIRROR"
    fi
fi
log "mirror: $MIRROR"

WORKDIR="$(mktemp -d /var/tmp/debian-python-rootfs.XXXXXX)"
cleanup() { rm -rf --one-file-system "$WORKDIR"; }
trap cleanup EXIT

start=$(date +%s)
log "debootstrap $SUITE into $WORKDIR (packages: $PACKAGES)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORKDIR/rootfs" "$MIRROR" \
    >"$WORKDIR/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORKDIR/debootstrap.log" >&2
    die "debootstrap failed"
}

# Trim what an image does not need.
rm -rf "$WORKDIR"/rootfs/var/cache/apt/archives/*.deb \
    "$WORKDIR"/rootfs/var/lib/apt/lists/* \
    "$WORKDIR"/rootfs/var/log/*.log \
    "$WORKDIR"/rootfs/tmp/* "$WORKDIR"/rootfs/var/tmp/* || true

"$WORKDIR/rootfs/usr/bin/python3" --version >/dev/null 2>&1 ||
    chroot "$WORKDIR/rootfs" python3 --version >/dev/null || die "python3 missing in the rootfs"

log "importing as $BASE_IMAGE"
tar -C "$WORKDIR/rootfs" --numeric-owner -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap $SUITE minbase + $PACKAGES from $MIRROR" \
    - "$BASE_IMAGE" >/dev/null

log "done: $BASE_IMAGE ($(( $(date +%s) - start )) s)"
