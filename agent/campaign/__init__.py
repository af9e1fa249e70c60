"""The campaign: the loop (loop.py) and its collaborators.

    loop.py        the loop itself, the only writer of a campaign's archive
    state.py       the archive as the loop sees it: read once, mirrored as it writes
    selection.py   parent selection, islands and migration, applied to the running campaign
    cascade.py     tiers 0, 1 and 2 and the champion, run; rules.py holds the rules
    clock.py       the campaign's clock and its display snapshots (progress.py)
    summary.py     what an archive says about its campaign (also `optforge status`);
                   summary_text.py renders it as plain text
    records.py     conversions between agent objects and archive records
    directory.py   a campaign's directory and the config in force
    parts.py       what a campaign runs on (injected: tests use fakes)
"""
