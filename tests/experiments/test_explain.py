"""Evidence behind a recommendation: models.evidence (weights) and experiments.explain (facts)."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.content.evidence import Explanation, HistoryEvidence, ItemFacts, title_terms
from tfrec_llm.errors import DataError
from tfrec_llm.experiments.explain import Explainer, item_facts
from tfrec_llm.experiments.prepare import Prepared
from tfrec_llm.models.evidence import history_contributions, uses_attention


def _prepared(fixture, dataset):
    texts = tuple(f"text of {i}" for i in fixture.catalog.item_ids)
    return Prepared(dataset, fixture.split, fixture.catalog, texts, fixture.text_embeddings)


def _histories(fixture):
    task = fixture.split.test
    return {str(u): [str(i) for i in h] for u, h in zip(task.user_ids, task.histories)}


def test_title_terms_drop_stop_words_numbers_and_repeats():
    assert title_terms("The Empire Strikes Back (1980)") == ("empire", "strikes", "back")
    assert title_terms("Star Wars: the Star of a Star") == ("star", "wars")
    shared = HistoryEvidence.between(
        ItemFacts("1", "Star Wars", "1977", ("Action", "Sci-Fi")),
        ItemFacts("2", "Star Trek: the Wrath of Khan", "1982", ("Sci-Fi", "Adventure")),
        0.5,
    )
    assert shared.shared_categories == ("Sci-Fi",) and shared.shared_terms == ("star",)


def test_similarity_evidence_is_the_cosine_of_candidate_embeddings(small_two_tower, tiny_dataset):
    fixture = small_two_tower(tiny_dataset, history_encoder="gru", encoder_width=8)
    model, catalog = fixture.model, fixture.catalog
    assert not uses_attention(model)
    user = str(fixture.split.test.user_ids[3])
    history = list(fixture.split.test.histories[3])
    item = str(catalog.item_ids[7])
    ids, weights, source = history_contributions(model, catalog, user, history, item)
    assert source == "similarity"
    # numpy reference: the last history_length (4) items, cosine with the item's embedding.
    emb = model.all_candidate_embeddings().astype(np.float64)
    window = catalog.item_index(np.asarray(history[-4:], object))
    target = emb[7] / np.linalg.norm(emb[7])
    expected = {int(i): float(emb[i] @ target / np.linalg.norm(emb[i])) for i in window}
    assert sorted(ids.tolist()) == sorted(expected)
    assert weights == pytest.approx([expected[i] for i in ids.tolist()])
    assert (np.diff(weights) <= 0).all()
    with pytest.raises(DataError, match="not in the catalog"):
        history_contributions(model, catalog, user, history, "no-such-item")


def test_attention_evidence_is_the_query_towers_attention_summed_per_item(small_two_tower, tiny_dataset):
    fixture = small_two_tower(
        tiny_dataset, history_encoder="attention", encoder_width=8, encoder_heads=2, encoder_blocks=1,
        history_length=6,
    )  # fmt: skip
    model, catalog = fixture.model, fixture.catalog
    assert uses_attention(model)
    user = str(fixture.split.test.user_ids[0])
    base = list(fixture.split.test.histories[0])
    history = base[-4:] + [base[-3]]  # the item at -3 twice in the window of 6 (5 real positions)
    ids, weights, source = history_contributions(model, catalog, user, history, str(catalog.item_ids[0]))
    assert source == "attention"
    padded = catalog.pad_histories([np.asarray(history, object)], 6)
    assert (padded[0] >= 0).sum() == 5
    hook = model.query_tower.history_weights(
        {
            "user": tf.constant(catalog.user_index(np.asarray([user], object)).astype(np.int32)),
            "history": model.embed_items(tf.constant(padded)),
            "history_mask": tf.constant(padded >= 0),
        }
    ).numpy()[0]
    expected: dict[int, float] = {}
    for position, index in enumerate(padded[0].tolist()):
        if index >= 0:
            expected[index] = expected.get(index, 0.0) + float(hook[position])
    assert len(ids) == 4 and sorted(ids.tolist()) == sorted(expected)
    assert weights == pytest.approx([expected[i] for i in ids.tolist()], abs=1e-6)
    assert weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(weights, weights[0])  # not the uniform weights of other encoders


def test_explainer_lists_real_history_items_and_true_shared_facts(small_two_tower, tiny_dataset):
    fixture = small_two_tower(tiny_dataset, history_encoder="mean")
    prepared = _prepared(fixture, tiny_dataset)
    histories = _histories(fixture)
    explainer = Explainer(fixture.model, prepared, histories, top=2)
    facts = item_facts(prepared)
    assert facts["1"] == ItemFacts("1", "space rocket adventure story number 1", "1995", ("Action", "Sci-Fi"))
    assert facts["20"].categories == ("Comedy", "Drama")
    for user in ("1", "30"):
        explanation = explainer.explain(user, "3", score=0.5)
        assert explanation.score == 0.5 and explanation.item == facts["3"]
        assert len(explanation.evidence) == 2
        window = histories[user][-4:]
        for e in explanation.evidence:
            assert e.item.item_id in window
            assert set(e.shared_categories) == set(e.item.categories) & set(facts["3"].categories)
            assert set(e.shared_terms) == set(e.item.terms) & set(facts["3"].terms)
        assert {"story", "number"} <= set(explanation.shared_terms)
        assert "because: " in explanation.summary()
    # User 1 watches space items (Sci-Fi), user 30 cooking ones: item 3 is Sci-Fi.
    assert "Sci-Fi" in explainer.explain("1", "3").shared_categories
    stranger = explainer.explain("nobody", "3")
    assert stranger == Explanation("nobody", facts["3"], "none", ())
    assert "no known history" in stranger.summary()
    nested = explainer.explain_all(["1"], [[("3", 0.9), ("4", 0.8)]])
    assert [e.item.item_id for e in nested[0]] == ["3", "4"]
    assert nested[0][0].to_dict()["item"]["title"] == facts["3"].title
