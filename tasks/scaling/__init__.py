"""The scaling task: how a rule that sets each parameter group's AdamW learning rate and weight decay
as a model gets wider is scored (issue 16; the measured design is ../shared/specs/scaling_rule_task.md).

    corpus.py     the Python 3.11.7 standard library's own source, encoded, shipped in data/
    model.py      the residual-MLP character LM whose width the rule scales, and its parameter groups
    train.py      one training run at one width with given hyperparameters (trusted code only)
    reference.py  the per-width tuned optimum (L*), computed once by sweep.py and shipped as data
    sweep.py      the once-only reference sweep (`python -m optforge.tasks.scaling.sweep`)
    task.py       the task of each tier: which widths, which seeds
"""
