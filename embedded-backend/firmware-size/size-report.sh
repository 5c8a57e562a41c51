#!/usr/bin/env bash
# Where the firmware's bytes and stack go: builds the empty and full firmware with the
# real release settings plus line tables (debug info does not change the code; the
# script checks that .text is identical to the plain build), then attributes every
# .text byte to a crate / source file / function through its inline chain, and lists
# the stack frame each function reserves.
# Usage: bash embedded-backend/firmware-size/size-report.sh   (after or without .ci/firmware)
#        FULL_FEATURES=wal-only bash embedded-backend/firmware-size/size-report.sh
#        (attributes that build instead of the full one: the WAL without checkpoints)
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
TARGET=thumbv7em-none-eabihf
BIN=$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin
OBJDUMP=$BIN/llvm-objdump
SYMBOLIZER=$(command -v llvm-symbolizer || true)
[ -x "$OBJDUMP" ] || { echo "needs llvm-tools: rustup component add llvm-tools"; exit 1; }
[ -n "$SYMBOLIZER" ] || { echo "needs llvm-symbolizer (apt-get install llvm)"; exit 1; }
DBG=target/size-report
plain=target/$TARGET/release
for variant in empty full; do
    feat=(${FULL_FEATURES:+--features "$FULL_FEATURES"}); [ "$variant" = empty ] && feat=(--features empty)
    cargo build -q --release "${feat[@]}"
    cp "$plain/firmware-size" "$plain/firmware-$variant.elf"
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR=$DBG cargo build -q --release "${feat[@]}"
    cp "$DBG/$TARGET/release/firmware-size" "$DBG/firmware-$variant.elf"
    a=$("$BIN/llvm-size" -A "$plain/firmware-$variant.elf" | awk '$1==".text"{print $2}')
    b=$("$BIN/llvm-size" -A "$DBG/firmware-$variant.elf" | awk '$1==".text"{print $2}')
    echo "$variant: .text $a B (plain release), $b B (with line tables)"
    [ "$a" = "$b" ] || echo "WARNING: line tables changed the code; attribution is approximate"
done
python3 attribution.py "$OBJDUMP" "$SYMBOLIZER" "$DBG/firmware-full.elf" "$DBG/firmware-empty.elf"
