#!/usr/bin/env python3
"""gen_paraphrases.py - a held-out sentence-retrieval set from the story world.

usage: gen_paraphrases.py --n N --seed S [--negatives K] [--exclude FILE]
                          [--out FILE]

Writes N JSON lines (to stdout, or --out FILE), each

  {"query": "Tom gave Lily a red ball.",
   "positive": "Lily got a red ball from Tom.",
   "negatives": ["Lily gave Tom a red ball.", "Tom gave Lily a blue ball.", ...],
   "kind": "give", "negative_kinds": ["swap", "color", ...]}

The query and the positive say the same thing in different words (synonyms,
active/passive, a converse relation, reordered clauses); every negative
shares most of its words with the query or the positive but means something
else: roles swapped (Tom gave Lily / Lily gave Tom, the bear was bigger than
the fox / the fox was bigger than the bear), another object, colour, place,
feeling or cause, the opposite action (found/lost), the order of two events
reversed, the cause and effect reversed. Sentences are built from a meaning
(a small frame) by one of several wordings: a negative is a wording of a
different meaning, so it is never a paraphrase of the query. The names,
things, places and feelings are those of the story corpus (world.py), so a
model pretrained on gen_stories.py output knows every word.

Kinds: give, find (found/lost), feeling (a feeling and its cause), help,
chase (two animals), compare (bigger/smaller, faster/slower...), place
(on/under, in front of/behind...), order (two events, before/after),
owner (belonged to/owned), weather (the weather and what someone did),
count (who had how many).

Metric (what README.md calls the paraphrase score): for each item, embed the
query, the positive and the negatives, and score each candidate by cosine
similarity with the query; the item counts as correct when the positive
scores strictly higher than every negative. Top-1 accuracy over the items;
chance is 1/(1+K) (0.2 with the default K=4). Report it per kind as well
("kind"), and optionally the mean reciprocal rank of the positive.

--exclude FILE skips every item whose query or positive is a query or
positive in FILE (an earlier output), so a training set and a test set
drawn with two seeds can be made disjoint.

Determinism: random.Random(S), only choice/randrange/random/shuffle on
lists, no sets iterated, output written as UTF-8: the same bytes on any
Python 3.9+.
"""
import argparse
import json
import os
import random
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree (installed as is)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import world as W  # noqa: E402
from world import a, cap  # noqa: E402


# --- people and things -----------------------------------------------------------
def person(r, exclude=()):
    while True:
        k = r.randrange(10)
        if k < 4:
            p = (r.choice(W.GIRLS), "she")
        elif k < 8:
            p = (r.choice(W.BOYS), "he")
        elif k < 9:
            p = (r.choice(W.KIDS_THEY), "they")
        else:
            p = r.choice(W.PET_NAMES)
        if p[0] not in exclude:
            return p


def other_color(r, c):
    while True:
        x = r.choice(W.COLORS)
        if x != c:
            return x


def other(r, seq, x):
    while True:
        y = r.choice(seq)
        if y != x:
            return y


def poss(p):
    return W.PRONOUNS[p[1]]["p"]


def subj_be(p):
    """'she was', 'they were'"""
    pr = W.PRONOUNS[p[1]]
    return f"{pr['s']} {pr['be']}"


# Every kind: sample(r) -> frame (a tuple: the meaning), styles(f) -> list of
# functions frame -> sentence (the wordings of that meaning), and
# perturb(r, f) -> [(negative kind, frame)] (other meanings). A frame and its
# perturbations are always different meanings.
class Give:
    name = "give"

    def sample(self, r, x=None, y=None):
        x = x or person(r)
        y = y or person(r, (x[0],))
        return ("give", x, y, r.choice(W.COLORS), r.choice(W.ITEMS))

    def styles(self, f):
        if f[0] == "take":  # x took the thing from y
            _, x, y, c, n = f
            return [lambda: f"{x[0]} took {a(c + ' ' + n)} from {y[0]}.",
                    lambda: f"{x[0]} grabbed {a(c + ' ' + n)} from {y[0]}.",
                    lambda: f"{a(c + ' ' + n)} was taken from {y[0]} by {x[0]}."]
        _, x, y, c, n = f
        obj = a(c + " " + n)
        return [lambda: f"{x[0]} gave {y[0]} {obj}.",
                lambda: f"{x[0]} gave {obj} to {y[0]}.",
                lambda: f"{y[0]} got {obj} from {x[0]}.",
                lambda: f"{y[0]} was given {obj} by {x[0]}.",
                lambda: f"{x[0]} handed {obj} to {y[0]}.",
                lambda: f"{obj} was given to {y[0]} by {x[0]}.",
                lambda: f"{y[0]} received {obj} from {x[0]}."]

    def perturb(self, r, f):
        _, x, y, c, n = f
        return [("swap", ("give", y, x, c, n)),
                ("color", ("give", x, y, other_color(r, c), n)),
                ("object", ("give", x, y, c, other(r, W.ITEMS, n))),
                ("person", ("give", x, person(r, (x[0], y[0])), c, n)),
                ("action", ("take", x, y, c, n))]


