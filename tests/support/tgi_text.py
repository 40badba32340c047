"""The loopback TGI server's replies: English-looking prose that is a pure function of its inputs.

``reply_text(prompt, seed=..., temperature=...)`` builds sentences from a ~1,500-word vocabulary and
phrases quoted in the prompt, honouring a "between N and M words" request; ``light_edit`` makes
a near copy (for planted near-duplicates); ``REFUSALS`` are what assistants say when they decline.
"""

from __future__ import annotations

import hashlib
import json
import random
import re

__all__ = ["EMPTY_REPLIES", "REFUSALS", "digest", "fraction", "light_edit", "reply_text"]

REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "As an AI language model, I cannot create content of this kind. Please let me know if there is anything else"
    " I can help you with.",
    "I apologize, but I cannot generate that text as it may not be appropriate.",
    "I'm sorry, but I am unable to fulfill this request.",
    "Unfortunately, I cannot provide a response to this request because it goes against my content guidelines.",
    "I cannot fulfill that request. If you have another topic in mind, I would be happy to help.",
)
EMPTY_REPLIES = ("", " ", "\n", " \n\t ")
_RANGE = re.compile(r"between (\d+) (?:words )?and (\d+) words", re.IGNORECASE)
_QUOTED = re.compile(r"\"([^\"\n]{2,80})\"|\u201c([^\u201d\n]{2,80})\u201d|(?<!\w)'([^'\n]{2,80})'(?!\w)")
_INSTRUCTION_WORDS = frozenset(
    "about above approximately around below between create following generate length please response sentence"
    " sentences should style their there these which words write written".split()
)

