"""Typed instruction → simulated task: read for what it names, in English, Spanish, Mandarin or Hindi.

The scripted policy and the sim validator need to know which task the person means; the
web demo and the `python -m policy` CLI both ask here. The reader looks words up in
assets/lexicon.json (synonyms for actions, objects, targets, flags, relations; articles,
politeness and pronouns ignored) and decides the task from what the instruction names:

    pick verb + object                               → pick_up(object)
    (pick|place) verb + object + on/in + target      → pick_and_place(object, target)
    ... a pick verb after the place verb             → pick_place_lift(object, target)
    pick verb + item + above/near + <country> flag   → pick_up_semantic(flag)

Generic nouns and colours ("the vegetable", "the yellow one", "the container") stand for
whatever in the scene fits: exactly one → that thing; several → `AmbiguousInstruction`, a
question back that lists the candidates. Wrong is worse than refused: a word the lexicon
does not know, something the scene lacks, a negation, a relation the task cannot honour
("next to", "out of") or two objects at once raise `InstructionRefused` with what the
simulator can do — never the nearest other task. Both are `ValueError`s.

    >>> match_instruction("could you toss the fruit into the saucepan please").task
    PickAndPlace(object='banana', target='pot')
    >>> try:
    ...     match_instruction("put the vegetable on the plate")
    ... except AmbiguousInstruction as e:
    ...     print(e.question, len(e.candidates))
    which vegetable do you mean: the carrot or the eggplant? 2
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

LEXICON_PATH = Path(__file__).resolve().parents[2] / "assets" / "lexicon.json"
LANGS = ("en", "es", "zh", "hi")


@dataclass(frozen=True)
class Match:
    task: object  # robot.sim.tasks.Task
    lang: str  # the language the instruction was read in
    template: str  # the task's canonical instruction in that language
    resolved: tuple[str, ...] = ()  # how generic nouns were resolved, for the page: "the fruit → the banana"


class InstructionRefused(ValueError):
    """The simulator cannot name a task for this instruction; `reason` says why, the message adds what it can do."""

    def __init__(self, text: str, reason: str) -> None:
        self.text, self.reason = text.strip(), reason
        super().__init__(f"the simulator has no task like “{self.text}”: {reason}. {known_tasks()}")


class AmbiguousInstruction(InstructionRefused):
    """More than one thing in the scene fits: `question` asks which, `candidates` are the tasks it could mean."""

    def __init__(self, text: str, question: str, candidates: tuple) -> None:
        self.text, self.reason, self.question, self.candidates = text.strip(), question, question, candidates
        ValueError.__init__(self, f"“{self.text}” could mean more than one thing here: {question}")


# --------------------------------------------------------------------------- text → tokens

def _fold(ch: str) -> str:
    cat = unicodedata.category(ch)
    if cat[0] in "PSZ" or cat == "Cc":  # punctuation, symbols, spaces
        return " "
    if ch < "\u0250":  # Latin: drop accents (á → a, ñ → n) so "platano" and "plátano" read the same
        return "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    if ch == "\u093c":  # Devanagari nukta: often left out when typing (ज़रा / जरा)
        return ""
    if ch == "\u0901":  # chandrabindu typed as anusvara (उठाएँ / उठाएं)
        return "\u0902"
    return ch


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"['’](s\b)?", "", text)  # japan's → japan, don't → dont
    return " ".join("".join(map(_fold, text)).split())


def tokens(text: str) -> tuple[str, ...]:
    """Words, with every Mandarin character a token of its own (Mandarin has no spaces)."""
    out: list[str] = []
    for word in normalize(text).split():
        out += [t for t in re.split(r"([\u3400-\u9fff\uf900-\ufaff])", word) if t]
    return tuple(out)


# --------------------------------------------------------------------------- the lexicon


@dataclass(frozen=True)
class Word:
    """One lexicon entry. kind: object | target | class | flag | relation | pick | place | flag_word | negation | absent | ignore."""

    kind: str
    value: str  # the scene name, class name or relation name; "" where the kind says it all
    members: frozenset[str] = frozenset()  # class: what in the scene it may stand for; relation: its senses
    attribute: bool = False  # class: a colour, which narrows a noun but names nothing by itself
    phrase: str = ""


@lru_cache(maxsize=1)
def lexicon() -> dict[str, dict[tuple[str, ...], Word]]:
    """Per language: token tuple → Word. A phrase with two meanings in one language is a bug in the asset."""
    try:
        raw = json.loads(LEXICON_PATH.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"the instruction lexicon is missing: {LEXICON_PATH} (restore assets/ from the repository)") from None
    table: dict[str, dict[tuple[str, ...], Word]] = {lang: {} for lang in LANGS}

    def add(entry: dict, word: Word) -> None:
        for lang in LANGS:
            for phrase in entry.get(lang, []):
                key = tokens(phrase)
                w = Word(word.kind, word.value, word.members, word.attribute, phrase)
                old = table[lang].setdefault(key, w)
                if (old.kind, old.value) != (w.kind, w.value):
                    raise ValueError(f"{LEXICON_PATH}: “{phrase}” ({lang}) is both {old.kind} {old.value!r} and {w.kind} {w.value!r}")

    for section, kind in (("objects", "object"), ("targets", "target"), ("flags", "flag")):
        for name, entry in raw[section].items():
            add(entry, Word(kind, name, frozenset([name])))
    for name, entry in raw["classes"].items():
        add(entry, Word("class", name, frozenset(entry["members"]), bool(entry.get("attribute"))))
    for name, entry in raw["relations"].items():
        add(entry, Word("relation", name, frozenset(entry["senses"])))
    for kind, entry in raw["words"].items():
        add(entry, Word("flag_word" if kind == "flag" else kind, ""))
    add(raw["absent"], Word("absent", ""))
    return table


def read(toks: tuple[str, ...], lang: str) -> tuple[list[Word], list[str]]:
    """Longest-phrase-first reading of the tokens in one language: (words in order, unknown tokens)."""
    table = lexicon()[lang]
    longest = max(map(len, table))
    words, unknown, i = [], [], 0
    while i < len(toks):
        for n in range(min(longest, len(toks) - i), 0, -1):
            w = table.get(toks[i : i + n])
            if w is not None:
                if w.kind != "ignore":
                    words.append(w)
                i += n
                break
        else:
            unknown.append(toks[i])
            i += 1
    return words, unknown


# --------------------------------------------------------------------------- words → task


def _scene(scene: Iterable[str] | None) -> frozenset[str]:
    from robot.sim.scene import CONTAINERS, FLAGS, PICKABLES

    return frozenset(scene) if scene is not None else frozenset(PICKABLES + CONTAINERS + FLAGS)


def _english(name: str) -> str:
    from robot.sim.tasks import instructions

    t = instructions()
    for section in ("objects", "flags"):
        if name in t[section]:
            return f"the {t[section][name]['en']}" + (" flag" if section == "flags" else "")
    return f"the {name}"


def _or(names: Iterable[str]) -> str:
    names = [_english(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


@dataclass
class _Slot:
    """What the instruction says about one role (the object, the target or the flag)."""

    nouns: list[Word]
    attributes: list[Word]

    def candidates(self, pool: frozenset[str], text: str) -> tuple[str, ...]:
        """The things in `pool` (the scene's, for this role) that every noun and attribute fits; refuses what the scene lacks."""
        specific = {w.value for w in self.nouns if w.kind != "class"}
        if len(specific) > 1:
            names = [_english(n) for n in _sorted(specific)]
            raise InstructionRefused(text, f"it names {' and '.join(names)} where the task takes one")
        fits = set(pool)
        for w in self.nouns + self.attributes:
            if w.kind != "class" and w.value not in pool:
                raise InstructionRefused(text, f"there is no {w.phrase} in the scene")
            fits &= w.members
        if not fits:
            said = " ".join(w.phrase for w in self.attributes + self.nouns)
            raise InstructionRefused(text, f"nothing in the scene is “{said}”")
        return _sorted(fits)

    def label(self) -> str:
        generic = [w for w in self.nouns if w.kind == "class"]
        return generic[0].value if generic else "one"


_ORDER = ("carrot", "eggplant", "banana", "plate", "pot", "towel", "japan", "italy", "brazil")


def _sorted(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)))


