"""`make bench`: drive the real service and its references and print every figure measured.

render_bench.py and bare_app.py are runnable on their own; `python -m bench` runs the whole
benchmark (bench/__main__.py)."""
