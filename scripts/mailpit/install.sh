#!/usr/bin/env bash
# Builds mailpit, the SMTP server with an HTTP API that internal/mailpittest
# runs for the contract test's e-mail step, at the version pinned in
# tools/mailpit/go.mod, to a fixed path that it prints:
# $(go env GOPATH)/bin/mailpit-v1.33.1 unless MAILPIT_BIN says otherwise.
# Skips the build when that binary exists and reports that version.
#
# Pure Go (its SQLite is modernc.org/sqlite), so no cgo. The web UI's
# JavaScript (server/ui/dist) is built by npm in mailpit's own release and
# is not in the Go module; go:embed takes what the module has, so the
# binary builds without it, and the SMTP server and the HTTP API, all that
# the tests use, work. The first build takes a few minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/../../tools/mailpit"
version=v1.33.1
bin=${MAILPIT_BIN:-$(go env GOPATH)/bin/mailpit-$version}

if [[ -x $bin ]] && "$bin" version --no-release-check 2>/dev/null | grep -q " $version "; then
  echo "$bin"
  exit 0
fi

mkdir -p "$(dirname "$bin")"
tmp=$bin.tmp.$$
trap 'rm -f "$tmp"' EXIT
echo "mailpit: building $version to $bin" >&2
CGO_ENABLED=0 go build -mod=readonly \
  -ldflags "-X github.com/axllent/mailpit/config.Version=$version" \
  -o "$tmp" github.com/axllent/mailpit
mv -f "$tmp" "$bin"
"$bin" version --no-release-check >&2
echo "$bin"
