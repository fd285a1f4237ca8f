#!/usr/bin/env bash
# A development CA and a server certificate for NATS, for trying TLS (docs/deployment.md#tls).
# In production, use certificates from your own CA.
#
#   deploy/tls.sh [DIR]    writes DIR/ca.pem, DIR/server.pem, DIR/server-key.pem (default deploy/tls)
#
# The server certificate is valid for the compose host names (nats, nats-2, nats-3),
# localhost and 127.0.0.1, plus the names in WEFT_TLS_HOSTS (comma-separated DNS names).
# Existing files are kept: delete them to make new ones.
set -euo pipefail
dir="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tls}"
mkdir -p "$dir"
if [[ -f "$dir/server.pem" && -f "$dir/server-key.pem" && -f "$dir/ca.pem" ]]; then
  exit 0
fi
san="DNS:nats,DNS:nats-2,DNS:nats-3,DNS:localhost,IP:127.0.0.1"
IFS=',' read -ra extra <<<"${WEFT_TLS_HOSTS:-}"
for h in "${extra[@]}"; do [[ -n "$h" ]] && san="$san,DNS:$h"; done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=Weft development CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$tmp/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=nats" -keyout "$dir/server-key.pem" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" >"$tmp/ext"
openssl x509 -req -in "$tmp/server.csr" -CA "$dir/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial \
  -days 825 -extfile "$tmp/ext" -out "$dir/server.pem" 2>/dev/null
# The CA key is thrown away: this CA signs nothing else.
chmod 600 "$dir/server-key.pem"
echo "tls: wrote $dir/ca.pem, server.pem, server-key.pem (for: $san)" >&2
