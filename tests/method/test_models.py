import pytest
import torch

from firm_bench.core import config
from firm_bench.method.models import ENCODERS, create_model, projection_head


def _cfg(**kw):
    cfg = config.schema_defaults()["model"]
    cfg.update(kw)
    return cfg


def test_paper_model_shapes_and_head_structure():
    model = create_model(_cfg(bn_momentum=0.9))
    assert model.feature_dim == 512
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 1024)] + [(1024, 1024)] * 6 + [(1024, 128)]
    assert all(m.bias is None for m in linears)
    last_bn = model.head[-1]
    assert isinstance(last_bn, torch.nn.BatchNorm1d) and not last_bn.affine
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(m.momentum == 0.9 for m in bns)
    model.eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.h.shape == (2, 512) and out.z.shape == (2, 128)
    assert torch.allclose(out.z.norm(dim=1), torch.ones(2), atol=1e-5)


def test_cifar_resnet18_is_resnet18():
    enc = ENCODERS.get("resnet18_cifar")()
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 17  # stem + 8 blocks x 2
    assert convs[0].stride == (1, 1) and convs[0].out_channels == 64
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in enc.modules())
    assert sum(p.numel() for p in enc.parameters()) == pytest.approx(11.17e6, rel=0.01)
    # the CIFAR stem keeps 32x32 resolution into stage 1: 4x4 before pooling
    feats = enc.stages(enc.stem(torch.randn(1, 3, 32, 32)))
    assert feats.shape == (1, 512, 4, 4)


@pytest.mark.parametrize("width,dim", [(0.25, 128), (0.0625, 32)])
def test_width_multiplier(width, dim):
    model = create_model(_cfg(width=width, head_hidden=64, head_layers=3, proj_dim=16))
    model.eval()
    out = model(torch.randn(3, 3, 32, 32))
    assert out.h.shape == (3, dim) and out.z.shape == (3, 16)


def test_imagenet_stem_encoder_for_large_inputs():
    model = create_model(_cfg(encoder="resnet18_imagenet", head_layers=2, head_hidden=32))
    model.eval()
    assert model(torch.randn(2, 3, 64, 64)).h.shape == (2, 512)
    with pytest.raises(ValueError, match="fixed width"):
        create_model(_cfg(encoder="resnet18_imagenet", width=0.5))


def test_head_layers_validation():
    with pytest.raises(ValueError, match="head_layers"):
        projection_head(8, layers=0)
    assert len([m for m in projection_head(8, 16, 4, layers=1) if isinstance(m, torch.nn.Linear)]) == 1


@pytest.mark.slow  # builds timm backbones
def test_timm_backbones_as_encoders():
    """model.encoder: timm/<name> builds any timm backbone (classifier removed), BN momentum set; unknown names fail."""
    cfg = _cfg(encoder="timm/resnet10t", head_layers=2, head_hidden=32, bn_momentum=0.3)
    model = create_model(cfg)
    assert model.feature_dim == 512
    out = model(torch.randn(2, 3, 64, 64))
    assert out.h.shape == (2, 512) and out.z.shape == (2, cfg["proj_dim"])
    bns = [m for m in model.encoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(m.momentum == 0.3 for m in bns)
    with pytest.raises(ValueError, match="timm/no_such_net"):
        create_model(_cfg(encoder="timm/no_such_net"))
    with pytest.raises(ValueError, match="fixed width"):
        create_model(_cfg(encoder="timm/resnet10t", width=0.5))
    from firm_bench.core import config

    assert config.resolve("smoke", overrides=["model.encoder=timm/resnet10t"])["model"]["encoder"] == "timm/resnet10t"
    with pytest.raises(config.ConfigError, match="or timm/<name>"):
        config.resolve("smoke", overrides=["model.encoder=resnet19"])
