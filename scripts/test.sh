#!/usr/bin/env bash
# Runs the whole test suite the way CI does:
# - a Python venv (.venv) with an independent SQLCipher (sqlcipher3), the
#   official MCP SDK (stdio and Streamable HTTP interop) and Playwright
#   (drives the system's Chromium to test the dashboard; no browser download);
# - redis-server and chromium from the system (Debian: redis-server,
#   chromium); tests that need them fail under CI when they are missing;
# - a private D-Bus session with an unlocked gnome-keyring, so the key
#   manager is tested against a real Secret Service (skipped, with a note,
#   when gnome-keyring is not installed and this is not CI);
# - cargo test over the workspace.
# Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import sqlcipher3, mcp, playwright' 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check sqlcipher3-wheels mcp playwright
fi
export M365_MCP_TEST_PYTHON="$PWD/.venv/bin/python"

run_tests() {
  cargo test --workspace --no-fail-fast "$@"
}

if command -v dbus-run-session >/dev/null && command -v gnome-keyring-daemon >/dev/null; then
  export -f run_tests
  # A throwaway keyring in a directory of its own (gnome-keyring keeps its
  # files under $XDG_DATA_HOME/keyrings), so no keyring of the user's is
  # touched and no earlier run's password matters.
  keyring_home=$(mktemp -d)
  trap 'rm -rf "$keyring_home"' EXIT
  XDG_DATA_HOME="$keyring_home" dbus-run-session -- bash -c '
    printf "m365-mcp-test" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    run_tests "$@"' run_tests "$@"
else
  echo "note: gnome-keyring or dbus-run-session is missing; Secret Service tests will skip" >&2
  echo "      (Debian/Ubuntu: apt-get install gnome-keyring libsecret-tools dbus-x11)" >&2
  run_tests "$@"
fi
