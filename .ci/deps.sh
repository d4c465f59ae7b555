# Installs what kbgp's tests, demo and lab need on Debian, as root, only when missing.
# Sourced by .ci/test and examples/demo.sh.

# apt-get install, keeping the packages from starting their system services: every daemon
# is started by hand, in its own network namespace.
apt_install() {
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_deps() {
    local need=()
    command -v /usr/lib/frr/bgpd >/dev/null 2>&1 || [ -x /usr/lib/frr/bgpd ] || need+=(frr)
    command -v bird >/dev/null 2>&1 || need+=(bird2)
    command -v gobgpd >/dev/null 2>&1 || need+=(gobgpd)
    command -v exabgp >/dev/null 2>&1 || need+=(exabgp)
    command -v ip >/dev/null 2>&1 || need+=(iproute2)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v curl >/dev/null 2>&1 || need+=(curl)
    command -v busybox >/dev/null 2>&1 || need+=(busybox)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    if [ ${#need[@]} -gt 0 ]; then
        echo "installing: ${need[*]}"
        apt_install "${need[@]}"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo is missing: install Rust (https://rustup.rs) first" >&2
        return 1
    fi
}

# promtool, for the alert rules' unit tests (.ci/test only). Only the package's binaries are
# used, so not what it recommends (a node exporter).
install_promtool() {
    if ! command -v promtool >/dev/null 2>&1; then
        echo "installing: prometheus (for promtool)"
        apt_install --no-install-recommends prometheus
    fi
}