class Find:
    name = "find"

    def sample(self, r, x=None, y=None):
        pl = r.choice(W.PLACES)
        return (r.choice(("found", "lost")), x or person(r), r.choice(W.COLORS),
                r.choice(W.ITEMS), pl[1] + " the " + pl[0])

    def styles(self, f):
        v, x, c, n, at = f
        obj = a(c + " " + n)
        if v == "found":
            return [lambda: f"{x[0]} found {obj} {at}.",
                    lambda: f"{cap(at)}, {x[0]} found {obj}.",
                    lambda: f"{cap(obj)} was found {at} by {x[0]}.",
                    lambda: f"{x[0]} discovered {obj} {at}.",
                    lambda: f"{cap(at)}, {x[0]} came across {obj}."]
        p = poss(x)
        return [lambda: f"{x[0]} lost {p} {c} {n} {at}.",
                lambda: f"{cap(at)}, {x[0]} lost {p} {c} {n}.",
                lambda: f"{x[0]}'s {c} {n} got lost {at}.",
                lambda: f"{x[0]}'s {c} {n} went missing {at}."]

    def perturb(self, r, f):
        v, x, c, n, at = f
        pl = r.choice(W.PLACES)
        at2 = pl[1] + " the " + pl[0]
        if at2 == at:
            at2 = "under the bed" if "bed" not in at else "behind the sofa"
        return [("action", ("lost" if v == "found" else "found", x, c, n, at)),
                ("place", (v, x, c, n, at2)),
                ("color", (v, x, other_color(r, c), n, at)),
                ("object", (v, x, c, other(r, W.ITEMS, n), at)),
                ("person", (v, person(r, (x[0],)), c, n, at))]


FEEL_GROUPS = (("happy", "glad", "cheerful"), ("sad", "unhappy", "upset"),
               ("scared", "afraid", "frightened"), ("angry", "cross", "mad"),
               ("worried", "nervous"), ("proud",), ("surprised",), ("tired", "sleepy"))
GOOD = ("happy", "proud", "surprised")
# causes: (the wordings of one event that happened to the thing, good event?)
CAUSES = ((("broke", "was broken", "fell apart"), False),
          (("got lost", "went missing", "was lost"), False),
          (("flew away", "was blown away"), False),
          (("got wet", "was soaked"), False),
          (("was found", "turned up again"), True),
          (("was fixed", "was repaired"), True),
          (("came back", "was returned"), True))
FEEL_OBJECTS = ("kite", "ball", "doll", "toy car", "bike", "balloon", "teddy bear",
                "boat", "hat", "picture", "sandcastle", "robot", "puppet", "drum")


