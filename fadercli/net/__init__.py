"""The networks: Fader's autoencoder, latent discriminator and classifier as pure nn.Modules with
their config dataclasses (model.py), the Editor that runs an autoencoder on face crops (editor.py),
and the conversion between images and the networks' tensors (tensors.py). No I/O here."""

from fadercli.net.editor import Editor
from fadercli.net.model import AutoEncoder, Classifier, ClassifierConfig, FaderConfig, LatentDiscriminator

__all__ = ["AutoEncoder", "Classifier", "ClassifierConfig", "Editor", "FaderConfig", "LatentDiscriminator"]
