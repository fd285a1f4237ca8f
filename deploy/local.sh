#!/usr/bin/env bash
# Weft on this machine, no Docker: set up, then run the main job.
#
# Today Weft's language is built (validation, analysis, drawing); the distributed runtime
# (NATS, coordinator, workers) comes next and this launcher will start it here.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/deploy/setup.sh"
source "$root/deploy/env.sh"
weft="$WEFT_BIN_DIR/weft"
example="${1:-$root/examples/dag_a_to_e.json}"

echo "== weft validate (every example, against the demo tool catalogue)"
"$weft" validate --tools "$root/examples/tools/catalogue.json" "$root"/examples/*.json "$root"/examples/patterns/*.json
echo
echo "== weft analyze $(basename "$example")"
"$weft" analyze "$example"
echo
echo "== weft graph $(basename "$example") --format mermaid"
"$weft" graph "$example" --format mermaid