def _slots(words: list[Word]) -> dict[str, _Slot]:
    from robot.sim.scene import CONTAINERS, PICKABLES

    slots = {"object": _Slot([], []), "target": _Slot([], []), "flag": _Slot([], [])}
    for w in words:
        if w.kind == "object" or (w.kind == "class" and w.members <= set(PICKABLES)):
            role = "object"
        elif w.kind == "target" or (w.kind == "class" and w.members <= set(CONTAINERS)):
            role = "target"
        elif w.kind == "flag":
            role = "flag"
        else:
            continue
        (slots[role].attributes if w.attribute else slots[role].nouns).append(w)
    return slots


def _task_from(text: str, words: list[Word], scene: frozenset[str]):
    """Steps: 1. refuse what cannot be honoured; 2. the shape of the instruction picks the task;
    3. the roles' candidates in the scene fill it — one each, or a question back."""
    from robot.sim.scene import CONTAINERS, FLAGS, PICKABLES
    from robot.sim.tasks import PickAndPlace, PickPlaceLift, PickUp, PickUpSemantic

    # 1. things the simulator cannot honour, whatever else the instruction says
    kinds = [w.kind for w in words]
    if "negation" in kinds:
        raise InstructionRefused(text, "it says what not to do; say what to do instead")
    absent = [w.phrase for w in words if w.kind == "absent"]
    if absent:
        raise InstructionRefused(text, f"there is no {absent[0]} in the scene")
    picks = [i for i, k in enumerate(kinds) if k == "pick"]
    places = [i for i, k in enumerate(kinds) if k == "place"]
    if not picks and not places:
        raise InstructionRefused(text, "it names no action (say e.g. “pick up …” or “put … on …”)")
    relations = [w for w in words if w.kind == "relation"]
    slots = _slots(words)
    for role, slot in slots.items():
        if slot.attributes and not slot.nouns:
            raise InstructionRefused(text, f"“{slot.attributes[0].phrase}” describes something but names no {role}")

    # 2. the shape: a flag → the semantic task; a target → placing; else picking up
    pool_obj = scene & frozenset(PICKABLES)
    if slots["flag"].nouns or "flag_word" in kinds:
        if slots["target"].nouns or places:
            raise InstructionRefused(text, "with a flag the simulator only picks up the item above it")
        if any(w.kind != "class" or w.value != "item" for w in slots["object"].nouns + slots["object"].attributes):
            raise InstructionRefused(text, "name the flag or the object, not both (which item lies above which flag changes from episode to episode)")
        if not relations or any(not (w.members & {"above", "near"}) for w in relations):
            raise InstructionRefused(text, "the item to pick up lies above (beyond) a flag card; other places relative to a flag are not a task")
        if not slots["flag"].nouns:
            flags = tuple(f for f in FLAGS if f in scene)
            raise AmbiguousInstruction(text, f"which flag do you mean: {_or(flags)}?", tuple(PickUpSemantic(flag=f) for f in flags))
        (flag,) = slots["flag"].candidates(scene & frozenset(FLAGS), text)
        return PickUpSemantic(flag=flag), ()
    if not slots["object"].nouns:
        raise InstructionRefused(text, "it names no object to pick up")
    if slots["target"].nouns:
        bad = [w.phrase for w in relations if "onto" not in w.members]
        if bad or not relations:
            how = f"“{bad[0]}” it" if bad else "by it without “on” or “in”"
            raise InstructionRefused(text, f"the simulator puts things on or in a target, not {how}")
        lift_again = bool(places) and any(i > places[0] for i in picks)
        cls = PickPlaceLift if lift_again else PickAndPlace
        objs = slots["object"].candidates(pool_obj, text)
        targets = slots["target"].candidates(scene & frozenset(CONTAINERS), text)
        options = [cls(object=o, target=t) for o, t in itertools.product(objs, targets)]
        questions = [f"which {s.label()} do you mean: {_or(c)}?" for s, c in ((slots["object"], objs), (slots["target"], targets)) if len(c) > 1]
    else:
        if places:
            raise InstructionRefused(text, "it says to put something down but not where (on the plate, in the pot or on the towel)")
        if relations:
            raise InstructionRefused(text, f"it says “{relations[0].phrase}” but names no target")
        objs = slots["object"].candidates(pool_obj, text)
        options = [PickUp(object=o) for o in objs]
        questions = [f"which {slots['object'].label()} do you mean: {_or(objs)}?"] if len(objs) > 1 else []

    # 3. one candidate each, or ask
    if questions:
        raise AmbiguousInstruction(text, " And ".join(q[0].upper() + q[1:] for q in questions) if len(questions) > 1 else questions[0], tuple(options))
    (task,) = options
    resolved = tuple(
        f"“{w.phrase}” → {_english(getattr(task, role))} (the only {w.value} in the scene)"
        for role, slot in slots.items() if role != "flag"
        for w in slot.nouns if w.kind == "class"
    )
    return task, resolved


