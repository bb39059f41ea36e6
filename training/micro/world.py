"""The micro model's "world": what it knows before it ever sees an action.

Gemma-3-12B arrives knowing what a carrot looks like, that "zanahoria" is Spanish for
carrot and that the white card with a red disc is Japan's flag. The micro model learns the
same kinds of knowledge here, all ground truth from the simulator, with no action text:

- scene VQA on rendered frames (multi-turn: one image, several questions): where each
  thing is (coarse regions and centimetres), left/right and near/far relations, colours,
  which item lies above each flag card (and the reverse), whether the gripper is open, what
  it holds, how many things lie left of it, which item is nearest to it;
- text-only facts: object names, subtasks and instructions translated across English,
  Spanish, Mandarin and Hindi; flag <-> country <-> look.

Every question is asked and answered in one of the four languages. Each question kind has
two phrasings per language: the first is trained on, the second only appears in the
held-out set, whose scenes also come from their own seeds (`HELDOUT_SEED_BASE`). Both
seed ranges stay below the evaluation's (`training/seeds.py`) and away from
`training.collect`'s defaults.

    >>> q = scene_questions(example_truth(), np.random.default_rng(0), n=2, phrasing=0)
    >>> [sorted(x) for x in q][0]
    ['answer', 'kind', 'lang', 'question']
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from training.seeds import check_training_seeds

LANGS = ("en", "es", "zh", "hi")
LANG_NAMES = {  # the name of language L2 said in language L1: LANG_NAMES[L1][L2]
    "en": {"en": "English", "es": "Spanish", "zh": "Mandarin", "hi": "Hindi"},
    "es": {"en": "inglés", "es": "español", "zh": "mandarín", "hi": "hindi"},
    "zh": {"en": "英语", "es": "西班牙语", "zh": "普通话", "hi": "印地语"},
    "hi": {"en": "अंग्रेज़ी", "es": "स्पेनिश", "zh": "मंदारिन", "hi": "हिंदी"},
}
TRAIN_SEED_BASE = 200_000  # world scenes trained on: TRAIN_SEED_BASE + i
HELDOUT_SEED_BASE = 400_000  # world scenes only asked about in the held-out set

PICKABLES = ("carrot", "eggplant", "banana")
CONTAINERS = ("plate", "pot", "towel")
FLAGS = ("japan", "italy", "brazil")
THINGS = PICKABLES + CONTAINERS

NAMES = {  # a thing named in an answer or inside a question, per language
    "carrot": {"en": "the carrot", "es": "la zanahoria", "zh": "胡萝卜", "hi": "गाजर"},
    "eggplant": {"en": "the eggplant", "es": "la berenjena", "zh": "茄子", "hi": "बैंगन"},
    "banana": {"en": "the banana", "es": "el plátano", "zh": "香蕉", "hi": "केला"},
    "plate": {"en": "the plate", "es": "el plato", "zh": "盘子", "hi": "थाली"},
    "pot": {"en": "the pot", "es": "la olla", "zh": "锅", "hi": "पतीला"},
    "towel": {"en": "the towel", "es": "la toalla", "zh": "毛巾", "hi": "तौलिया"},
    "japan": {"en": "the Japanese flag", "es": "la bandera japonesa", "zh": "日本国旗", "hi": "जापानी झंडा"},
    "italy": {"en": "the Italian flag", "es": "la bandera italiana", "zh": "意大利国旗", "hi": "इतालवी झंडा"},
    "brazil": {"en": "the Brazilian flag", "es": "la bandera brasileña", "zh": "巴西国旗", "hi": "ब्राज़ीली झंडा"},
    "nothing": {"en": "nothing", "es": "nada", "zh": "什么都没有", "hi": "कुछ नहीं"},
}
COUNTRIES = {
    "japan": {"en": "Japan", "es": "Japón", "zh": "日本", "hi": "जापान"},
    "italy": {"en": "Italy", "es": "Italia", "zh": "意大利", "hi": "इटली"},
    "brazil": {"en": "Brazil", "es": "Brasil", "zh": "巴西", "hi": "ब्राज़ील"},
}
FLAG_LOOKS = {
    "japan": {"en": "white with a red circle", "es": "blanca con un círculo rojo", "zh": "白底红圆", "hi": "सफ़ेद पर लाल गोला"},
    "italy": {"en": "green, white and red stripes", "es": "franjas verde, blanca y roja", "zh": "绿白红三条竖纹", "hi": "हरी, सफ़ेद और लाल पट्टियाँ"},
    "brazil": {"en": "green with a yellow diamond and a blue globe", "es": "verde con un rombo amarillo y un globo azul",
               "zh": "绿底黄菱形蓝色圆球", "hi": "हरा, पीला हीरा और नीला गोला"},
}
COLOURS = {
    "carrot": {"en": "orange", "es": "naranja", "zh": "橙色", "hi": "नारंगी"},
    "eggplant": {"en": "purple", "es": "morado", "zh": "紫色", "hi": "बैंगनी"},
    "banana": {"en": "yellow", "es": "amarillo", "zh": "黄色", "hi": "पीला"},
    "plate": {"en": "white", "es": "blanco", "zh": "白色", "hi": "सफ़ेद"},
    "pot": {"en": "grey", "es": "gris", "zh": "灰色", "hi": "स्लेटी"},
    "towel": {"en": "blue and white", "es": "azul y blanco", "zh": "蓝白色", "hi": "नीला और सफ़ेद"},
}
YES = {"en": "yes", "es": "sí", "zh": "是", "hi": "हाँ"}
NO = {"en": "no", "es": "no", "zh": "不是", "hi": "नहीं"}
DEPTH = {"near": {"en": "near", "es": "cerca", "zh": "近处", "hi": "पास"},
         "far": {"en": "far", "es": "al fondo", "zh": "远处", "hi": "दूर"}}
SIDE = {"left": {"en": "left", "es": "a la izquierda", "zh": "左边", "hi": "बाईं ओर"},
        "middle": {"en": "middle", "es": "en el centro", "zh": "中间", "hi": "बीच में"},
        "right": {"en": "right", "es": "a la derecha", "zh": "右边", "hi": "दाईं ओर"}}

DIRECTIONS = {  # the six directions of the robot's frame (+x forward, +y left, +z up)
    "forward": {"en": "forward", "es": "adelante", "zh": "向前", "hi": "आगे"},
    "backward": {"en": "backward", "es": "atrás", "zh": "向后", "hi": "पीछे"},
    "left": {"en": "left", "es": "a la izquierda", "zh": "向左", "hi": "बाएँ"},
    "right": {"en": "right", "es": "a la derecha", "zh": "向右", "hi": "दाएँ"},
    "up": {"en": "up", "es": "arriba", "zh": "向上", "hi": "ऊपर"},
    "down": {"en": "down", "es": "abajo", "zh": "向下", "hi": "नीचे"},
}
MOTIONS = {  # words a person uses about moving an arm, for the translation facts
    "move forward": {"en": "move forward", "es": "muévete hacia adelante", "zh": "向前移动", "hi": "आगे बढ़ो"},
    "move backward": {"en": "move backward", "es": "muévete hacia atrás", "zh": "向后移动", "hi": "पीछे जाओ"},
    "move left": {"en": "move left", "es": "muévete a la izquierda", "zh": "向左移动", "hi": "बाएँ जाओ"},
    "move right": {"en": "move right", "es": "muévete a la derecha", "zh": "向右移动", "hi": "दाएँ जाओ"},
    "move up": {"en": "move up", "es": "muévete hacia arriba", "zh": "向上移动", "hi": "ऊपर जाओ"},
    "move down": {"en": "move down", "es": "muévete hacia abajo", "zh": "向下移动", "hi": "नीचे जाओ"},
    "open gripper": {"en": "open the gripper", "es": "abre la pinza", "zh": "张开夹爪", "hi": "ग्रिपर खोलो"},
    "close gripper": {"en": "close the gripper", "es": "cierra la pinza", "zh": "合上夹爪", "hi": "ग्रिपर बंद करो"},
    "slightly": {"en": "move slightly down", "es": "muévete un poco hacia abajo", "zh": "稍微向下移动", "hi": "थोड़ा नीचे जाओ"},
}
SUBTASKS = {  # robot.sim.tasks.Phase.phrase, per language ({o}: the object's name)
    "reach": {"en": "reach for {o}", "es": "alcanza {o}", "zh": "够到{o}", "hi": "{o} तक पहुँचो"},
    "grasp": {"en": "grasp {o}", "es": "agarra {o}", "zh": "抓住{o}", "hi": "{o} पकड़ो"},
    "lift": {"en": "lift {o}", "es": "levanta {o}", "zh": "举起{o}", "hi": "{o} ऊपर उठाओ"},
    "release": {"en": "release {o}", "es": "suelta {o}", "zh": "松开{o}", "hi": "{o} छोड़ो"},
}

# Question templates: QUESTIONS[kind][lang] = (trained phrasing, held-out phrasing).
QUESTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "region": {
        "en": ("Where is {a} on the table?", "In which part of the table is {a}?"),
        "es": ("¿Dónde está {a} en la mesa?", "¿En qué parte de la mesa está {a}?"),
        "zh": ("{a}在桌子的哪里？", "{a}在桌子的哪个部分？"),
        "hi": ("मेज़ पर {a} कहाँ है?", "{a} मेज़ के किस हिस्से में है?"),
    },
    "coords": {
        "en": ("What are the coordinates of {a}?", "Give the position of {a} in centimetres."),
        "es": ("¿Cuáles son las coordenadas de {a}?", "Da la posición de {a} en centímetros."),
        "zh": ("{a}的坐标是多少？", "用厘米给出{a}的位置。"),
        "hi": ("{a} के निर्देशांक क्या हैं?", "{a} की स्थिति सेंटीमीटर में बताओ।"),
    },
    "gripper_coords": {
        "en": ("Where is the gripper?", "Give the position of the gripper in centimetres."),
        "es": ("¿Dónde está la pinza?", "Da la posición de la pinza en centímetros."),
        "zh": ("夹爪在哪里？", "用厘米给出夹爪的位置。"),
        "hi": ("ग्रिपर कहाँ है?", "ग्रिपर की स्थिति सेंटीमीटर में बताओ।"),
    },
    "offset": {
        "en": ("How far is {a} from the gripper?", "Where is {a} relative to the gripper?"),
        "es": ("¿A qué distancia está {a} de la pinza?", "¿Dónde está {a} respecto a la pinza?"),
        "zh": ("{a}离夹爪多远？", "{a}相对夹爪在哪里？"),
        "hi": ("{a} ग्रिपर से कितनी दूर है?", "ग्रिपर के हिसाब से {a} कहाँ है?"),
    },
    "left_of": {
        "en": ("Is {a} to the left of {b}?", "Is {a} further left than {b}?"),
        "es": ("¿Está {a} a la izquierda de {b}?", "¿Está {a} más a la izquierda que {b}?"),
        "zh": ("{a}在{b}的左边吗？", "{a}比{b}更靠左吗？"),
        "hi": ("क्या {a} {b} के बाईं ओर है?", "क्या {a} {b} से ज़्यादा बाईं ओर है?"),
    },
    "farther": {
        "en": ("Is {a} farther from the robot than {b}?", "Is {a} further away than {b}?"),
        "es": ("¿Está {a} más lejos del robot que {b}?", "¿Está {a} más al fondo que {b}?"),
        "zh": ("{a}比{b}离机器人更远吗？", "{a}比{b}更远吗？"),
        "hi": ("क्या {a} {b} से रोबोट से ज़्यादा दूर है?", "क्या {a} {b} से ज़्यादा दूर है?"),
    },
    "colour": {
        "en": ("What colour is {a}?", "Which colour does {a} have?"),
        "es": ("¿De qué color es {a}?", "¿Qué color tiene {a}?"),
        "zh": ("{a}是什么颜色？", "{a}有什么颜色？"),
        "hi": ("{a} किस रंग का है?", "{a} का रंग क्या है?"),
    },
    "above_flag": {
        "en": ("What is above {a}?", "Which item lies above {a}?"),
        "es": ("¿Qué hay encima de {a}?", "¿Qué objeto está encima de {a}?"),
        "zh": ("{a}上方是什么？", "{a}上方放着哪个物品？"),
        "hi": ("{a} के ऊपर क्या है?", "{a} के ऊपर कौन सी चीज़ रखी है?"),
    },
    "flag_below": {
        "en": ("Which flag is below {a}?", "Which flag card lies under {a}?"),
        "es": ("¿Qué bandera está debajo de {a}?", "¿Qué bandera hay bajo {a}?"),
        "zh": ("{a}下方是哪面国旗？", "哪面国旗在{a}下面？"),
        "hi": ("{a} के नीचे कौन सा झंडा है?", "कौन सा झंडा {a} के नीचे रखा है?"),
    },
    "gripper_open": {
        "en": ("Is the gripper open?", "Are the gripper's fingers open?"),
        "es": ("¿Está abierta la pinza?", "¿Tiene la pinza los dedos abiertos?"),
        "zh": ("夹爪是张开的吗？", "夹爪的手指张开了吗？"),
        "hi": ("क्या ग्रिपर खुला है?", "क्या ग्रिपर की उँगलियाँ खुली हैं?"),
    },
    "holding": {
        "en": ("What is the gripper holding?", "What is in the gripper?"),
        "es": ("¿Qué sostiene la pinza?", "¿Qué hay en la pinza?"),
        "zh": ("夹爪拿着什么？", "夹爪里有什么？"),
        "hi": ("ग्रिपर क्या पकड़े हुए है?", "ग्रिपर में क्या है?"),
    },
    "count_left": {
        "en": ("How many things are to the left of the gripper?", "Count the things left of the gripper."),
        "es": ("¿Cuántas cosas hay a la izquierda de la pinza?", "Cuenta las cosas a la izquierda de la pinza."),
        "zh": ("夹爪左边有几样东西？", "数一数夹爪左边的东西。"),
        "hi": ("ग्रिपर के बाईं ओर कितनी चीज़ें हैं?", "ग्रिपर के बाईं ओर की चीज़ें गिनो।"),
    },
    "nearest": {
        "en": ("Which item is closest to the gripper?", "Which item is nearest the gripper?"),
        "es": ("¿Qué objeto está más cerca de la pinza?", "¿Cuál es el objeto más próximo a la pinza?"),
        "zh": ("哪个物品离夹爪最近？", "最靠近夹爪的是哪个物品？"),
        "hi": ("कौन सी चीज़ ग्रिपर के सबसे पास है?", "ग्रिपर के सबसे नज़दीक कौन सी चीज़ है?"),
    },
    # text-only facts
    "translate": {
        "en": ("Translate into {b}: {a}", "How do you say this in {b}: {a}"),
        "es": ("Traduce al {b}: {a}", "¿Cómo se dice esto en {b}?: {a}"),
        "zh": ("翻译成{b}：{a}", "用{b}怎么说：{a}"),
        "hi": ("{b} में अनुवाद करो: {a}", "इसे {b} में कैसे कहते हैं: {a}"),
    },
    "flag_country": {
        "en": ("Which country does {a} belong to?", "{a} is the flag of which country?"),
        "es": ("¿De qué país es {a}?", "¿{a} es la bandera de qué país?"),
        "zh": ("{a}是哪个国家的？", "{a}代表哪个国家？"),
        "hi": ("{a} किस देश का है?", "{a} किस देश का झंडा है?"),
    },
    "flag_look": {
        "en": ("What does {a} look like?", "Describe {a}."),
        "es": ("¿Cómo es {a}?", "Describe {a}."),
        "zh": ("{a}是什么样子？", "描述{a}。"),
        "hi": ("{a} कैसा दिखता है?", "{a} का वर्णन करो।"),
    },
    "which_flag": {
        "en": ("Which flag is {a}?", "Name the flag that is {a}."),
        "es": ("¿Qué bandera es {a}?", "Nombra la bandera que es {a}."),
        "zh": ("哪面国旗是{a}？", "说出{a}的国旗。"),
        "hi": ("कौन सा झंडा {a} है?", "उस झंडे का नाम बताओ जो {a} है।"),
    },
}
SCENE_KINDS = ("region", "coords", "gripper_coords", "offset", "offset", "left_of", "farther", "colour", "above_flag", "flag_below",
               "gripper_open", "holding", "count_left", "nearest")
#: the kinds of a "where is it" conversation (WorldConfig.locate_conversations_per_scene)
LOCATE_KINDS = ("coords", "offset", "gripper_coords")
MIN_GAP = 0.02  # metres: relations closer than this are ambiguous to a person, so they are not asked


@dataclass
class SceneTruth:
    """What the simulator knows about one rendered frame (metres, base frame)."""

    seed: int
    image: str  # path relative to the world folder
    positions: dict[str, list[float]]  # every thing and card
    gripper_pos: list[float]
    gripper_open: bool
    holding: str  # a pickable or "nothing"
    above_flag: dict[str, str]  # flag -> the pickable just beyond it ("flags" layout only, else {})


def example_truth() -> SceneTruth:
    pos = {n: [0.2 + 0.03 * i, -0.1 + 0.05 * i, 0.01] for i, n in enumerate(THINGS + FLAGS)}
    return SceneTruth(0, "images/0.jpg", pos, [0.25, 0.0, 0.16], True, "nothing", {})


def _q(kind: str, lang: str, phrasing: int, **kw: str) -> str:
    return QUESTIONS[kind][lang][phrasing].format(**kw)


def cm(v: float) -> str:
    """Metres -> centimetres with one decimal, as the prompts and the action language write them."""
    return f"{v * 100:.1f}".replace("-0.0", "0.0")


def offset_phrase(d: list[float], lang: str) -> str:
    """A displacement in the robot's frame as '6.2 cm forward, 3.1 cm right, 14.0 cm down' (in `lang`)."""
    parts = []
    for v, (pos, neg) in zip(d, (("forward", "backward"), ("left", "right"), ("up", "down"))):
        if abs(v) >= 0.0005:
            parts.append(f"{cm(abs(v))} cm {DIRECTIONS[pos if v > 0 else neg][lang]}")
    sep = "，" if lang == "zh" else ", "
    return sep.join(parts) if parts else {"en": "at the gripper", "es": "en la pinza", "zh": "就在夹爪处", "hi": "ग्रिपर पर"}[lang]


