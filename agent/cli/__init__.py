"""The `optforge` command (main.py) and its subcommands (campaign.py, review.py, export.py,
sandbox.py), with the terminal renderers they use (display.py, campaign_display.py,
review_display.py)."""
