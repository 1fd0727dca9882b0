#!/usr/bin/env bash
# npm run setup: idempotent set-up on a fresh machine. Installs what is missing, changes nothing else,
# and prints the versions it found. Only package registries are needed (npm, Go module proxy, Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { printf '[setup] %s\n' "$*"; }
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

# 1. Node packages (lockfile-exact when there is one) and the build.
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing node packages"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
else
  say "node packages up to date"
fi
npm run --silent build

# 2. Temporal CLI: TEMPORAL_CLI_PATH, PATH, or our own build under .tools/bin.
temporal_bin=""
if [ -n "${TEMPORAL_CLI_PATH:-}" ] && [ -x "$TEMPORAL_CLI_PATH" ]; then temporal_bin="$TEMPORAL_CLI_PATH";
elif command -v temporal >/dev/null 2>&1; then temporal_bin=$(command -v temporal);
elif [ -x "$root/.tools/bin/temporal" ]; then temporal_bin="$root/.tools/bin/temporal";
elif command -v go >/dev/null 2>&1 && [ -x "$(go env GOPATH)/bin/temporal" ]; then temporal_bin="$(go env GOPATH)/bin/temporal";
fi
if [ -z "$temporal_bin" ]; then
  if ! command -v go >/dev/null 2>&1; then
    say "ERROR: no temporal CLI and no Go toolchain to build it. Install Go (https://go.dev/dl) or put 'temporal' on PATH."; exit 3
  fi
  say "building the Temporal CLI (go install github.com/temporalio/cli/cmd/temporal@v1.5.1; a few minutes the first time)"
  # v1.5.1: later tags carry replace directives that go install refuses.
  GOBIN="$root/.tools/bin" go install github.com/temporalio/cli/cmd/temporal@v1.5.1
  temporal_bin="$root/.tools/bin/temporal"
fi

# 3. kallisto and sra-toolkit from Debian; isal's igzip inflates downloads at a third of zlib's CPU (optional at
#    run time: zlib otherwise, src/tools/inflate.ts; the tests use both); chromium renders `fetchquant report` pictures in the tests.
missing=()
command -v kallisto >/dev/null 2>&1 || missing+=(kallisto)
for t in fasterq-dump vdb-validate latf-load kar; do command -v $t >/dev/null 2>&1 || { missing+=(sra-toolkit); break; }; done
command -v igzip >/dev/null 2>&1 || missing+=(isal)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ -z "$sudo_cmd" ] || sudo -n true 2>/dev/null; then
    say "installing ${missing[*]} from Debian"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    say "ERROR: missing ${missing[*]}; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}"; exit 3
  fi
fi

# 4. amalgkit (optional): the downstream consumer, for the tests that run `amalgkit merge/sanity/quant` on our
# outputs. Only from the vendored wheel beside the checkout (amalgkit is not on PyPI); its dependencies come
# from PyPI. Never required: without the wheel or python3 >= 3.11 those tests skip, saying so.
amalgkit_line="not installed (tests that need it skip)"
wheel=$(ls "$root"/../shared/vendor/amalgkit-*-py3-none-any.whl 2>/dev/null | tail -1 || true)
if [ -x "$root/.tools/amalgkit/bin/amalgkit" ]; then
  amalgkit_line="$("$root/.tools/amalgkit/bin/python" -c 'import importlib.metadata as m; print(m.version("amalgkit"))' 2>/dev/null) ($root/.tools/amalgkit)"
elif [ -n "$wheel" ] && python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  say "installing amalgkit from $wheel into .tools/amalgkit (dependencies from PyPI)"
  if python3 -m venv "$root/.tools/amalgkit" && "$root/.tools/amalgkit/bin/pip" install -q "$wheel"; then
    amalgkit_line="$("$root/.tools/amalgkit/bin/python" -c 'import importlib.metadata as m; print(m.version("amalgkit"))') ($root/.tools/amalgkit)"
  else
    say "amalgkit could not be installed (see above); tests that need it skip"
    rm -rf "$root/.tools/amalgkit"
  fi
fi

say "node      $(node --version)"
say "temporal  $("$temporal_bin" --version 2>&1 | head -1)  ($temporal_bin)"
say "kallisto  $(kallisto version 2>&1 | head -1)"
say "igzip     $(igzip --version 2>&1 | head -1)"
say "chromium  $(chromium --version 2>/dev/null | head -1)"
say "fasterq-dump $(fasterq-dump --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1), vdb-validate $(command -v vdb-validate)"
say "amalgkit  $amalgkit_line"
say "ready: npm start runs the offline demo; npm test runs every test"
