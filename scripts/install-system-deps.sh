#!/usr/bin/env bash
# Installs the Debian packages Vigil and its tests need: the MariaDB server
# binaries (tests start their own instances), the real protocol peers the
# tests talk to (radclient, nsca/send_nsca, nsca-ng, nagios4), the central
# dashboard (nagios4-cgi behind lighttpd, rrdtool graphs; headless chromium
# in its tests), iproute2 and nftables for the two-site network namespaces
# (link cuts, packet loss; the kernel has no netem); the C Monitoring
# Plugins are the reference peer of bench/bench_scheduler.py.
# Idempotent: does nothing when all are present. Daemons these packages
# start on their own are stopped and disabled, since Vigil runs its own on
# the same ports.
set -euo pipefail

PACKAGES=(
  python3 python3-venv python3-dev
  mariadb-server-core mariadb-client mariadb-backup
  freeradius-utils freeradius freeradius-mysql
  nsca nsca-client nsca-ng-server
  nagios4-core
  nagios4-cgi lighttpd rrdtool chromium
  monitoring-plugins-basic monitoring-plugins-standard
  iproute2 nftables procps psmisc
)
SERVICES=(freeradius nsca nsca-ng-server nagios4 lighttpd)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for s in "${SERVICES[@]}"; do
    $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
  done
else
  for s in "${SERVICES[@]}"; do
    [ -x "/etc/init.d/$s" ] && $SUDO "/etc/init.d/$s" stop >/dev/null 2>&1 || true
  done
fi