def region(p: list[float], lang: str) -> str:
    depth = "near" if p[0] < 0.28 else "far"
    side = "left" if p[1] > 0.06 else ("right" if p[1] < -0.04 else "middle")
    return f"{DEPTH[depth][lang]}{'' if lang == 'zh' else ' '}{SIDE[side][lang]}"


def scene_questions(t: SceneTruth, rng: np.random.Generator, n: int, phrasing: int,
                    kinds: tuple[str, ...] = SCENE_KINDS) -> list[dict[str, str]]:
    """Up to `n` distinct question/answer pairs about scene `t` (of `kinds`), each in a random language."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for _ in range(n * 4):
        if len(out) >= n:
            break
        kind = str(rng.choice([k for k in kinds if t.above_flag or k not in ("above_flag", "flag_below")]))
        lang = str(rng.choice(LANGS))
        qa = _scene_qa(kind, lang, t, rng, phrasing)
        if qa is not None and qa[0] not in seen:
            seen.add(qa[0])
            out.append({"kind": kind, "lang": lang, "question": qa[0], "answer": qa[1]})
    return out


def coords_qa(thing: str, t: SceneTruth, lang: str, phrasing: int = 0) -> tuple[str, str]:
    """'What are the coordinates of the carrot?' -> 'x 24.3 cm, y -8.5 cm' (table position, `lang`)."""
    x, y = t.positions[thing][:2]
    return _q("coords", lang, phrasing, a=NAMES[thing][lang]), f"x {cm(x)} cm, y {cm(y)} cm"


def _scene_qa(kind: str, lang: str, t: SceneTruth, rng: np.random.Generator, ph: int) -> tuple[str, str] | None:
    P = t.positions

    def name(x: str) -> str:
        return NAMES[x][lang]

    def yes_no(b: bool) -> str:
        return YES[lang] if b else NO[lang]

    a, b = (str(x) for x in rng.choice(THINGS, size=2, replace=False))
    g = t.gripper_pos
    if kind == "region":
        return _q(kind, lang, ph, a=name(a)), region(P[a], lang)
    if kind == "coords":
        return coords_qa(a, t, lang, ph)
    if kind == "gripper_coords":
        return _q(kind, lang, ph), f"x {cm(g[0])} cm, y {cm(g[1])} cm, z {cm(g[2])} cm"
    if kind == "offset":
        o = str(rng.choice([x for x in PICKABLES + CONTAINERS if x != t.holding]))
        return _q(kind, lang, ph, a=name(o)), offset_phrase(list(np.subtract(P[o], g)), lang)
    if kind == "left_of":
        if abs(P[a][1] - P[b][1]) < MIN_GAP:
            return None
        return _q(kind, lang, ph, a=name(a), b=name(b)), yes_no(P[a][1] > P[b][1])
    if kind == "farther":
        if abs(P[a][0] - P[b][0]) < MIN_GAP:
            return None
        return _q(kind, lang, ph, a=name(a), b=name(b)), yes_no(P[a][0] > P[b][0])
    if kind == "colour":
        return _q(kind, lang, ph, a=name(a)), COLOURS[a][lang]
    if kind == "above_flag":
        f = str(rng.choice(FLAGS))
        return _q(kind, lang, ph, a=name(f)), name(t.above_flag[f])
    if kind == "flag_below":
        f = str(rng.choice(FLAGS))
        return _q(kind, lang, ph, a=name(t.above_flag[f])), name(f)
    if kind == "gripper_open":
        return _q(kind, lang, ph), yes_no(t.gripper_open)
    if kind == "holding":
        return _q(kind, lang, ph), name(t.holding)
    if kind == "count_left":
        return _q(kind, lang, ph), str(sum(P[x][1] > g[1] + MIN_GAP / 2 for x in THINGS))
    if kind == "nearest":
        d = {x: float(np.linalg.norm(np.subtract(P[x][:2], g[:2]))) for x in PICKABLES if x != t.holding}
        ranked = sorted(d, key=d.get)
        if len(ranked) > 1 and d[ranked[1]] - d[ranked[0]] < MIN_GAP:
            return None
        return _q(kind, lang, ph), name(ranked[0])
    raise AssertionError(kind)


# --------------------------------------------------------------------------- text-only facts


def _phrases() -> dict[str, dict[str, str]]:
    """Everything worth translating: object names, subtasks and every task instruction."""
    from robot.sim.tasks import instructions

    ins = instructions()
    out: dict[str, dict[str, str]] = {}
    for o in THINGS:
        out[o] = {lang: NAMES[o][lang] for lang in LANGS}
    for o in PICKABLES:
        out[f"pick_up:{o}"] = {lang: ins["templates"]["pick_up"][lang].format(object=ins["objects"][o][lang]) for lang in LANGS}
        for tgt in CONTAINERS:
            for task in ("pick_and_place", "pick_place_lift"):
                out[f"{task}:{o}:{tgt}"] = {
                    lang: ins["templates"][task][lang].format(object=ins["objects"][o][lang], target=ins["targets"][tgt][lang])
                    for lang in LANGS
                }
    for o in PICKABLES:
        for kind, by_lang in SUBTASKS.items():
            out[f"{kind}:{o}"] = {lang: by_lang[lang].format(o=NAMES[o][lang]) for lang in LANGS}
    out.update({f"motion:{k}": v for k, v in MOTIONS.items()})
    for f in FLAGS:
        out[f"semantic:{f}"] = {lang: ins["templates"]["pick_up_semantic"][lang].format(flag=ins["flags"][f][lang]) for lang in LANGS}
    return out


def fact_questions(phrasing: int) -> list[dict[str, str]]:
    """All text-only facts, each asked in every language (`phrasing` 0 = trained, 1 = held out)."""
    out: list[dict[str, str]] = []
    for key, by_lang in _phrases().items():
        for src in LANGS:
            for dst in LANGS:
                if src != dst:
                    for ask in (src, dst):
                        q = _q("translate", ask, phrasing, a=by_lang[src], b=LANG_NAMES[ask][dst])
                        out.append({"kind": "translate", "lang": ask, "question": q, "answer": by_lang[dst], "key": key})
    for f in FLAGS:
        for lang in LANGS:
            out.append({"kind": "flag_country", "lang": lang, "question": _q("flag_country", lang, phrasing, a=NAMES[f][lang]),
                        "answer": COUNTRIES[f][lang]})
            out.append({"kind": "flag_look", "lang": lang, "question": _q("flag_look", lang, phrasing, a=NAMES[f][lang]),
                        "answer": FLAG_LOOKS[f][lang]})
            out.append({"kind": "which_flag", "lang": lang, "question": _q("which_flag", lang, phrasing, a=FLAG_LOOKS[f][lang]),
                        "answer": NAMES[f][lang]})
    return out


# --------------------------------------------------------------------------- rendering scenes


def _truth(sim: Any, seed: int, image: str) -> SceneTruth:
    from robot.sim.tasks import PickUpSemantic

    pos = {n: [float(v) for v in p] for n, p in sim.object_positions().items()}
    above: dict[str, str] = {}
    if sim.task is not None and sim.task.layout == "flags":
        above = {f: PickUpSemantic(flag=f).target_object(sim) for f in FLAGS}
    return SceneTruth(seed, image, pos, [float(v) for v in sim.ee_pos()], bool(sim.gripper_command >= 0.5),
                      sim.held or "nothing", above)


def stage_scene(sim: Any, seed: int) -> None:
    """Set up scene `seed`: a layout, then the arm at home, somewhere else, or holding an item."""
    from robot.sim.expert import ScriptedExpert
    from robot.sim.tasks import make_task

    rng = np.random.default_rng([seed, 5])
    task = make_task("pick_up_semantic" if rng.random() < 0.4 else "pick_up", seed=seed)
    sim.reset(seed, task=task)
    mode = rng.random()
    if mode < 0.35:
        return  # home, open
    if mode < 0.75:  # the arm wandered somewhere, gripper open or closed
        goal = np.array([rng.uniform(0.15, 0.42), rng.uniform(-0.12, 0.22), rng.uniform(0.03, 0.22)])
        grip = float(rng.random() < 0.6)
        for _ in range(12):
            d = goal - sim.target
            if np.linalg.norm(d) < 0.005:
                break
            sim.move(d * min(1.0, 0.025 / max(np.linalg.norm(d), 1e-9)), grip)
        return
    expert = ScriptedExpert(sim, task)
    for i in range(3):  # reach, grasp, lift
        seg = expert.plan_segment(i)
        for k in range(len(seg)):
            sim.move(seg.deltas[k], seg.gripper[k])


def render_scenes(out: Path, seeds: list[int], image_px: int = 128, progress: bool = True) -> list[SceneTruth]:
    """Render and describe each seed's scene into `out`/images (skips the ones already there: resumable)."""
    import cv2

    from robot.sim import SimRobot
    from tqdm import tqdm

    check_training_seeds(min(seeds), max(seeds) - min(seeds) + 1)
    (out / "images").mkdir(parents=True, exist_ok=True)
    index = out / "scenes.jsonl"
    done = {json.loads(line)["seed"]: line for line in index.open()} if index.exists() else {}
    sim = SimRobot(seed=seeds[0])
    truths = []
    with index.open("a") as f:
        for seed in tqdm(seeds, desc="world scenes", unit="scene", disable=not progress, file=sys.stderr):
            if seed in done:
                truths.append(SceneTruth(**json.loads(done[seed])))
                continue
            stage_scene(sim, seed)
            rel = f"images/{seed}.jpg"
            img = cv2.resize(sim.render(), (image_px, image_px), interpolation=cv2.INTER_AREA)
            _atomic_image(out / rel, img)
            t = _truth(sim, seed, rel)
            f.write(json.dumps(asdict(t)) + "\n")
            f.flush()
            truths.append(t)
    sim.disconnect()
    return truths


