"""Datasets: offline, deterministic, train and held-out splits disjoint."""

import pathlib

import pytest
import torch
from safetensors.torch import load_file

from optforge.tasks.data import DATASETS
from optforge.tasks.jobs import MANIFEST, export_train_splits


@pytest.mark.parametrize("name", [n for n in DATASETS if n != "char_corpus"])
def test_splits_are_disjoint_and_nonempty(name):
    ds = DATASETS[name]()
    assert len(ds.train.x) > 100 and len(ds.heldout.x) > 100
    train_rows = {tuple(r.tolist()) for r in ds.train.x}
    assert not any(tuple(r.tolist()) in train_rows for r in ds.heldout.x)


def test_char_corpus_is_real_text_split_contiguously():
    ds = DATASETS["char_corpus"]()
    assert len(ds.train.x) > 500_000  # CPython's pydoc topics: ~0.8 MB of text
    assert ds.heldout.x.max() < 96 and ds.train.x.min() >= 0


def test_export_writes_only_train_splits(tmp_path: pathlib.Path):
    export_train_splits(tmp_path)
    assert (tmp_path / MANIFEST).exists()
    for name, make in DATASETS.items():
        exported = load_file(tmp_path / f"{name}.safetensors")
        assert torch.equal(exported["x"], make().train.x)
        assert len(exported["x"]) == len(make().train.x)
