#!/usr/bin/env bash
# Installs what the tests need from Debian when it is missing: PostgreSQL's server binaries.
set -euo pipefail

have_pg() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }

if have_pg; then
  exit 0
fi
echo "PostgreSQL server not found: installing Debian's postgresql package" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# The package starts a system cluster on :5432; the tests run their own, so stop it if it runs.
$SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /usr/lib/postgresql | sort -V | tail -1)" main stop 2>/dev/null || true
have_pg
