"""world.py - the shared lexicon of the generated story world.

gen_stories.py (the pretraining corpus) and gen_paraphrases.py (the held-out
retrieval set) draw their characters, places, things and feelings from these
tables, so a model trained on the stories knows every word the retrieval set
uses. Plain data and a few pure helpers; standard library only.

Every table is a list or tuple (never a set) so that a seeded
random.Random picks the same entries on every Python version.
"""

# --- characters -------------------------------------------------------------
# pronoun classes; "be" is the past-tense copula that agrees with the pronoun
PRONOUNS = {
    "she": {"s": "she", "o": "her", "p": "her", "r": "herself", "be": "was"},
    "he": {"s": "he", "o": "him", "p": "his", "r": "himself", "be": "was"},
    "they": {"s": "they", "o": "them", "p": "their", "r": "themselves", "be": "were"},
}

GIRLS = ("Lily", "Mia", "Anna", "Sue", "Zoe", "Emma", "Ella", "Rosa", "Nina", "Lucy",
         "Ava", "Maya", "Ivy", "Ruby", "Grace", "Hannah", "Lena", "Sara", "Amy", "Chloe",
         "Daisy", "Julia", "Kate", "Molly", "Nora", "Poppy", "Rita", "Tina", "Wendy",
         "Yara", "Leila", "Priya", "Mei", "Aisha", "Sofia", "Elsa")
BOYS = ("Tom", "Ben", "Sam", "Max", "Tim", "Leo", "Jack", "Finn", "Noah", "Oscar",
        "Hugo", "Eli", "Owen", "Ravi", "Kenji", "Omar", "Luca", "Felix", "Henry", "Milo",
        "Theo", "Adam", "Danny", "Ethan", "Gus", "Ian", "Luis", "Marco", "Nick", "Pete",
        "Ray", "Toby", "Victor", "Will", "Arjun", "Yusuf")
# children the stories call "they"
KIDS_THEY = ("Alex", "Robin", "Sky", "Jo")

# named animals: (name, pronoun class)
PET_NAMES = (("Pip", "he"), ("Rusty", "he"), ("Bruno", "he"), ("Coco", "she"),
             ("Bramble", "he"), ("Tilly", "she"), ("Ziggy", "he"), ("Bella", "she"),
             ("Nutkin", "he"), ("Rosie", "she"), ("Jasper", "he"), ("Misty", "she"),
             ("Fidget", "he"), ("Lulu", "she"), ("Bobo", "he"), ("Dottie", "she"),
             ("Wiggles", "he"), ("Fern", "she"), ("Barnaby", "he"), ("Pixie", "she"),
             ("Oggy", "he"), ("Mabel", "she"), ("Humphrey", "he"), ("Tansy", "she"),
             ("Rolo", "he"), ("Suki", "she"), ("Zuzu", "they"), ("Kiki", "she"),
             ("Bartholomew", "he"), ("Flora", "she"), ("Nibbles", "they"), ("Percy", "he"))
SPECIES = ("fox", "rabbit", "bear", "owl", "mouse", "duck", "frog", "squirrel",
           "hedgehog", "turtle", "puppy", "kitten", "lamb", "pig", "goat", "horse",
           "deer", "badger", "otter", "beaver", "penguin", "elephant", "lion", "tiger",
           "monkey", "giraffe", "zebra", "hen", "goose", "bunny", "raccoon", "mole",
           "dragon", "unicorn", "dinosaur", "kangaroo")
TRAITS = ("curious", "kind", "shy", "brave", "clever", "cheerful", "gentle", "playful",
          "busy", "sleepy", "helpful", "friendly", "quiet", "funny", "happy", "careful",
          "noisy", "clumsy", "thoughtful", "lively", "patient", "bold", "polite",
          "silly", "smart", "proud")

