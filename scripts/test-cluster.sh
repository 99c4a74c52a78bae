#!/usr/bin/env bash
# A real Kubernetes control plane for the tests: etcd and kube-apiserver on loopback, RBAC on,
# a static token file, a client CA, and a kubeconfig.
#
#   scripts/test-cluster.sh build          build (or reuse) the binaries; prints their paths
#   scripts/test-cluster.sh paths          prints where the binaries are (built or not)
#   scripts/test-cluster.sh start DIR      start both in DIR (certificates, data, logs, PIDs,
#                                          DIR/kubeconfig, DIR/env); waits until /readyz is ok
#   scripts/test-cluster.sh restart-apiserver DIR   the API server alone, on the same port
#   scripts/test-cluster.sh stop DIR       stop both by the PIDs written at start
#
# The binaries are built from their published Go modules: kube-apiserver from k8s.io/kubernetes
# through a wrapper module that replaces each k8s.io/* staging module with its published
# v0.X.Y release, etcd and etcdctl from go.etcd.io/etcd. They are cached by version under
# ${XDG_CACHE_HOME:-~/.cache}/certscope/, so only the first build on a machine is slow (about
# 15 minutes on two cores). Options (environment):
#   CERTSCOPE_K8S_VERSION   kube-apiserver version           (default below)
#   CERTSCOPE_ETCD_VERSION  etcd version                     (default below)
#   CERTSCOPE_APISERVER_ARGS extra kube-apiserver flags, e.g. --watch-cache=false
set -euo pipefail

K8S_VERSION="${CERTSCOPE_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${CERTSCOPE_ETCD_VERSION:-3.6.7}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/certscope"
APISERVER="$CACHE/kube-apiserver-v$K8S_VERSION"
ETCD="$CACHE/etcd-v$ETCD_VERSION"
ETCDCTL="$CACHE/etcdctl-v$ETCD_VERSION"

die() { echo "test-cluster: $*" >&2; exit 1; }

need_go() {
  command -v go >/dev/null 2>&1 \
    || die "the Go toolchain is missing (no 'go' on PATH); install Go >= 1.24 to build kube-apiserver and etcd"
  local proxy
  proxy="$(go env GOPROXY)"
  case "$proxy" in off|"") die "GOPROXY is '$proxy'; the Go module proxy is needed to build kube-apiserver and etcd";; esac
}

# go_build MODULE_DIR PACKAGE OUTPUT [LDFLAGS]: build into a temporary name, then rename, so a
# cut build never leaves a half-written binary in the cache.
go_build() {
  local dir="$1" pkg="$2" out="$3" ldflags="${4:-}"
  (cd "$dir" && GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 \
    go build -ldflags "-s -w $ldflags" -o "$out.partial" "$pkg") \
    || die "building $pkg failed (is the Go module proxy $(go env GOPROXY) reachable?)"
  mv "$out.partial" "$out"
}

build_apiserver() {
  [ -x "$APISERVER" ] && return 0
  need_go
  local work mod go_directive
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  echo "test-cluster: building kube-apiserver v$K8S_VERSION (slow the first time)" >&2
  mod="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
    | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')" \
    || die "cannot download k8s.io/kubernetes@v$K8S_VERSION from $(go env GOPROXY)"
  [ -f "$mod" ] || die "cannot download k8s.io/kubernetes@v$K8S_VERSION from $(go env GOPROXY)"
  go_directive="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$mod")"
  {
    echo "module certscope.test/kubeapiserver"
    echo "go $go_directive"
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    # Each staging module k8s.io/X => ./staging/src/k8s.io/X becomes its published v0.Y.Z.
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$mod" | while read -r m; do
      echo "replace $m => $m v0.${K8S_VERSION#1.}"
    done
  } >"$work/go.mod"
  printf 'package main\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' >"$work/tools.go"
  sed -i 's/^package main/\/\/go:build tools\n\npackage main/' "$work/tools.go"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>"$work/tidy.log") \
    || { cat "$work/tidy.log" >&2; die "resolving k8s.io/kubernetes@v$K8S_VERSION failed"; }
  mkdir -p "$CACHE"
  local v="k8s.io/component-base/version"
  go_build "$work" k8s.io/kubernetes/cmd/kube-apiserver "$APISERVER" \
    "-X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=${K8S_VERSION#1.}"
}

