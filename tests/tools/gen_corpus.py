#!/usr/bin/env python3
"""gen_corpus.py - a deterministic synthetic English corpus for pretraining
tests and benchmarks: short children's-story paragraphs from a small
grammar (names, animals, places, actions, feelings), so a small model has
real structure to learn (agreement, repeated names, sentence shapes) and a
unigram model does not capture it.

usage: gen_corpus.py [--bytes N] [--seed S] > corpus.txt
"""
import argparse
import random
import sys

NAMES = ["Lily", "Tom", "Ben", "Mia", "Sam", "Anna", "Max", "Sue", "Tim", "Zoe"]
ANIMALS = ["cat", "dog", "bird", "fish", "frog", "duck", "bear", "rabbit"]
PLACES = ["park", "garden", "house", "forest", "river", "school", "beach", "farm"]
THINGS = ["ball", "kite", "box", "cake", "book", "hat", "flower", "toy"]
COLORS = ["red", "blue", "green", "yellow", "big", "small", "soft", "shiny"]
FEEL = ["happy", "sad", "scared", "tired", "excited", "proud"]
VERBS = ["played with", "looked at", "found", "shared", "carried", "liked"]


def paragraph(r):
    name, friend = r.sample(NAMES, 2)
    animal, place, thing = r.choice(ANIMALS), r.choice(PLACES), r.choice(THINGS)
    color, feel = r.choice(COLORS), r.choice(FEEL)
    s = [f"Once upon a time, there was a little {animal} named {name}."]
    s.append(f"{name} lived near the {place} with {friend}.")
    s.append(f"One day, {name} found a {color} {thing} in the {place}.")
    for _ in range(r.randint(1, 3)):
        v = r.choice(VERBS)
        who = r.choice([name, friend])
        s.append(f"{who} {v} the {color} {thing}.")
    s.append(f"{friend} said, \"I like your {thing}, {name}!\"")
    s.append(f"{name} felt {feel}, and they went home together.")
    return " ".join(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    r = random.Random(a.seed)
    n = 0
    out = []
    while n < a.bytes:
        p = paragraph(r) + "\n\n"
        out.append(p)
        n += len(p)
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
