#!/usr/bin/env python3
"""gen_stories.py - a deterministic children's-story corpus for pretraining.

Each paragraph is one complete little story (5-12 sentences, one line)
followed by a blank line: a plot template (lost and found, sharing, a change
in the weather, helping an animal, building something that falls down, a
fear overcome, a quarrel and taking turns, an exploration, a gift, learning
a skill, baking, a race, a bedtime, a short walk, a day of small events
told in the wordings of gen_paraphrases.py) filled from the world in world.py:
children, named animals and grown-ups with their pronouns (he/she/they),
places with their hiding spots, things with colours and adjectives,
feelings with their causes, weather, and dialogue in double quotes.
Narration is in the past tense; dialogue is in the present tense.

usage: gen_stories.py --bytes N --seed S [--heldout-out FILE]
                      [--heldout-bytes M] [--chinese-share X] [--eot]
                      [--out FILE]

  --bytes N          size of the corpus in bytes (UTF-8): whole stories only,
                     at most N bytes and at least N minus one story
  --seed S           integer seed (default 1)
  --heldout-out FILE also write held-out stories to FILE: an independent
                     stream (seeded from "heldout:S"), never a story that is
                     also in the corpus
  --heldout-bytes M  size of the held-out file (default N/10)
  --chinese-share X  share of the stories written in simple Chinese
                     (default 0: English only)
  --eot              end each story with <|endoftext|> (the document separator
                     of `alignd pretrain`) instead of the blank line only
  --out FILE         write the corpus there instead of stdout
  --stats            print bytes/s and the number of distinct words to stderr

Determinism: the output depends only on the arguments. It uses one
random.Random per stream, seeded with an int (corpus) or a str (held-out),
and only random(), choice(), randrange()/randint() with int arguments and
shuffle() on lists: their algorithms (getrandbits-based _randbelow, the
Mersenne Twister, seeding through init_by_array / sha512 for str) have been
the same since Python 3.2, so any Python 3.9+ gives the same bytes. Nothing
iterates over sets or uses hash(). For the same seed, a smaller --bytes gives
a prefix of a larger one. The output is written as UTF-8 bytes, whatever
the locale.
"""
import argparse
import os
import random
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree (installed as is)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_paraphrases as GP  # noqa: E402
import world as W  # noqa: E402
from world import a, cap, plural  # noqa: E402


# --- characters and references ------------------------------------------------
class Char:
    __slots__ = ("name", "pron", "kind", "species", "trait", "role")

    def __init__(self, name, pron, kind, species=None, trait=None, role=None):
        self.name, self.pron, self.kind = name, pron, kind
        self.species, self.trait, self.role = species, trait, role

    @property
    def P(self):
        return W.PRONOUNS[self.pron]

    def intro(self, r):
        """'a little girl named Lily', 'a curious little fox named Rusty'."""
        t = self.trait
        if self.kind == "animal":
            return f"{a(t)} little {self.species} named {self.name}"
        noun = {"she": "girl", "he": "boy", "they": "child"}[self.pron]
        adj = r.choice(("little", t, t + " little", "young"))
        return f"{a(adj)} {noun} named {self.name}"

    def what(self):
        """'the little fox', 'the girl' - a description for variation."""
        if self.kind == "animal":
            return f"the {self.species}"
        return "the " + {"she": "girl", "he": "boy", "they": "child"}[self.pron]


GROUP = object()  # "they" meaning two or more characters together
MIN_SENTENCES, MAX_SENTENCES = 5, 12


class Story:
    """Sentences of one story, with the mention history that decides when a
    pronoun is clear: a pronoun refers to the most recently mentioned
    character of its class (she/he/they), mentioned in this sentence or the
    one before."""

    def __init__(self, r):
        self.r = r
        self.out = []
        self.sent = 0
        self.last = {}
        self.dated = False  # the story already said when it happened

    def when(self, first=None):
        """'One summer day' for the first time the story says when, then
        'That day' or 'Later'."""
        if self.dated:
            return self.r.choice(("That day", "Later that day", "After breakfast", "Soon"))
        self.dated = True
        return first or "One " + self.r.choice(W.TIMES)

    # references
    def _m(self, c):
        self.last[c.pron] = (c, self.sent)

    def clear(self, c):
        m = self.last.get(c.pron)
        return m is not None and m[0] is c and self.sent - m[1] <= 1

    def N(self, c):
        self._m(c)
        return c.name

    def S(self, c, p=0.75):
        """subject"""
        use = self.clear(c) and self.r.random() < p
        self._m(c)
        return c.P["s"] if use else c.name

    def SB(self, c, p=0.75):
        """subject with the past copula: 'Lily was', 'she was', 'they were'"""
        use = self.clear(c) and self.r.random() < p
        self._m(c)
        if use:
            return f"{c.P['s']} {c.P['be']}"
        return f"{c.name} was"

    def O(self, c, p=0.75):
        """object"""
        use = self.clear(c) and self.r.random() < p
        self._m(c)
        return c.P["o"] if use else c.name

    def Pz(self, c):
        """possessive determiner: 'her' when clear, else "Lily's" """
        use = self.clear(c)
        self._m(c)
        return c.P["p"] if use else c.name + "'s"

    def R(self, c):
        return c.P["r"]

    def both(self, x, y):
        """'Lily and Tom' or 'they' (when both were just mentioned)"""
        mx, my = self.last.get(x.pron), self.last.get(y.pron)
        g = self.last.get("they")
        recent_group = g is not None and g[0] is GROUP and self.sent - g[1] <= 1
        both_recent = (mx is not None and my is not None and mx[0] is x and my[0] is y
                       and self.sent - mx[1] <= 1 and self.sent - my[1] <= 1
                       and "they" not in (x.pron, y.pron))
        self.last["they"] = (GROUP, self.sent)
        if (recent_group or both_recent) and self.r.random() < 0.8:
            return "they"
        return f"{x.name} and {y.name}"

    # sentences
    def room(self, n=1):
        """whether n more sentences fit in a story of at most MAX_SENTENCES"""
        return len(self.out) + n <= MAX_SENTENCES

    def add(self, s):
        self.out.append(cap(s))
        self.sent += 1

    def one(self, *fns):
        self.add(self.r.choice(fns)())

    def say(self, c, line, verb=None):
        """A line of dialogue by c: 'Lily said, "Hi!"' or '"Hi," said Lily.'"""
        r = self.r
        end = line[-1]
        if verb is None:
            if end == "?":
                verb = r.choice(("asked", "asked", "wondered"))
            elif end == "!":
                verb = r.choice(("shouted", "cried", "called", "said", "exclaimed"))
            else:
                verb = r.choice(("said", "said", "whispered", "said softly"))
        k = r.randrange(3)
        if k == 0:
            self.add(f'{self.S(c)} {verb}, "{line}"')
        else:
            q = line[:-1] + "," if end == "." else line
            who = self.S(c)
            if who == c.name and k == 1 and " " not in verb:
                self.add(f'"{q}" {verb} {who}.')
            else:
                self.add(f'"{q}" {who} {verb}.')

    def text(self):
        return " ".join(self.out)


