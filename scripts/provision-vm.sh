#!/usr/bin/env bash
# Provisions one Vigil VM (see Vagrantfile):
#   provision-vm.sh ROLE SITE HOST_NAME CENTRAL_IP
# Installs the Debian packages and the virtualenv exactly as `make run` does,
# writes /etc/vigil/vigil.conf for the role, creates the schema and the demo
# data on sites, and runs supervisor as the systemd service `vigil`.
set -euo pipefail
ROLE="$1"; SITE="$2"; HOST="$3"; CENTRAL="$4"
SRC=/vagrant
DEST=/opt/vigil

"$SRC/scripts/install-system-deps.sh"
mkdir -p "$DEST" /etc/vigil /var/lib/vigil /var/log/vigil
tar -C "$SRC" --exclude=./.venv --exclude=./run --exclude=./.git -cf - . | tar -C "$DEST" -xf -
cd "$DEST"
make venv

conf=/etc/vigil/vigil.conf
if [ ! -f "$conf" ]; then
  sed -e "s/^Role=.*/Role=$ROLE/" -e "s/^Name=.*/Name=$SITE/" \
      -e "s/^Host_Name=.*/Host_Name=$HOST/" \
      -e "s#^Mail_Templates_Dir=.*#Mail_Templates_Dir=$DEST/etc/Mail_Templates#" \
      etc/vigil.conf > "$conf"
  # every server's scheduler sends its results to the central server
  if grep -q '^Config_Server=' "$conf"; then
    sed -i "s/^Config_Server=.*/Config_Server=$CENTRAL:5667/" "$conf"
  fi
  # the central's dashboard login: a password of its own, never the shipped empty one
  if [ "$ROLE" = central ] && grep -q '^Web_Password=$' "$conf"; then
    sed -i "s/^Web_Password=$/Web_Password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')/" \
      "$conf"
  fi
  chmod 0600 "$conf"
fi
export VIGIL_CONF="$conf"
# check_vigil_* for a stock Nagios/NRPE/Icinga, run as the nagios user (docs/plugins.md)
.venv/bin/vigil plugins install
if [ "$ROLE" != central ]; then
  # The demo secondary's database is its own SQLite, not a replica of the
  # primary, so it is initialised as the primary's is; `vigil` refuses these
  # on a secondary site otherwise (a real stand-by is a replica: docs/site.md).
  VIGIL__SITE__ROLE=primary .venv/bin/vigil db upgrade
  VIGIL__SITE__ROLE=primary .venv/bin/vigil provision etc/demo/provision.yaml
fi

cat > /etc/systemd/system/vigil.service <<UNIT
[Unit]
Description=Vigil appliance ($ROLE)
After=network-online.target

[Service]
Environment=VIGIL_CONF=$conf
ExecStart=$DEST/.venv/bin/vigil supervisord
ExecReload=/bin/kill -HUP \$MAINPID
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now vigil
if [ "$ROLE" = central ]; then
  echo "dashboard: http://127.0.0.1:$(sed -n 's/^Web_Port=//p' "$conf")/ on the central VM" \
       "(login $(sed -n 's/^Web_User=//p' "$conf"), password: Web_Password in $conf)"
fi
