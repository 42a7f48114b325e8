#!/usr/bin/env bash
# Debian packages the tests run for real: PostgreSQL and Redis (app tests), promtool/amtool and Prometheus
# (monitoring tests). Idempotent; run as root (or with sudo). The tests start their own servers on free
# loopback ports, so the services Debian starts on install are stopped again. jq: the deploy workflow's steps, run by
# test/policy/workflows.unit.ts (GitHub's runners have it).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PACKAGES=(postgresql redis-server prometheus prometheus-alertmanager jq)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
for svc in postgresql redis-server prometheus prometheus-alertmanager; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
