#!/usr/bin/env bash
# Builds Ory Hydra, the OAuth2/OIDC server that internal/hydratest runs, at
# the version pinned in tools/hydra/go.mod, to a fixed path that it prints:
# $(go env GOPATH)/bin/hydra-v2.3.0 unless HYDRA_BIN says otherwise.
# Skips the build when that binary exists and reports that version.
#
# The first build compiles Hydra and SQLite (cgo) and takes minutes on two
# cores; the Go build cache makes later ones fast. The sqlite build tag
# lets Hydra run with DSN=memory, which is how the tests run it.
set -euo pipefail
cd "$(dirname "$0")/../../tools/hydra"
version=v2.3.0
bin=${HYDRA_BIN:-$(go env GOPATH)/bin/hydra-$version}

if [[ -x $bin ]] && "$bin" version 2>/dev/null | grep -q "Version:[[:space:]]*$version\$"; then
  echo "$bin"
  exit 0
fi

command -v gcc >/dev/null || { echo "hydra: gcc is needed (cgo, SQLite): apt-get install gcc" >&2; exit 1; }
mkdir -p "$(dirname "$bin")"
tmp=$bin.tmp.$$
trap 'rm -f "$tmp"' EXIT
echo "hydra: building $version to $bin (the first build takes minutes)" >&2
CGO_ENABLED=1 go build -mod=readonly \
  -tags sqlite,sqlite_omit_load_extension \
  -ldflags "-X github.com/ory/hydra/v2/driver/config.Version=$version -X github.com/ory/hydra/v2/driver/config.Commit=$version" \
  -o "$tmp" github.com/ory/hydra/v2
mv -f "$tmp" "$bin"
"$bin" version >&2
echo "$bin"