class Feeling:
    name = "feeling"

    def sample(self, r, x=None, y=None):
        cause = r.randrange(len(CAUSES))
        good = CAUSES[cause][1]
        pool = [i for i, g in enumerate(FEEL_GROUPS) if (g[0] in GOOD) == good]
        # a feeling that fits the cause (most of the time)
        feel = r.choice(pool) if r.random() < 0.85 else r.randrange(len(FEEL_GROUPS))
        return ("feel", x or person(r), feel, r.choice(FEEL_OBJECTS), cause, None)

    def styles(self, f):
        kind, x, g, obj, ci, owner = f
        feel = FEEL_GROUPS[g]
        ev = CAUSES[ci][0]
        f1, f2 = feel[0], feel[-1]
        e1, e2 = ev[0], ev[-1]
        pr = W.PRONOUNS[x[1]]
        if kind == "reversed":  # the feeling caused the event
            return [lambda: f"{x[0]}'s {obj} {e1} because {subj_be(x)} {f1}.",
                    lambda: f"Because {x[0]} was {f1}, {pr['p']} {obj} {e1}.",
                    lambda: f"{x[0]} was {f2}, and that was why {pr['p']} {obj} {e2}."]
        whose = f"{owner[0]}'s" if owner else pr["p"]
        whose_n = f"{owner[0]}'s" if owner else f"{x[0]}'s"
        return [lambda: f"{x[0]} was {f1} because {whose} {obj} {e1}.",
                lambda: f"Because {whose} {obj} {e2}, {x[0]} felt {f2}.",
                lambda: f"{whose_n} {obj} {e1}, so {x[0] + ' was' if owner else subj_be(x)} {f1}.",
                lambda: f"{whose_n} {obj} {e2}, which made {x[0] if owner else pr['o']} {f2}.",
                lambda: f"{x[0]} felt {f2} since {whose} {obj} {e2}."]

    def perturb(self, r, f):
        kind, x, g, obj, ci, owner = f
        g_opp = [i for i, grp in enumerate(FEEL_GROUPS)
                 if (grp[0] in GOOD) != (FEEL_GROUPS[g][0] in GOOD)]
        c_other = [i for i in range(len(CAUSES)) if i != ci]
        return [("feeling", (kind, x, r.choice(g_opp), obj, ci, owner)),
                ("cause", (kind, x, g, obj, r.choice(c_other), owner)),
                ("object", (kind, x, g, other(r, FEEL_OBJECTS, obj), ci, owner)),
                ("owner", (kind, x, g, obj, ci, person(r, (x[0],)))),
                ("reversed", ("reversed", x, g, obj, ci, None))]


TASKS = (("carry", "carried", "carrying", "the heavy basket"),
         ("fix", "fixed", "fixing", "the old bike"),
         ("paint", "painted", "painting", "the fence"),
         ("clean", "cleaned", "cleaning", "the kitchen"),
         ("build", "built", "building", "a sandcastle"),
         ("find", "found", "finding", "the lost key"),
         ("bake", "baked", "baking", "a cake"), ("plant", "planted", "planting", "the flowers"),
         ("wash", "washed", "washing", "the dishes"), ("fly", "flew", "flying", "the new kite"),
         ("open", "opened", "opening", "the big box"),
         ("climb", "climbed", "climbing", "the tall tree"))


class Help:
    name = "help"

    def sample(self, r, x=None, y=None):
        x = x or person(r)
        return ("help", x, y or person(r, (x[0],)), r.randrange(len(TASKS)))

    def styles(self, f):
        _, x, y, t = f
        base, past, ing, obj = TASKS[t]
        return [lambda: f"{x[0]} helped {y[0]} {base} {obj}.",
                lambda: f"{y[0]} was helped by {x[0]} to {base} {obj}.",
                lambda: f"With {x[0]}'s help, {y[0]} {past} {obj}.",
                lambda: f"{y[0]} got help from {x[0]} with {ing} {obj}.",
                lambda: f"{x[0]} gave {y[0]} a hand {ing} {obj}."]

    def perturb(self, r, f):
        _, x, y, t = f
        t2 = other(r, range(len(TASKS)), t)
        return [("swap", ("help", y, x, t)),
                ("task", ("help", x, y, t2)),
                ("person", ("help", x, person(r, (x[0], y[0])), t)),
                ("person", ("help", person(r, (x[0], y[0])), y, t))]


CHASE_VERBS = (("chased", "ran after", "was chased by"),
               ("followed", "went after", "was followed by"),
               ("pushed", "gave a push to", "was pushed by"),
               ("woke up", "woke", "was woken up by"),
               ("splashed", "splashed water on", "was splashed by"),
               ("tickled", "tickled", "was tickled by"))


