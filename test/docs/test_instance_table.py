"""docs/costs.md's "Choosing an instance" table is what the trainer's estimator says now, and the
rules its prose states hold in it.

    .venv/bin/python -m pytest -q test/docs/test_instance_table.py      # also: make test-docs

After changing the estimator, the instance types or their prices: `make docs`, then commit.
"""

from __future__ import annotations

import pytest
from docs_markdown import ROOT

from scripts.docs import instance_table


@pytest.fixture(scope="module")
def rendered() -> str:
    return instance_table.render()


@pytest.fixture(scope="module")
def fits() -> instance_table.Fits:
    return instance_table.fits(instance_table.SETTING)


def test_the_committed_block_is_what_the_generator_prints(rendered: str) -> None:
    document = (ROOT / "docs" / "costs.md").read_text()

    committed = instance_table.read_block(document, instance_table.BLOCK)

    assert committed == rendered.strip(), "run `make docs` and commit docs/costs.md"


def test_every_allowed_type_is_in_exactly_one_row() -> None:
    rows = [t for group in instance_table.groups() for t in group.types]

    assert sorted(rows) == sorted(instance_table.estimate.supported_instance_types())


def test_qlora_is_never_sharded_as_the_page_says(fits: instance_table.Fits) -> None:
    qlora = {strategy for (_, _, method), strategy in fits.items() if method == "qlora"}

    assert qlora <= {"none", "ddp", "no"}


def test_a_full_fine_tune_uses_fsdp_on_several_gpus_and_fits_no_single_gpu(
    fits: instance_table.Fits,
) -> None:
    gpus = {group.label: group.gpus for group in instance_table.groups()}

    full = {(gpus[label] > 1, s) for (label, _, method), s in fits.items() if method == "full"}

    assert full <= {(True, "fsdp"), (True, "no"), (False, "no")}
