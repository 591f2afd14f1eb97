#!/bin/sh
# build_pack.sh - regenerates the default model pack (models/) from scratch:
# the data (models/gen/*.py), the three models (alignd pretrain ...), their
# checksums, and the metrics the model cards in models/README.md quote.
# `make models` runs it; about 30 minutes on 2 cores.
#
#   models/gen/build_pack.sh ALIGND_BINARY [WORK_DIR]
#
# WORK_DIR (default build/pack-work) keeps the generated data and logs.
# Every step is seeded: the same binary on the same machine gives the same
# files (another BLAS build or CPU may round differently in the last bits).
set -eu
command -v python3 >/dev/null 2>&1 || {
    echo "build_pack.sh: the generators need python3 (apt-get install python3)" >&2
    exit 1
}
ALIGND=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${2:-$ROOT/build/pack-work}
GEN=$ROOT/models/gen
OUT=$ROOT/models
mkdir -p "$WORK"
cd "$WORK"
THREADS=${THREADS:-$(nproc)}

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "data: stories, paraphrases, shapes"
python3 "$GEN/gen_stories.py" --bytes 4000000 --seed 1 --eot --out stories.txt \
    --heldout-out heldout.txt --heldout-bytes 200000 --stats
python3 "$GEN/gen_paraphrases.py" --n 1000 --seed 1 --out para.test.jsonl
python3 "$GEN/gen_paraphrases.py" --n 30000 --seed 2 --exclude para.test.jsonl \
    --out para.train.jsonl
python3 "$GEN/gen_shapes.py" --out shapes --n 40000 --size 32 --seed 1 --jobs "$THREADS"

step "story LM: alignd pretrain"
"$ALIGND" pretrain --corpus stories.txt -o "$OUT/story-lm.gguf" --vocab 1024 --ctx 256 \
    --embd 192 --layers 4 --heads 6 --steps 1200 --batch 16 --seq 128 --lr 2e-3 \
    --min-lr 1e-4 --seed 1 --name alignd-stories-2m --json -t "$THREADS" > lm.json
"$ALIGND" perplexity -m "$OUT/story-lm.gguf" -f heldout.txt --json -t "$THREADS" \
    > lm-perplexity.json

step "sentence embeddings: alignd pretrain embed"
"$ALIGND" pretrain embed -m "$OUT/story-lm.gguf" --data para.train.jsonl \
    --eval para.test.jsonl -o "$OUT/story-embed.gguf" --steps 600 --batch 32 \
    --negatives 2 --seed 1 --name alignd-stories-embed --json -t "$THREADS" > embed.json

step "shapes CLIP: alignd pretrain clip"
"$ALIGND" pretrain clip --data shapes -o "$OUT/shapes-clip" --steps 8000 --seed 1 --json \
    -t "$THREADS" > clip.json

step "checksums"
cd "$OUT"
find story-lm.gguf story-embed.gguf shapes-clip -type f | LC_ALL=C sort | \
    xargs sha256sum > SHA256SUMS
cat SHA256SUMS
du -ch story-lm.gguf story-embed.gguf shapes-clip | tail -1

step "metrics"
cd "$WORK"
python3 - <<'PY'
import json
lm = json.load(open("lm.json"))
ppl = json.load(open("lm-perplexity.json"))
em = json.load(open("embed.json"))
clip = json.load(open("clip.json"))
print(f"story LM: {lm['params']} parameters; held-out loss {lm['eval_loss']:.4f} nats/token "
      f"(unigram {lm['unigram_loss']:.4f}); perplexity on heldout.txt {ppl['ppl']:.3f} "
      f"({ppl['bits_per_byte']:.3f} bits/byte)")
print(f"embeddings: paraphrase retrieval top-1 {em['top1']:.3f} MRR {em['mrr']:.3f} "
      f"(the LM's mean-pooled states before: {em['top1_before']:.3f}; chance "
      f"{1 / (1 + em['eval_negatives']):.3f})")
zs = clip["zero_shot"]
print(f"CLIP: {clip['params']} parameters; zero-shot top-1 among {zs['classes']} prompts: "
      f"unseen colour-shape pairs {zs['unseen']['accuracy']:.3f} ({zs['unseen']['n']} images), "
      f"seen {zs['seen']['accuracy']:.3f} ({zs['seen']['n']}); chance {zs['chance']:.4f}")
PY
