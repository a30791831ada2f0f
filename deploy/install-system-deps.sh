#!/usr/bin/env bash
# Debian packages the tests need: PostgreSQL (a real server for the ticket store's PostgreSQL path),
# Chromium and CJK fonts (the consoles are tested in a real headless browser).
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v runuser >/dev/null || need+=(util-linux)
[ -x /usr/bin/chromium ] || need+=(chromium)                  # browser tests of the consoles
command -v openssl >/dev/null || need+=(openssl)                 # test certificates for the Kafka TLS settings
fc-list 2>/dev/null | grep -qi "noto.*cjk" || need+=(fonts-noto-cjk)  # Chinese glyphs in the pages
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root: apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
