"""The user's vocabulary and the labels of closed-set models: which label covers which word."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from ....kernels.errors import InputError
from .. import vocabulary

log = logging.getLogger("text2cinemagraph")

DEFAULT_VOCABULARY = "water, waterfall, river, ocean, lake, sea"
_LABEL_FILLERS = {"other", "merged", "stuff"}
_reported_unknown: set[tuple[str, str]] = set()


def parse_vocabulary(text: str) -> list[list[str]]:
    """ODISE-style vocabulary -> classes, each a list of synonyms.

    ``"water, river; sky, clouds"`` -> ``[["water", "river"], ["sky", "clouds"]]``.
    Semicolons (or new lines) separate classes, commas separate synonyms;
    repeated words are kept once.
    """
    classes, seen = [], set()
    for chunk in re.split(r"[;\n]", text or ""):
        words = []
        for word in chunk.split(","):
            word = " ".join(word.split())
            if word and word.lower() not in seen:
                seen.add(word.lower())
                words.append(word)
        if words:
            classes.append(words)
    if not classes:
        raise InputError(
            "vocabulary",
            f"is empty: name what to segment, e.g. {DEFAULT_VOCABULARY!r} (one class with synonyms) or "
            "'water, river; sky, clouds' (';' separates classes, ',' separates synonyms)",
        )
    return classes


def _term_keys(term: str, head_noun: bool = True) -> set[str]:
    """The keys under which a word matches: its vocabulary class, else its literal singular forms."""
    found = vocabulary.lookup(term, head_noun=head_noun)
    if found is not None:
        return {found.name}
    phrase = vocabulary.normalise(term)
    head, _, last = phrase.rpartition(" ")
    return {phrase} | {f"{head} {c}".strip() for c in vocabulary.singular_candidates(last)}


def label_keys(label: str) -> set[str]:
    """Keys of a dataset label such as ADE20K's ``"waterfall, falls"`` or COCO's ``"sky-other-merged"``.

    Commas separate synonyms (ADE20K). COCO's hyphenated names put the head
    noun first ("wall-brick" is a wall) and carry filler suffixes ("-other",
    "-merged", "-stuff"), which are dropped.
    """
    keys: set[str] = set()
    for part in label.split(","):
        raw = part.strip().lower()
        tokens = [t for t in re.split(r"[-_\s]+", raw) if t]
        if not tokens:
            continue
        kept = [t for t in tokens if t not in _LABEL_FILLERS] or tokens
        if "-" in raw or "_" in raw:
            keys |= _term_keys(" ".join(kept), head_noun=False) | _term_keys(kept[0], head_noun=False)
        else:
            keys |= _term_keys(" ".join(kept))
    return keys


@dataclass(frozen=True)
class LabelMatch:
    label_ids: tuple[tuple[int, ...], ...]  # per vocabulary class, the model labels it covers
    unknown_words: tuple[str, ...]  # words that match no label

    @property
    def all_ids(self) -> tuple[int, ...]:
        return tuple(sorted({i for ids in self.label_ids for i in ids}))


def match_labels(classes: Sequence[Sequence[str]], id2label: Mapping[int, str]) -> LabelMatch:
    """Which labels of a closed-set model each vocabulary class covers.

    A word matches a label when both name the same vocabulary class (synonyms,
    plurals: "ocean" matches ADE20K's "sea") or, for words outside the
    vocabulary, when their singular forms coincide ("tables" matches "table").
    """
    label_sets = {int(i): label_keys(str(name)) for i, name in id2label.items()}
    per_class, unknown = [], []
    for words in classes:
        ids: set[int] = set()
        for word in words:
            keys = _term_keys(word)
            hits = {i for i, label_set in label_sets.items() if label_set & keys}
            if not hits:
                unknown.append(word)
            ids |= hits
        per_class.append(tuple(sorted(ids)))
    return LabelMatch(tuple(per_class), tuple(unknown))


def check_label_match(match: LabelMatch, classes, id2label: Mapping[int, str], model: str) -> None:
    """Raise when nothing matches; log each unknown word once per model."""
    if not match.all_ids:
        names = [str(id2label[i]) for i in sorted(id2label, key=int)]
        shown = "; ".join(names[:40]) + (f"; ... ({len(names)} labels)" if len(names) > 40 else "")
        words = ", ".join(w for ws in classes for w in ws)
        raise InputError(
            "vocabulary",
            f"none of the words ({words}) names a label of the model in {model}. Its labels: {shown}. "
            "Use some of these (synonyms and plurals are understood), or the clipseg backend, which takes any words",
        )
    fresh = [w for w in match.unknown_words if (model, w.lower()) not in _reported_unknown]
    if fresh:
        _reported_unknown.update((model, w.lower()) for w in fresh)
        words = ", ".join(map(repr, fresh))
        log.warning("ODISESegment: %s match no label of the model in %s and are ignored", words, model)