def _atomic_image(path: Path, rgb: np.ndarray) -> None:
    import cv2

    tmp = path.with_suffix(".tmp.jpg")
    cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class WorldConfig:
    """How big the world corpus is."""

    scenes: int = 2000  # training scenes (seeds TRAIN_SEED_BASE + i)
    heldout_scenes: int = 150  # held-out scenes (seeds HELDOUT_SEED_BASE + i), held-out phrasings
    turns: int = 6  # questions per training conversation (one image, several turns)
    conversations_per_scene: int = 2
    # extra conversations per scene of coordinate and offset questions only: a coordinate curriculum.
    # In the mixed ones they are 3 of 14 kinds, too few for the micro model to learn to read positions.
    locate_conversations_per_scene: int = 0
    heldout_questions_per_scene: int = 4
    fact_passes: float = 1.0  # passes over the text-only facts (fractions take a random part)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scenes < 1 or self.heldout_scenes < 0 or self.turns < 1 or self.locate_conversations_per_scene < 0:
            raise ValueError("WorldConfig: scenes and turns must be >= 1, heldout_scenes and "
                             "locate_conversations_per_scene >= 0")
        if TRAIN_SEED_BASE + self.scenes > HELDOUT_SEED_BASE:
            raise ValueError(f"WorldConfig.scenes must stay below {HELDOUT_SEED_BASE - TRAIN_SEED_BASE}")