# --- casting -------------------------------------------------------------------
def make_child(r, exclude=()):
    while True:
        k = r.randrange(20)
        if k < 9:
            c = Char(r.choice(W.GIRLS), "she", "child", trait=r.choice(W.TRAITS))
        elif k < 18:
            c = Char(r.choice(W.BOYS), "he", "child", trait=r.choice(W.TRAITS))
        else:
            c = Char(r.choice(W.KIDS_THEY), "they", "child", trait=r.choice(W.TRAITS))
        if c.name not in exclude:
            return c


def make_animal(r, exclude=()):
    while True:
        name, pron = r.choice(W.PET_NAMES)
        if name not in exclude:
            return Char(name, pron, "animal", species=r.choice(W.SPECIES),
                        trait=r.choice(W.TRAITS))


def make_hero(r, exclude=()):
    return make_animal(r, exclude) if r.randrange(3) == 0 else make_child(r, exclude)


def make_friend(r, hero):
    if hero.kind == "animal" and r.randrange(3) > 0:
        return make_animal(r, (hero.name,))
    return make_child(r, (hero.name,)) if r.randrange(4) else make_animal(r, (hero.name,))


def make_adult(r, roles=None):
    pool = [x for x in W.ADULTS if roles is None or x[2] in roles]
    name, pron, role = r.choice(pool)
    return Char(name, pron, "adult", role=role)


def thing(r, kinds=None):
    """('red kite', 'kite'): a noun with an adjective or a colour, or both."""
    noun = r.choice(kinds or W.ITEMS)
    k = r.randrange(5)
    if k == 0:
        return noun, noun
    if k <= 2:
        return f"{r.choice(W.COLORS)} {noun}", noun
    if k == 3:
        return f"{r.choice(W.ADJECTIVES)} {noun}", noun
    return f"{r.choice(W.ADJECTIVES)} {r.choice(W.COLORS)} {noun}", noun


def place(r, outdoor=None):
    pool = W.PLACES if outdoor is None else (W.OUTDOOR if outdoor else W.INDOOR)
    return r.choice(pool)


def at(pl):
    return f"{pl[1]} the {pl[0]}"


# --- shared story parts ------------------------------------------------------------
def opening(st, hero, friend=None, extra=True):
    """The first sentence, and with `extra` sometimes a second one."""
    r = st.r
    k = first = r.randrange(7)
    if k == 0:
        st.add(f"Once upon a time, there was {hero.intro(r)}.")
    elif k == 1:
        st.add(f"There once was {hero.intro(r)}.")
    elif k == 2:
        pl = place(r, True)
        st.add(f"Near {a(pl[0])}, there lived {hero.intro(r)}.")
    elif k == 3:
        st.add(f"Long ago, in a little village, there lived {hero.intro(r)}.")
    elif k == 4:
        st.add(f"{hero.name} was {hero.intro(r).split(' named ')[0]}.")
        st._m(hero)
    elif k == 5:
        st.add(f"One {r.choice(W.MORNINGS)}, {hero.intro(r)} woke up early.")
        st.dated = True
    else:
        st.add(f"In a cozy little house, there lived {hero.intro(r)}.")
    st._m(hero)
    if not extra or r.randrange(3) == 0:
        return
    k = r.randrange(4)
    if k == 2 and first == 4:  # the trait again
        k = 0
    if k == 0:
        st.add(f"{st.S(hero)} loved to {r.choice(W.ACTIVITIES)}.")
    elif k == 1 and friend is not None:
        st.add(f"{st.Pz(hero)} best friend was {friend.intro(r)}.")
        st._m(friend)
    elif k == 2:
        st.add(f"{st.SB(hero)} very {hero.trait} and liked to {r.choice(W.ACTIVITIES)}.")
    else:
        st.add(f"Every day, {st.S(hero)} liked to {r.choice(W.ACTIVITIES)} with "
               f"{st.Pz(hero)} friends.")


def weather_line(r, kind=None):
    kind = kind or r.choice(("sun", "rain", "wind", "snow", "fog", "storm"))
    lines = {
        "sun": ("The sun was shining brightly.", "It was a warm and sunny day.",
                "The sky was blue and the birds were singing.",
                "The sun was warm and the air smelled of flowers."),
        "rain": ("Big drops of rain began to fall.", "Soon it started to rain.",
                 "Gray clouds covered the sky, and rain poured down.",
                 "Rain tapped on the leaves and made little puddles."),
        "wind": ("A strong wind blew through the trees.", "The wind began to howl.",
                 "A gust of wind swept across the field."),
        "snow": ("Soft white snow covered the ground.", "Snowflakes drifted down from the sky.",
                 "It snowed all night, and everything was white."),
        "fog": ("A thick fog rolled in, and it was hard to see.",
                "The morning was foggy and quiet."),
        "storm": ("Thunder boomed over the hills.", "Dark clouds rolled in and lightning flashed.",
                  "A big storm came, and the rain was loud on the roof."),
    }
    return r.choice(lines[kind])