class Chase:
    name = "chase"

    def sample(self, r, x=None, y=None):
        s1 = r.choice(W.SPECIES)
        return ("act", s1, other(r, W.SPECIES, s1), r.randrange(len(CHASE_VERBS)))

    def styles(self, f):
        _, s1, s2, v = f
        act, alt, pas = CHASE_VERBS[v]
        return [lambda: f"The {s1} {act} the {s2}.",
                lambda: f"The {s2} {pas} the {s1}.",
                lambda: f"It was the {s1} that {act} the {s2}.",
                lambda: f"The {s1} {alt} the {s2}."]

    def perturb(self, r, f):
        _, s1, s2, v = f
        return [("swap", ("act", s2, s1, v)),
                ("swap", ("act", s2, s1, v)),
                ("animal", ("act", s1, other(r, [s for s in W.SPECIES if s != s1], s2), v)),
                ("action", ("act", s1, s2, other(r, range(len(CHASE_VERBS)), v)))]


COMPARE = (("bigger", "smaller", "not as big as"), ("taller", "shorter", "not as tall as"),
           ("faster", "slower", "not as fast as"), ("older", "younger", "not as old as"),
           ("heavier", "lighter", "not as heavy as"), ("louder", "quieter", "not as loud as"))


class Compare:
    name = "compare"

    def sample(self, r, x=None, y=None):
        s1 = r.choice(W.SPECIES)
        return ("cmp", s1, other(r, W.SPECIES, s1), r.randrange(len(COMPARE)))

    def styles(self, f):
        _, s1, s2, k = f  # s1 is more (bigger...) than s2
        more, less, notas = COMPARE[k]
        return [lambda: f"The {s1} was {more} than the {s2}.",
                lambda: f"The {s2} was {less} than the {s1}.",
                lambda: f"The {s2} was {notas} the {s1}.",
                lambda: f"Next to the {s2}, the {s1} was {more}."]

    def perturb(self, r, f):
        _, s1, s2, k = f
        return [("swap", ("cmp", s2, s1, k)), ("swap", ("cmp", s2, s1, k)),
                ("relation", ("cmp", s1, s2, other(r, range(len(COMPARE)), k))),
                ("animal", ("cmp", s1, other(r, [s for s in W.SPECIES if s != s1], s2), k))]


RELATIONS = (("on", "under"), ("in front of", "behind"), ("to the left of", "to the right of"),
             ("above", "below"))
PLACE_OBJECTS = ("cup", "box", "ball", "book", "basket", "hat", "lamp", "clock", "bucket",
                 "drum", "teddy bear", "kettle", "bag", "blanket", "stone", "shell")


class Place:
    name = "place"

    def sample(self, r, x=None, y=None):
        o1 = r.choice(PLACE_OBJECTS)
        return ("rel", o1, other(r, PLACE_OBJECTS, o1), r.randrange(len(RELATIONS)))

    def styles(self, f):
        _, o1, o2, k = f  # o1 REL o2
        rel, inv = RELATIONS[k]
        return [lambda: f"The {o1} was {rel} the {o2}.",
                lambda: f"The {o2} was {inv} the {o1}.",
                lambda: f"{cap(rel)} the {o2}, there was the {o1}.",
                lambda: f"Someone had put the {o1} {rel} the {o2}."]

    def perturb(self, r, f):
        _, o1, o2, k = f
        return [("swap", ("rel", o2, o1, k)), ("swap", ("rel", o2, o1, k)),
                ("relation", ("rel", o1, o2, other(r, range(len(RELATIONS)), k))),
                ("object", ("rel", o1, other(r, [o for o in PLACE_OBJECTS if o != o1], o2), k))]


EVENTS = (("ate breakfast", "eating breakfast"), ("brushed {p} teeth", "brushing {p} teeth"),
          ("went to the park", "going to the park"), ("read a book", "reading a book"),
          ("took a bath", "taking a bath"), ("fed the cat", "feeding the cat"),
          ("put on {p} boots", "putting on {p} boots"), ("played outside", "playing outside"),
          ("packed {p} bag", "packing {p} bag"), ("watered the flowers", "watering the flowers"),
          ("drew a picture", "drawing a picture"), ("called Grandma", "calling Grandma"))


