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

# The module that holds each command (go mod download needs the module, not the package).
declare -A module_root=(
  [blackbox_exporter]="github.com/prometheus/blackbox_exporter"
  [ssl_exporter]="github.com/ribbybibby/ssl_exporter/v2"
  [x509-certificate-exporter]="github.com/enix/x509-certificate-exporter/v3"
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
    work="$(mktemp -d)"
    module="${spec%@*}" version="${spec##*@}"
    # A wrapper module, not `go install pkg@version`: that also asks the proxy for the
    # module's version list, which the proxy may refuse while it serves the version itself.
    root="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "${module_root[$name]}@$version" 2>/dev/null \
      | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')" || true
    if [ -z "$root" ] || [ ! -f "$root" ]; then
      echo "build-peers: $name: the Go module proxy does not serve ${module_root[$name]}@$version" >&2
      rm -rf "$work"
      status=1
      continue
    fi
    printf 'module certscope.bench/peer\n\ngo %s\n\nrequire %s %s\n' \
      "$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$root")" "${module_root[$name]}" "$version" >"$work/go.mod"
    printf '//go:build tools\n\npackage main\n\nimport _ "%s"\n' "$module" >"$work/tools.go"
    if ! (cd "$work" && GOFLAGS="-mod=mod -trimpath -buildvcs=false" CGO_ENABLED=0 go mod tidy -e >/dev/null 2>&1 \
      && GOFLAGS="-mod=mod -trimpath -buildvcs=false" CGO_ENABLED=0 \
        go build -ldflags "-s -w" -o "$out.partial" "$module" 2>"$work/log"); then
      echo "build-peers: $name ($spec) could not be built: $(tail -n 3 "$work/log")" >&2
      rm -rf "$work"
      status=1
      continue
    fi
    mv "$out.partial" "$out"
    rm -rf "$work"
  fi
  echo "$name=$out"
done
exit $status
