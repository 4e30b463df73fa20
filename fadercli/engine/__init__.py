"""Editing with models: a Chain of models on a device (chain.py), a photo analysed once and rendered
with any values (analysis.py), sliders swept (sweep.py), and what they give back (results.py)."""
