# shellcheck shell=bash
# Installs what the project needs, each thing only when it is missing, so reruns cost nothing.
# Sourced by scripts/test, scripts/local and .ci/run; every function is safe to call twice.

QGEN_CACHE="${QGEN_CACHE:-$HOME/.cache/qgen}"
TANSU_VERSION="0.6.0"

log() { printf '==> %s\n' "$*" >&2; }

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "${QGEN_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq >&2
    export QGEN_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

# librdkafka is built from source with cmake (rdkafka's cmake-build feature).
ensure_cmake() {
  command -v cmake >/dev/null 2>&1 && return
  log "installing cmake (builds librdkafka)"
  apt_install cmake
}

# tansu: an independent Kafka-protocol broker the tests run against (SQLite storage).
# Compiling it takes ~16 minutes once; it is cached under $QGEN_CACHE/tools.
ensure_tansu() {
  local root="$QGEN_CACHE/tools"
  if [ -z "${TANSU_BIN:-}" ]; then
    if [ -x "$root/bin/tansu" ]; then
      TANSU_BIN="$root/bin/tansu"
    elif command -v tansu >/dev/null 2>&1; then
      TANSU_BIN="$(command -v tansu)"
    else
      log "installing tansu $TANSU_VERSION into $root (about 16 minutes, once)"
      cargo install tansu --version "$TANSU_VERSION" --locked --features libsql --root "$root" >&2
      TANSU_BIN="$root/bin/tansu"
    fi
  fi
  export TANSU_BIN
}

# Python tools the tests drive: moto (a local AWS endpoint) and confluent-kafka (an independent
# Kafka client; its wheel carries a current librdkafka, unlike Debian's kcat).
ensure_python_tools() {
  python3 -c 'import moto.server, flask, confluent_kafka' >/dev/null 2>&1 && return
  log "installing moto[server] and confluent-kafka (test tools)"
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]>=5,<6" "confluent-kafka>=2.6,<3" >&2
}

# The Python side of the cold-start comparison in scripts/bench: a function built the way a
# Python Lambda would be, on confluent-kafka and boto3.
ensure_bench_python() {
  python3 -c 'import confluent_kafka, boto3' >/dev/null 2>&1 && return
  log "installing confluent-kafka and boto3 (Python cold-start comparison)"
  python3 -m pip install --quiet --disable-pip-version-check "confluent-kafka>=2.6,<3" "boto3>=1.35,<2" >&2
}

# schemathesis: property-based API testing against the OpenAPI document.
ensure_schemathesis() {
  python3 -c 'import schemathesis.cli' >/dev/null 2>&1 && return
  log "installing schemathesis"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis>=4,<5" >&2
}

# Deploy tooling (scripts/check-deploy): SAM CLI (with cfn-lint and aws-sam-translator, which
# must be 1.107 or later: the MSK event's LoggingConfig arrived then), and cargo-lambda, whose
# PyPI package ships zig, the linker it cross-compiles arm64 Lambda binaries with. Pinned, so CI
# does not drift with their releases; a different version installed is replaced.
SAM_CLI_VERSION="1.170.0"
CARGO_LAMBDA_VERSION="1.9.2"
ensure_deploy_tools() {
  local missing=()
  [ "$(sam --version 2>/dev/null)" = "SAM CLI, version $SAM_CLI_VERSION" ] || missing+=("aws-sam-cli==$SAM_CLI_VERSION")
  cargo lambda --version 2>/dev/null | grep -q "^cargo-lambda $CARGO_LAMBDA_VERSION " || missing+=("cargo-lambda==$CARGO_LAMBDA_VERSION")
  command -v cfn-lint >/dev/null 2>&1 || missing+=("cfn-lint")
  [ "${#missing[@]}" -eq 0 ] && return
  log "installing ${missing[*]} (deploy checks)"
  python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}" >&2
  hash -r
}

# The Rust standard library for Lambda's arm64 (Graviton) target.
ensure_arm64_target() {
  rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu && return
  log "adding the aarch64-unknown-linux-gnu Rust target"
  rustup target add aarch64-unknown-linux-gnu >&2
}

# qemu runs the arm64 binaries on this x86-64 machine; the arm64 C library is their loader.
ensure_arm64_emulation() {
  command -v qemu-aarch64-static >/dev/null 2>&1 && [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] && return
  log "installing qemu-user-static and libc6-arm64-cross (runs arm64 binaries)"
  apt_install qemu-user-static libc6-arm64-cross
}

# cargo-fuzz (scripts/fuzz) and the C++ compiler that builds libFuzzer. The targets build on
# stable Rust: without a sanitizer cargo-fuzz passes no -Z flag.
ensure_cargo_fuzz() {
  local root="$QGEN_CACHE/tools"
  command -v c++ >/dev/null 2>&1 || { log "installing g++ (builds libFuzzer)"; apt_install g++; }
  export PATH="$root/bin:$PATH"
  cargo fuzz --version >/dev/null 2>&1 && return
  log "installing cargo-fuzz into $root"
  cargo install cargo-fuzz --version 0.13.2 --locked --root "$root" >&2
}
