#!/usr/bin/env bash
# Installs what casework needs on Debian 12 (bookworm), as root or with sudo.
# Quick when everything is there already: apt-get runs only for missing packages.
#   scripts/deps.sh          build and run dependencies
#   scripts/deps.sh --test   also the test tools (buf from npm, Python gRPC, clang)
set -euo pipefail

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev rocksdb-tools libabsl-dev libssl-dev libsodium-dev
  libcli11-dev libspdlog-dev nlohmann-json3-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  golang-github-gogo-googleapis-dev
)
if (( want_test )); then
  packages+=(clang libclang-rt-14-dev python3 python3-grpcio python3-protobuf
             python3-cryptography)
  command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: run as root or install sudo" >&2; exit 1; }
  sudo_cmd=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if (( want_test )); then
  # buf (proto lint and breaking-change checks) ships as a binary inside its npm package.
  root=$(cd "$(dirname "$0")/.." && pwd)
  buf_version=1.75.0
  if [[ ! -x "$root/.cache/npm/node_modules/.bin/buf" ]] ||
     [[ "$("$root/.cache/npm/node_modules/.bin/buf" --version 2>/dev/null)" != "$buf_version" ]]; then
    echo "deps: installing @bufbuild/buf@$buf_version from npm"
    mkdir -p "$root/.cache/npm"
    npm_log=$(mktemp)
    if ! npm install --no-audit --no-fund --prefix "$root/.cache/npm" \
      "@bufbuild/buf@$buf_version" >"$npm_log" 2>&1; then
      cat "$npm_log" >&2
      rm -f "$npm_log"
      echo "deps: npm could not install @bufbuild/buf@$buf_version (its messages are above);" \
        "check that the npm registry is reachable and its certificate trusted" >&2
      exit 1
    fi
    rm -f "$npm_log"
  fi
fi
