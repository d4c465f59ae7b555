#!/usr/bin/env bash
# Makes prometheusrule.yaml from deploy/prometheus/kbgp-alerts.yaml: the same groups, inside
# a PrometheusRule. `--check`: fail if the file is not what this would write.
set -euo pipefail
cd "$(dirname "$0")"
make() {
    cat <<'HEAD'
# Made by gen.sh from deploy/prometheus/kbgp-alerts.yaml: edit that file, then run gen.sh.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: kbgp
  namespace: kbgp-system
spec:
HEAD
    sed -n '/^groups:/,$p' ../../prometheus/kbgp-alerts.yaml | sed 's/^/  /'
}
if [ "${1:-}" = --check ]; then
    diff -u prometheusrule.yaml <(make) || { echo "prometheusrule.yaml is stale: run bash deploy/components/monitoring/gen.sh" >&2; exit 1; }
else
    make > prometheusrule.yaml
fi
