"""A generated BEIR-format set where context matters: documents about invented towns, each fact in its own sentence
among filler ("It was founded...", "Its main industry..."), and queries that combine two facts of one town. A
chunk holding one fact matches many towns; only a vector that also knows the rest of its document can tell which
town has both. Invented names keep the model from answering from memory.

    python -m jinav3.evaluation.synthetic FOLDER [--towns 60] [--seed 0]

It is a smoke-scale demonstration set, not a benchmark: report real BEIR sets (SciFact, NFCorpus, ...) for claims.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

from jinav3.evaluation.beir import write_beir

_SYLLABLES = ["var", "nol", "esk", "tir", "mab", "dun", "orv", "kel", "sar", "lom", "brie", "gant", "hov", "ul",
              "pem", "rask", "tolv", "wen", "yar", "zed", "cor", "fin", "istr", "jov"]
_VALUES = {
    "year": [str(y) for y in range(1100, 1800, 37)],
    "founders": ["salt traders", "fishermen", "monks", "silver miners", "Roman veterans", "river merchants"],
    "industry": ["glassblowing", "shipbuilding", "cheese making", "printing", "clockmaking", "wool weaving"],
    "landmark": ["leaning bell tower", "stone bridge", "copper-roofed cathedral", "harbour lighthouse",
                 "hilltop castle", "botanical garden"],
    "festival": ["lantern", "harvest", "jazz", "kite", "film", "puppet theatre"],
    "season": ["spring", "summer", "autumn", "winter"],
    "river": ["Amsel", "Drava", "Orla", "Tessin", "Vilna", "Marow"],
    "field": ["marine biology", "mining engineering", "medieval history", "astronomy", "agriculture", "music"],
    "dish": ["smoked eel", "plum dumplings", "onion tart", "fish soup", "honey cake", "lamb stew"],
    "climate": ["mild and wet", "cold and dry", "hot in summer", "windy all year"],
}
_FACTS = [  # (value key, sentence in the document, clause in a query)
    ("founders", "It was founded in {year} by {founders}.", "was founded by {founders}"),
    ("industry", "Its main industry is {industry}.", "lives mainly from {industry}"),
    ("landmark", "The town is best known for its {landmark}.", "is known for its {landmark}"),
    ("festival", "Every {season} it hosts a {festival} festival.", "hosts a {festival} festival"),
    ("river", "The river {river} flows through its centre.", "lies on the river {river}"),
    ("field", "Its university specialises in {field}.", "has a university specialising in {field}"),
    ("dish", "The signature dish of the town is {dish}.", "has {dish} as its signature dish"),
]
_FILLER = [
    "Visitors often remark on the quiet streets and the friendly shopkeepers.",
    "The old quarter has narrow lanes paved with cobblestones.",
    "Trains connect it to the regional capital several times a day.",
    "Its climate is {climate}, which shapes the rhythm of local life.",
    "The market square fills with stalls on Saturday mornings.",
    "Several families have run the same shops there for generations.",
    "A small museum tells the story of the region's farmers and craftsmen.",
    "In the nineteenth century the town grew quickly as the railway arrived.",
    "Many of the houses are built from the grey local stone.",
    "Cyclists come for the gentle hills and the well-marked paths around it.",
]


def _name(rng: random.Random, taken: set[str]) -> str:
    while True:
        name = "".join(rng.sample(_SYLLABLES, 2)).capitalize() + rng.choice(["holm", "burg", "stad", "ford", "wick"])
        if name not in taken:
            taken.add(name)
            return name


def generate(towns: int = 60, seed: int = 0, questions_per_town: int = 2) -> tuple[dict, dict, dict]:
    """Return ``(corpus, queries, qrels)``. A query combines two facts of one town without naming it ("Which town
    was founded by monks and hosts a kite festival?"); every town with both facts is relevant."""
    rng = random.Random(seed)
    taken: set[str] = set()
    corpus: dict[str, dict[str, str]] = {}
    town_values: dict[str, dict[str, str]] = {}
    for t in range(towns):
        name = _name(rng, taken)
        values = {key: rng.choice(options) for key, options in _VALUES.items()}
        sentences: list[str] = []
        for _, fact, _ in rng.sample(_FACTS, len(_FACTS)):  # facts spread among filler, far from each other
            sentences.append(fact.format(**values))
            sentences.extend(f.format(**values) for f in rng.sample(_FILLER, 3))
        intro = f"{name} is a small town in the hills of the fictional province of Estria."
        paragraphs = [" ".join([intro, *sentences[:8]]), " ".join(sentences[8:18]), " ".join(sentences[18:])]
        corpus[f"d{t}"] = {"title": name, "text": "\n\n".join(paragraphs)}
        town_values[f"d{t}"] = values
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for doc_id, values in town_values.items():
        for q in range(questions_per_town):
            (k1, _, c1), (k2, _, c2) = rng.sample(_FACTS, 2)
            qid = f"{doc_id}q{q}"
            queries[qid] = f"Which town {c1.format(**values)} and {c2.format(**values)}?"
            qrels[qid] = {d: 1 for d, v in town_values.items() if v[k1] == values[k1] and v[k2] == values[k2]}
    return corpus, queries, qrels


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the synthetic 'towns' BEIR-format set")
    parser.add_argument("folder")
    parser.add_argument("--towns", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = write_beir(Path(args.folder), *generate(args.towns, args.seed))
    print(f"wrote {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