def ending(st, hero, friend, lesson=None):
    """A closing sentence, when the story has room for it."""
    r = st.r
    if not st.room():
        return
    k = r.randrange(8)
    if lesson and k < 3:
        st.add(f"{st.S(hero)} learned that {lesson}.")
        return
    if k <= 3:
        st.add(f"From that day on, {st.both(hero, friend)} were the best of friends.")
    elif k == 4:
        st.add(f"That night, {st.S(hero)} went to bed with a big smile.")
    elif k == 5:
        st.add(f"In the end, {st.both(hero, friend)} went home happy and tired.")
    elif k == 6:
        st.add(f"It was the best day {st.S(hero)} had ever had.")
    else:
        st.add(f"And {st.both(hero, friend)} lived happily ever after.")


def feel_line(st, c, feeling, cause=None):
    r = st.r
    intens = r.choice(("", "very ", "so ", "a little ", "really "))
    if cause:  # a function: called where the cause is written, for the pronouns
        st.one(lambda: f"{st.SB(c)} {intens}{feeling} because {cause()}.",
               lambda: f"{st.S(c)} felt {intens}{feeling} because {cause()}.",
               lambda: f"Because {cause()}, {st.S(c)} felt {feeling}.")
    else:
        st.one(lambda: f"{st.SB(c)} {intens}{feeling}.",
               lambda: f"{st.S(c)} felt {intens}{feeling}.")


