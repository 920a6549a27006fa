#!/usr/bin/env bash
# Regenerates the test certificates (valid for 100 years; for tests only, never for deployment).
# ca.pem signs server.pem (localhost, 127.0.0.1, ::1, tej.test) and client.pem;
# other-ca.pem signs other-server.pem, which our CA does not trust.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name subject
  ec "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days $days -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem"
}
leaf() { # name ca subject extensions
  ec "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr"
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days $days -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext" "$2.srl"
}
ca ca "tej-rs test CA"
ca other-ca "another CA"
server_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:tej.test,IP:127.0.0.1,IP:::1"
leaf server ca "tej.test" "$server_ext"
leaf other-server other-ca "tej.test" "$server_ext"
leaf client ca "tej client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
rm -f other-ca.key
