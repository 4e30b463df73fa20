import pytest
import torch
from release_layout import randomise, release_autoencoder, release_forward

from fadercli.net.model import (
    UPSAMPLE_METHODS,
    AutoEncoder,
    Classifier,
    ClassifierConfig,
    FaderConfig,
    LatentDiscriminator,
)
from fadercli.weights.format import parameter_counts

THREE = (("A", 2), ("B", 2), ("C", 2))


@pytest.mark.parametrize(
    "config, ae_params, ae_stats, dis_params, latent",
    [
        (FaderConfig(), 14_000_512, 4_928, 8_655_362, (512, 4, 4)),  # the release's default
        (FaderConfig(init_fm=16, n_layers=7), 14_015_984, None, 4_459_522, (512, 2, 2)),  # the paper's
        (FaderConfig(THREE, img_size=64, max_fm=256, n_layers=5), 3_525_952, None, 1_184_006, (256, 2, 2)),
    ],
)
def test_parameter_counts_and_latent_shape(config, ae_params, ae_stats, dis_params, latent):
    with torch.device("meta"):
        ae, dis = AutoEncoder(config), LatentDiscriminator(config)
    params, stats = parameter_counts(ae)
    assert params == ae_params
    if ae_stats is not None:
        assert stats == ae_stats
    assert parameter_counts(dis)[0] == dis_params
    assert config.latent_shape == latent
    z = ae.encode(torch.empty(2, 3, config.img_size, config.img_size, device="meta"))[0]
    assert tuple(z.shape) == (2, *latent)
    assert tuple(dis(z).shape) == (2, config.n_attr)


def test_release_state_dict_loads_strictly_and_computes_the_same():
    reference = randomise(release_autoencoder())
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    ours = AutoEncoder(FaderConfig()).eval()
    result = ours.load_state_dict(state, strict=False)
    assert result.unexpected_keys == []
    assert all(k.endswith("num_batches_tracked") for k in result.missing_keys)
    assert {k for k in ours.state_dict() if not k.endswith("num_batches_tracked")} == set(state)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    y = torch.tensor([[1.0, 0.0], [-0.5, 1.5]])
    with torch.no_grad():
        assert torch.allclose(ours(x, y), release_forward(reference, x, y), atol=1e-6)


def test_encode_once_decode_many_matches_forward():
    config = FaderConfig(THREE, img_size=32, init_fm=8, max_fm=32, n_layers=3, n_skip=2)
    ae = randomise(AutoEncoder(config))
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        features = ae.encode(x)
        for value in (0.0, 0.5, 2.0):
            y = torch.tensor([1 - value, value] * 3).repeat(3, 1)
            assert torch.equal(ae.decode(features, y), ae(x, y))


@pytest.mark.parametrize("upsample", UPSAMPLE_METHODS)
@pytest.mark.parametrize("instance_norm", [False, True])
def test_every_option_builds_and_maps_images_to_images(upsample, instance_norm):
    config = FaderConfig(
        THREE,
        img_size=32,
        init_fm=8,
        max_fm=32,
        n_layers=4,
        n_skip=2,
        upsample=upsample,
        instance_norm=instance_norm,
        dec_dropout=0.2,
        hid_dim=16,
        lat_dis_dropout=0.1,
    )
    ae, dis = AutoEncoder(config), LatentDiscriminator(config)
    out = ae(torch.rand(2, 3, 32, 32), torch.rand(2, 6))
    assert out.shape == (2, 3, 32, 32)
    assert out.abs().max() <= 1  # tanh image
    assert dis(ae.encode(torch.rand(2, 3, 32, 32))[0]).shape == (2, 6)
    # The skip connection widens exactly the decoder inputs it feeds.
    first_conv = next(m for m in ae.dec_layers[1] if hasattr(m, "in_channels"))
    assert first_conv.in_channels == 32 + 6 + 32


def test_decoder_uses_the_attribute_vector():
    ae = randomise(AutoEncoder(FaderConfig(img_size=32, init_fm=8, max_fm=32, n_layers=3)), seed=3)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a, b = ae(x, torch.tensor([[1.0, 0.0]])), ae(x, torch.tensor([[0.0, 1.0]]))
    assert (a - b).abs().mean() > 1e-3


def test_classifier_maps_images_to_logits():
    config = ClassifierConfig(tuple((f"a{i}", 2) for i in range(40)), img_size=64, init_fm=8, max_fm=64)
    assert Classifier(config)(torch.rand(2, 3, 64, 64)).shape == (2, 80)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"img_size": 48},
        {"img_size": 1024},
        {"n_layers": 9},
        {"n_skip": 6},
        {"upsample": "bilinear"},
        {"init_fm": 1024},
        {"attributes": ()},
        {"attributes": (("A", 1),)},
        {"dec_dropout": 1.0},
        {"instance_norm": True, "img_size": 32, "n_layers": 5},  # 1x1 latent: nothing to normalise
    ],
)
def test_invalid_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        FaderConfig(**kwargs)


def test_config_round_trips_through_json():
    config = FaderConfig(THREE, img_size=64, n_layers=5, n_skip=1)
    import json

    assert FaderConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="unknown"):
        FaderConfig.from_dict({**config.to_dict(), "wings": 2})
