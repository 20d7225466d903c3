#!/usr/bin/env bash
# Makes test-only TLS material in DIR with the openssl CLI (nothing here is
# committed: every test run makes its own):
#   ca.pem, ca.key            a CA, "Weir Test CA"
#   server.pem, server.key    the broker's certificate from it, for localhost and 127.0.0.1
#   client.pem, client.key    a client certificate from it, subject CN=client,O=Weir
#   other-ca.pem              a CA nobody trusts, and from it
#   other-server.pem/.key     a certificate for localhost and 127.0.0.1 that clients must refuse
#
# Usage: tools/tests/tls_certs.sh DIR
set -euo pipefail
DIR=${1:?usage: tls_certs.sh DIR}
mkdir -p "$DIR"
cd "$DIR"

# ca NAME CN: a self-signed CA.
ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.pem" 2> /dev/null
}
# leaf NAME CA SUBJECT EXTENSIONS: a certificate signed by CA.
leaf() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" \
    -keyout "$1.key" -out "$1.csr" 2> /dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2> /dev/null
  rm -f "$1.csr" "$1.ext"
}

SERVER_EXT='subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth'
ca ca "Weir Test CA"
leaf server ca "/CN=localhost" "$SERVER_EXT"
leaf client ca "/O=Weir/CN=client" "extendedKeyUsage=clientAuth"
ca other-ca "Untrusted Test CA"
leaf other-server other-ca "/CN=localhost" "$SERVER_EXT"
