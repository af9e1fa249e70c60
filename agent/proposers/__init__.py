"""Proposers: where new candidate programs come from (an LLM, an offline mutator, or a mix)."""
