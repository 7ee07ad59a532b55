# shellcheck shell=bash
# Shared set-up steps for `bash hardware/run-sim.sh` and `bash tests/run.sh` (sourced, not run).
#
#   find_python               -> sets DCGATE_PYTHON to a Python >= 3.11 that can make a venv
#   ensure_venv [EXTRAS]      -> .venv/ at the repository root with `pip install -e ".[EXTRAS]"`
#   ensure_apt_packages PKG.. -> installs the Debian packages that are missing (apt-get, sudo if needed)
#
# Idempotent: a second run installs nothing. The venv is re-installed only when pyproject.toml
# changed or extras not installed before are asked for (recorded in .venv/.dcgate-installed).
# Environment: DCGATE_PYTHON=/path/to/python3.x picks the interpreter;
#              DCGATE_SKIP_APT=1 never calls apt-get (you installed the packages yourself).

DCGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DCGATE_VENV="$DCGATE_ROOT/.venv"
DCGATE_MIN_PYTHON="3.11"
_DCGATE_APT_UPDATED=0

dcgate_say() { printf 'dcgate-setup: %s\n' "$*" >&2; }
dcgate_die() { printf 'dcgate-setup: ERROR: %s\n' "$*" >&2; exit 1; }

# -- Debian packages ------------------------------------------------------------------------

_dcgate_is_debian() {
    [[ -r /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1
}

_dcgate_pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# A command that proves a package is there, for machines without dpkg.
_dcgate_pkg_command() {
    case "$1" in
        mosquitto) echo mosquitto ;;
        mosquitto-clients) echo mosquitto_sub ;;
        nut-server) echo upsd ;;
        socat) echo socat ;;
        sqlite3) echo sqlite3 ;;
        chromium) echo chromium ;;
        poppler-utils) echo pdftoppm ;;
        *) echo "" ;;
    esac
}

_dcgate_have_command() {
    PATH="$PATH:/usr/sbin:/sbin:/usr/local/sbin" command -v "$1" >/dev/null 2>&1
}

# Run a command as root: directly when we are root, else through sudo (never prompting without a terminal).
_dcgate_as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [[ -t 0 ]]; then
            sudo env DEBIAN_FRONTEND=noninteractive "$@"
        else
            sudo -n env DEBIAN_FRONTEND=noninteractive "$@" \
                || dcgate_die "sudo needs a password but there is no terminal. Fix: run as root, or allow passwordless sudo for apt-get"
        fi
    else
        dcgate_die "need root to run: $* (not root and no sudo). Fix: run this script as root"
    fi
}

