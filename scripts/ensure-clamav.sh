#!/usr/bin/env bash
# ClamAV for the malware scan (stackv2/malware, docs/malware.md): Debian's clamav (sigtool, clamscan) and
# clamav-daemon (clamd), installed when root, else say how. The project starts its own clamd on a private socket
# with the databases the user configures, so the system services these packages bring are switched off again
# where systemd runs them: nothing is downloaded at run time (no freshclam).
set -euo pipefail
have_clamav() { command -v sigtool >/dev/null 2>&1 && PATH="$PATH:/usr/sbin:/usr/local/sbin" command -v clamd >/dev/null 2>&1; }
if have_clamav; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ClamAV (clamav, clamav-daemon) for the malware scan ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clamav clamav-daemon >/dev/null
  if [ -d /run/systemd/system ]; then
    systemctl disable --now clamav-daemon.socket clamav-daemon.service clamav-freshclam.service >/dev/null 2>&1 || true
  fi
  have_clamav && exit 0
fi
echo "warning: ClamAV (clamd, sigtool) not found: the malware scan cannot be enabled and its tests skip." >&2
echo "         Install it with:  sudo apt-get install clamav clamav-daemon   (Debian/Ubuntu)" >&2
exit 1