def build_world(out: str | os.PathLike, cfg: WorldConfig = WorldConfig(), progress: bool = True) -> dict[str, int]:
    """Write the world corpus into `out`: train.jsonl (conversations), heldout.jsonl (single questions)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    train_scenes = render_scenes(out, [TRAIN_SEED_BASE + i for i in range(cfg.scenes)], progress=progress)
    held_scenes = render_scenes(out, [HELDOUT_SEED_BASE + i for i in range(cfg.heldout_scenes)], progress=progress) if cfg.heldout_scenes else []
    train: list[dict[str, Any]] = []
    for t in train_scenes:
        for _ in range(cfg.conversations_per_scene):
            train.append({"image": t.image, "turns": scene_questions(t, rng, cfg.turns, phrasing=0)})
    facts = fact_questions(phrasing=0)
    for p in range(int(np.ceil(cfg.fact_passes))):
        order = rng.permutation(len(facts))[: int(len(facts) * min(1.0, cfg.fact_passes - p))]
        for i in range(0, len(order), 3):  # three facts a conversation
            train.append({"image": None, "turns": [facts[j] for j in order[i : i + 3]]})
    held: list[dict[str, Any]] = []
    for t in held_scenes:
        for qa in scene_questions(t, rng, cfg.heldout_questions_per_scene, phrasing=1):
            held.append({"image": t.image, **qa})
    held_facts = fact_questions(phrasing=1)
    for j in rng.choice(len(held_facts), size=min(len(held_facts), 4 * max(cfg.heldout_scenes, 1)), replace=False):
        held.append({"image": None, **held_facts[j]})
    for t in train_scenes:  # drawn after the held-out set, so adding them leaves that set as it was
        for _ in range(cfg.locate_conversations_per_scene):
            train.append({"image": t.image, "turns": scene_questions(t, rng, cfg.turns, phrasing=0, kinds=LOCATE_KINDS)})
    rng.shuffle(train)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", held)
    return {"conversations": len(train), "scene_images": len(train_scenes), "heldout_questions": len(held)}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write `rows` as JSON lines beside `path`, then swap it in: a killed write leaves no half file."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def corpus_text(world: str | os.PathLike) -> Iterator[str]:
    """Every question and answer of the training corpus (for the tokenizer)."""
    for conv in read_jsonl(Path(world) / "train.jsonl"):
        for t in conv["turns"]:
            yield t["question"]
            yield t["answer"]
