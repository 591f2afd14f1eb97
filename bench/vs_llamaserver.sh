#!/bin/sh
# vs_llamaserver.sh - alignd's HTTP serving against llama.cpp's llama-server
# in one run, on the same machine and the same GGUF file: streamed
# /v1/completions from bench/load_gen.py at concurrency 1, 4 and 16
# (distinct prompts of 64 tokens, 128 generated tokens each, EOS banned),
# each server with 16 sequence slots, 2 threads, continuous batching.
#
#   bench/vs_llamaserver.sh BUILD_DIR LLAMA_BIN_DIR MODEL.gguf [PORT]
#
# BUILD_DIR: an alignd build (alignd). LLAMA_BIN_DIR: llama.cpp's bin folder
# with llama-server, built elsewhere from its own sources (never part of
# this repository). MODEL: e.g. the 110M llama of bench/vs_llamacpp.sh
# (f32.gguf, q8_0.gguf, q4_0.gguf in its work folder).
set -eu
BUILD=$(realpath "$1")
LLAMA=$(realpath "$2")
MODEL=$(realpath "$3")
PORT=${4:-18431}
HERE=$(dirname "$(realpath "$0")")
THREADS=${THREADS:-2}
LEVELS=${LEVELS:-1,4,16}
OUT=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$OUT"' EXIT

wait_up() { # URL: until it answers 200 (60 s)
    i=0
    until python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 120 ] || { echo "server at $1 did not come up" >&2; exit 1; }
        sleep 0.5
    done
}

load() { # NAME: load_gen's JSON lines into $OUT/NAME
    python3 "$HERE/load_gen.py" --url "http://127.0.0.1:$PORT" --model m --concurrency "$LEVELS" \
        --requests-per-client 2 --prompt-tokens 64 --max-tokens 128 --json | grep '^{' > "$OUT/$1"
}

# in the scratch folder: the daemon's store (alignd.db) goes there
(cd "$OUT" && exec "$BUILD/alignd" --server.port="$PORT" --server.host=127.0.0.1 --model "m=$MODEL" \
    --model.m.n_ctx=512 --model.m.max_seqs=16 --model.m.threads="$THREADS" \
    --log.access=false >"$OUT/alignd.log" 2>&1) &
PID=$!
wait_up "http://127.0.0.1:$PORT/ready"
load alignd
kill $PID; wait $PID 2>/dev/null || true

"$LLAMA/llama-server" -m "$MODEL" --port "$PORT" --host 127.0.0.1 -t "$THREADS" -np 16 \
    -c $((16 * 512)) -cb >"$OUT/llama.log" 2>&1 &
PID=$!
wait_up "http://127.0.0.1:$PORT/health"
load llama
kill $PID; wait $PID 2>/dev/null || true

python3 - "$OUT/alignd" "$OUT/llama" "$(basename "$MODEL")" <<'PY'
import json, sys
rows = [[json.loads(l) for l in open(p) if l.strip()] for p in sys.argv[1:3]]
print(f"server throughput, {sys.argv[3]}: streamed completions, 64-token prompts, 128 tokens each")
print("| concurrency | alignd tokens/s | llama-server tokens/s | alignd / llama-server "
      "| TTFT p50 alignd / llama-server (ms) | ITL p50 alignd / llama-server (ms) |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
for a, b in zip(*rows):
    print(f"| {a['concurrency']} | {a['tokens_per_s']:.1f} | {b['tokens_per_s']:.1f} "
          f"| {a['tokens_per_s'] / b['tokens_per_s']:.2f} "
          f"| {a['ttft_p50_ms']:.0f} / {b['ttft_p50_ms']:.0f} | {a['itl_p50_ms']:.1f} / {b['itl_p50_ms']:.1f} |")
    for r, who in ((a, "alignd"), (b, "llama-server")):
        if r["errors"]:
            print(f"  {who}: {r['errors']} errors, first: {r['first_error']}")
PY
