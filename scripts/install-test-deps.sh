#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, idempotently:
# Debian's prometheus (promtool), prometheus-node-exporter, prometheus-alertmanager,
# victoria-metrics, python3-aiosmtpd, chromium + chromium-driver, and a Python venv with the openai client.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# The scrape end-to-end test starts its own node exporter on a free port.
command -v prometheus-node-exporter >/dev/null 2>&1 || need_apt+=(prometheus-node-exporter)
# Alerting tests: a real SMTP server (system Python) and a real Alertmanager.
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need_apt+=(python3-aiosmtpd)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
# remote_write tests and bench: a real VictoriaMetrics single node.
command -v victoria-metrics >/dev/null 2>&1 || need_apt+=(victoria-metrics)
# Dashboard tests drive a real headless Chromium over WebDriver.
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium chromium-driver)
# A CJK font, so the Chinese UI's screenshots show characters, not boxes.
(fc-list :lang=zh 2>/dev/null | grep -q .) || need_apt+=(fonts-wqy-microhei)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The package starts a Prometheus service where systemd runs; tests start their own.
  (systemctl stop prometheus prometheus-node-exporter prometheus-alertmanager victoria-metrics 2>/dev/null || true)
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import openai' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "openai>=2,<4"
fi
# Package install test (tests/package.rs): systemd-analyze verify (works
# without systemd as PID 1), adduser for the postinst, curl for /health.
need_pkg=()
command -v systemd-analyze >/dev/null 2>&1 || need_pkg+=(systemd)
command -v adduser >/dev/null 2>&1 || need_pkg+=(adduser)
command -v curl >/dev/null 2>&1 || need_pkg+=(curl)
if [ ${#need_pkg[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkg[@]}" >/dev/null
fi
# docs/migrating.md's end-to-end test (tests/migration_guide.rs): the
# tutorials' model service instruments itself with prometheus_client (PyPI).
if ! .venv/bin/python -c 'import prometheus_client' 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "prometheus_client>=0.20,<1"
fi
# Accessibility: the browser tests inject axe-core (npm, MPL-2.0) into each page.
# Pinned; installed into a git-ignored folder, nothing global.
AXE_VERSION=4.14.1
if ! grep -qs "\"version\": \"$AXE_VERSION\"" tests/browser/node_modules/axe-core/package.json; then
  command -v npm >/dev/null 2>&1 || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq --no-install-recommends npm >/dev/null; }
  npm install --prefix tests/browser --no-save --no-package-lock --no-audit --no-fund "axe-core@$AXE_VERSION" >/dev/null
fi
