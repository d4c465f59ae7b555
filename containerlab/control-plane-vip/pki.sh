#!/usr/bin/env bash
# The lab's certificates, as kubeadm lays them out: a cluster CA and an API server serving
# certificate for the names and addresses kubeadm puts in it (kubernetes, kubernetes.default,
# ..., the service IP, the node addresses, the controlPlaneEndpoint), but not 127.0.0.1.
#   bash pki.sh DIR     (writes DIR/ca.crt, DIR/ca.key, DIR/apiserver.crt, DIR/apiserver.key)
set -euo pipefail
d=${1:?usage: pki.sh DIR}
mkdir -p "$d"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.crt" -days 3650 -subj /CN=kubernetes \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req "${ec[@]}" -keyout "$d/apiserver.key" -out "$d/apiserver.csr" -subj /CN=kube-apiserver 2>/dev/null
printf '%s\n' \
    'subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:10.0.0.11,IP:10.0.0.12,IP:10.0.0.13,IP:10.100.0.100' \
    'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >"$d/apiserver.ext"
openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -out "$d/apiserver.crt" -days 365 -extfile "$d/apiserver.ext" 2>/dev/null
rm -f "$d/apiserver.csr" "$d/apiserver.ext" "$d/ca.srl"
