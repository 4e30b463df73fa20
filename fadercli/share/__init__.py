"""Sharing a trained run: `fader export RUN DIR` makes a Hub-ready folder (the weights, the model
card, a preview), and `fader push RUN OWNER/NAME` uploads that folder to the Hugging Face Hub
(the `hub` extra). Downloading `hf://` models is the weights package's (weights/hf.py).

    export.py    the folder, and the upload
"""
