#!/usr/bin/env bash
# Makes sure FILE defines every password Weft's NATS configuration reads, adding a random
# one for each that is missing; never changes a value that is there. FILE is in the
# KEY=value format of compose's .env files and is readable by its owner only.
#
#   deploy/credentials.sh [FILE]    (default deploy/.env, which compose reads)
#
# deploy/local.sh uses $WEFT_HOME/credentials.env. Values are letters and digits, so they
# can go into URLs as they are: nats://worker:PASSWORD@nats:4222.
set -euo pipefail
file="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.env}"
names=(WEFT_COORDINATOR_PASSWORD WEFT_WORKER_PASSWORD WEFT_CLIENT_PASSWORD WEFT_ADMIN_PASSWORD WEFT_ROUTE_PASSWORD)
umask 077
mkdir -p "$(dirname "$file")"
touch "$file"
added=()
for name in "${names[@]}"; do
  grep -q "^$name=." "$file" && continue
  printf '%s=%s\n' "$name" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >>"$file"
  added+=("$name")
done
if ((${#added[@]})); then
  echo "credentials: added ${added[*]} to $file" >&2
fi
