#!/usr/bin/env bash
# Builds Prometheus's promtool (the alerting-rule checker and unit tester) with the Go toolchain, into a
# cache outside the repo, when it is not there yet; prints its path. tests/test_alert_rules.py runs it.
#   HMCO_CACHE   cache directory (default ~/.cache/hmco); the binary lands in $HMCO_CACHE/bin/promtool
#   HMCO_PROMTOOL  an existing promtool to use instead (printed as is when executable)
set -euo pipefail

PROMTOOL_MODULE="github.com/prometheus/prometheus/cmd/promtool"
PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"  # the Go module version of Prometheus 3.x's promtool

if [ -n "${HMCO_PROMTOOL:-}" ] && [ -x "${HMCO_PROMTOOL}" ]; then
  echo "${HMCO_PROMTOOL}"
  exit 0
fi
bin_dir="${HMCO_CACHE:-$HOME/.cache/hmco}/bin"
promtool="${bin_dir}/promtool"
if [ -x "${promtool}" ]; then
  echo "${promtool}"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "promtool is missing and there is no Go toolchain to build it: install Go (1.26+) and rerun $0," >&2
  echo "or point HMCO_PROMTOOL at a promtool binary" >&2
  exit 1
fi
mkdir -p "${bin_dir}"
echo "Building promtool ${PROMTOOL_VERSION} into ${bin_dir} (a few minutes, once)" >&2
GOBIN="${bin_dir}" go install "${PROMTOOL_MODULE}@${PROMTOOL_VERSION}" >&2
"${promtool}" --version >&2
echo "${promtool}"