class Order:
    name = "order"

    def sample(self, r, x=None, y=None):
        e1 = r.randrange(len(EVENTS))
        return ("order", x or person(r), e1, other(r, range(len(EVENTS)), e1))

    def styles(self, f):
        _, x, e1, e2 = f  # e1 happened first
        pr = W.PRONOUNS[x[1]]
        p1, g1 = (s.format(p=pr["p"]) for s in EVENTS[e1])
        p2, g2 = (s.format(p=pr["p"]) for s in EVENTS[e2])
        return [lambda: f"{x[0]} {p1} and then {p2}.",
                lambda: f"{x[0]} {p1} before {pr['s']} {p2}.",
                lambda: f"After {x[0]} {p1}, {pr['s']} {p2}.",
                lambda: f"Before {x[0]} {p2}, {pr['s']} {p1}.",
                lambda: f"First {x[0]} {p1}, and later {pr['s']} {p2}.",
                lambda: f"After {g1}, {x[0]} {p2}."]

    def perturb(self, r, f):
        _, x, e1, e2 = f
        e3 = other(r, [i for i in range(len(EVENTS)) if i != e1], e2)
        return [("order", ("order", x, e2, e1)), ("order", ("order", x, e2, e1)),
                ("event", ("order", x, e1, e3)),
                ("person", ("order", person(r, (x[0],)), e1, e2))]


class Owner:
    name = "owner"

    def sample(self, r, x=None, y=None):
        return ("own", x or person(r), r.choice(W.COLORS), r.choice(W.ITEMS))

    def styles(self, f):
        _, x, c, n = f
        return [lambda: f"The {c} {n} belonged to {x[0]}.",
                lambda: f"{x[0]} owned the {c} {n}.",
                lambda: f"The {c} {n} was {x[0]}'s.",
                lambda: f"{x[0]} was the owner of the {c} {n}."]

    def perturb(self, r, f):
        _, x, c, n = f
        return [("person", ("own", person(r, (x[0],)), c, n)),
                ("color", ("own", x, other_color(r, c), n)),
                ("object", ("own", x, c, other(r, W.ITEMS, n))),
                ("color", ("own", x, other_color(r, c), n))]


# weather: (name, "it rained" wordings, "it was raining" wording, "the rain")
WEATHER = (("rain", "it rained", "it was raining", "the rain"),
           ("snow", "it snowed", "it was snowing", "the snow"),
           ("wind", "the wind blew hard", "it was very windy", "the wind"),
           ("sun", "the sun was shining", "it was sunny", "the sunshine"),
           ("fog", "it was foggy", "there was a thick fog", "the fog"))
DOINGS = ("stayed inside", "took an umbrella", "jumped in the puddles", "built a snowman",
          "went sledding", "flew a kite", "had a picnic", "went swimming", "wore a warm hat",
          "walked slowly", "read by the fire", "played in the garden")


class Weather:
    name = "weather"

    def sample(self, r, x=None, y=None):
        return ("wx", x or person(r), r.randrange(len(WEATHER)), r.randrange(len(DOINGS)), True)

    def styles(self, f):
        _, x, w, d, did = f
        _, s1, s2, noun = WEATHER[w]
        do = DOINGS[d]
        if not did:
            dont = "did not " + {"stayed": "stay", "took": "take", "jumped": "jump",
                                 "built": "build", "went": "go", "flew": "fly", "had": "have",
                                 "wore": "wear", "walked": "walk", "read": "read",
                                 "played": "play"}[do.split()[0]] + do[do.index(" "):]
            return [lambda: f"{cap(s1)}, but {x[0]} {dont}.",
                    lambda: f"Although {s2}, {x[0]} {dont}."]
        return [lambda: f"{cap(s1)}, so {x[0]} {do}.",
                lambda: f"{x[0]} {do} because {s2}.",
                lambda: f"Because of {noun}, {x[0]} {do}.",
                lambda: f"{cap(s2)}, and that was why {x[0]} {do}."]

    def perturb(self, r, f):
        _, x, w, d, did = f
        return [("weather", ("wx", x, other(r, range(len(WEATHER)), w), d, did)),
                ("action", ("wx", x, w, other(r, range(len(DOINGS)), d), did)),
                ("negation", ("wx", x, w, d, not did)),
                ("person", ("wx", person(r, (x[0],)), w, d, did))]


