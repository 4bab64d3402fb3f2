#!/usr/bin/env bash
# Installs what the tests need from Debian when it is missing: PostgreSQL's server binaries (the catalog
# tests run their own cluster) and Maven (the Trino tests fetch the trino-server tarball with `mvn`, so
# the machine's configured Maven repositories and mirrors are used).
set -euo pipefail

have_pg() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
have_mvn() { command -v mvn >/dev/null 2>&1; }

# promtool (Go-built, cached outside the repo) checks and unit-tests the generated alerting rules.
"$(dirname "$0")/ensure-promtool.sh" >/dev/null

missing=()
have_pg || missing+=(postgresql)
have_mvn || missing+=(maven)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
echo "Not found: installing Debian's ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  # The package starts a system cluster on :5432; the tests run their own, so stop it if it runs.
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /usr/lib/postgresql | sort -V | tail -1)" main stop 2>/dev/null || true
fi
have_pg
have_mvn
