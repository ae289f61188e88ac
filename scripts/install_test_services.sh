#!/usr/bin/env bash
# Install the servers (databases, SSH) and the headless browser that the test suite starts for itself.
#
#   scripts/install_test_services.sh
#
# Debian packages: MariaDB and PostgreSQL servers and clients (tests/sql_servers.py starts
# throwaway instances on a private socket and loads the package's SQL dumps into them),
# OpenSSH's server and client (tests/ssh_server.py starts a throwaway sshd on a free localhost
# port, the DVC remote of the SSH publishing tests), and Chromium with its WebDriver (the HTML
# report's browser test). Idempotent: returns at once when
# everything is installed. It never fails the build: where it cannot install (no apt-get, not
# root and no password-less sudo, no registry) it says why and exits 0, and the tests that need
# the missing programs skip with that reason. The system services themselves are not started.
set -uo pipefail

PACKAGES=(mariadb-server mariadb-client postgresql postgresql-client openssh-server openssh-client
          chromium chromium-driver)

say() { echo "install_test_services: $*"; }

missing=()
for package in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    say "all installed (${PACKAGES[*]})"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    say "cannot install ${missing[*]}: no apt-get (not a Debian-based system); install them by hand"
    exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    say "cannot install ${missing[*]}: not root and no password-less sudo; run this script as root"
    exit 0
fi

# Installing a server package would start its system service; the tests start their own
# instances, so keep services down (Docker images already ship this policy file).
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod +x "$policy"
    trap '"${as_root[@]}" rm -f "$policy"' EXIT
fi

apt_install() {
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}
say "installing ${missing[*]}"
# The package lists may be stale or absent (fresh container): refresh them once on failure.
if ! apt_install && ! { "${as_root[@]}" apt-get update -q && apt_install; }; then
    say "cannot install ${missing[*]}: apt-get failed (see above); the tests that need them skip"
    exit 0
fi
say "installed ${missing[*]}"