ensure_apt_packages() {
    local pkg missing=() unknown=()
    (( $# )) || return 0
    if [[ "${DCGATE_SKIP_APT:-0}" == "1" ]]; then
        return 0
    fi
    if ! _dcgate_is_debian; then
        # No apt: accept the machine if the commands these packages provide are already there.
        for pkg in "$@"; do
            local cmd
            cmd="$(_dcgate_pkg_command "$pkg")"
            if [[ -z "$cmd" ]] || ! _dcgate_have_command "$cmd"; then
                missing+=("$pkg${cmd:+ (provides \`$cmd\`)}")
            fi
        done
        (( ${#missing[@]} )) || return 0
        dcgate_say "this is not a Debian / Raspberry Pi OS machine, so nothing can be installed automatically."
        dcgate_say "Install these by hand with your system's package manager, then run this script again:"
        for pkg in "${missing[@]}"; do dcgate_say "    - $pkg"; done
        dcgate_say "(or set DCGATE_SKIP_APT=1 if they are installed under other names)"
        exit 1
    fi
    for pkg in "$@"; do
        _dcgate_pkg_installed "$pkg" || missing+=("$pkg")
    done
    (( ${#missing[@]} )) || return 0
    dcgate_say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if (( ! _DCGATE_APT_UPDATED )); then
        _dcgate_as_root apt-get update -q || dcgate_die "apt-get update failed"
        _DCGATE_APT_UPDATED=1
    fi
    _dcgate_as_root apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" \
        || dcgate_die "apt-get install ${missing[*]} failed"
    for pkg in "${missing[@]}"; do
        _dcgate_pkg_installed "$pkg" || unknown+=("$pkg")
    done
    (( ${#unknown[@]} == 0 )) || dcgate_die "still not installed after apt-get: ${unknown[*]}"
}

# -- Python -----------------------------------------------------------------------------------

_dcgate_python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

_dcgate_python_can_venv() {
    "$1" -c 'import venv, ensurepip' >/dev/null 2>&1
}

find_python() {
    local candidate found=""
    for candidate in ${DCGATE_PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && _dcgate_python_ok "$candidate"; then
            found="$(command -v "$candidate")"
            break
        fi
    done
    if [[ -z "$found" ]] && _dcgate_is_debian; then
        ensure_apt_packages python3 python3-venv
        _dcgate_python_ok python3 && found="$(command -v python3)"
    fi
    [[ -n "$found" ]] || dcgate_die "no Python >= $DCGATE_MIN_PYTHON found (tried python3, python3.13, python3.12, python3.11). Fix: install Python $DCGATE_MIN_PYTHON or newer, or set DCGATE_PYTHON=/path/to/python3.x"
    if ! _dcgate_python_can_venv "$found"; then
        if _dcgate_is_debian; then
            local version
            version="$("$found" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            ensure_apt_packages python3-venv
            _dcgate_python_can_venv "$found" || ensure_apt_packages "python${version}-venv"
        fi
        _dcgate_python_can_venv "$found" || dcgate_die "$found cannot create a virtual environment (no venv/ensurepip). Fix: install your system's python3-venv package"
    fi
    DCGATE_PYTHON="$found"
}

# -- the project's virtual environment --------------------------------------------------------

_dcgate_pyproject_hash() {
    sha256sum "$DCGATE_ROOT/pyproject.toml" | cut -d' ' -f1
}

# Is every extra in $1 (comma-separated) among the recorded ones in $2?
_dcgate_extras_covered() {
    local want have extra
    IFS=',' read -r -a want <<<"$1"
    for extra in "${want[@]}"; do
        [[ -z "$extra" ]] && continue
        [[ ",$2," == *",$extra,"* ]] || return 1
    done
    return 0
}

ensure_venv() {
    local extras="${1:-}" stamp="$DCGATE_VENV/.dcgate-installed" hash recorded_hash="" recorded_extras=""
    if [[ -x "$DCGATE_VENV/bin/python" ]] && _dcgate_python_ok "$DCGATE_VENV/bin/python" \
        && "$DCGATE_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        :
    else
        find_python
        if [[ -e "$DCGATE_VENV" ]]; then
            dcgate_say "$DCGATE_VENV is unusable (no Python >= $DCGATE_MIN_PYTHON with pip in it); re-creating it"
            "$DCGATE_PYTHON" -m venv --clear "$DCGATE_VENV" || dcgate_die "could not re-create $DCGATE_VENV"
        else
            dcgate_say "creating $DCGATE_VENV with $DCGATE_PYTHON"
            "$DCGATE_PYTHON" -m venv "$DCGATE_VENV" || dcgate_die "could not create $DCGATE_VENV"
        fi
        rm -f "$stamp"
    fi
    hash="$(_dcgate_pyproject_hash)"
    if [[ -r "$stamp" ]]; then
        read -r recorded_hash recorded_extras <"$stamp" || true
    fi
    if [[ "$recorded_hash" == "$hash" && -x "$DCGATE_VENV/bin/dcgate" ]] \
        && _dcgate_extras_covered "$extras" "$recorded_extras"; then
        return 0  # nothing changed since the last install
    fi
    [[ "$recorded_hash" == "$hash" ]] || recorded_extras=""
    local all="$recorded_extras"
    local extra list
    IFS=',' read -r -a list <<<"$extras"
    for extra in "${list[@]}"; do
        [[ -z "$extra" ]] && continue
        [[ ",$all," == *",$extra,"* ]] || all="${all:+$all,}$extra"
    done
    local target="."
    [[ -n "$all" ]] && target=".[$all]"
    dcgate_say "installing dcgate into $DCGATE_VENV: pip install -e \"$target\""
    "$DCGATE_VENV/bin/python" -m pip install --quiet --upgrade pip || dcgate_die "could not upgrade pip in $DCGATE_VENV"
    (cd "$DCGATE_ROOT" && "$DCGATE_VENV/bin/python" -m pip install --quiet -e "$target") \
        || dcgate_die "pip install -e \"$target\" failed (see above)"
    if [[ ",$all," == *",face,"* ]]; then
        # face-recognition declares a dependency on `dlib`, which would compile for an hour on a Pi;
        # the face extra brings the prebuilt `dlib-bin` wheel instead, so install it without deps
        dcgate_say "installing face-recognition without its dependencies (dlib comes from dlib-bin)"
        "$DCGATE_VENV/bin/python" -m pip install --quiet --no-deps "face-recognition==1.3.0" \
            || dcgate_die "pip install --no-deps face-recognition failed (see above)"
    fi
    printf '%s %s\n' "$hash" "$all" >"$stamp"
}