build_etcd() {
  [ -x "$ETCD" ] && [ -x "$ETCDCTL" ] && return 0
  need_go
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  echo "test-cluster: building etcd v$ETCD_VERSION" >&2
  printf 'module certscope.test/etcd\n\ngo 1.24\n' >"$work/go.mod"
  printf '//go:build tools\n\npackage main\n\nimport (\n\t_ "go.etcd.io/etcd/server/v3"\n\t_ "go.etcd.io/etcd/etcdctl/v3"\n)\n' >"$work/tools.go"
  (cd "$work" && GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" \
    "go.etcd.io/etcd/etcdctl/v3@v$ETCD_VERSION" >/dev/null 2>"$work/get.log") \
    || { cat "$work/get.log" >&2; die "cannot resolve etcd v$ETCD_VERSION from $(go env GOPROXY)"; }
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1) || true
  mkdir -p "$CACHE"
  go_build "$work" go.etcd.io/etcd/server/v3 "$ETCD"
  go_build "$work" go.etcd.io/etcd/etcdctl/v3 "$ETCDCTL"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pki DIR: one CA signs the serving certificate and the admin client certificate; a service
# account signing key; a static token file (an admin, and two plain users for RBAC tests).
pki() {
  local d="$1"
  command -v openssl >/dev/null 2>&1 || die "openssl is missing (Debian package openssl)"
  (
    cd "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=certscope test cluster CA" -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=kube-apiserver" \
      -keyout serving.key -out serving.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >serving.ext
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile serving.ext -out serving.crt 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/O=system:masters/CN=certscope-admin" -keyout admin.key -out admin.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ca.srl
    local admin reader nobody
    admin="$(openssl rand -hex 24)"; reader="$(openssl rand -hex 24)"; nobody="$(openssl rand -hex 24)"
    printf '%s,admin,admin-uid,system:masters\n%s,reader,reader-uid\n%s,nobody,nobody-uid\n' \
      "$admin" "$reader" "$nobody" >tokens.csv
    printf 'ADMIN_TOKEN=%s\nREADER_TOKEN=%s\nNOBODY_TOKEN=%s\n' "$admin" "$reader" "$nobody" >tokens.env
    chmod 600 ./*.key tokens.csv tokens.env
  )
}

wait_ready() {
  local d="$1" url="$2" token="$3" pid="$4" i
  for i in $(seq 1 480); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$d/kube-apiserver.log" >&2
      die "kube-apiserver exited during start (log: $d/kube-apiserver.log)"
    fi
    if python3 -c '
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[3])
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
sys.exit(0 if urllib.request.urlopen(req, context=ctx, timeout=2).status == 200 else 1)
' "$url/readyz" "$token" "$d/ca.crt" 2>/dev/null; then
      return 0
    fi
    sleep 0.25
  done
  tail -n 30 "$d/kube-apiserver.log" >&2
  die "kube-apiserver not ready after 120 s (log: $d/kube-apiserver.log)"
}

start_etcd() {
  local d="$1" client peer
  client="$(free_port)"; peer="$(free_port)"
  # No fsync: a throwaway store, and creating 10,000 Secrets should not wait on the disk.
  "$ETCD" --name default --data-dir "$d/etcd" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "default=http://127.0.0.1:$peer" --unsafe-no-fsync --log-level warn \
    >"$d/etcd.log" 2>&1 &
  echo $! >"$d/etcd.pid"
  echo "ETCD_URL=http://127.0.0.1:$client" >>"$d/env"
}

# start_apiserver DIR [PORT]: a restart reuses the port, so clients keep their kubeconfig.
start_apiserver() {
  local d="$1" port="${2:-}" etcd_url
  [ -n "$port" ] || port="$(free_port)"
  etcd_url="$(sed -n 's/^ETCD_URL=//p' "$d/env")"
  # --etcd-compaction-interval=0: etcd history is compacted only when a test says so.
  # shellcheck disable=SC2086  # CERTSCOPE_APISERVER_ARGS is a list of flags
  "$APISERVER" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" \
    --etcd-servers="$etcd_url" --etcd-compaction-interval=0 \
    --tls-cert-file="$d/serving.crt" --tls-private-key-file="$d/serving.key" \
    --client-ca-file="$d/ca.crt" --token-auth-file="$d/tokens.csv" \
    --authorization-mode=RBAC --anonymous-auth=false \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$d/sa.pub" --service-account-signing-key-file="$d/sa.key" \
    --service-cluster-ip-range=10.96.0.0/24 --cert-dir="$d/apiserver-certs" \
    --endpoint-reconciler-type=none \
    --audit-log-path="$d/audit.log" --audit-policy-file="$d/audit-policy.yaml" \
    --profiling=false ${CERTSCOPE_APISERVER_ARGS:-} \
    >>"$d/kube-apiserver.log" 2>&1 &
  echo $! >"$d/kube-apiserver.pid"
  sed -i '/^APISERVER_URL=/d' "$d/env"
  echo "APISERVER_URL=https://127.0.0.1:$port" >>"$d/env"
}

write_kubeconfig() {
  local d="$1" url="$2" token="$3"
  cat >"$d/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: $url
    certificate-authority: $d/ca.crt
users:
- name: admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
- name: admin-token
  user:
    token: $token
contexts:
- name: admin
  context: {cluster: test, user: admin}
- name: admin-token
  context: {cluster: test, user: admin-token}
current-context: admin
EOF
  chmod 600 "$d/kubeconfig"
}

start() {
  local d="$1"
  [ -n "$d" ] || die "usage: $0 start DIR"
  build_etcd >&2
  build_apiserver >&2
  mkdir -p "$d"
  d="$(cd "$d" && pwd)"
  if [ -f "$d/kube-apiserver.pid" ] && kill -0 "$(cat "$d/kube-apiserver.pid")" 2>/dev/null; then
    die "a cluster is already running in $d"
  fi
  if [ ! -f "$d/tokens.env" ]; then
    pki "$d"
    printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n' \
      >"$d/audit-policy.yaml"
    printf 'ETCD=%s\nETCDCTL=%s\nAPISERVER=%s\n' "$ETCD" "$ETCDCTL" "$APISERVER" >"$d/env"
    start_etcd "$d"
  fi
  start_apiserver "$d" "${CERTSCOPE_APISERVER_PORT:-}"
  local url token
  url="$(sed -n 's/^APISERVER_URL=//p' "$d/env")"
  token="$(sed -n 's/^ADMIN_TOKEN=//p' "$d/tokens.env")"
  write_kubeconfig "$d" "$url" "$token"
  wait_ready "$d" "$url" "$token" "$(cat "$d/kube-apiserver.pid")"
  echo "$d/kubeconfig"
}

# stop_pid FILE: TERM, wait up to 5 s, then KILL; only the PID that start wrote. (A test
# cluster's state is thrown away, so there is nothing to wait for beyond that.)
stop_pid() {
  local f="$1" pid i
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

cmd="${1:-}"
case "$cmd" in
  build)
    build_etcd
    build_apiserver
    printf 'APISERVER=%s\nETCD=%s\nETCDCTL=%s\n' "$APISERVER" "$ETCD" "$ETCDCTL"
    ;;
  paths) printf 'APISERVER=%s\nETCD=%s\nETCDCTL=%s\n' "$APISERVER" "$ETCD" "$ETCDCTL" ;;
  start) start "${2:-}" ;;
  restart-apiserver)
    [ -n "${2:-}" ] || die "usage: $0 restart-apiserver DIR"
    url="$(sed -n 's/^APISERVER_URL=//p' "$2/env")"
    stop_pid "$2/kube-apiserver.pid"
    CERTSCOPE_APISERVER_PORT="${url##*:}" start "$2" >/dev/null
    ;;
  stop)
    [ -n "${2:-}" ] || die "usage: $0 stop DIR"
    stop_pid "$2/kube-apiserver.pid"
    stop_pid "$2/etcd.pid"
    ;;
  *) die "usage: $0 build | paths | start DIR | restart-apiserver DIR | stop DIR" ;;
esac
