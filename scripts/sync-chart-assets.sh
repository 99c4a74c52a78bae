#!/usr/bin/env bash
# Copy the Prometheus rule files and the Grafana dashboards into the Helm chart.
#
# Helm can only read files inside the chart directory (.Files.Get), so the chart carries copies:
#   rules/*.yml that are rule files (a top-level `groups:` key; the Alertmanager example is not)
#                               -> helm/certscope/files/rules/
#   grafana/dashboards/*.json   -> helm/certscope/files/dashboards/
#
#   scripts/sync-chart-assets.sh          copy (and delete copies whose original is gone)
#   scripts/sync-chart-assets.sh --check  change nothing; exit 1 and list the differences when
#                                         the chart's copies are out of date (tests/test_helm.py)
#
# Run it after editing rules/ or grafana/dashboards/. A dashboard that is not valid JSON (for
# example one being written right now) is refused rather than copied half-finished.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart_files="$root/helm/certscope/files"
check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  -h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

python=""
for candidate in "$root/.venv/bin/python" python3 python; do
  if command -v "$candidate" >/dev/null 2>&1; then
    python="$candidate"
    break
  fi
done

# Prints "SUBDIR/NAME<TAB>SOURCE" for every file the chart should carry, sorted.
expected() {
  local f
  shopt -s nullglob
  for f in "$root"/rules/*.yml "$root"/rules/*.yaml; do
    if grep -q '^groups:' "$f"; then
      printf 'rules/%s\t%s\n' "$(basename "$f")" "$f"
    fi
  done
  for f in "$root"/grafana/dashboards/*.json; do
    printf 'dashboards/%s\t%s\n' "$(basename "$f")" "$f"
  done
  shopt -u nullglob
}

# Prints "SUBDIR/NAME" for every copy the chart carries now.
present() {
  local sub f
  shopt -s nullglob
  for sub in rules dashboards; do
    for f in "$chart_files/$sub"/*; do
      [ -f "$f" ] && printf '%s/%s\n' "$sub" "$(basename "$f")"
    done
  done
  shopt -u nullglob
}

validate_json() {
  [ -n "$python" ] || return 0
  if ! "$python" -c 'import json, sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$1" 2>/dev/null; then
    echo "$1: not valid JSON; not copied (finish the dashboard, then run $0 again)" >&2
    return 1
  fi
}

status=0
want="$(expected | sort)"

if [ "$check" -eq 1 ]; then
  while IFS=$'\t' read -r rel src; do
    [ -n "$rel" ] || continue
    if [ ! -f "$chart_files/$rel" ]; then
      echo "missing: helm/certscope/files/$rel (from ${src#"$root"/})"
      status=1
    elif ! cmp -s "$src" "$chart_files/$rel"; then
      echo "differs: helm/certscope/files/$rel (from ${src#"$root"/})"
      status=1
    fi
  done <<<"$want"
  while read -r rel; do
    [ -n "$rel" ] || continue
    if ! cut -f1 <<<"$want" | grep -qxF "$rel"; then
      echo "stale:   helm/certscope/files/$rel (no original any more)"
      status=1
    fi
  done < <(present)
  if [ "$status" -ne 0 ]; then
    echo "the chart's copies are out of date: run scripts/sync-chart-assets.sh" >&2
  fi
  exit "$status"
fi

mkdir -p "$chart_files/rules" "$chart_files/dashboards"
while IFS=$'\t' read -r rel src; do
  [ -n "$rel" ] || continue
  case "$rel" in
    dashboards/*) validate_json "$src" || { status=1; continue; } ;;
  esac
  if ! cmp -s "$src" "$chart_files/$rel" 2>/dev/null; then
    cp "$src" "$chart_files/$rel.tmp.$$"
    mv "$chart_files/$rel.tmp.$$" "$chart_files/$rel"
    echo "copied  ${src#"$root"/} -> helm/certscope/files/$rel"
  fi
done <<<"$want"
while read -r rel; do
  [ -n "$rel" ] || continue
  if ! cut -f1 <<<"$want" | grep -qxF "$rel"; then
    rm -f "$chart_files/$rel"
    echo "removed helm/certscope/files/$rel"
  fi
done < <(present)
exit "$status"
