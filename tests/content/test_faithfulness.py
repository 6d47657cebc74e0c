"""The faithfulness check catches every crafted unfaithful text; the template always passes."""

import pytest

from tfrec_llm.content.evidence import Explanation, HistoryEvidence, ItemFacts
from tfrec_llm.content.faithfulness import FaithfulnessChecker, title_variants
from tfrec_llm.content.generators import GroundedGenerator, TemplateGenerator, build_prompt

BLADE = ItemFacts("541", "Blade Runner", "1982", ("Film-Noir", "Sci-Fi"))
ALIEN = ItemFacts("183", "Alien", "1979", ("Action", "Horror", "Sci-Fi", "Thriller"))
EMPIRE = ItemFacts("172", "Empire Strikes Back, The", "1980", ("Action", "Adventure", "Sci-Fi", "War"))
ODYSSEY = ItemFacts("135", "2001: A Space Odyssey", "1968", ("Drama", "Mystery", "Sci-Fi", "Thriller"))
CATALOG = [
    BLADE,
    ALIEN,
    EMPIRE,
    ODYSSEY,
    ItemFacts("50", "Star Wars", "1977", ("Action", "Adventure", "Romance", "Sci-Fi", "War")),
    ItemFacts("1", "Toy Story", "1995", ("Animation", "Children's", "Comedy")),
    ItemFacts("405", "Aliens", "1986", ("Action", "Sci-Fi", "Thriller", "War")),
    ItemFacts("99", "Heat", "1995", ("Action", "Crime", "Thriller")),
]


def explanation():
    """Blade Runner recommended because of Alien, The Empire Strikes Back and 2001."""
    evidence = tuple(
        HistoryEvidence.between(item, BLADE, w) for item, w in ((ALIEN, 0.5), (EMPIRE, 0.3), (ODYSSEY, 0.2))
    )
    return Explanation("7", BLADE, "attention", evidence, 0.9)


@pytest.fixture()
def checker():
    return FaithfulnessChecker.from_facts(CATALOG)


FAITHFUL = [
    "Because you watched Alien and The Empire Strikes Back (shared: Sci-Fi).",
    "Like Alien (1979), Blade Runner (1982) is a dark Sci-Fi film noir... a Film-Noir classic.",
    "Fans of 2001: A Space Odyssey and Empire Strikes Back, The will enjoy this one.",
    'You loved "Alien", so try "Blade Runner": more horror-free sci-fi.',
    "A thriller with the mystery of the films you watched.",
]

UNFAITHFUL = {
    "Because you watched Toy Story and Alien.": "title not in the evidence: Toy Story",
    "Because you watched Star Wars (shared: Sci-Fi).": "title not in the evidence: Star Wars",
    "After Aliens, this is the next step.": "title not in the evidence: Aliens",
    "You will like it as much as Heat.": "title not in the evidence: Heat",
    "A 1999 classic of the genre.": "year not in the evidence: 1999",
    "Blade Runner (1984) continues what Alien began.": "year not in the evidence: 1984",
    "A Comedy for fans of Alien.": "category not in the evidence: Comedy",
    "Because you like animation and crime films.": "category not in the evidence: Animation",
    'Because you watched "The Thing from Another World".': "quoted name not in the evidence: The Thing from Another World",
    "Just like *Solaris*, it questions what is human.": "quoted name not in the evidence: Solaris",
}


@pytest.mark.parametrize("text", FAITHFUL)
def test_faithful_texts_pass(checker, text):
    assert checker.violations(text, explanation()) == []


@pytest.mark.parametrize("text", sorted(UNFAITHFUL))
def test_every_crafted_unfaithful_text_is_caught(checker, text):
    found = checker.violations(text, explanation())
    assert UNFAITHFUL[text] in found


def test_crime_needs_its_own_check_and_several_violations_are_all_listed(checker):
    found = checker.violations("Because you like animation and crime films from 1999.", explanation())
    assert set(found) == {
        "category not in the evidence: Animation",
        "category not in the evidence: Crime",
        "year not in the evidence: 1999",
    }


def test_title_variants_move_a_trailing_article_to_the_front():
    assert title_variants("Empire Strikes Back, The") == (
        "Empire Strikes Back, The",
        "The Empire Strikes Back",
    )
    assert title_variants("Alien") == ("Alien",)


def test_template_names_only_the_evidence_and_always_passes(checker):
    e = explanation()
    text = TemplateGenerator().render(e)
    assert text == "Because you watched Alien and The Empire Strikes Back (shared: Sci-Fi)."
    assert checker.violations(text, e) == []
    assert (
        TemplateGenerator(max_titles=3)
        .render(e)
        .startswith("Because you watched Alien, The Empire Strikes Back and 2001: A Space Odyssey")
    )
    # A category shared only by an evidence item that the sentence does not name is left out.
    chinatown = HistoryEvidence.between(
        ItemFacts("9", "Chinatown", "1974", ("Film-Noir", "Mystery")), BLADE, 0.1
    )
    longer = Explanation("7", BLADE, "attention", (*e.evidence[:2], chinatown))
    assert TemplateGenerator().render(longer).endswith("(shared: Sci-Fi).")
    assert TemplateGenerator(max_titles=3).render(longer) == (
        "Because you watched Alien, The Empire Strikes Back and Chinatown (shared: Film-Noir, Sci-Fi)."
    )
    assert longer.shared_categories == ("Film-Noir", "Sci-Fi")
    nothing = Explanation("8", ALIEN, "none", ())
    assert TemplateGenerator().render(nothing) == "Alien is popular with other users."
    prompt = build_prompt(e)
    assert "Recommended: Blade Runner (1982, Film-Noir, Sci-Fi)" in prompt
    assert "Alien (1979, Action, Horror, Sci-Fi, Thriller)" in prompt
    for other in ("Star Wars", "Toy Story", "Heat", "Aliens"):
        assert other not in prompt


class Scripted(GroundedGenerator):
    """A generator whose raw output is given (or raises)."""

    name = "scripted"

    def __init__(self, output, checker):
        super().__init__(checker)
        self.output = output

    def raw(self, explanation):
        if isinstance(self.output, Exception):
            raise self.output
        return self.output


@pytest.mark.parametrize("text", sorted(UNFAITHFUL))
def test_a_generator_falls_back_to_the_template_on_unfaithful_text(checker, text):
    result = Scripted(text, checker).generate(explanation())
    assert result.source == "template" and result.text == TemplateGenerator().render(explanation())
    assert UNFAITHFUL[text] in result.rejected


def test_a_generator_keeps_faithful_text_and_falls_back_on_errors_or_empty_text(checker):
    kept = Scripted("  Because you watched\nAlien.  ", checker).generate(explanation())
    assert (kept.text, kept.source, kept.rejected) == ("Because you watched Alien.", "scripted", ())
    failed = Scripted(RuntimeError("boom"), checker).generate(explanation())
    assert failed.source == "template" and failed.rejected == ("error: boom",)
    empty = Scripted("   ", checker).generate(explanation())
    assert empty.source == "template" and empty.rejected == ("empty text",)
