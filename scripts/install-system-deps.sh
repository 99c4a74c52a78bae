#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks drive for real: OpenSSL's
# s_server and OCSP responder, GnuTLS's gnutls-serv, nginx (OCSP stapling, DH parameters),
# sslscan, Prometheus (promtool), Alertmanager (amtool), Chromium (headless, for the pages and
# reports a person reads), keytool and kubectl (the stores the files source reads are made by
# the real tools), the SSH servers and tools the SSH probe is tested against (OpenSSH's sshd,
# ssh-keygen, ssh-keyscan; Dropbear), the STARTTLS daemons (Postfix, Dovecot, vsftpd, slapd,
# PostgreSQL, MariaDB) and poppler (the evidence report's PDF rendered to PNG in tests).
# Idempotent: does nothing when every command is already there.
set -euo pipefail

declare -A pkg_for=(
  [openssl]=openssl
  [gnutls-serv]=gnutls-bin
  [promtool]=prometheus
  [prometheus]=prometheus
  [amtool]=prometheus-alertmanager
  [sslscan]=sslscan
  [nginx]=nginx
  [chromium]=chromium
  [keytool]=default-jre-headless
  [kubectl]=kubernetes-client
  [sshd]=openssh-server
  [ssh-keygen]=openssh-client
  [ssh-keyscan]=openssh-client
  [dropbear]=dropbear-bin
  [pdftoppm]=poppler-utils
  [pdfinfo]=poppler-utils
  # Real STARTTLS servers (tests/helpers/daemons.py); none of them is started as a service.
  [postfix]=postfix
  [dovecot]=dovecot-imapd
  [vsftpd]=vsftpd
  [slapd]=slapd
  [mariadbd]=mariadb-server
  [pg_ctlcluster]=postgresql
)
# Packages that put nothing on PATH: a file they install -> the package.
declare -A pkg_for_file=(
  [/usr/lib/dovecot/pop3-login]=dovecot-pop3d
)
# Libraries without a command: WeasyPrint (report.pdf of `certscope evidence`) needs Pango.
libs=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0)
extra=("$@")  # more packages asked for by the caller (benchmarks add their peers)

missing=()
for cmd in "${!pkg_for[@]}"; do
  # /usr/sbin (sshd, dropbear) may be missing from a non-login PATH
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${pkg_for[$cmd]}")
done
for f in "${!pkg_for_file[@]}"; do
  [ -e "$f" ] || missing+=("${pkg_for_file[$f]}")
done
for p in "${libs[@]}" "${extra[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing packages: ${missing[*]}; run as root or install them: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Mail, FTP, LDAP and database servers would start as services on their well-known ports when
# installed; the tests start their own. policy-rc.d (Debian's switch for that) says no.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get -o DPkg::Lock::Timeout=900 update -qq
apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
