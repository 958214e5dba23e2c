#!/bin/sh
# `tilenorm verify --tt-kernels` on the tt-metal tree TILENORM_TT_KERNELS names (skipped, exit 77,
# when unset). Passes when verify runs every case to its summary (exit 1 only for failed checks,
# which tt-train's backward kernels have) and every forward value — LayerNorm's y/mean/rstd and
# RMSNorm's y/rrms — lies within the registry's tile band: the forward kernels compute correctly,
# and only a sanitizer finding may fail a forward row. A missing kernel, a compile error or a
# crash fails it.
cli="$1"
if [ -z "$TILENORM_TT_KERNELS" ]; then
  echo 'skipped: TILENORM_TT_KERNELS is not set (a tt-metal tree holding tt-train norm kernels)'
  exit 77
fi
out=$("$cli" verify --tt-kernels "$TILENORM_TT_KERNELS" 2>&1)
rc=$?
printf '%s\n' "$out"
[ "$rc" -le 1 ] || { echo "verify_tt_kernels: verify exited $rc"; exit 1; }
printf '%s\n' "$out" | grep -q '^verify: [0-9]* outputs checked' ||
  { echo 'verify_tt_kernels: no summary line'; exit 1; }
printf '%s\n' "$out" | grep -q '^tt-train  *\(layernorm\|rmsnorm\)  *forward ' ||
  { echo 'verify_tt_kernels: no forward rows'; exit 1; }
bad=$(printf '%s\n' "$out" | grep '^tt-train  *\(layernorm\|rmsnorm\)  *forward ' |
  grep 'FAIL' | grep -v ' sanitizer ')
[ -z "$bad" ] || { printf 'verify_tt_kernels: forward values out of band:\n%s\n' "$bad"; exit 1; }
