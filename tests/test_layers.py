import pytest
import torch
from torch import nn

from restoration.models.layers import (
    GeneralRelu,
    ResBlock,
    ResNetEncoder,
    activation,
    conv,
    cross_conv,
    norm_layer,
    res_blocks,
    up_block,
)

act, norm = activation("general_relu"), norm_layer("batchnorm")


def test_general_relu_is_shifted_leaky_relu():
    x = torch.tensor([-2.0, 0.0, 3.0])
    assert torch.allclose(GeneralRelu(leak=0.1, sub=0.4)(x), torch.tensor([-0.2 - 0.4, -0.4, 3.0 - 0.4]))
    assert GeneralRelu(maxv=1.0)(torch.tensor([5.0])).item() == 1.0


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown activation"):
        activation("gelu2")
    with pytest.raises(ValueError, match="unknown norm"):
        norm_layer("layernorm3d")


def test_conv_orders_layers_and_drops_bias_before_batchnorm():
    plain = conv(3, 8, act=act, norm=norm)
    assert [type(m) for m in plain] == [nn.Conv2d, nn.BatchNorm2d, GeneralRelu]
    assert plain[0].bias is None
    pre = conv(3, 8, act=act, norm=norm, preact=True)
    assert [type(m) for m in pre] == [nn.BatchNorm2d, GeneralRelu, nn.Conv2d]
    assert pre[0].num_features == 3


@pytest.mark.parametrize("preact", [False, True])
@pytest.mark.parametrize("ni,nf,stride", [(8, 8, 1), (8, 16, 1), (8, 16, 2), (3, 8, 2)])
def test_resblock_shapes(ni, nf, stride, preact):
    block = ResBlock(ni, nf, stride=stride, act=act, norm=norm, preact=preact)
    out = block(torch.randn(2, ni, 15, 16))
    assert out.shape == (2, nf, -(-15 // stride), 16 // stride)
    assert isinstance(block.idconv, nn.Identity) == (ni == nf)


def test_zero_residual_leaves_only_the_identity_path():
    block = ResBlock(4, 4, act=None, norm=norm)
    block.zero_residual_()
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(block.train()(x), x)


def test_res_blocks_change_channels_first_and_stride_last():
    stage = res_blocks(3, 8, 16, stride=2, act=act, norm=norm)
    assert len(stage) == 3
    assert stage[0].convs[0][0].in_channels == 8 and stage[0].pool.__class__ is nn.Identity
    assert isinstance(stage[-1].pool, nn.AvgPool2d)
    assert stage(torch.randn(1, 8, 16, 16)).shape == (1, 16, 8, 8)


def test_up_block_and_cross_conv_shapes():
    assert up_block(16, 8, act=act, norm=norm)(torch.randn(1, 16, 5, 7)).shape == (1, 8, 10, 14)
    assert cross_conv(8, act=act, norm=norm)(torch.randn(1, 8, 5, 7)).shape == (1, 8, 5, 7)


def test_encoder_returns_stem_and_every_stage():
    enc = ResNetEncoder((8, 16, 32), (1, 2), act=act, norm=norm)
    feats = enc(torch.randn(2, 3, 32, 32))
    assert [f.shape[1:] for f in feats] == [(8, 32, 32), (16, 16, 16), (32, 8, 8)]
    assert enc.stride == 4
    assert len(enc(torch.randn(1, 3, 32, 32), upto=1)) == 2
    assert enc.stem.convs[0][0].kernel_size == (5, 5)
    with pytest.raises(ValueError, match="one entry per stride-2 stage"):
        ResNetEncoder((8, 16, 32), (1,), act=act, norm=norm)
