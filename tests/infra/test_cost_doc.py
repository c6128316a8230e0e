"""docs/cost.md's generated block is what `tests/infra/cost_doc.py` makes from the stacks' own
outputs and the price table: a changed price, default or resource fails here until the doc is
regenerated."""

from __future__ import annotations

from pathlib import Path

from infra.offline import prices

from .cost_doc import COST_DOC, UPDATE, example_artifact, render, update


def test_the_committed_cost_doc_is_the_generated_one(
    regression_artifact: Path, tmp_path: Path
) -> None:
    block = render(example_artifact(regression_artifact, tmp_path))
    text = COST_DOC.read_text()
    assert update(text, block) == text, f"docs/cost.md is out of date; run: {UPDATE}"


def test_every_price_names_its_source_and_how_it_was_read() -> None:
    table = prices.table()
    assert len(table) >= 25
    for name, price in table.items():
        assert price.source.startswith("https://"), name
        assert price.read in (prices.READ, prices.NOT_REREAD), name
        assert bool(price.seen_on) == (price.read == prices.READ), name