COUNT_FOODS = ("apple", "cookie", "cherry", "muffin", "pear", "plum", "carrot",
               "strawberry", "pancake", "bun")


class Count:
    name = "count"

    def sample(self, r, x=None, y=None):
        x = x or person(r)
        n1 = r.randrange(1, 9)
        return ("count", x, n1, y or person(r, (x[0],)), other(r, range(1, 9), n1),
                r.choice(COUNT_FOODS))

    def styles(self, f):
        _, x, n1, y, n2, food = f
        w1, w2 = W.NUMBER_WORDS[n1], W.NUMBER_WORDS[n2]
        f1 = W.plural(food) if n1 > 1 else food
        f2 = W.plural(food) if n2 > 1 else food
        more = x[0] if n1 > n2 else y[0]
        return [lambda: f"{x[0]} had {w1} {f1}, and {y[0]} had {w2}.",
                lambda: f"{y[0]} had {w2} {f2}, and {x[0]} had {w1}.",
                lambda: f"There were {w1} {f1} for {x[0]} and {w2} for {y[0]}.",
                lambda: f"{x[0]} had {w1} {f1}, while {y[0]} had {w2} {f2}, so {more} had more."]

    def perturb(self, r, f):
        _, x, n1, y, n2, food = f
        return [("swap", ("count", x, n2, y, n1, food)), ("swap", ("count", x, n2, y, n1, food)),
                ("number", ("count", x, other(r, [i for i in range(1, 9) if i != n2], n1), y, n2,
                            food)),
                ("object", ("count", x, n1, y, n2, other(r, COUNT_FOODS, food)))]


KINDS = (Give(), Find(), Feeling(), Help(), Chase(), Compare(), Place(), Order(), Owner(),
         Weather(), Count())


def item(r, k_neg):
    """One retrieval item, or None when this draw gives too few distinct
    negatives (then the caller draws again)."""
    kind = r.choice(KINDS)
    f = kind.sample(r)
    styles = kind.styles(f)
    order = list(range(len(styles)))
    r.shuffle(order)
    qs, ps = order[0], order[1]
    query, positive = cap(styles[qs]()), cap(styles[ps]())
    if query == positive:
        return None
    cands = kind.perturb(r, f)
    r.shuffle(cands)
    negs, kinds = [], []
    # each negative is worded like the query or like the positive (or as any
    # wording of its meaning), so it shares most of the words of one of them
    for i, (nk, g) in enumerate(cands * 3):
        if len(negs) >= k_neg:
            break
        if g == f:
            continue
        gs = kind.styles(g)
        pick = (qs, ps, None)[i % 3]
        s = cap(gs[pick]() if pick is not None and pick < len(gs) else r.choice(gs)())
        if s in negs or s == query or s == positive:
            continue
        negs.append(s)
        kinds.append(nk)
    if len(negs) < k_neg:
        return None
    return {"query": query, "positive": positive, "negatives": negs, "kind": kind.name,
            "negative_kinds": kinds}


def items(seed, n, k_neg=4, exclude=None):
    r = random.Random(seed)
    seen = set(exclude or ())
    out = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise SystemExit(f"gen_paraphrases: could only make {len(out)} distinct items")
        it = item(r, k_neg)
        if it is None or it["query"] in seen or it["positive"] in seen:
            continue
        seen.add(it["query"])
        seen.add(it["positive"])
        out.append(it)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--negatives", type=int, default=4)
    ap.add_argument("--exclude")
    ap.add_argument("--out")
    a_ = ap.parse_args(argv)
    if a_.n < 0 or not 1 <= a_.negatives <= 4:
        ap.error("--n must be >= 0 and --negatives between 1 and 4")
    excl = []
    if a_.exclude:
        with open(a_.exclude, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    d = json.loads(line)
                    excl += [d["query"], d["positive"]]
    rows = items(a_.seed, a_.n, a_.negatives, excl)
    data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows).encode("utf-8")
    if a_.out:
        with open(a_.out, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)


if __name__ == "__main__":
    main()
