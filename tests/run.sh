#!/usr/bin/env bash
# The whole test suite: installs what the tests need, builds once, checks formatting and
# lints (a warning fails), the deployment files and the launcher (deploy/check.sh), runs
# every test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/deploy/setup.sh"
source "$root/deploy/env.sh"
cd "$root"
cargo fmt --all --check
cargo clippy --quiet --workspace --all-targets -- -D warnings
"$root/deploy/check.sh"
cargo test --workspace "$@"
# The Python SDK: typed, and tested against the real services built above.
"$WEFT_HOME/venv/bin/mypy" --strict --no-error-summary "$root/python/src/weft"
(cd "$root/python" && "$WEFT_HOME/venv/bin/python" -m pytest -q -p no:cacheprovider tests)
"$WEFT_BIN_DIR/weft-bench" --quick --out "$(mktemp -d)" # benchmark harness at small scale, no timing asserted
"$WEFT_BIN_DIR/weft-fuzz" --seconds 20 --out "$(mktemp -d)" # a short fuzzing campaign: a panic, hang or slow input fails
