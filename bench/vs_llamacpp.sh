#!/bin/sh
# vs_llamacpp.sh - alignd against llama.cpp in one run, on the same machine
# and the same GGUF files: a random llama of the 110M shape (768 wide, 12
# layers, vocab 32000, untied output; bench_decode --gen), and its Q8_0 and
# Q4_0 copies (alignd quantize, every matrix quantized like llama-quantize
# --pure). For each file: pp512 and tg128 at 2 threads, alignd's
# bench_decode against llama.cpp's llama-bench, as one table.
#
#   bench/vs_llamacpp.sh BUILD_DIR LLAMA_BIN_DIR [WORK_DIR]
#
# BUILD_DIR: an alignd build with benchmarks (bench/bench_decode, alignd).
# LLAMA_BIN_DIR: llama.cpp's bin folder with llama-bench, built elsewhere
# from its own sources (never part of this repository), e.g. with
# -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON. WORK_DIR keeps the model
# files (default /tmp/alignd-vs-llamacpp; about 720 MB).
set -eu
BUILD=$(realpath "$1")
LLAMA=$(realpath "$2")
WORK=${3:-/tmp/alignd-vs-llamacpp}
THREADS=${THREADS:-2}
mkdir -p "$WORK"
cd "$WORK"
[ -f f32.gguf ] || "$BUILD/bench/bench_decode" --gen f32.gguf >/dev/null
[ -f q8_0.gguf ] || "$BUILD/alignd" quantize f32.gguf q8_0.gguf q8_0 2>/dev/null
[ -f q4_0.gguf ] || "$BUILD/alignd" quantize f32.gguf q4_0.gguf q4_0 2>/dev/null

printf '| weights | test | alignd tokens/s | llama.cpp tokens/s | alignd / llama.cpp |\n'
printf '| --- | --- | ---: | ---: | ---: |\n'
for t in f32 q8_0 q4_0; do
    ours=$("$BUILD/bench/bench_decode" -m "$t.gguf" -p 512 -n 128 -s 1 -r 3 -t "$THREADS")
    theirs=$("$LLAMA/llama-bench" -m "$t.gguf" -p 512 -n 128 -t "$THREADS" -r 3 -o json 2>/dev/null)
    OURS="$ours" THEIRS="$theirs" T="$t" python3 - <<'PY'
import json, os, re
ours = {m.group(1): float(m.group(2))
        for m in re.finditer(r"^(pp512|tg128)\s+([\d.]+) tokens/s", os.environ["OURS"], re.M)}
theirs = {}
for r in json.loads(os.environ["THEIRS"]):
    key = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    theirs[key] = r["avg_ts"]
for k in ("pp512", "tg128"):
    a, b = ours.get(k, 0.0), theirs.get(k, 0.0)
    print(f"| {os.environ['T']} | {k} | {a:.1f} | {b:.1f} | {a / b if b else 0:.2f} |")
PY
    echo "$ours" | grep -E "GB/s" | sed "s/^/    ($t) /" >&2
done
