"""The classifier's lexicon components, loaded on their own (without the trained model).

`stiwatch run` loads them before it crawls, so a malformed analyst's lexicon file stops the run
at once, and builds the classifier from them after the crawl only when there is something to
classify (Classifier.load(..., lexicons=...)): the model's seconds and hundreds of MB are not
held through the crawl, nor paid by a run with nothing new. This module imports no
scikit-learn (classifier.pipeline does), so loading them costs none of its imports either.
"""

from __future__ import annotations

from dataclasses import dataclass
import os

from .domains import DomainTagger
from .places import Gazetteer
from .rules import RuleTagger

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Lexicons:
    """The cue rules (areas and relevance), the domain lexicon and the gazetteer."""

    rules: RuleTagger
    domains: DomainTagger
    gazetteer: Gazetteer


def load_lexicons(domains_lexicon: PathLike | None = None,
                  areas_lexicon: PathLike | None = None,
                  places_lexicon: PathLike | None = None) -> Lexicons:
    """Each component from its shipped data, extended by the analyst's lexicon file when one is
    given (empty or None: the shipped one only). Raises LexiconError naming a malformed file."""
    return Lexicons(RuleTagger.load(areas_lexicon or None),
                    DomainTagger.load(domains_lexicon or None),
                    Gazetteer.load(places_lexicon or None))