# grown-ups: (name, pronoun class, what they are)
ADULTS = (("Mom", "she", "mother"), ("Dad", "he", "father"),
          ("Grandma", "she", "grandmother"), ("Grandpa", "he", "grandfather"),
          ("Miss Brown", "she", "teacher"), ("Farmer Green", "he", "farmer"),
          ("Aunt May", "she", "aunt"), ("Uncle Joe", "he", "uncle"),
          ("Mrs Plum", "she", "neighbor"), ("Mr Bell", "he", "baker"),
          ("Doctor Kim", "she", "doctor"), ("Captain Rolf", "he", "sailor"))

# every name the stories use, with its pronoun class (the tests read this)
def all_characters():
    d = {}
    for n in GIRLS:
        d[n] = "she"
    for n in BOYS:
        d[n] = "he"
    for n in KIDS_THEY:
        d[n] = "they"
    for n, pr in PET_NAMES:
        d[n] = pr
    for n, pr, _ in ADULTS:
        d[n] = pr
    return d


# --- places -------------------------------------------------------------------
# (name, preposition, outdoor, hiding spots there)
PLACES = (
    ("park", "in", True, ("under a bench", "behind the big oak tree", "in the sandbox",
                          "near the swings", "in a pile of leaves")),
    ("garden", "in", True, ("under a big leaf", "behind the flower pots",
                            "in the tall grass", "next to the fence", "inside an old boot")),
    ("forest", "in", True, ("under a log", "behind a mossy rock", "in a hollow tree",
                            "under a bush", "beside a little stream")),
    ("woods", "in", True, ("under a log", "behind a mossy rock", "in a pile of leaves")),
    ("meadow", "in", True, ("in the tall grass", "under a daisy bush", "beside a stone")),
    ("beach", "on", True, ("under a rock", "behind a sand dune", "in a rock pool",
                           "next to a big shell", "under a towel")),
    ("farm", "on", True, ("in the hay", "behind the barn", "next to the pig pen",
                          "under the wagon", "in a bucket")),
    ("hill", "on", True, ("behind a rock", "in the long grass", "under a small tree")),
    ("riverbank", "on", True, ("under a stone", "in the reeds", "beside the bridge")),
    ("pond", "by", True, ("in the reeds", "under a lily pad", "behind a rock")),
    ("lake", "by", True, ("in the reeds", "under the dock", "behind a rock")),
    ("playground", "at", True, ("under the slide", "behind the swings",
                                "in the sandbox", "near the gate")),
    ("orchard", "in", True, ("under an apple tree", "in the long grass",
                             "behind a basket")),
    ("village square", "in", True, ("under a bench", "behind the fountain",
                                    "near the market stall")),
    ("mountain", "on", True, ("behind a big rock", "in a little cave", "under a pine tree")),
    ("island", "on", True, ("under a palm tree", "behind a rock", "in the warm sand")),
    ("zoo", "at", True, ("under a bench", "near the gate", "behind a sign")),
    ("school", "at", False, ("under a desk", "in the coat room", "behind the bookshelf",
                             "inside a lunch box")),
    ("library", "in", False, ("behind a row of books", "under a big chair",
                              "on a high shelf")),
    ("kitchen", "in", False, ("under the table", "inside a cupboard", "behind the bread box",
                              "in the sink")),
    ("attic", "in", False, ("inside an old trunk", "behind a box", "under a blanket")),
    ("bedroom", "in", False, ("under the bed", "behind the curtain", "inside the toy box",
                              "under a pillow")),
    ("living room", "in", False, ("behind the sofa", "under a cushion",
                                  "next to the lamp")),
    ("bakery", "at", False, ("behind the counter", "under a sack of flour")),
    ("museum", "at", False, ("behind a statue", "under a bench", "near the door")),
    ("treehouse", "in", False, ("under a blanket", "in a corner", "inside a basket")),
    ("castle", "in", False, ("behind a curtain", "under a throne", "in a dusty corner")),
)
OUTDOOR = tuple(p for p in PLACES if p[2])
INDOOR = tuple(p for p in PLACES if not p[2])

# --- things --------------------------------------------------------------------
COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "pink", "brown",
          "white", "black", "gray", "golden", "silver")
