"""Interface checks for the attention snippets against torch built-ins and explicit formulas."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from snippets.attention import (
    Attention,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_position_encoding,
)
from snippets.attention_cost import unet_stages
from snippets.attention_recall import attention_weights, elu_linear_attention, make_recall_batch
from snippets.cross_attention import CrossAttention, SpatialTransformer
from snippets.linear_attention import LinearAttention, linear_attention, linear_attention_map
from snippets.transformer import TransformerBlock


def random_qkv(batch=2, heads=3, tokens=5, dim_head=8, key_tokens=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    key_tokens = key_tokens or tokens
    shape_q = (batch, heads, tokens, dim_head)
    shape_k = (batch, heads, key_tokens, dim_head)
    q = torch.randn(shape_q, generator=generator, dtype=torch.float64)
    k = torch.randn(shape_k, generator=generator, dtype=torch.float64)
    v = torch.randn(shape_k, generator=generator, dtype=torch.float64)
    return q, k, v


def max_error(a, b):
    return (a - b).abs().max().item()


def test_sdpa_without_mask_matches_torch():
    q, k, v = random_qkv(key_tokens=7)
    expected = F.scaled_dot_product_attention(q, k, v)
    assert max_error(scaled_dot_product_attention(q, k, v), expected) < 1e-10


def test_sdpa_boolean_mask_matches_torch():
    q, k, v = random_qkv(tokens=6)
    mask = padding_mask(torch.tensor([6, 2]), 6)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert max_error(scaled_dot_product_attention(q, k, v, mask), expected) < 1e-10


def test_sdpa_causal_mask_matches_torch():
    q, k, v = random_qkv(tokens=6)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert max_error(scaled_dot_product_attention(q, k, v, causal_mask(6)), expected) < 1e-10


def test_causal_mask_is_lower_triangular():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool
    assert mask[2, 2]
    assert mask[2, 0]
    assert not mask[1, 2]


def test_multi_head_attention_matches_torch():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(16, 4, batch_first=True).double()
    ours = MultiHeadAttention(16, 4).double().copy_weights_from(reference)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    expected = reference(x, x, x, need_weights=False)[0]
    assert max_error(ours(x), expected) < 1e-10


def test_multi_head_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(10, 4)


def test_position_encoding_interleaves_sin_and_cos():
    encoding = sinusoidal_position_encoding(50, 16).double()
    position = torch.arange(50, dtype=torch.float64)
    for i in range(8):
        frequency = 10000.0 ** (-2 * i / 16)
        assert torch.allclose(encoding[:, 2 * i], torch.sin(position * frequency), atol=1e-6)
        assert torch.allclose(encoding[:, 2 * i + 1], torch.cos(position * frequency), atol=1e-6)


def test_position_encoding_rejects_odd_dim():
    with pytest.raises(ValueError, match="even"):
        sinusoidal_position_encoding(4, 7)


def test_feature_map_attention_keeps_shape():
    block = Attention(32, heads=4, dim_head=8)
    x = torch.randn(2, 32, 4, 6)
    assert block(x).shape == x.shape


def test_feature_map_attention_without_memory_matches_torch():
    torch.manual_seed(0)
    block = Attention(16, heads=2, dim_head=8, num_mem_kv=0).double()
    x = torch.randn(1, 16, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        normed = F.normalize(x, dim=1) * math.sqrt(16)
        q, k, v = block.to_qkv(normed).reshape(1, 3, 2, 8, 15).unbind(dim=1)
        out = F.scaled_dot_product_attention(*(t.transpose(-2, -1) for t in (q, k, v)))
        expected = block.to_out(out.transpose(-2, -1).reshape(1, 16, 3, 5))
    assert max_error(block(x), expected) < 1e-10


def test_linear_attention_equals_quadratic_form():
    q, k, v = random_qkv(tokens=9, key_tokens=13)
    assert max_error(linear_attention(q, k, v), linear_attention_map(q, k) @ v) < 1e-12


@settings(max_examples=25, deadline=None)
@given(
    tokens=st.integers(1, 20),
    key_tokens=st.integers(1, 20),
    dim_head=st.integers(1, 12),
    seed=st.integers(0, 1000),
)
def test_linear_attention_associativity_any_shape(tokens, key_tokens, dim_head, seed):
    q, k, v = random_qkv(1, 2, tokens, dim_head, key_tokens, seed)
    assert max_error(linear_attention(q, k, v), linear_attention_map(q, k) @ v) < 1e-12


def test_linear_attention_matches_ddpm_einsum():
    q, k, v = random_qkv(tokens=10, dim_head=6)
    # The GitHub layout is (B, H, D, N): softmax over D for q, over N for k.
    q_t, k_t, v_t = (t.transpose(-2, -1) for t in (q, k, v))
    q_t = q_t.softmax(dim=-2) * 6**-0.5
    k_t = k_t.softmax(dim=-1)
    context = torch.einsum("bhdn,bhen->bhde", k_t, v_t)
    expected = torch.einsum("bhde,bhdn->bhen", context, q_t).transpose(-2, -1)
    assert max_error(linear_attention(q, k, v), expected) < 1e-12


def test_linear_attention_rows_sum_to_scale():
    q, k, _ = random_qkv(tokens=12, dim_head=16)
    row_sums = linear_attention_map(q, k).sum(dim=-1)
    assert torch.allclose(row_sums, torch.full_like(row_sums, 0.25), atol=1e-12)


def test_linear_attention_map_rank_is_dim_head():
    # The map is a 40x5 matrix times a 5x40 matrix, so its rank is at most 5; random
    # queries and keys reach that bound, and a map that dropped features would not.
    q, k, _ = random_qkv(batch=1, heads=1, tokens=40, dim_head=5)
    assert torch.linalg.matrix_rank(linear_attention_map(q, k)[0, 0].double()).item() == 5


def test_linear_attention_module_keeps_shape():
    block = LinearAttention(24, heads=2, dim_head=8)
    x = torch.randn(2, 24, 5, 7)
    assert block(x).shape == x.shape


def test_linear_attention_module_without_memory_runs():
    block = LinearAttention(8, heads=2, dim_head=4, num_mem_kv=0)
    assert block(torch.randn(1, 8, 3, 3)).shape == (1, 8, 3, 3)


def test_cross_attention_matches_torch():
    torch.manual_seed(0)
    ours = CrossAttention(16, 12, heads=2, dim_head=8).double()
    reference = nn.MultiheadAttention(16, 2, kdim=12, vdim=12, batch_first=True).double()
    with torch.no_grad():
        reference.q_proj_weight.copy_(ours.to_q.weight)
        reference.k_proj_weight.copy_(ours.to_k.weight)
        reference.v_proj_weight.copy_(ours.to_v.weight)
        reference.in_proj_bias.zero_()
        reference.out_proj.load_state_dict(ours.to_out.state_dict())
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    context = torch.randn(2, 4, 12, dtype=torch.float64)
    expected = reference(x, context, context, need_weights=False)[0]
    assert max_error(ours(x, context), expected) < 1e-10


def trained_spatial_transformer():
    torch.manual_seed(0)
    block = SpatialTransformer(32, heads=2, dim_head=8, context_dim=12).double()
    with torch.no_grad():
        nn.init.normal_(block.proj_out.weight, std=0.1)
    return block


def test_spatial_transformer_zero_init_is_identity():
    block = SpatialTransformer(32, heads=2, dim_head=8, context_dim=12)
    x = torch.randn(1, 32, 4, 4)
    assert torch.equal(block(x, torch.randn(1, 3, 12)), x)


def test_spatial_transformer_shape_independent_of_context_length():
    block = trained_spatial_transformer()
    x = torch.randn(1, 32, 4, 4, dtype=torch.float64)
    for tokens in (1, 5, 77):
        assert block(x, torch.randn(1, tokens, 12, dtype=torch.float64)).shape == x.shape


def test_spatial_transformer_ignores_context_order():
    block = trained_spatial_transformer()
    x = torch.randn(1, 32, 4, 4, dtype=torch.float64)
    context = torch.randn(1, 6, 12, dtype=torch.float64)
    permuted = context[:, torch.tensor([3, 0, 5, 1, 4, 2])]
    assert max_error(block(x, context), block(x, permuted)) < 1e-12


def test_spatial_transformer_depends_on_context_content():
    block = trained_spatial_transformer()
    x = torch.randn(1, 32, 4, 4, dtype=torch.float64)
    context = torch.randn(1, 6, 12, dtype=torch.float64)
    assert max_error(block(x, context), block(x, context + 1.0)) > 1e-3


def test_transformer_block_matches_torch_encoder_layer():
    torch.manual_seed(0)
    reference = nn.TransformerEncoderLayer(
        16, 2, 32, dropout=0.0, batch_first=True, norm_first=True
    ).double()
    ours = TransformerBlock(16, 2, 32).double()
    ours.attention.copy_weights_from(reference.self_attn)
    ours.feed_forward[0].load_state_dict(reference.linear1.state_dict())
    ours.feed_forward[2].load_state_dict(reference.linear2.state_dict())
    ours.norm1.load_state_dict(reference.norm1.state_dict())
    ours.norm2.load_state_dict(reference.norm2.state_dict())
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    assert max_error(ours(x), reference.eval()(x)) < 1e-10


def test_unet_stages_at_256_px():
    stages = unet_stages(256)
    assert [tokens for _, _, tokens, _ in stages] == [65536, 16384, 4096, 1024, 1024]
    assert [kind for *_, kind in stages] == ["linear", "linear", "linear", "softmax", "softmax"]


def test_elu_linear_attention_equals_normalised_map():
    q, k, v = random_qkv(tokens=7, key_tokens=11)
    expected = attention_weights("linear (elu+1)", q, k) @ v
    assert max_error(elu_linear_attention(q, k, v), expected) < 1e-12


def test_recall_batch_keys_are_distinct():
    keys, values, query_key, target = make_recall_batch(8, 20, torch.Generator().manual_seed(0))
    assert all(len(set(row.tolist())) == 20 for row in keys)
    for row in range(8):
        position = keys[row].tolist().index(query_key[row].item())
        assert values[row, position] == target[row]
