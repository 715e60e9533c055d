#!/usr/bin/env bash
# Fuzzes the filter parser and its SQL compiler with libFuzzer for 10 minutes (the data-API
# issue's bar: no panic in 10 minutes). Not part of CI: it needs cargo-fuzz and nightly-only
# compiler flags, which RUSTC_BOOTSTRAP enables on the stable toolchain.
#
#   bench/fuzz.sh                # 600 s
#   SECONDS_TO_RUN=60 bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
SECONDS_TO_RUN=${SECONDS_TO_RUN:-600}
mkdir -p fuzz/corpus/filter_parse
# A few real filters as seeds, so the fuzzer starts from the grammar rather than noise.
printf '%s' "title = 'a' && tags:each ?= 'b'" > fuzz/corpus/filter_parse/seed1
printf '%s' "(author.email ~ \"x\" || @request.auth.id != '') && created >= @todayStart" > fuzz/corpus/filter_parse/seed2
printf '%s' "geoDistance(1, 2, 3, 4) < 10 && strftime('%Y', created) = '2024'" > fuzz/corpus/filter_parse/seed3
RUSTC_BOOTSTRAP=1 cargo fuzz run filter_parse fuzz/corpus/filter_parse -- -max_total_time="$SECONDS_TO_RUN" -max_len=4096
echo "no panic in ${SECONDS_TO_RUN}s"
