"""Reviewing a campaign: the reads behind `ls`, `show`, `diff` and `lineage` (view.py) and the HTML
report (report.py, its chart data in report_data.py, hand-drawn SVG charts in report_svg.py)."""
