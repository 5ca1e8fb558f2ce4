"""The natural twin's prompt, the region to animate and the direction, from the user's prompt.

Following Text2Cinemagraph section 3.1: the natural prompt lists the prompt's
common nouns that name COCO-stuff / DTDB classes (our class vocabulary, with
synonyms and plurals), then ", nature, bright, realistic, photography, 4k, 8k".
"in <phrase> direction" (the paper's 12 direction phrases) is taken out of the
artistic prompt and returned as the direction. Nouns come from NLTK's part-of-
speech tagger when its data is installed; without it, from the vocabulary alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from ...kernels.errors import InputError
from . import vocabulary
from .directions import DIRECTION_SECTORS

log = logging.getLogger("text2cinemagraph")

NATURAL_SUFFIX = "nature, bright, realistic, photography, 4k, 8k"
NOUN_TAGS = ("NN", "NNS")
MAX_PHRASE_WORDS = 3
TAGGER_HINT = "python -m nltk.downloader averaged_perceptron_tagger_eng"

Tagger = Callable[[Sequence[str]], Sequence[tuple[str, str]]]

_DIRECTION = re.compile(
    r"\bin\s+(?:the\s+)?(" + "|".join(
        re.escape(p).replace(r"\ ", r"\s+").replace(",", r"\s*,") for p in sorted(DIRECTION_SECTORS, key=len, reverse=True)
    ) + r")\s+direction\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


@dataclass(frozen=True)
class TwinPrompts:
    artistic: str  # the prompt without its direction phrase
    natural: str  # the natural twin's prompt
    regions: tuple[str, ...]  # animatable nouns as written in the prompt
    directions: tuple[str, ...]  # direction phrases found (normalised)
    region_kind: str  # FlowPredictor's kind for the first region
    nouns: tuple[str, ...]  # every vocabulary noun found, as written

    @property
    def direction(self) -> str:
        """For FlowPredictor: the phrase found, or ``auto``."""
        return self.directions[0] if self.directions else "auto"


def split_direction(prompt: str) -> tuple[str, tuple[str, ...]]:
    """``(prompt without "in ... direction", phrases found)``."""
    phrases = tuple(" ".join(m.group(1).lower().replace(",", ", ").split()) for m in _DIRECTION.finditer(prompt))
    cleaned = _DIRECTION.sub("", prompt)
    cleaned = re.sub(r"\s+([,.;])", r"\1", cleaned)
    cleaned = re.sub(r",\s*,", ",", cleaned)
    return " ".join(cleaned.split()).strip(" ,"), phrases


def nltk_tagger() -> Optional[Tagger]:
    """NLTK's perceptron tagger, or None (logged once) when its data is not installed."""
    try:
        import nltk

        nltk.pos_tag(["water"])
        return nltk.pos_tag
    except (ImportError, LookupError):
        if not getattr(nltk_tagger, "warned", False):
            log.info("text2cinemagraph: NLTK's tagger data is missing; nouns come from the class vocabulary "
                     "only. For part-of-speech tagging run: %s", TAGGER_HINT)
            nltk_tagger.warned = True
        return None


def vocabulary_nouns(words: Sequence[str], noun_positions: Optional[set[int]] = None) -> list[tuple[str, vocabulary.VocabularyClass]]:
    """Vocabulary terms among ``words``, longest phrases first, as ``(text as written, class)``.

    With ``noun_positions`` (from a tagger) a phrase counts only when its last
    word is tagged as a noun.
    """
    found = []
    index = 0
    while index < len(words):
        for length in range(min(MAX_PHRASE_WORDS, len(words) - index), 0, -1):
            text = " ".join(words[index:index + length])
            match = vocabulary.lookup(text, head_noun=False)
            last = index + length - 1
            if match is not None and (noun_positions is None or last in noun_positions):
                found.append((text, match))
                index += length
                break
        else:
            index += 1
    return found


def build_twin_prompts(
    prompt: str, natural_override: str = "", region_override: str = "", tagger: Optional[Tagger] = None
) -> TwinPrompts:
    """Artistic and natural prompts, regions and direction of a user's prompt.

    Args:
        prompt: e.g. "a waterfall between hills, Van Gogh painting, in downwards direction".
        natural_override: use this natural prompt instead of the derived one.
        region_override: use these region names (comma-separated) instead of the derived ones.
        tagger: ``tagger(words) -> [(word, tag)]``; default NLTK's when installed.
    """
    if not prompt.strip():
        raise InputError("prompt", "is empty; describe a scene with something that moves, e.g. 'a river at dusk'")
    artistic, directions = split_direction(prompt)
    words = _WORD.findall(artistic)
    tagger = tagger if tagger is not None else nltk_tagger()
    nouns_at = None
    if tagger is not None:
        nouns_at = {i for i, (_, tag) in enumerate(tagger(words)) if tag in NOUN_TAGS}
    found = vocabulary_nouns(words, nouns_at)
    nouns = tuple(dict.fromkeys(text.lower() for text, _ in found))
    animatable = [(text.lower(), c) for text, c in found if c.animatable]
    if region_override.strip():
        regions = tuple(r.strip() for r in region_override.split(",") if r.strip())
        kinds = [c.region_kind for r in regions if (c := vocabulary.lookup(r)) is not None and c.region_kind]
    else:
        if not animatable:
            raise InputError(
                "prompt",
                f"names nothing that can move ({', '.join(nouns) or 'no known noun'}); mention water, a river, "
                "a waterfall, the sea, clouds, smoke or fire, or set region",
            )
        regions = tuple(dict.fromkeys(text for text, _ in animatable))
        kinds = [c.region_kind for _, c in animatable if c.region_kind]
    natural = natural_override.strip() or ", ".join((*nouns, NATURAL_SUFFIX))
    return TwinPrompts(artistic, natural, regions, directions, kinds[0] if kinds else "generic", nouns)
