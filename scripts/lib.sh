# shellcheck shell=bash
# Helpers the scripts share. Defines functions and variables only: installs nothing, starts
# nothing, changes no directory. scripts/deps.sh sources it, so a script that sources deps.sh
# has these too; a script that installs nothing may source this file alone.

# The repository's root, whichever directory the sourcing script is in.
QGEN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Where cargo puts its builds: CARGO_TARGET_DIR when set (.ci/run sets it, outside the clone),
# else target/ in the repository. Absolute, so it holds after a `cd`.
# A relative CARGO_TARGET_DIR is taken from the current directory, as cargo takes it.
QGEN_TARGET_DIR="${CARGO_TARGET_DIR:-$QGEN_ROOT/target}"
case "$QGEN_TARGET_DIR" in /*) ;; *) QGEN_TARGET_DIR="$PWD/$QGEN_TARGET_DIR" ;; esac

log() { printf '==> %s\n' "$*" >&2; }

# Prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on 127.0.0.1:PORT; 0.2 s between tries, TRIES
# tries (default 300: a minute). With PID, gives up as soon as that process has exited.
#   wait_for_port PORT [TRIES] [PID]
wait_for_port() {
  local port="$1" tries="${2:-300}" pid="${3:-}"
  for _ in $(seq 1 "$tries"); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" \
      2>/dev/null && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      echo "the process meant to listen on port $port has exited" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "nothing listens on port $port" >&2
  return 1
}
