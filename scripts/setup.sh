#!/usr/bin/env bash
# Install everything the contact-kpi processor and its tests need on a fresh
# Debian 12 machine (run as root, or as a user with sudo). Idempotent: steps
# whose result is already there are skipped.
#
#   bash scripts/setup.sh
#
# Environment:
#   PYTHON         Python interpreter to install into (default: python, else python3)
#   KPI_CACHE_DIR  where the Kafka jars are cached (default ~/.cache/contact-kpi)
#   SKIP_APT=1     do not touch apt at all
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }

if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif command -v python >/dev/null 2>&1; then
    PY=python
else
    PY=python3
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    fi
fi

# ---------------------------------------------------------------------------
step "1/5 system packages (redis-server, prometheus, chromium, java, maven, gcc)"
# command -> Debian package that provides it
declare -A PKG_FOR=(
    [redis-server]=redis-server
    [prometheus]=prometheus
    [chromium]=chromium
    [chromedriver]=chromium-driver
    [java]=default-jre-headless
    [mvn]=maven
    [gcc]=gcc
)
missing=()
for cmd in redis-server prometheus chromium chromedriver java mvn gcc; do
    if command -v "$cmd" >/dev/null 2>&1; then
        info "ok       $cmd ($(command -v "$cmd"))"
    else
        info "missing  $cmd -> apt package ${PKG_FOR[$cmd]}"
        missing+=("${PKG_FOR[$cmd]}")
    fi
done
if ! command -v "$PY" >/dev/null 2>&1; then
    info "missing  $PY -> apt packages python3 python3-pip python3-venv"
    missing+=(python3 python3-pip python3-venv)
    PY=python3
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    info "all present: skipping apt"
elif [[ "${SKIP_APT:-0}" == "1" ]]; then
    info "SKIP_APT=1: not installing ${missing[*]}"
else
    if [[ "$(id -u)" -ne 0 && -z "$SUDO" ]]; then
        echo "error: need root (or sudo) to apt-get install ${missing[*]}" >&2
        exit 1
    fi
    info "apt-get update"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    info "apt-get install ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Debian prometheus package enables a system service on :9090; the
# project starts its own instances, so keep the system one from holding the port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    info "stopping the system prometheus service (tests start their own)"
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

java_major=""
if command -v java >/dev/null 2>&1; then
    java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' || true)"
fi
info "java specification version: ${java_major:-unknown}"
if [[ -n "$java_major" && "${java_major%%.*}" -lt 17 ]]; then
    echo "error: Kafka needs Java 17 or newer (found $java_major)" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
step "2/5 Python $("$PY" -c 'import sys; print(sys.version.split()[0])') ($(command -v "$PY"))"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "error: Python 3.11 or newer is needed" >&2
    exit 1
fi

# ---------------------------------------------------------------------------
step "3/5 pip install -e '.[test,native]'"
PIP_FLAGS=(--disable-pip-version-check)
if "$PY" -c 'import sys; sys.exit(0 if sys.prefix == sys.base_prefix else 1)' \
   && [[ -f "$("$PY" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]]; then
    # Debian's own python3 refuses system-wide pip installs without this.
    PIP_FLAGS+=(--break-system-packages)
fi
"$PY" -m pip install "${PIP_FLAGS[@]}" -q -e "$REPO_ROOT[test,native]"
info "installed: $("$PY" -m pip show contact-kpi 2>/dev/null | sed -n 's/^Version: //p' | sed 's/^/contact-kpi /')"

# ---------------------------------------------------------------------------
step "4/5 Apache Kafka broker jars (Maven Central, cached)"
"$PY" -m processor.services.kafka --ensure-jars

# ---------------------------------------------------------------------------
step "5/5 the KPI core compiled by mypyc (cached by source digest; about a minute when the source changed)"
"$PY" -m processor.native 2>&1 | grep -v -e '^gcc ' -e '^creating ' -e '^copying ' -e 'Beta' -e 'warnings.warn' || true
"$PY" -m processor.native --check

step "done"
info "run the integration tests:  $PY -m pytest tests/integration -q"
info "run a broker by hand:       $PY -m processor.services.kafka --run --port 9092"
