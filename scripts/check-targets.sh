#!/usr/bin/env bash
# Keeps the crate building for the platforms that have no prebuilt binary yet, so Linux-only code
# stays behind cfg: `cargo clippy -D warnings`, with the Node binding, for macOS (Intel and Apple
# silicon) and Windows. Nothing is linked or run. Each target needs its standard library
# (`rustup target add`); where rustup cannot download it, that target is reported SKIPPED.
set -euo pipefail
cd "$(dirname "$0")/.."
for target in x86_64-apple-darwin aarch64-apple-darwin x86_64-pc-windows-msvc; do
  if ! rustup target list --installed | grep -qx "$target"; then
    if ! timeout 300 rustup target add "$target" >/dev/null 2>&1; then
      echo "check-targets: SKIPPED $target: rustup could not install its standard library"
      continue
    fi
  fi
  echo "check-targets: $target"
  cargo clippy --workspace --all-targets --features node --target "$target" -- -D warnings
done
