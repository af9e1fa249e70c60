"""Bundled preference-loss baselines (DPO, IPO, SLiC, LRML/DiscoPOP): read as text, never imported."""
