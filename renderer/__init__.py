"""Charts for progress jobs: a pure function from a JobSnapshot to PNG bytes.

`renderer.chart.render_png` draws a `domain.model.JobSnapshot`. This package does not import
matplotlib until `renderer.chart` is imported.
"""
