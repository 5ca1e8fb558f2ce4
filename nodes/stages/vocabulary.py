"""The class vocabulary: which words name water, sky, smoke, fire ... and which of them move.

The data lives in ``class_vocabulary.json`` beside this module (one entry per
class: name, synonyms, irregular plurals, animatable, group, region kind). This
module loads it once and answers :func:`lookup` for any word or phrase, with
plurals (by rule, plus the irregular ones listed in the data) and synonyms.
Shared by the segmentation node (mapping model labels onto the user's
vocabulary) and the twin-prompt parser (which nouns of a prompt are classes).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache

DATA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "class_vocabulary.json")
GROUPS = ("water", "sky", "smoke", "fire", "plant", "cloth", "weather", "static")

_SEPARATORS = re.compile(r"[\s_\-]+")
_SIBILANT_ENDINGS = ("ses", "xes", "zes", "ches", "shes")


@dataclass(frozen=True)
class VocabularyClass:
    name: str
    synonyms: tuple[str, ...]
    plurals: tuple[str, ...]
    animatable: bool
    group: str
    region_kind: str | None

    @property
    def terms(self) -> tuple[str, ...]:
        """The name, then the synonyms (all singular)."""
        return (self.name, *self.synonyms)


def normalise(text: str) -> str:
    """Lower case, with hyphens, underscores and runs of spaces turned into one space."""
    return _SEPARATORS.sub(" ", text.strip().lower()).strip()


def singular_candidates(word: str) -> list[str]:
    """Possible singular forms of a (regular) English plural, most specific first.

    ``"skies"`` -> ``["sky", "skie"]``, ``"leaves"`` -> ``["leaf", "leafe", "leave"]``:
    the caller keeps the first candidate that is a known term, so
    over-generation is harmless.
    """
    candidates = []
    if word.endswith("ies") and len(word) > 4:
        candidates.append(word[:-3] + "y")
    if word.endswith("ves") and len(word) > 4:
        candidates += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith(_SIBILANT_ENDINGS):
        candidates.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        candidates.append(word[:-1])
    return candidates


def plural(word: str) -> str:
    """The regular plural of a singular word or phrase (its last word is inflected)."""
    irregular = _index().plural_of.get(normalise(word))
    if irregular:
        return irregular
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


@dataclass(frozen=True)
class _Index:
    classes: tuple[VocabularyClass, ...]
    by_term: dict[str, VocabularyClass]
    plural_of: dict[str, str]


def _parse_entry(entry: dict) -> VocabularyClass:
    group = entry["group"]
    if group not in GROUPS:
        raise ValueError(f"{DATA_FILE}: class {entry['name']!r} has unknown group {group!r}; groups: {GROUPS}")
    return VocabularyClass(
        name=normalise(entry["name"]),
        synonyms=tuple(normalise(s) for s in entry.get("synonyms", ())),
        plurals=tuple(normalise(p) for p in entry.get("plurals", ())),
        animatable=bool(entry["animatable"]),
        group=group,
        region_kind=entry.get("region_kind"),
    )


@lru_cache(maxsize=1)
def _index() -> _Index:
    with open(DATA_FILE, encoding="utf-8") as handle:
        data = json.load(handle)
    classes = tuple(_parse_entry(entry) for entry in data["classes"])
    by_term: dict[str, VocabularyClass] = {}
    plural_of: dict[str, str] = {}
    for vocabulary_class in classes:
        for term in (*vocabulary_class.terms, *vocabulary_class.plurals):
            if term in by_term:
                raise ValueError(
                    f"{DATA_FILE}: {term!r} belongs to both {by_term[term].name!r} and {vocabulary_class.name!r}"
                )
            by_term[term] = vocabulary_class
        if vocabulary_class.plurals:
            plural_of[vocabulary_class.name] = vocabulary_class.plurals[0]
    return _Index(classes, by_term, plural_of)


def classes() -> tuple[VocabularyClass, ...]:
    """Every class of the vocabulary, in the order of the data file."""
    return _index().classes


def get(name: str) -> VocabularyClass:
    """The class with this canonical name (``KeyError`` if there is none)."""
    found = _index().by_term.get(normalise(name))
    if found is None or found.name != normalise(name):
        raise KeyError(name)
    return found


def _lookup_exact(phrase: str) -> VocabularyClass | None:
    by_term = _index().by_term
    if phrase in by_term:
        return by_term[phrase]
    head, _, last = phrase.rpartition(" ")
    for candidate in singular_candidates(last):
        found = by_term.get(f"{head} {candidate}" if head else candidate)
        if found is not None:
            return found
    return None


def lookup(word: str, head_noun: bool = True) -> VocabularyClass | None:
    """The class a word or phrase names, or None.

    Case, hyphens and underscores do not matter; plurals are found by rule
    ("rivers", "skies", "waterfalls") and through the irregular plurals of the
    data ("leaves", "people"). With ``head_noun`` a phrase that is not a term
    itself falls back on its last word ("night sky" -> sky, "stormy seas" -> sea).
    """
    phrase = normalise(word)
    if not phrase:
        return None
    found = _lookup_exact(phrase)
    if found is None and head_noun and " " in phrase:
        found = _lookup_exact(phrase.rpartition(" ")[2])
    return found


def is_animatable(word: str) -> bool:
    """True when the word names a class that moves in a cinemagraph."""
    found = lookup(word)
    return found is not None and found.animatable


def classes_in_group(group: str) -> tuple[VocabularyClass, ...]:
    if group not in GROUPS:
        raise KeyError(f"unknown group {group!r}; groups: {', '.join(GROUPS)}")
    return tuple(c for c in classes() if c.group == group)
