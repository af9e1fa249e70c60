"""Datasets: offline, deterministic, train and held-out splits disjoint."""

import pathlib

import pytest
import torch
from safetensors.torch import load_file

from optforge.tasks.data import DATASETS
from optforge.tasks.jobs import MANIFEST, export_train_splits

TEXT = ("char_corpus", "code_corpus")


@pytest.mark.parametrize("name", [n for n in DATASETS if n not in TEXT])
def test_splits_are_disjoint_and_nonempty(name):
    ds = DATASETS[name]()
    assert len(ds.train.x) > 100 and len(ds.heldout.x) > 100
    train_rows = {tuple(r.tolist()) for r in ds.train.x}
    assert not any(tuple(r.tolist()) in train_rows for r in ds.heldout.x)


def test_char_corpus_is_real_text_split_contiguously():
    ds = DATASETS["char_corpus"]()
    assert len(ds.train.x) > 500_000  # CPython's pydoc topics: ~0.8 MB of text
    assert ds.heldout.x.max() < 96 and ds.train.x.min() >= 0


def test_code_corpus_holds_out_the_end_of_every_module_and_versions_its_content():
    ds = DATASETS["code_corpus"]()
    assert len(ds.train.x) > 300_000 and len(ds.heldout.x) > 30_000
    # held out: the last 10% of each module, in order; trained on: the rest (contiguous cuts)
    import sysconfig

    from optforge.tasks.data import CHARSET, CODE_CORPUS_MODULES

    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    texts = [(stdlib / m).read_text(encoding="utf-8", errors="replace") for m in CODE_CORPUS_MODULES]
    ends = [t[int(len(t) * 0.9) :] for t in texts]
    assert len(ds.heldout.x) == sum(map(len, ends)) and len(ds.train.x) + len(ds.heldout.x) == sum(map(len, texts))
    unknown = CHARSET.index("?")
    first = [CHARSET.index(c) if c in CHARSET else unknown for c in ends[0][:200]]
    assert ds.heldout.x[:200].tolist() == first
    assert ds.version.startswith("stdlib-code-1-") and len(ds.version) == len("stdlib-code-1-") + 12


def test_export_writes_only_train_splits(tmp_path: pathlib.Path):
    export_train_splits(tmp_path)
    assert (tmp_path / MANIFEST).exists()
    for name, make in DATASETS.items():
        exported = load_file(tmp_path / f"{name}.safetensors")
        assert torch.equal(exported["x"], make().train.x)
        assert len(exported["x"]) == len(make().train.x)
