"""Charts for progress jobs: a pure function from a JobSnapshot to PNG bytes.

`renderer.chart.render_png` draws; `renderer.model` is the snapshot it draws and the summary
derived from it. This package does not import matplotlib until `renderer.chart` is imported, so
the web process, which only summarizes, never loads it.
"""
