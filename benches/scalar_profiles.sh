#!/usr/bin/env bash
# The scalar backend against RustCrypto aes-gcm built soft-only
# (benches/scalar_profiles.rs) in the four common build profiles: the crate's
# release profile, codegen-units = 1, codegen-units = 1 with thin LTO, and fat
# LTO. Each profile builds in its own target directory under BASE (default
# target/scalar-profiles), so reruns reuse their builds.
#
#   benches/scalar_profiles.sh [BASE] [-- BENCH ARGS...]    e.g. -- --rounds 50
#   CPU=0 benches/scalar_profiles.sh                        # pin elsewhere (default: CPU 1)
#   PROFILES="release fat-lto" benches/scalar_profiles.sh   # a subset
#
# The --cfg flags make RustCrypto's aes and polyval use their portable code;
# espgcm does not read them. Benches use the bench profile, which inherits
# release; both are set.
set -euo pipefail
cd "$(dirname "$0")/.."
base=target/scalar-profiles
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    base=$1
    shift
fi
if [ "${1:-}" = "--" ]; then shift; fi
bench_args=("$@")
export RUSTFLAGS='--cfg aes_backend="soft" --cfg polyval_backend="soft"'

profile_env() {
    local cgu1="CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_BENCH_CODEGEN_UNITS=1"
    case $1 in
        release) echo "" ;;
        codegen-units=1) echo "$cgu1" ;;
        codegen-units=1+thin-lto) echo "$cgu1 CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_BENCH_LTO=thin" ;;
        fat-lto) echo "CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_BENCH_LTO=fat" ;;
        *) echo "unknown profile $1" >&2; exit 2 ;;
    esac
}

for name in ${PROFILES:-release codegen-units=1 codegen-units=1+thin-lto fat-lto}; do
    # shellcheck disable=SC2046 # the profile's variables are words on purpose
    env $(profile_env "$name") CARGO_TARGET_DIR="$base/$name" cargo bench -q --bench scalar_profiles --no-run
    echo
    env $(profile_env "$name") CARGO_TARGET_DIR="$base/$name" taskset -c "${CPU:-1}" \
        cargo bench -q --bench scalar_profiles -- --label "$name" "${bench_args[@]}"
done
