#!/usr/bin/env bash
# Builds the exporters the benchmarks compare certscope with, from their published Go modules,
# cached by version under ${XDG_CACHE_HOME:-~/.cache}/certscope/:
#
#   scripts/build-peers.sh [NAME...]     NAME: blackbox_exporter, ssl_exporter,
#                                        x509-certificate-exporter (default: all)
#
# Prints NAME=PATH for each one built; a module the Go module proxy will not serve is reported
# with the proxy's answer and the script exits non-zero (the benchmarks then say which peer is
# missing rather than comparing with nothing).
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/certscope"
declare -A module_of=(
  [blackbox_exporter]="github.com/prometheus/blackbox_exporter@v0.28.0"
  [ssl_exporter]="github.com/ribbybibby/ssl_exporter/v2@v2.4.3"
  [x509-certificate-exporter]="github.com/enix/x509-certificate-exporter/v3/cmd/x509-certificate-exporter@v3.19.1"
)

command -v go >/dev/null 2>&1 || { echo "build-peers: the Go toolchain is missing (no 'go' on PATH)" >&2; exit 1; }

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(blackbox_exporter ssl_exporter x509-certificate-exporter)
status=0
for name in "${names[@]}"; do
  spec="${module_of[$name]:-}"
  [ -n "$spec" ] || { echo "build-peers: unknown peer $name" >&2; exit 2; }
  out="$CACHE/$name-${spec##*@}"
  if [ ! -x "$out" ]; then
    mkdir -p "$CACHE"
    gobin="$(mktemp -d)"
    if ! GOBIN="$gobin" GOFLAGS="-trimpath -buildvcs=false" CGO_ENABLED=0 \
      go install -ldflags "-s -w" "$spec" 2>"$gobin/log"; then
      echo "build-peers: $name ($spec) could not be built: $(grep -m1 -e 'not available' -e 'Forbidden' -e 'error' "$gobin/log" || tail -n1 "$gobin/log")" >&2
      rm -rf "$gobin"
      status=1
      continue
    fi
    mv "$gobin/$(basename "${spec%@*}")" "$out"
    rm -rf "$gobin"
  fi
  echo "$name=$out"
done
exit $status
