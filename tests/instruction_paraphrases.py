"""Paraphrase tables for the instruction reader (robot/sim/instructions.py), written for this project.

Each row is (instruction, expected): expected is "pick_up carrot", "pick_and_place banana pot",
"pick_place_lift carrot towel", "pick_up_semantic japan", "ask" (ambiguous: a question back) or
"refuse" (names something the scene lacks, or something the simulator cannot do).

TUNED is what the lexicon in assets/lexicon.json was written against (the tests hold it).
HELD_OUT was written before the lexicon and never edited after seeing the reader's answers:
the benchmark reports it separately, as the honest estimate of how the reader does on text
nobody tuned it to.
"""

from __future__ import annotations

HELD_OUT: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("could you grab the banana for me", "pick_up banana"),
        ("lift up the eggplant please", "pick_up eggplant"),
        ("pick the carrot up", "pick_up carrot"),
        ("set the carrot on the dish", "pick_and_place carrot plate"),
        ("toss the banana into the saucepan", "pick_and_place banana pot"),
        ("drop the banana in the cooking pot", "pick_and_place banana pot"),
        ("lay the carrot on the serving plate", "pick_and_place carrot plate"),
        ("place the eggplant on top of the towel", "pick_and_place eggplant towel"),
        ("move the banana onto the cloth", "pick_and_place banana towel"),
        ("take the carrot and put it in the pan", "pick_and_place carrot pot"),
        ("please put the fruit on the plate", "pick_and_place banana plate"),
        ("put the vegetable on the plate", "ask"),
        ("place the banana into the cookware", "pick_and_place banana pot"),
        ("Put the carrot on the plate, then lift it again.", "pick_place_lift carrot plate"),
        ("grab the thing above the Italian flag", "pick_up_semantic italy"),
        ("pick up the object over the Brazilian flag", "pick_up_semantic brazil"),
        ("put the apple on the plate", "refuse"),
        ("put the carrot in the bowl", "refuse"),
        ("put the carrot next to the plate", "refuse"),
        ("take the banana out of the pot", "refuse"),
        ("don't touch the carrot", "refuse"),
        ("pick up the item", "ask"),
        ("put the carrot and the banana on the plate", "refuse"),
        ("pick up the item above the German flag", "refuse"),
        ("put the orange vegetable on the towel", "pick_and_place carrot towel"),
    ],
    "es": [
        ("agarra la zanahoria", "pick_up carrot"),
        ("por favor, levanta el plátano", "pick_up banana"),
        ("coloca la berenjena sobre el plato", "pick_and_place eggplant plate"),
        ("mete el plátano dentro de la olla", "pick_and_place banana pot"),
        ("deja la zanahoria encima de la toalla", "pick_and_place carrot towel"),
        ("pon la fruta en la cacerola", "pick_and_place banana pot"),
        ("pon la verdura en el plato", "ask"),
        ("pon la manzana en el plato", "refuse"),
        ("coge el objeto que está encima de la bandera italiana", "pick_up_semantic italy"),
        ("pon la zanahoria al lado del plato", "refuse"),
        ("no toques la berenjena", "refuse"),
        ("pon la zanahoria en el plato y luego levántala otra vez", "pick_place_lift carrot plate"),
    ],
    "zh": [
        ("请拿起香蕉", "pick_up banana"),
        ("抓起茄子", "pick_up eggplant"),
        ("把胡萝卜放在盘子上", "pick_and_place carrot plate"),
        ("把香蕉放进锅里", "pick_and_place banana pot"),
        ("把茄子放到毛巾上面", "pick_and_place eggplant towel"),
        ("把水果放进锅里", "pick_and_place banana pot"),
        ("把蔬菜放到盘子上", "ask"),
        ("把苹果放到盘子上", "refuse"),
        ("拿起巴西国旗上方的东西", "pick_up_semantic brazil"),
        ("把胡萝卜放在盘子旁边", "refuse"),
        ("不要拿胡萝卜", "refuse"),
    ],
    "hi": [
        ("केला उठाइए", "pick_up banana"),
        ("कृपया बैंगन उठाओ", "pick_up eggplant"),
        ("गाजर को प्लेट पर रख दो", "pick_and_place carrot plate"),
        ("केले को पतीले में डालो", "pick_and_place banana pot"),
        ("बैंगन को तौलिये के ऊपर रखो", "pick_and_place eggplant towel"),
        ("फल को पतीले में रखो", "pick_and_place banana pot"),
        ("सब्ज़ी को थाली पर रखो", "ask"),
        ("सेब को थाली पर रखो", "refuse"),
        ("इतालवी झंडे के ऊपर वाली चीज़ उठाओ", "pick_up_semantic italy"),
        ("गाजर को थाली के पास रखो", "refuse"),
        ("गाजर मत उठाओ", "refuse"),
    ],
}