# ---- Vocabulary: ~1,500 common English words by part of speech, so sentences read like prose. ----
_DETERMINERS = "the a this that every each one another our their its his her my your".split()
_PREPOSITIONS = (
    "about above across after against along among around at before behind below beneath beside beyond by despite"
    " during for from inside into near of off on onto outside over past through throughout toward under upon with"
    " within without"
).split()
_CONJUNCTIONS = "and but while because although since after before until so yet whereas once though unless".split()
_NOUNS = """
time year people way day man woman child world life hand part place case week company system program question work
government number night point home water room mother area money story fact month lot study book eye job word
business issue side head house service friend father power hour game line end member law car city community name
president team minute idea kid body information back parent face office door health person art war history party
result change morning reason research girl guy moment air teacher force education foot boy age policy process music
market sense nation plan college interest death experience effect class control care field development role effort
rate heart leader voice wife police mind price report decision son view relationship town road arm difference value
building action model season society tax director position player record paper space ground form event matter center
couple site project activity star table need court oil situation cost industry figure street image phone data
picture practice piece land product doctor wall worker news test movie north love support technology step baby
computer type attention film tree source organization hair window evidence population island garden river mountain
valley forest ocean beach desert lake village harbor bridge tower castle cottage cabin kitchen bedroom hallway
basement attic balcony porch fence gate roof floor ceiling stair chair sofa lamp mirror carpet curtain blanket
pillow basket bottle bucket candle clock cup plate bowl spoon fork knife kettle oven stove fridge drawer shelf
cupboard closet desk pencil notebook envelope letter stamp map globe compass ladder hammer nail rope chain wheel
engine motor battery cable wire switch button screen keyboard camera radio television speaker microphone printer
tablet laptop network signal satellite rocket planet moon sun cloud rain snow storm wind thunder lightning fog frost
ice flame smoke ash dust sand rock crystal iron copper gold wood brick plastic cotton silk fabric needle banana
grape peach plum carrot tomato garlic cabbage bean rice bread cheese milk honey salt salad pasta cookie dessert
lunch supper feast recipe taste spice dish waiter restaurant bakery farmer sailor driver officer lawyer surgeon
scientist architect painter musician dancer writer novelist editor librarian professor coach champion audience
neighbor guest visitor traveler citizen villager customer partner rival ally villain queen princess wizard cow sheep
chicken goose rabbit rat fox bear moose tiger giraffe monkey whale shark snake spider ant bird hawk parrot sparrow
swan salmon cat puppy pet farm meadow vineyard canyon cave slope summit glacier swamp pond creek spring canal shore
bay peninsula country province district suburb border highway lane path track station terminal ticket voyage tour
expedition quest vacation parade exhibition museum cinema arena playground school campus laboratory clinic bank
warehouse studio shop supermarket motel prison temple cathedral monument memorial tomb treasure puzzle clue solution
challenge chance danger promise contract offer request complaint debate conversation speech lesson subject theme
page paragraph message diary newspaper headline review summary draft edition sample instance shape weight length
depth speed rhythm pitch song chorus lyric band choir piano violin flute saxophone stage script character series
drama tragedy documentary animation banner symbol label sign medal prize gift celebration wedding anniversary
graduation meeting session survey election campaign senator mayor ambassador council board department ministry
congress assembly league alliance treaty salary profit debt credit stock share account payment invoice coin euro
purse backpack luggage box container tube valve tank hose tractor van taxi tram bicycle scooter ship canoe submarine
jet vehicle garage traffic collision damage wound cough illness virus vaccine pill therapy diet workout energy
posture bone blood nerve liver stomach thumb elbow knee toe neck mouth tongue nose chin eyebrow smile sigh shout
memory thought opinion emotion attitude soul fear joy grief shame faith doubt curiosity kindness knowledge talent
habit tradition culture language accent vocabulary digit percent total amount quality detail element component
material mixture vapor heat pressure surface corner curve triangle cube spot color tint painting sketch landscape
frame brush crayon marker ruler glue ribbon knot ring bracelet jewel pearl emerald helmet cap glove coat sweater
blouse skirt jeans sock boot belt collar zipper raincoat costume wig soap shampoo comb sponge mop laundry trash
compost fertilizer root branch twig trunk flower tulip lily sunflower weed fern bush hedge harvest grain
""".split()
_ADJECTIVES = """
new good high old great big small large national young different long little important political bad white real best
right social only public sure low early able human local late hard major better economic strong possible whole free
military true federal international full special easy clear recent certain personal open red difficult available
likely short single medical current wrong private past foreign fine common poor natural significant similar hot
happy serious ready simple physical general environmental financial blue democratic dark various entire close legal
religious cold final main green nice huge popular traditional cultural wide deep quiet bright calm careful cheerful
clever curious eager elegant fancy gentle gorgeous honest humble jolly kind lively lucky modern narrow nervous
patient polite proud quick rapid rare rich rough sharp shiny silent smooth soft solid steady strange sudden sweet
tall tender thick thin tiny warm weak wealthy wild wise ancient annual anxious athletic attractive automatic awkward
beautiful bitter bold brief brilliant busy capable charming chief civil clean clumsy colorful commercial compact
confident constant correct crazy creative crowded crucial cute damp dear delicate dense distant domestic dramatic
dull dynamic efficient electronic emotional endless essential ethical evil excellent exciting expensive expert
extreme faithful familiar fantastic fast fierce flat flexible formal fortunate frank friendly frozen furious
generous giant global golden gradual grateful gray grim handsome healthy helpful hidden hollow holy hopeful hungry
icy idle immense informal inner innocent interior junior keen lean legendary light literary logical loose loud loyal
magnificent manual mature meaningful mental messy mighty minor mobile modest monthly moral musical mysterious neat
neutral noble normal novel numerous odd official organic outer overall perfect permanent plain plenty polished
powerful precious precise primary prime professional proper pure quaint radical raw regional regular reliable
remarkable reverse ripe risky robust rotten round rural rusty safe sandy scarce secret secure sensitive severe
shallow shy sincere sleepy slow smart sober solar sound spare specific splendid stable stale sticky stiff straight
striking stunning subtle successful sunny superior supreme symbolic technical terrible thorough thoughtful tight
tropical typical ultimate unique unusual urban urgent vacant vague valuable verbal vibrant virtual visible vivid
woolen worthy youthful
""".split()
_VERBS = """
accepted achieved added admired admitted adopted advised affected aimed allowed announced answered applied
appreciated approached approved arranged assumed attached attempted attended avoided baked balanced believed
borrowed bought brought built burned called captured carried caught caused celebrated changed chased checked chose
cleaned climbed closed collected combined compared completed confirmed connected considered contained continued
controlled cooked copied counted covered created crossed decided declared defended delivered demanded described
designed destroyed developed discovered discussed divided doubled drew dropped earned embraced enjoyed entered
escaped examined expanded expected explained explored expressed faced fed filled finished fixed followed formed
found gathered gave grabbed greeted grew guided handled heard helped hid hired held hosted identified ignored
imagined improved included increased influenced informed inspired installed introduced invented invited joined
judged kicked knew launched learned lifted liked loaded located lost loved maintained managed marked measured met
missed moved named needed noticed observed obtained offered opened ordered organized owned packed painted passed
performed placed planted poured predicted presented pressed printed produced proved published pushed raised received
recommended reduced rejected released removed repeated reported required resolved restored revealed rewarded rode
saved scored selected served shaped shifted signed sold sorted spread stopped studied supported surrounded taught
thanked threw traced trained treated turned united used visited wanted warned watched wrapped adjusted assembled
attracted branded calculated carved cherished coached composed constructed decorated delayed deserved directed
displayed documented edited elected emphasized enabled endorsed enhanced estimated evaluated featured financed
funded granted highlighted illustrated inherited inspected interviewed kept lit mapped matched modified narrated
nominated operated persuaded posted priced promoted purchased ranked recalled recruited refined registered renewed
reorganized reserved restocked retrieved revived rewrote scheduled sculpted seized simplified spotted staged
streamlined structured styled summarized surveyed tasted translated uncovered validated warmed
""".split()
_ADVERBS = """
quickly slowly quietly carefully happily easily clearly simply finally suddenly often rarely always usually
sometimes gently boldly calmly eagerly proudly warmly openly honestly loudly softly briefly closely deeply directly
evenly fairly firmly freely fully greatly highly lightly mostly nearly newly partly plainly rapidly readily really
safely sharply shortly silently smoothly steadily strongly surely swiftly truly widely wisely yearly weekly recently
lately soon later yesterday together already almost certainly definitely exactly frequently indeed instead naturally
nevertheless obviously occasionally particularly perhaps previously primarily quite rather seriously significantly
somehow somewhat still thoroughly ultimately virtually well afterward alone barely briskly constantly curiously
elegantly entirely formally gladly hastily heavily immediately initially literally merely nervously officially
politely precisely roughly secretly slightly solemnly sweetly tenderly tirelessly visibly
""".split()


