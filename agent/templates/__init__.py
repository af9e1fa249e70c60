"""Data files shipped with the agent (the annotated campaign config that `optforge init` writes)."""
