#!/usr/bin/env bash
# promtool and amtool for the tests of the alert rules and Alertmanager's configuration
# (tests/unit/test_deploy_prometheus.py, test_deploy_alertmanager.py), taken from Debian's
# prometheus and prometheus-alertmanager packages: only the two binaries are unpacked into DEST
# (apt-get download + dpkg-deb -x). Installing the packages would also start a Prometheus and an
# Alertmanager server. Called by `make ops-tools` (part of `make test`); harmless to repeat.
#   install-tools.sh DEST
set -euo pipefail

DEST=$(cd "${1:?usage: install-tools.sh DEST}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

download() { apt-get download -q prometheus prometheus-alertmanager >/dev/null 2>&1; }
if ! download; then
  # Empty or stale package lists: refresh them once (needs root).
  [ "$(id -u)" = 0 ] || { echo "install-tools: apt-get download failed (as root, apt-get update first)" >&2; exit 1; }
  apt-get update -q >/dev/null && download
fi
for deb in ./*.deb; do dpkg-deb -x "$deb" root; done
# prometheus-alertmanager itself: the peer that `make bench` measures the platform against.
# prometheus itself: deploy/prometheus/try_lag_alert.py evaluates the rules against the services.
install -m 0755 root/usr/bin/promtool root/usr/bin/amtool root/usr/bin/prometheus-alertmanager \
  root/usr/bin/prometheus "$DEST"/
# Debian's build reads its notification templates from this fixed path (as root only; without
# it the benchmark notes that the peer was not measured).
if [ "$(id -u)" = 0 ]; then
  install -D -m 0644 -t /usr/share/prometheus/alertmanager root/usr/share/prometheus/alertmanager/*.tmpl
fi
"$DEST/promtool" --version | head -1
"$DEST/amtool" --version | head -1