_SLOTS = {"D": _DETERMINERS, "A": _ADJECTIVES, "N": _NOUNS, "V": _VERBS, "P": _PREPOSITIONS, "R": _ADVERBS,
          "C": _CONJUNCTIONS}
# Slot letters as in _SLOTS; "X" is a phrase taken from the prompt, "=word" a literal, "," joins the previous word.
_TEMPLATES = tuple(template.split() for template in (
    "D A N V D N P D A N",
    "R , D N V D A N P D N",
    "D N P D A N V D N C D N V R",
    "P D A N , D N R V D N",
    "D A N V D N C V D A N",
    "=there =was D A N P D N C D N V D A N",
    "C D N V D N , D A N V P D N",
    "D N =was A C D N V R",
    "D N V D A N P X",
    "P X , D A N V D N",
    "D N =of X V D A N R",
))
_TOPICAL = tuple(template for template in _TEMPLATES if "X" in template)
_FUNCTION_SLOTS = frozenset("DPC=")


def digest(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:16], "big")


def fraction(salt: str, prompt: str, seed: int | None) -> float:
    """A stable number in [0, 1) per (prompt, seed): decides refusals etc. without looking at time or order."""
    return (digest(salt, prompt, seed) >> 64) / 2.0**64


def _temperature(value: float | None) -> float:
    return 1.0 if value is None else float(value)  # what TGI uses when the request leaves it out


