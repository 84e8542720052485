#!/usr/bin/env bash
# The guest-side vhost-user-blk benchmark: tests/qemu/run-blk.sh --bench with these options
# (--backends ours,qsd --rounds 3 --secs 2 --size 128 --out build/qemu/blk-bench by default;
# see tests/qemu/run-blk.sh --help). Writes runs.csv and summary.md to the --out directory.
exec "$(dirname "$0")/run-blk.sh" --bench "$@"
