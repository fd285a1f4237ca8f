# Sourced by Weft's scripts: where things live. Override any of these in the environment.
_weft_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export WEFT_HOME="${WEFT_HOME:-$_weft_root/.weft}"
export NATS_SERVER="${NATS_SERVER:-$WEFT_HOME/venv/bin/nats-server}"
export WEFT_BIN_DIR="${WEFT_BIN_DIR:-${CARGO_TARGET_DIR:-$_weft_root/target}/debug}"
mkdir -p "$WEFT_HOME"