ADJECTIVES = ("big", "little", "tiny", "shiny", "soft", "fluffy", "old", "new", "round",
              "bright", "sparkly", "striped", "spotted", "wooden", "smooth", "funny",
              "pretty", "special", "lucky", "heavy", "fancy", "magic", "beautiful")
# toys and things one can have, lose, find and give
TOYS = ("ball", "kite", "doll", "teddy bear", "toy car", "toy boat", "spinning top",
        "puzzle", "yo-yo", "drum", "whistle", "marble", "robot", "train", "balloon",
        "jump rope", "rocket", "puppet")
THINGS = ("hat", "scarf", "mitten", "boot", "umbrella", "basket", "bucket", "shovel",
          "book", "map", "key", "shell", "stone", "feather", "crayon", "pencil", "ribbon",
          "button", "bell", "lantern", "box", "bag", "blanket", "cup", "clock", "compass",
          "coin", "ring", "necklace", "flag", "wagon", "bike", "scooter", "sled",
          "paintbrush", "flute", "backpack", "kettle", "watch")
FOODS = ("apple", "pear", "banana", "cookie", "cake", "pie", "sandwich", "muffin",
         "strawberry", "cherry", "carrot", "orange", "plum", "pancake", "bun", "cupcake",
         "peach", "biscuit", "lemon tart", "sweet potato")
ITEMS = TOYS + THINGS

FEELINGS = ("happy", "glad", "sad", "scared", "angry", "excited", "proud", "worried",
            "surprised", "lonely", "tired", "shy", "curious", "grumpy", "calm",
            "nervous", "upset", "cheerful", "thankful", "sorry", "bored", "hopeful",
            "jealous", "relieved")
GOOD_FEELINGS = ("happy", "glad", "proud", "cheerful", "thankful", "relieved",
                 "excited", "calm", "hopeful")
BAD_FEELINGS = ("sad", "worried", "upset", "lonely", "grumpy", "angry", "scared",
                "nervous", "bored")

TIMES = ("morning", "afternoon", "evening", "day", "Saturday", "Sunday morning",
         "summer day", "autumn morning", "winter afternoon", "spring morning",
         "rainy Monday", "windy day", "quiet evening")

MORNINGS = ("morning", "Saturday morning", "Sunday morning", "summer morning",
            "spring morning", "autumn morning", "winter morning", "sunny morning")

ACTIVITIES = ("paint pictures", "sing songs", "dance", "read books", "climb trees",
              "play ball", "build towers", "draw pictures", "bake cookies",
              "collect shells", "splash in puddles", "watch the stars", "run fast",
              "jump rope", "plant flowers", "tell jokes", "ride a bike", "swim",
              "play the drum", "look for bugs", "make paper boats", "fly kites",
              "pick berries", "count clouds", "whistle")

VOWEL_EXCEPTIONS = ("uni", "use", "one", "eu")


def article(phrase):
    """'a' or 'an' for the noun phrase that follows."""
    w = phrase.lower()
    if w[0] in "aeiou" and not w.startswith(VOWEL_EXCEPTIONS):
        return "an"
    if w.startswith("hour"):
        return "an"
    return "a"


def a(phrase):
    return article(phrase) + " " + phrase


def cap(s):
    return s[:1].upper() + s[1:]


def plural(noun):
    """English plural of the nouns used here (last word of the phrase)."""
    head, _, last = noun.rpartition(" ")
    irregular = {"mouse": "mice", "goose": "geese", "sheep": "sheep", "deer": "deer",
                 "fish": "fish", "child": "children", "leaf": "leaves", "loaf": "loaves",
                 "potato": "potatoes", "tomato": "tomatoes", "knife": "knives",
                 "scarf": "scarves", "wolf": "wolves", "person": "people"}
    if last in irregular:
        p = irregular[last]
    elif last.endswith(("s", "x", "ch", "sh", "z")):
        p = last + "es"
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u"):
        p = last[:-1] + "ies"
    else:
        p = last + "s"
    return (head + " " + p) if head else p


NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                "nine", "ten", "eleven", "twelve")
