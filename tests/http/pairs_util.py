"""Synthetic preference pairs on stories260K, shared by the HTTP tests that
train (test_train_dpo.py, test_training_loop.py).

The preference rule: a completion that says "happy" is preferred to one
that does not. Pairs are drawn on-policy, as the feedback loop collects
them: per prompt, seeded samples of the base model through the daemon's
API. The base model rarely says "happy", so the preferred sample is drawn
after "felt happy" (same length and style as the others: only the word
differs, no shortcut for a reward model to learn).

Standard library only.
"""
import json

NAMES = ["Lily", "Tom", "Ben", "Mia", "Sam", "Anna", "Max", "Sue", "Tim", "Zoe"]
THINGS = ["ball", "cat", "dog", "box", "toy", "cake", "car", "flower"]
# prompts for measuring the share of "happy" samples (not in the pairs)
PROBE = [("Zoe", "ball"), ("Tim", "cake"), ("Kim", "kite"), ("Jack", "hat")]


def prompt(name, thing):
    return f"Once upon a time, {name} found a {thing}. {name} felt"


def probe_prompts():
    return [prompt(n, t) for n, t in PROBE]


def sample(d, model, text, max_tokens, seed, timeout=60):
    """One seeded completion (temperature 1) through POST /v1/completions."""
    status, _, b = d.json("POST", "/v1/completions", {
        "model": model, "prompt": text, "max_tokens": max_tokens,
        "temperature": 1.0, "seed": seed}, timeout=timeout)
    assert status == 200, b
    return b["choices"][0]["text"]


def on_policy_pairs(d, model="stories", names=NAMES, things=THINGS[::2], per_prompt=6,
                    eval_from=8):
    """Pairs from daemon d's model: per prompt (name x thing), per_prompt
    seeded samples; each that does not say "happy" is the rejected side of
    a pair whose chosen side continues "felt happy" with the same seed.
    Names from index eval_from on get "split": "eval"."""
    out = []
    for i, n in enumerate(names):
        for j, t in enumerate(things):
            p = prompt(n, t)
            for k in range(per_prompt):
                seed = 1000 * i + 10 * j + k
                bad = sample(d, model, p, 8, seed)
                if "happy" in bad:
                    continue
                good = " happy" + sample(d, model, p + " happy", 7, seed)
                out.append({"prompt": p, "chosen": good, "rejected": bad,
                            "split": "eval" if i >= eval_from else "train"})
    return out


def write_jsonl(path, pairs):
    with open(path, "w") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")


def post_feedback(d, pairs, model=None, batch=100):
    """Stores pairs through POST /v1/feedback (array bodies of at most
    batch items; "split" is the store's to choose). Returns the ids."""
    ids = []
    for i in range(0, len(pairs), batch):
        items = []
        for p in pairs[i:i + batch]:
            it = {"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
            if model:
                it["model"] = model
            items.append(it)
        status, _, b = d.json("POST", "/v1/feedback", items, timeout=60)
        assert status in (200, 201), b
        ids += [x["id"] for x in b["data"]]
    return ids


def happy_share(d, model, seeds=32, max_tokens=8, prompts=None):
    """Share of seeded samples (temperature 1) that say "happy"."""
    prompts = prompts or probe_prompts()
    hits = 0
    for seed in range(seeds):
        hits += "happy" in sample(d, model, prompts[seed % len(prompts)], max_tokens, seed)
    return hits / seeds