# --- plots --------------------------------------------------------------------------
def plot_lost_found(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    desc, noun = thing(r)
    pl = place(r)
    opening(st, hero, friend, extra=False)
    giver = make_adult(r, ("grandmother", "grandfather", "mother", "father", "aunt", "uncle"))
    st.one(lambda: f"{st.S(hero)} had {a(desc)} that {st.N(giver)} had given {st.O(hero)}.",
           lambda: f"{st.Pz(hero)} favorite thing was {a(desc)}.",
           lambda: f"{st.S(hero)} always carried {a(desc)} everywhere.")
    st.one(lambda: f"{st.when()}, {st.S(hero)} took the {noun} to the {pl[0]}.",
           lambda: f"{st.when('One day')}, {st.S(hero)} went to play {at(pl)} with the {noun}.")
    st.one(lambda: f"When {st.S(hero)} looked again, the {noun} was gone!",
           lambda: f"After a while, {st.S(hero)} could not find the {noun} anywhere.",
           lambda: f"Suddenly, {st.S(hero)} saw that the {noun} was missing.")
    if r.randrange(2):
        feel_line(st, hero, r.choice(("sad", "worried", "upset", "scared")),
                  lambda: f"{st.Pz(hero)} {noun} was lost")
    st.say(hero, r.choice((f"Where is my {noun}?", f"Has anyone seen my {noun}?",
                           f"Oh no, I lost my {noun}!", "What am I going to do?")))
    st.one(lambda: f"{st.N(friend)} came over to help.",
           lambda: f"Just then, {st.N(friend)} walked by.",
           lambda: f"{st.N(friend)} heard {st.O(hero, 0.3)} and came running.")
    if r.randrange(2):
        st.say(friend, r.choice(("Do not worry, I will help you look.", "Let us look together!",
                                 "I am sure we can find it.", "Where did you last see it?")))
    spots = list(pl[3])
    r.shuffle(spots)
    st.add(f"{st.both(hero, friend)} looked {spots[0]}, but the {noun} was not there.")
    if len(spots) > 2 and r.randrange(2) and len(st.out) <= 8:
        st.add(f"Then {st.both(hero, friend)} looked {spots[1]}, but it was not there either.")
        spots = spots[1:]
    finder = r.choice((hero, friend))
    k = r.randrange(3)
    if k == 0:
        st.add(f"At last, {st.S(finder, 0.3)} found the {noun} {spots[1]}.")
    elif k == 1:
        critter = r.choice(("squirrel", "little mouse", "crow", "puppy", "magpie", "kitten"))
        st.add(f"At last, they saw {a(critter)} {spots[1]} playing with the {noun}, "
               f"and the {critter} gave it back.")
    else:
        st.add(f"Then {st.N(finder)} saw something {r.choice(W.COLORS)} {spots[1]}: "
               f"it was the {noun}!")
    feel_line(st, hero, r.choice(("happy", "relieved", "glad", "thankful")))
    if st.room(2) or (st.room() and r.randrange(2)):
        st.say(hero, r.choice((f"Thank you, {friend.name}!", "Thank you for helping me!",
                               "You are a good friend.")))
    if r.randrange(2):
        ending(st, hero, friend, r.choice(("friends help each other",
                                           "it is good to ask for help",
                                           "one should keep an eye on one's things")))


def plot_sharing(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    food = r.choice(W.FOODS)
    n = r.randrange(2, 7)
    pl = place(r)
    opening(st, hero, friend, extra=r.randrange(2))
    st.one(lambda: f"{st.when()}, {st.S(hero)} brought {W.NUMBER_WORDS[n]} "
                   f"{plural(food)} to the {pl[0]}.",
           lambda: f"{st.Pz(hero)} {r.choice(('mother', 'grandmother', 'father'))} "
                   f"packed {W.NUMBER_WORDS[n]} {plural(food)} for {st.O(hero)}.")
    st.one(lambda: f"{at(pl)}, {st.S(hero)} met {st.N(friend)}.",
           lambda: f"{st.N(friend)} was sitting alone {at(pl)}.")
    feel_line(st, friend, r.choice(("hungry", "sad", "lonely", "tired")),
              r.choice((lambda: f"{st.S(friend, 1)} had no lunch",
                        lambda: f"{st.S(friend, 1)} had dropped {st.Pz(friend)} lunch in the mud",
                        lambda: f"{st.S(friend, 1)} had forgotten {st.Pz(friend)} snack at home")))
    st.say(friend, r.choice((f"Those {plural(food)} look good.", "I am so hungry.",
                             f"I love {plural(food)}!", f"Can I have one of your {plural(food)}?")))
    if r.randrange(2):
        st.add(f"{st.S(hero)} wanted to keep all the {plural(food)} for "
               f"{st.R(hero)}, but then {st.S(hero)} saw {st.Pz(friend)} face.")
    st.one(lambda: f"{st.S(hero)} gave {st.O(friend)} {a(food)}.",
           lambda: f"{st.S(hero)} shared the {plural(food)} with {st.O(friend)}.",
           lambda: f"{st.S(hero)} broke {a(food)} in two and gave half to {st.O(friend)}.")
    st.say(hero, r.choice(("Here, this one is for you.", "Let us share!",
                           "There is enough for both of us.", "Take one, please.")))
    st.say(friend, r.choice(("Thank you! You are so kind.", "Thank you!",
                             "This is the best snack ever!")))
    where = r.choice(("under a tree", "on a bench", "in the sun", "on a blanket", "by the window"))
    st.add(f"{st.both(hero, friend)} ate the {plural(food)} together {where}.")
    feel_line(st, hero, r.choice(("happy", "glad", "cheerful", "proud")))
    if r.randrange(2):
        ending(st, hero, friend, r.choice(("sharing makes everyone happy",
                                           "food tastes better with a friend",
                                           "a kind deed is never wasted")))


def plot_weather(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    pl = place(r, True)
    act = r.choice(("fly a kite", "have a picnic", "play ball", "build a sandcastle",
                    "go for a walk", "pick flowers", "ride bikes"))
    bad = r.choice(("rain", "wind", "storm", "snow", "fog"))
    opening(st, hero, friend, extra=False)
    st.one(lambda: f"{st.when()}, {st.both(hero, friend)} went to the {pl[0]} "
                   f"to {act}.",
           lambda: f"{st.N(hero)} and {st.N(friend)} wanted to {act} {at(pl)}.")
    st.add(weather_line(r, "sun"))
    if r.randrange(2):
        st.add("But soon, the sky changed.")
    st.add(weather_line(r, bad))
    problem = {
        "rain": "everything was wet",
        "wind": "the wind blew their things away",
        "storm": "the thunder was very loud",
        "snow": "it was too cold to stay outside",
        "fog": "they could not see the path",
    }[bad]
    feel_line(st, hero, r.choice(("sad", "worried", "scared", "grumpy")), lambda: problem)
    st.say(hero, r.choice(("Now we cannot play!", "What should we do?",
                           "I want to go home.", "Our day is ruined!")))
    shelter = r.choice(("under a big tree", "into an old barn", "under a bridge",
                        "into a little cave", "under a wide umbrella", "back home"))
    st.say(friend, r.choice(("Let us wait until it stops.", "Follow me, I know a dry place!",
                             "Do not be sad, we can still have fun.")))
    st.add(f"{st.both(hero, friend)} ran {shelter} and waited.")
    good = r.choice((
        "After a while, the sun came out again and a rainbow appeared in the sky.",
        "When the weather cleared, there were big puddles, and they jumped in every one.",
        "They told stories and sang songs until it was over.",
        "Grandma found them and brought warm cocoa and a blanket.",
    ))
    st.add(good)
    feel_line(st, friend, r.choice(("happy", "cheerful", "excited", "glad")))
    if r.randrange(2):
        ending(st, hero, friend, r.choice(("a rainy day can still be a good day",
                                           "it is more fun to wait with a friend")))


def plot_helping(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    pl = place(r, True)
    animal, trouble, fix = r.choice((
        ("little bird", "had hurt its wing", "put it in a soft box and kept it warm"),
        ("kitten", "was stuck high in a tree", "climbed up carefully and carried it down"),
        ("puppy", "had lost its way home", "read the name on its collar and took it home"),
        ("duckling", "could not find its mother", "followed the quacking to the pond"),
        ("turtle", "was lying on its back", "turned it over gently"),
        ("bee", "had fallen into a puddle", "lifted it out with a leaf"),
        ("baby owl", "had fallen out of its nest", "put it back into the nest"),
        ("little fish", "was trapped in a tiny pool", "carried it back to the water in a cup"),
        ("butterfly", "was caught in a spider web", "set it free very gently"),
    ))
    opening(st, hero, friend)
    st.one(lambda: f"{st.when()}, {st.SB(hero)} walking {at(pl)}.",
           lambda: f"{st.when('One day')}, {st.both(hero, friend)} were playing {at(pl)}.")
    st.one(lambda: f"{st.S(hero)} heard a tiny sound and saw {a(animal)} that {trouble}.",
           lambda: f"Suddenly, {st.S(hero)} found {a(animal)}. It {trouble}.")
    feel_line(st, hero, r.choice(("worried", "sad", "sorry")), lambda: f"the {animal} needed help")
    st.say(hero, r.choice((f"Poor little {animal.split()[-1]}!", "We have to help it!",
                           "What can we do?", "Do not be afraid, I am here.")))
    if r.randrange(2):
        helper = make_adult(r)
        st.add(f"{st.S(hero)} ran to get {st.N(helper)}, who knew what to do.")
        st.add(f"Together, {st.both(hero, helper)} {fix}.")
    else:
        st.add(f"{st.N(friend)} came to help, and {st.both(hero, friend)} {fix}.")
    sound = r.choice(("chirped", "squeaked", "wiggled", "blinked"))
    st.add(r.choice((f"The {animal} was safe at last.", f"Soon the {animal} was fine.",
                     f"The {animal} looked up and {sound} happily.")))
    feel_line(st, hero, r.choice(("proud", "happy", "glad")),
              r.choice((lambda: f"{st.S(hero, 1)} had helped", lambda: f"the {animal} was safe")))
    if r.randrange(2):
        ending(st, hero, friend, r.choice(("even a small helper can do a big thing",
                                           "we should be kind to every animal")))


def plot_building(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    what, pl, breaker = r.choice((
        ("a sandcastle", ("beach", "on"), "a big wave washed over it"),
        ("a tower of blocks", ("bedroom", "in"), "the cat bumped into it"),
        ("a snowman", ("garden", "in"), "the sun melted its head"),
        ("a fort of pillows", ("living room", "in"), "the dog jumped on it"),
        ("a bird house", ("garden", "in"), "the wind knocked it down"),
        ("a little dam of stones", ("riverbank", "on"), "the water pushed it away"),
        ("a card house", ("kitchen", "in"), "someone opened the door and it fell"),
        ("a treehouse", ("orchard", "in"), "a branch broke"),
    ))
    opening(st, hero, friend)
    st.one(lambda: f"{st.when()}, {st.S(hero)} decided to build {what} "
                   f"{pl[1]} the {pl[0]}.",
           lambda: f"{st.S(hero)} worked all morning on {what} {pl[1]} the {pl[0]}.")
    st.add(f"It was tall and {r.choice(('beautiful', 'strong', 'grand', 'wonderful'))}.")
    st.add(f"But then {breaker}, and "
           f"{r.choice(('it all fell apart', 'everything tumbled down', 'it was ruined'))}.")
    feel_line(st, hero, r.choice(("angry", "sad", "upset", "grumpy")),
              lambda: f"all {st.Pz(hero)} work was gone")
    st.say(hero, r.choice(("It is ruined!", "I will never build anything again!",
                           "Why did this happen?")))
    st.say(friend, r.choice(("Let us build it again, together.",
                             "We can make it even better this time!",
                             "Do not give up. I will help you.")))
    how = r.choice(("used bigger stones", "made the bottom wider", "worked slowly and carefully",
                    "found a safer spot"))
    st.add(f"This time, {st.both(hero, friend)} {how}.")
    st.add(f"When they finished, it was even better than before.")
    feel_line(st, hero, r.choice(("proud", "happy", "excited")))
    if r.randrange(2):
        ending(st, hero, friend, r.choice(("it is good to try again",
                                           "two can do more than one")))


def plot_fear(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    fear, truth = r.choice((
        ("the dark", "it was only the shadow of a tree"),
        ("the thunder", "the thunder was only a loud noise from the clouds"),
        ("the big dog next door", "the dog only wanted to play"),
        ("the deep water", "the water was warm and friendly"),
        ("the tall slide", "the slide was fast and fun"),
        ("the old barn", "the noise in the barn was a family of mice"),
        ("the first day of school", "the other children were nice"),
        ("the doctor", "the doctor was gentle and kind"),
    ))
    helper = r.choice((friend, make_adult(r)))
    opening(st, hero, friend)
    st.one(lambda: f"{st.SB(hero)} afraid of {fear}.",
           lambda: f"There was one thing {st.S(hero)} did not like: {fear}.")
    st.add(f"Whenever {st.S(hero)} thought about it, {st.Pz(hero)} knees shook.")
    st.say(hero, r.choice(("I am scared.", "I do not want to go.",
                           "What if something bad happens?")))
    st.say(helper, r.choice(("I will stay with you.", "Hold my hand, we can do it together.",
                             "Being brave means doing it even when you are scared.",
                             "Let us take a look, just a little one.")))
    st.add(f"So {st.both(hero, helper)} went to see, step by step.")
    st.add(f"Soon {st.S(hero)} saw that {truth}.")
    feel_line(st, hero, r.choice(("brave", "calm", "relieved", "proud")))
    st.say(hero, r.choice(("That was not so scary after all!", "I did it!",
                           "Can we do it again?")))
    if r.randrange(2):
        ending(st, hero, friend, "being brave is easier with a friend")


def plot_quarrel(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    desc, noun = thing(r, W.TOYS)
    pl = place(r)
    opening(st, hero, friend)
    st.one(lambda: f"{st.when()}, {st.both(hero, friend)} were playing {at(pl)}.",
           lambda: f"{st.N(hero)} and {st.N(friend)} went to the {pl[0]} to play.")
    st.add(f"There was only one {desc}, and both of them wanted it.")
    st.say(hero, r.choice((f"The {noun} is mine!", "I had it first!", "Give it to me!")))
    st.say(friend, r.choice(("No, it is mine!", "It is my turn!", "You always get it first!")))
    then = r.choice(("", f" until the {noun} fell on the ground",
                     " and both of them started to cry"))
    st.add(f"{st.both(hero, friend)} pulled and pulled{then}.")
    adult = make_adult(r)
    k = r.randrange(2)
    if k:
        st.add(f"{st.N(adult)} came and asked what was wrong.")
        st.say(adult, r.choice(("Why not take turns?", "You could play with it together.",
                                "Friends share, do they not?")))
    else:
        st.add(f"Then {st.S(hero)} had an idea.")
        st.say(hero, r.choice(("Let us take turns!", "We can play a game with it together!")))
    st.add(f"So {st.both(hero, friend)} took turns, and it was much more fun.")
    feel_line(st, friend, r.choice(("happy", "glad", "cheerful")))
    if r.randrange(2):
        ending(st, hero, friend, r.choice(("taking turns is fair",
                                           "playing together is better than fighting")))


def plot_explore(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    start, pl = r.choice(((("an old map", "in the attic"), place(r, True)),
                          (("a narrow path", "behind the house"), place(r, True)),
                          (("a tiny door", "in a big tree"), ("forest", "in")),
                          (("a trail of shiny stones", "by the gate"), place(r, True))))
    found = r.choice(("a hidden garden full of flowers", "a nest with three blue eggs",
                      "a little waterfall", "an old boat tied to a tree",
                      "a cave that sparkled like stars", "a family of baby foxes",
                      "a field of sunflowers taller than a house", "a tree full of ripe cherries"))
    opening(st, hero, friend)
    st.one(lambda: f"{st.when()}, {st.S(hero)} found {start[0]} {start[1]}.",
           lambda: f"{st.S(hero)} and {st.N(friend)} discovered {start[0]} {start[1]}.")
    feel_line(st, hero, "curious")
    st.say(hero, r.choice(("Where does it go?", "Let us find out where it leads!",
                           "I wonder what is there.")))
    st.add(f"{st.both(hero, friend)} followed it past the {place(r, True)[0]} and over a "
           f"{r.choice(('little bridge', 'hill', 'stream', 'fallen log'))}.")
    if r.randrange(2):
        st.add(weather_line(r, r.choice(("sun", "wind", "fog"))))
    st.add(f"At the end, {st.both(hero, friend)} found {found}.")
    st.say(friend, r.choice(("Wow!", "It is beautiful!", "Nobody knows about this place!",
                             "We have to tell everyone!")))
    st.add(f"{st.both(hero, friend)} stayed until the sun began to set.")
    if r.randrange(2):
        adult = make_adult(r, ("mother", "father", "grandmother", "grandfather"))
        st.add(f"At home, {st.S(hero)} told {st.N(adult)} all about the adventure.")
    ending(st, hero, friend)


def plot_gift(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    occasion = r.choice(("birthday", "first day at school", "moving day", "big race"))
    gift, problem, fix = r.choice((
        ("a picture", "the paint spilled all over the table", "painted a new one, even brighter"),
        ("a cake", "the cake came out flat", "put lots of strawberries on top"),
        ("a card", "the card got wet in the rain", "made a new one with glitter"),
        ("a necklace of beads", "the string broke", "used a stronger string"),
        ("a bunch of flowers", "the flowers were too small", "added some pretty leaves"),
        ("a song", "forgot the words", "made up new words"),
    ))
    opening(st, hero, friend)
    st.add(f"It was almost {st.Pz(friend)} {occasion}, and {st.S(hero)} wanted to give "
           f"{st.O(friend)} something special.")
    if gift == "a song":
        st.add(f"{st.S(hero)} decided to write a song.")
        st.add(f"But on the day, {st.S(hero)} {problem}.")
        st.add(f"So {st.S(hero)} {fix}.")
    else:
        st.add(f"{st.S(hero)} decided to make {gift}.")
        st.add(f"But {problem}.")
        feel_line(st, hero, r.choice(("worried", "upset", "sad")))
        st.add(f"Then {st.S(hero)} {fix}.")
    st.add(f"{st.S(hero)} gave the gift to {st.N(friend)}.")
    st.say(friend, r.choice(("I love it!", "This is the best present ever!",
                             "Did you make this for me?", "Thank you so much!")))
    feel_line(st, hero, r.choice(("proud", "happy", "glad")))
    if r.randrange(2):
        ending(st, hero, friend, "a gift made with love is the best gift")


def plot_learning(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    skill, fail = r.choice((
        ("ride a bike", "fell off"), ("swim", "sank and swallowed water"),
        ("whistle", "only made a funny noise"), ("tie shoelaces", "made a big knot"),
        ("jump rope", "tripped over the rope"), ("read", "mixed up the letters"),
        ("skate", "slipped on the ice"), ("juggle", "dropped all the balls"),
        ("climb the big tree", "slid back down"), ("play the flute", "made a squeaky sound"),
    ))
    teacher = r.choice((friend, make_adult(r)))
    opening(st, hero, friend)
    st.add(f"{st.S(hero)} wanted to learn to {skill}.")
    st.add(f"The first time {st.S(hero)} tried, {st.S(hero)} {fail}.")
    st.add(f"The second time, {st.S(hero)} {fail} again.")
    feel_line(st, hero, r.choice(("sad", "grumpy", "upset")),
              lambda: f"{st.S(hero, 1)} could not do it")
    st.say(hero, r.choice(("I will never learn this!", "It is too hard!", "I give up.")))
    st.say(teacher, r.choice(("Try again, a little slower.", "Everybody falls at first.",
                              "Practice a little every day, and you will see.",
                              "I will help you. Watch me first.")))
    st.add(f"So {st.S(hero)} practiced every day.")
    st.add(f"One {r.choice(W.TIMES)}, {st.S(hero)} could finally {skill}!")
    feel_line(st, hero, r.choice(("proud", "happy", "excited")))
    if r.randrange(2):
        ending(st, hero, friend, "practice helps you learn")


def plot_baking(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    cook = make_adult(r, ("grandmother", "grandfather", "mother", "father", "baker"))
    food = r.choice(("cookies", "an apple pie", "pancakes", "a cake", "muffins", "bread"))
    opening(st, hero, friend)
    st.add(f"{st.when()}, {st.S(hero)} helped {st.N(cook)} make {food}.")
    ing = ["flour", "sugar", "eggs", "butter", "milk", "honey", "berries", "oats"]
    r.shuffle(ing)
    st.add(f"They mixed {ing[0]}, {ing[1]} and {ing[2]} in a big bowl.")
    mistake, fix = r.choice((
        ("put in salt instead of sugar", "started again and laughed about it"),
        ("spilled flour all over the floor", "cleaned it up together"),
        ("dropped an egg", "used another one"),
        ("forgot to turn on the oven", "waited a little longer"),
    ))
    st.add(f"Oops! {st.S(hero)} {mistake}.")
    st.say(cook, r.choice(("That is all right, everyone makes mistakes.",
                           "Do not worry, we can fix it.", "Cooking is about trying!")))
    st.add(f"So {st.both(hero, cook)} {fix}.")
    st.add(f"Soon the kitchen smelled {r.choice(('sweet', 'warm', 'wonderful', 'delicious'))}.")
    st.add(f"{st.S(hero)} shared the {food.split()[-1]} with {st.N(friend)} and the neighbors.")
    feel_line(st, hero, r.choice(("proud", "happy", "cheerful")))


def plot_race(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    third = make_friend(r, hero)
    if third.name == friend.name:
        third = make_child(r, (hero.name, friend.name))
    pl = place(r, True)
    opening(st, hero, friend, extra=False)
    st.add(f"{st.when()}, the animals and children had a race {at(pl)}.")
    if r.randrange(2):
        st.add(f"{st.S(hero)} wanted to win more than anything.")
    st.add(f"{st.N(hero)}, {st.N(friend)} and {st.N(third)} stood at the start.")
    starter = make_adult(r)
    verb = r.choice(("shouted", "called"))
    st.add(f'{st.N(starter)} {verb}, "{r.choice(("Ready, set, go!", "On your marks, go!"))}"')
    if r.randrange(2):
        st.add("Everyone ran as fast as they could.")
    st.add(f"Near the end, {st.N(friend)} tripped and fell.")
    st.say(friend, r.choice(("Ouch, my knee!", "Help!", "I cannot get up!")))
    st.add(f"{st.N(hero)} stopped running and helped {st.O(friend, 0.4)} up.")
    st.add(f"{st.N(third)} won the race, but {st.N(hero)} did not mind.")
    st.say(friend, r.choice(("You are a true friend.", "Thank you for stopping for me.")))
    feel_line(st, hero, r.choice(("proud", "happy", "glad")),
              lambda: f"{st.S(hero, 1)} had helped a friend")


def plot_bedtime(st):
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    adult = make_adult(r, ("mother", "father", "grandmother", "grandfather"))
    opening(st, hero, friend)
    st.add(f"It was bedtime, but {st.SB(hero)} not sleepy at all.")
    st.say(hero, r.choice(("Can I have one more story?", "I am not tired!",
                           "Can we count the stars?")))
    st.add(f"{st.N(adult)} sat on the bed and opened a book about "
           f"{a(r.choice(W.SPECIES))} who lived {at(place(r, True))}.")
    outside = r.choice(("the moon was round and bright", "the wind whispered in the trees",
                        "an owl hooted softly", "the rain was falling softly"))
    st.add(f"Outside, {outside}.")
    hug = r.choice(("teddy bear", "blanket", "pillow", "toy rabbit"))
    st.add(f"{st.S(hero)} hugged {st.Pz(hero)} {hug}.")
    st.say(adult, r.choice(("Good night, sleep tight.", "Sweet dreams, little one.",
                            "Tomorrow will be a wonderful day.")))
    dream = r.choice(("flying over the hills", "a castle made of candy", "swimming with fish",
                      "a big party with all the animals"))
    st.add(f"Soon {st.Pz(hero)} eyes closed, and {st.S(hero)} dreamed of {dream}.")


def plot_walk(st):
    """A short one: a walk, something seen, a feeling."""
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    pl = place(r, True)
    opening(st, hero, friend, extra=r.randrange(2))
    st.one(lambda: f"{st.when()}, {st.S(hero)} went for a walk {at(pl)} "
                   f"with {st.N(friend)}.",
           lambda: f"{st.N(hero)} and {st.N(friend)} took a walk to the {pl[0]}.")
    k = r.randrange(3)
    if k == 0:
        doing = r.choice(("sleeping in the sun", "eating a leaf", "splashing in a puddle",
                          "dancing in the grass", "hiding behind a rock"))
        seen = f"{a(r.choice(W.SPECIES))} {doing}"
    elif k == 1:
        where = r.choice(("stuck in a bush", "lying on the path", "floating on the water"))
        seen = f"{a(r.choice(W.COLORS) + ' ' + r.choice(W.TOYS))} {where}"
    else:
        what = r.choice(("rainbow", "snail", "mushroom", "butterfly",
                         "cloud shaped like " + a(r.choice(W.SPECIES))))
        seen = a(f"{r.choice(('huge', 'tiny', 'funny', 'beautiful'))} {what}")
    st.add(f"There they saw {seen}.")
    st.say(friend, r.choice(("Look at that!", "How funny!", "I have never seen that before.",
                             "Let us tell Grandma about it.")))
    feel_line(st, hero, r.choice(("surprised", "happy", "curious", "excited")))
    if r.randrange(2):
        st.add(f"Then {st.both(hero, friend)} walked home "
               f"{r.choice(('hand in hand', 'singing a song', 'as the sun went down', 'slowly'))}.")


def plot_day(st):
    """A day of small events: the meanings of the retrieval set
    (gen_paraphrases.py) told about the story's characters, so the corpus
    has every wording that set uses."""
    r = st.r
    hero = make_hero(r)
    friend = make_friend(r, hero)
    opening(st, hero, friend)
    pl = place(r)
    st.add(f"{st.when()}, {st.N(hero)} and {st.N(friend)} played {at(pl)} all day.")
    x, y = (hero.name, hero.pron), (friend.name, friend.pron)
    kinds = list(GP.KINDS)
    r.shuffle(kinds)
    for kind in kinds[:r.randint(3, 6)]:
        f = kind.sample(r, x, y)
        if r.randrange(4) == 0:  # the wordings only the negatives use
            f = r.choice(kind.perturb(r, f))[1]
        st.add(r.choice(kind.styles(f))())
        st.last = {}  # these sentences name everyone: no pronoun refers back into them
    ending(st, hero, friend)


PLOTS = (plot_lost_found, plot_sharing, plot_weather, plot_helping, plot_building,
         plot_fear, plot_quarrel, plot_explore, plot_gift, plot_learning, plot_baking,
         plot_race, plot_bedtime, plot_walk, plot_day, plot_day)  # plot_day twice


def story(r):
    """One English story (a paragraph without the trailing blank line)."""
    while True:
        st = Story(r)
        r.choice(PLOTS)(st)
        if MIN_SENTENCES <= len(st.out) <= MAX_SENTENCES:  # the plots keep to it
            return st.text()


# --- Chinese --------------------------------------------------------------------
ZH_NAMES = (("小明", "他"), ("小红", "她"), ("乐乐", "他"), ("丽丽", "她"), ("东东", "他"),
            ("芳芳", "她"), ("天天", "他"), ("美美", "她"), ("小华", "他"), ("小雨", "她"))
ZH_ANIMALS = ("小猫", "小狗", "小兔子", "小熊", "小鸭子", "小松鼠", "小猴子", "小老鼠")
ZH_PLACES = ("公园", "花园", "森林", "河边", "学校", "海边", "农场", "山上")
ZH_OBJ = (("球", "个"), ("风筝", "个"), ("书", "本"), ("帽子", "顶"), ("花", "朵"),
          ("气球", "个"), ("玩具车", "辆"), ("娃娃", "个"))
ZH_COLORS = ("红色的", "蓝色的", "绿色的", "黄色的", "白色的", "紫色的")
ZH_FOODS = (("苹果", "个"), ("饼干", "块"), ("香蕉", "根"), ("蛋糕", "块"), ("包子", "个"))


def story_zh(r):
    (name, he), (friend, _) = r.choice(ZH_NAMES), r.choice(ZH_NAMES)
    while friend == name:
        friend = r.choice(ZH_NAMES)[0]
    pl = r.choice(ZH_PLACES)
    obj, mw = r.choice(ZH_OBJ)
    col = r.choice(ZH_COLORS)
    intro = r.choice((f"从前，有一个小朋友叫{name}。", f"{name}是一个可爱的小朋友。",
                      f"从前，有一只{r.choice(ZH_ANIMALS)}叫{name}。"))
    k = r.randrange(4)
    if k == 0:
        s = [intro, f"{name}有一{mw}{col}{obj}，{he}非常喜欢它。",
             f"有一天，{name}在{pl}玩的时候，把{obj}弄丢了。", f"{he}很着急，到处找。",
             f"{friend}问：“你在找什么？”", f"{name}说：“我的{obj}不见了。”",
             f"他们一起找，最后在一棵大树下面找到了{obj}。", f"{name}高兴地说：“谢谢你！”"]
    elif k == 1:
        food, fmw = r.choice(ZH_FOODS)
        n = r.choice(("两", "三", "四", "五"))
        s = [intro, f"有一天，{name}带了{n}{fmw}{food}去{pl}。",
             f"{friend}没有带吃的，看起来很饿。", f"{name}想了想，把一{fmw}{food}给了{friend}。",
             f"{friend}笑着说：“谢谢你！”", f"他们一起吃，觉得{food}特别好吃。",
             f"{name}明白了，分享让大家都快乐。"]
    elif k == 2:
        s = [intro, f"今天天气很好，{name}和{friend}去{pl}放风筝。",
             "突然，天上飘来了乌云，下起了大雨。", "他们跑到大树下面躲雨。",
             "过了一会儿，雨停了，天上出现了一道彩虹。", f"{name}说：“好漂亮的彩虹啊！”",
             "他们开开心心地回家了。"]
    else:
        animal = r.choice(ZH_ANIMALS)
        s = [intro, f"有一天，{name}在{pl}看见一只{animal}。", f"{animal}受伤了，不能走路。",
             f"{name}说：“别怕，我来帮你。”", f"{he}和{friend}把{animal}带回了家。",
             f"过了几天，{animal}好了。", f"{name}觉得很开心，因为{he}帮助了别人。"]
    return "".join(s)


# --- the corpus ------------------------------------------------------------------
def paragraphs(r, chinese_share=0.0, eot=False):
    """The endless stream of paragraphs (each with its separator)."""
    sep = "<|endoftext|>\n\n" if eot else "\n\n"
    while True:
        if chinese_share > 0 and r.random() < chinese_share:
            yield story_zh(r) + sep
        else:
            yield story(r) + sep


def corpus(seed, nbytes, chinese_share=0.0, eot=False, exclude=None):
    """The corpus as bytes: whole paragraphs, at most nbytes in all; stops at
    the first paragraph that does not fit. `exclude`: paragraphs (str, with
    separator) to skip."""
    r = random.Random(seed)
    out, n = [], 0
    for p in paragraphs(r, chinese_share, eot):
        if exclude is not None and p in exclude:
            continue
        b = p.encode("utf-8")
        if n + len(b) > nbytes:
            break
        out.append(b)
        n += len(b)
    return b"".join(out)


WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def distinct_words(text):
    return sorted({w.lower() for w in WORD.findall(text)})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bytes", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--heldout-out")
    ap.add_argument("--heldout-bytes", type=int)
    ap.add_argument("--chinese-share", type=float, default=0.0)
    ap.add_argument("--eot", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--stats", action="store_true")
    a_ = ap.parse_args(argv)
    if a_.bytes < 0 or not 0.0 <= a_.chinese_share <= 1.0:
        ap.error("--bytes must be >= 0 and --chinese-share in [0, 1]")
    t0 = time.perf_counter()
    data = corpus(a_.seed, a_.bytes, a_.chinese_share, a_.eot)
    dt = time.perf_counter() - t0
    if a_.out:
        with open(a_.out, "wb") as f:
            f.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    if a_.heldout_out:
        seen = set(data.decode("utf-8").split("\n\n"))
        seen = {p + "\n\n" for p in seen if p}
        hb = a_.heldout_bytes if a_.heldout_bytes is not None else a_.bytes // 10
        held = corpus(f"heldout:{a_.seed}", hb, a_.chinese_share, a_.eot, exclude=seen)
        with open(a_.heldout_out, "wb") as f:
            f.write(held)
    if a_.stats:
        text = data.decode("utf-8")
        n_par = text.count("\n\n")
        print(f"{len(data)} bytes, {n_par} stories, {len(distinct_words(text))} distinct "
              f"words, {len(data) / max(dt, 1e-9) / 1e6:.2f} MB/s", file=sys.stderr)


if __name__ == "__main__":
    main()
