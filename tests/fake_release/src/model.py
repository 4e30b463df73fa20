"""Stand-ins for the authors' release classes, importable as `src.model` like theirs.

Only what a pickle of them records matters: the class path, the attribute names the release
sets in __init__ (FACTS.md), and the module layout, which comes from release_layout.
"""

from torch import nn

from release_layout import release_autoencoder, release_classifier, release_forward


class AutoEncoder(nn.Module):
    def __init__(self, img_sz=256, img_fm=3, init_fm=32, max_fm=512, n_layers=6, n_skip=0,
                 deconv_method="convtranspose", instance_norm=False, dec_dropout=0.0, attr=(("Eyeglasses", 2),)):
        super().__init__()
        self.img_sz, self.img_fm, self.instance_norm = img_sz, img_fm, instance_norm
        self.init_fm, self.max_fm, self.n_layers, self.n_skip = init_fm, max_fm, n_layers, n_skip
        self.deconv_method = deconv_method
        self.dropout = dec_dropout  # the release's name for it
        self.attr = list(attr)
        self.n_attr = sum(n for _, n in attr)
        layout = release_autoencoder(img_sz, init_fm, max_fm, n_layers, self.n_attr, n_skip, deconv_method)
        self.enc_layers, self.dec_layers = layout.enc_layers, layout.dec_layers

    def forward(self, x, y):
        return release_forward(self, x, y, self.n_skip)


class Classifier(nn.Module):
    def __init__(self, img_sz=256, img_fm=3, init_fm=32, max_fm=512, hid_dim=512, attr=(("Eyeglasses", 2),)):
        super().__init__()
        self.img_sz, self.img_fm, self.init_fm, self.max_fm, self.hid_dim = img_sz, img_fm, init_fm, max_fm, hid_dim
        self.attr = list(attr)
        self.n_attr = sum(n for _, n in attr)
        layout = release_classifier(img_sz, init_fm, max_fm, self.n_attr, hid_dim)
        self.n_clf_layers = len(layout.conv_layers)
        self.conv_out_fm = layout.proj_layers[0].in_features
        self.conv_layers, self.proj_layers = layout.conv_layers, layout.proj_layers

    def forward(self, x):
        return self.proj_layers(self.conv_layers(x).flatten(1))
