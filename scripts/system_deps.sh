#!/usr/bin/env bash
# Installs what the end-to-end tests run against, outside the Python venv:
#   - Debian's chromium + chromium-driver (the web annotation page's browser tests),
#   - Debian's postgresql (PostgreSQL label store, MLflow tracking server tests),
#   - Label Studio in its own venv, .venv-label-studio (its pins clash with alloop's).
# Idempotent and quiet when everything is present. Without root (or sudo) it only warns;
# the tests that need a missing part then skip and name the reason.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

LABEL_STUDIO_VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=none; fi
  if [ "$sudo" = none ]; then
    echo "system_deps: cannot install ${missing[*]} (not root, no sudo); their tests will skip" >&2
  elif ! command -v apt-get >/dev/null 2>&1; then
    echo "system_deps: no apt-get to install ${missing[*]}; their tests will skip" >&2
  else
    echo "system_deps: installing ${missing[*]} with apt-get" >&2
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || echo "system_deps: apt-get install ${missing[*]} failed; their tests will skip" >&2
  fi
fi

ls_venv=.venv-label-studio
ls_stamp="$ls_venv/.installed-$LABEL_STUDIO_VERSION"
if [ ! -f "$ls_stamp" ]; then
  echo "system_deps: installing Label Studio $LABEL_STUDIO_VERSION into $ls_venv (once)" >&2
  py="${PYTHON:-python3}"
  if { [ -x "$ls_venv/bin/python" ] || "$py" -m venv "$ls_venv"; } \
     && "$ls_venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 \
     && "$ls_venv/bin/python" -m pip install --quiet "label-studio==$LABEL_STUDIO_VERSION" >/dev/null 2>&1; then
    touch "$ls_stamp"
  else
    echo "system_deps: Label Studio could not be installed; its integration test will skip" >&2
  fi
fi
exit 0