def match_instruction(text: str, scene: Iterable[str] | None = None) -> Match:
    """The task an instruction names. `scene`: the names of what is on the table (default: the simulator's full set).

    Raises `AmbiguousInstruction` (a question back) or `InstructionRefused` (why, and what the
    simulator can do); both are `ValueError`s.
    """
    toks = tokens(text)
    if not toks:
        raise ValueError("type an instruction, e.g. “pick up the carrot”")
    readings = [(lang, *read(toks, lang)) for lang in LANGS]
    clean = [(lang, words) for lang, words, unknown in readings if not unknown]
    if not clean:
        _lang, _words, unknown = min(readings, key=lambda r: len(r[2]))
        listed = ", ".join(f"“{u}”" for u in dict.fromkeys(unknown))
        raise InstructionRefused(text, f"it does not know the word{'s' if len(unknown) > 1 else ''} {listed}")
    where = _scene(scene)
    results: dict[str, tuple] = {}
    error: InstructionRefused | None = None
    for lang, words in clean:
        try:
            results[lang] = _task_from(text, words, where)
        except InstructionRefused as e:
            error = error or e
    if not results:
        assert error is not None
        raise error
    if len({task for task, _ in results.values()}) > 1:
        raise InstructionRefused(text, "it reads as different tasks in different languages")
    lang, (task, resolved) = next(iter(results.items()))
    return Match(task, lang, task.instruction(lang), resolved)


def known_tasks() -> str:
    from robot.sim.tasks import instructions

    t = instructions()
    objs = " / ".join(v["en"] for v in t["objects"].values())
    targets = " / ".join(v["en"] for v in t["targets"].values())
    flags = " / ".join(v["en"] for v in t["flags"].values())
    return (
        f"It knows: pick up the {objs}; put the <object> {targets} (optionally “then pick it up again and lift it”); "
        f"pick up the item above the {flags} flag — also in Spanish, Mandarin and Hindi."
    )


def examples(per_language: int = 3) -> list[tuple[str, str]]:
    """(instruction, language name) examples for the page, a few per language, from the templates."""
    from robot.sim.tasks import TASKS, instructions

    names = instructions()["languages"]
    wanted = [("pick_up", {"object": "carrot"}), ("pick_and_place", {"object": "carrot", "target": "plate"}),
              ("pick_up_semantic", {"flag": "japan"}), ("pick_and_place", {"object": "banana", "target": "pot"})]
    return [(TASKS[name](**params).instruction(lang), names[lang]) for lang in names for name, params in wanted[:per_language]]