def _prompt_phrases(prompt: str) -> list[list[str]]:
    """Content the reply should mention: quoted values, else the prompt's longer words."""
    quoted = [next(group for group in match.groups() if group) for match in _QUOTED.finditer(prompt)]
    phrases = [words for words in (value.split() for value in quoted) if 0 < len(words) <= 6]
    if phrases:
        return phrases
    words = re.findall(r"[a-z]{5,}", prompt.lower())
    return [[word] for word in dict.fromkeys(words) if word not in _INSTRUCTION_WORDS][:40]


def _target_length(prompt: str, rng: random.Random) -> int:
    match = _RANGE.search(prompt)
    if match is None:
        return rng.randint(40, 80)
    low, high = sorted((max(1, int(match.group(1))), max(1, int(match.group(2)))))
    return rng.randint(low, high)


def _sentence(
    template: list[str], phrases: list[list[str]], unused: list[list[str]], rng: random.Random
) -> list[tuple[str, str]]:
    words: list[tuple[str, str]] = []  # (word, slot it filled)
    for slot in template:
        if slot == ",":
            words[-1] = (words[-1][0] + ",", words[-1][1])
        elif slot.startswith("="):
            words.append((slot[1:], "="))
        elif slot == "X" and phrases:  # every prompt value once, in order, before any repeats
            words.extend((word, "X") for word in (unused.pop(0) if unused else rng.choice(phrases)))
        elif slot == "X":
            words.extend([(rng.choice(_DETERMINERS), "D"), (rng.choice(_NOUNS), "N")])
        else:
            words.append((rng.choice(_SLOTS[slot]), slot))
    for i in range(len(words) - 1):
        if words[i][0] == "a" and words[i + 1][0][:1].lower() in "aeiou":
            words[i] = ("an", "D")
    return words


def reply_text(prompt: str, *, seed: int | None = None, temperature: float | None = None) -> str:
    """The plain reply to ``prompt``: prose of the requested length (40-80 words unless the prompt asks
    ``between N words and M words``) that mentions each quoted value of the prompt (length permitting).
    Same inputs, same text."""
    rng = random.Random(digest("reply", prompt, seed, _temperature(temperature)))
    target = _target_length(prompt, rng)
    phrases = _prompt_phrases(prompt)
    unused = list(phrases)
    sentences: list[list[tuple[str, str]]] = []
    count = 0
    while count < target:
        pool = _TOPICAL if unused else _TEMPLATES
        sentences.append(_sentence(rng.choice(pool), phrases, unused, rng))
        count += len(sentences[-1])
    if count > target:
        last = sentences[-1][: len(sentences[-1]) - (count - target)]
        if last[-1][1] in _FUNCTION_SLOTS:  # a cut sentence must not end on "the" or "of"
            last[-1] = (rng.choice(_NOUNS), "N")
        sentences[-1] = last
    texts = []
    for sentence in sentences:
        text = " ".join(word for word, _ in sentence).rstrip(",")
        texts.append(text[0].upper() + text[1:] + ".")
    if target <= 120:
        return " ".join(texts)
    paragraphs, start = [], 0
    while start < len(texts):
        size = rng.randint(4, 6)
        paragraphs.append(" ".join(texts[start : start + size]))
        start += size
    return "\n\n".join(paragraphs)


def light_edit(text: str, rng: random.Random) -> str:
    """A near copy of ``text``: one word dropped or swapped, or its punctuation or case changed."""
    words = text.split()
    if len(words) < 3:
        return text.rstrip(".") + "!"
    edit = rng.choice(("drop", "swap", "punctuation", "case"))
    edited = list(words)
    i = rng.randrange(len(words) - 1)
    if edit == "swap":
        edited[i], edited[i + 1] = edited[i + 1], edited[i]
    elif edit == "punctuation":
        edited[-1] = edited[-1][:-1] + "!" if edited[-1].endswith(".") else edited[-1] + "."
    elif edit == "case":
        edited[i] = edited[i].lower() if edited[i][:1].isupper() else edited[i].capitalize()
    if edit == "drop" or edited == words:  # a swap of equal words or a digit's "case" changes nothing
        edited = words[:i] + words[i + 1 :]
    return " ".join(edited)
