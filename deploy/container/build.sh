#!/bin/sh
# build.sh builds the Keyward container image from this repository,
# reproducibly: the same commit, Go toolchain and CA bundle give the same
# image ID. It compiles the static binary on the host, stages it with the
# host's CA certificates next to deploy/container/Containerfile, and builds
# FROM scratch (no base image is pulled).
#
#   deploy/container/build.sh [TAG]        default TAG: localhost/keyward:$VERSION
#
# Environment:
#   VERSION          stamped into the binary (keyward version) and the label
#                    org.opencontainers.image.version.
#                    Default: git describe --tags --always --dirty, or dev.
#   REVISION         the label org.opencontainers.image.revision.
#                    Default: the commit of HEAD (unknown outside git).
#   SOURCE_DATE_EPOCH  the image's creation time and every file's mtime.
#                    Default: the commit time of HEAD (0 outside git).
#   GOARCH           the image's architecture. Default: the host's.
#   CA_BUNDLE        the CA certificates to copy.
#                    Default: /etc/ssl/certs/ca-certificates.crt.
#   CONTAINER_TOOL   the builder command, split on spaces (podman with flags,
#                    or buildah). Default: podman.
#
# Prints the image ID on its last line.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"

if [ -z "${VERSION:-}" ]; then
  VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
fi
revision=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
tag=${1:-localhost/keyward:$VERSION}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
tool=${CONTAINER_TOOL:-podman}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 GOOS=linux GOARCH=${GOARCH:-$(go env GOARCH)} \
  go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=$VERSION" \
  -o "$ctx/keyward" ./cmd/keyward
cp "$ca" "$ctx/ca-certificates.crt"
chmod 0644 "$ctx/ca-certificates.crt"
mkdir "$ctx/empty" "$ctx/state" && mkdir -m 0700 "$ctx/state/keyward"
cp deploy/container/Containerfile "$ctx/Containerfile"

# shellcheck disable=SC2086 # CONTAINER_TOOL is a command with its flags
$tool build --quiet --timestamp "$SOURCE_DATE_EPOCH" --arch "${GOARCH:-$(go env GOARCH)}" \
  --build-arg "VERSION=$VERSION" --build-arg "REVISION=$revision" \
  --file "$ctx/Containerfile" --iidfile "$ctx/iid" --tag "$tag" "$ctx" >/dev/null
echo "built $tag (keyward $VERSION)" >&2
cat "$ctx/iid"; echo
