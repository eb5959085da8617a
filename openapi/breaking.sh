#!/usr/bin/env bash
# The breaking-change gate: compares the spec with the last released one and
# fails on a change that can break clients, unless CHANGELOG.md acknowledges
# it under "## [Unreleased]".
#
#   openapi/breaking.sh [BASE REVISION CHANGELOG]
#
# The defaults are openapi/released/userphone.yaml (the released spec),
# openapi/userphone.yaml and CHANGELOG.md. Exit 0: nothing breaks, or every
# breaking change is acknowledged; 1: an unacknowledged breaking change;
# 2: the gate could not run (a spec does not load, no Unreleased section).
#
# What counts as breaking: oasdiff's ERR and WARN levels (--fail-on WARN).
# WARN is "may break, oasdiff cannot tell": a removed request property or
# parameter, a changed pattern, a changed OAuth URL or response media type.
# Those are changes a client author must hear about, so they need the same
# acknowledgement. Two checks are raised from INFO to ERR (see levels below).
#
# The acknowledgement is oasdiff's own ignore-file format (--err-ignore,
# --warn-ignore), fed with the Unreleased section of CHANGELOG.md only: a line
# acknowledges a change when it holds the method and path (e.g.
# "PUT /user/phone", the path as the first word that starts with "/") and the
# change's text exactly as oasdiff prints it. On failure this script prints
# the lines to paste. Entries under a released version acknowledge nothing:
# releasing copies the spec over the baseline, so those changes are no longer
# a difference.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
abs() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
base=$(abs "${1:-$root/openapi/released/userphone.yaml}")
revision=$(abs "${2:-$root/openapi/userphone.yaml}")
changelog=$(abs "${3:-$root/CHANGELOG.md}")
go=${GO:-go}

for f in "$base" "$revision" "$changelog"; do
  [[ -f $f ]] || { echo "breaking-change gate: $f does not exist" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The Unreleased section: from its heading to the next "## " heading.
awk '
  /^## / { inside = tolower($0) ~ /^## \[?unreleased\]?[[:space:]]*$/; seen = seen || inside; next }
  inside { print }
  END { exit !seen }
' "$changelog" >"$work/unreleased.md" || {
  echo "breaking-change gate: $changelog has no \"## [Unreleased]\" section; add one (it may be empty)." >&2
  exit 2
}

# Our compatibility policy on top of oasdiff's defaults (a severity-levels
# file takes no comments, so they are here):
# - api-removed-with-deprecation, api-path-removed-with-deprecation: oasdiff
#   lets a deprecated operation go without notice. PACE marks its phone
#   operations deprecated, yet they "keep working unchanged" (the spec's
#   x-deprecated-reason): removing one breaks PACE's clients.
cat >"$work/levels.txt" <<'EOF'
api-removed-with-deprecation err
api-path-removed-with-deprecation err
EOF

set +e
(cd "$root" && "$go" tool oasdiff breaking "$base" "$revision" \
  --fail-on WARN \
  --severity-levels "$work/levels.txt" \
  --err-ignore "$work/unreleased.md" \
  --warn-ignore "$work/unreleased.md" \
  --format singleline --color never) >"$work/out.txt" 2>&1
rc=$?
set -e

case $rc in
  0)
    echo "breaking-change gate: no unacknowledged breaking change between ${base#"$root"/} and ${revision#"$root"/}."
    exit 0
    ;;
  1) ;;
  *)
    cat "$work/out.txt" >&2
    echo "breaking-change gate: oasdiff could not compare the specs (exit $rc)." >&2
    exit 2
    ;;
esac

# Each breaking change as a CHANGELOG line that acknowledges it: oasdiff's
# "error at FILE, in API PUT /path TEXT [check-id]. COMMENT" becomes
# "- PUT /path — TEXT". A change outside an operation (components, security)
# is shown as oasdiff printed it.
grep -E '^(error|warning) at ' "$work/out.txt" >"$work/changes.txt" || true
sed -E 's/^(error|warning) at .*, in API ([A-Z]+) (\/[^ ]*) (.*) \[[a-z0-9-]+\]\..*$/- \2 \3 — \4/' \
  "$work/changes.txt" >"$work/paste.md"
n=$(wc -l <"$work/changes.txt")

cat <<EOF
breaking-change gate: FAILED. ${revision#"$root"/} has $n change(s) that can break clients of the released API (${base#"$root"/}):

$(sed -E 's/^(error|warning) at [^,]*, in API /\1: /' "$work/changes.txt")

Either revert them, or make them on purpose: say so in ${changelog#"$root"/} under "## [Unreleased]",
one line per change, e.g. (paste as is, then add why and what clients must do):

$(cat "$work/paste.md")
EOF
exit 1
