# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
GR00T N1.5 as pure tensors: Eagle 2.5 backbone, flow-matching action head with its DiT.

Follows Isaac-GR00T (gr00t/model/gr00t_n1.py, backbone/eagle_backbone.py,
action_head/flow_matching_action_head.py, cross_attention_dit.py) as ported in LeRobot 0.4.4
(policies/groot/); module names mirror the checkpoint keys
(`backbone.eagle_model.language_model.model.layers.0.self_attn.q_proj.weight`,
`action_head.model.transformer_blocks.0.attn1.to_q.weight`, ...), so the public sharded
safetensors load as they are. Inference only: no lm_head, no SigLIP pooling head.

Data flow of one chunk: each camera image -> SigLIP -> mlp1 gives 256 tokens that replace the
image-context tokens of the prompt; the prompt runs through the kept Qwen3 layers (causal) and
its final norm; vlln + the VL self-attention finish the VL features (once per chunk). Then K
Euler steps from noise at t=0 to actions at t=1: each step encodes [state, 32 future tokens,
16 noisy actions] with the embodiment's MLPs, runs the DiT (even blocks cross-attend to the VL
features, odd blocks self-attend; AdaLayerNorm from the step's timestep bucket) and decodes a
velocity. The AdaLayerNorm modulation depends only on the step, so it is computed once; the
cross-attention keys and values depend only on the VL features, so once per chunk.
"""

import math
from typing import List, Optional

from omegaq_ros.kernels import gated_mlp
from omegaq_ros.policy import pointwise
from omegaq_ros.policy.chunk_model import ChunkModel
from omegaq_ros.policy.groot_config import DiTSize, GrootConfig, Qwen3Size
from omegaq_ros.policy.pi05_model import Container, SiglipVision
from omegaq_ros.quant.step_context import denoising_step
import torch
from torch import nn
from torch.nn import functional as F


# ----------------------------------------------------------------------------- Qwen3

class Qwen3RMSNorm(nn.Module):
    """RMSNorm computed in fp32, scaled by `weight` (not 1 + weight as in Gemma)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.ops = pointwise.EAGER

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize the last dimension."""
        return self.ops.scaled_rms_norm(x, self.weight, self.eps)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float, dtype):
    """Return cos, sin [B, 1, L, head_dim] for integer positions [B, L] (computed in fp32)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32,
                                            device=positions.device) / head_dim)
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]
    return emb.cos().to(dtype), emb.sin().to(dtype)


class Qwen3Attention(nn.Module):
    """Grouped-query attention with per-head RMSNorm on queries and keys, RoPE, no biases."""

    def __init__(self, size: Qwen3Size):
        super().__init__()
        self.size = size
        self.q_proj = nn.Linear(size.width, size.num_heads * size.head_dim, bias=False)
        self.k_proj = nn.Linear(size.width, size.num_kv_heads * size.head_dim, bias=False)
        self.v_proj = nn.Linear(size.width, size.num_kv_heads * size.head_dim, bias=False)
        self.o_proj = nn.Linear(size.num_heads * size.head_dim, size.width, bias=False)
        self.q_norm = Qwen3RMSNorm(size.head_dim, size.rms_norm_eps)
        self.k_norm = Qwen3RMSNorm(size.head_dim, size.rms_norm_eps)
        self.ops = pointwise.EAGER

    def forward(self, x, cos, sin, mask):
        """Attend under `mask` (bool [B, 1, L, L], True = visible)."""
        b, n, _ = x.shape
        s = self.size
        q = self.q_proj(x).view(b, n, s.num_heads, s.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, s.num_kv_heads, s.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, s.num_kv_heads, s.head_dim).transpose(1, 2)
        q, k = self.ops.norm_rope_qk(q, k, self.q_norm.weight, self.k_norm.weight,
                                     self.q_norm.eps, cos, sin)
        groups = s.num_heads // s.num_kv_heads
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class Qwen3Layer(nn.Module):
    """Pre-norm decoder layer: attention and SwiGLU MLP with residuals."""

    def __init__(self, size: Qwen3Size):
        super().__init__()
        self.input_layernorm = Qwen3RMSNorm(size.width, size.rms_norm_eps)
        self.self_attn = Qwen3Attention(size)
        self.post_attention_layernorm = Qwen3RMSNorm(size.width, size.rms_norm_eps)
        self.mlp = Container(gate_proj=nn.Linear(size.width, size.mlp_dim, bias=False),
                             up_proj=nn.Linear(size.width, size.mlp_dim, bias=False),
                             down_proj=nn.Linear(size.mlp_dim, size.width, bias=False))
        self.ops = pointwise.EAGER

    def forward(self, x, cos, sin, mask):
        """Apply one layer."""
        x = self.ops.add(x, self.self_attn(self.input_layernorm(x), cos, sin, mask))
        h = self.post_attention_layernorm(x)
        mlp = self.mlp
        return self.ops.add(x, gated_mlp(mlp.gate_proj, mlp.up_proj, mlp.down_proj, h,
                                         'silu_gate', self.ops))


class Qwen3Model(nn.Module):
    """Token embedding, the kept layers and the final norm (`language_model.model`)."""

    def __init__(self, size: Qwen3Size):
        super().__init__()
        self.size = size
        self.embed_tokens = nn.Embedding(size.vocab_size, size.width)
        self.layers = nn.ModuleList(Qwen3Layer(size) for _ in range(size.depth))
        self.norm = Qwen3RMSNorm(size.width, size.rms_norm_eps)

    def forward(self, x: torch.Tensor, token_masks: torch.Tensor) -> torch.Tensor:
        """
        Run embeddings x [B, L, width] causally; padding (token_masks False) is never attended.

        Positions are 0..L-1 whatever the padding, as in the HF model called without
        position_ids (how Eagle calls it).
        """
        b, n, _ = x.shape
        positions = torch.arange(n, device=x.device)[None].expand(b, n)
        cos, sin = rope_tables(positions, self.size.head_dim, self.size.rope_theta, x.dtype)
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        mask = causal[None, None] & token_masks[:, None, None, :].bool()
        # A query row with no visible key (left padding) would give NaN; let it see itself.
        mask = mask | torch.eye(n, dtype=torch.bool, device=x.device)[None, None]
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)


# ----------------------------------------------------------------------------- action head

class CategorySpecificLinear(nn.Module):
    """
    One Linear per embodiment: W [E, in, out] (note the (in, out) layout), b [E, out].

    y = x @ W[e] + b[e] (Isaac-GR00T flow_matching_action_head.py: CategorySpecificLinear).
    """

    def __init__(self, num_categories: int, in_dim: int, out_dim: int):
        super().__init__()
        # Trained from scratch (the small policies): a normal of std 1/sqrt(in), about
        # Isaac-GR00T's 0.02 at the full widths, large enough at small ones to pass a signal.
        self.W = nn.Parameter(torch.randn(num_categories, in_dim, out_dim) / math.sqrt(in_dim))
        self.b = nn.Parameter(torch.zeros(num_categories, out_dim))

    def forward(self, x: torch.Tensor, category: int) -> torch.Tensor:
        """Apply embodiment `category`'s weights to x [..., in]."""
        return x.to(self.W.dtype) @ self.W[category] + self.b[category]


class CategorySpecificMLP(nn.Module):
    """layer2(relu(layer1(x))) with per-embodiment weights."""

    def __init__(self, num_categories: int, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.layer1 = CategorySpecificLinear(num_categories, in_dim, hidden)
        self.layer2 = CategorySpecificLinear(num_categories, hidden, out_dim)

    def forward(self, x: torch.Tensor, category: int) -> torch.Tensor:
        """Apply the MLP of embodiment `category`."""
        return self.layer2(F.relu(self.layer1(x, category)), category)


def sinusoidal_encoding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[sin, cos] of t * 10000^(-i/(dim/2)), i < dim/2 (the action encoder's tau encoding)."""
    half = dim // 2
    exponent = -torch.arange(half, dtype=torch.float32, device=t.device) * (
        math.log(10000.0) / half)
    freqs = t.float()[..., None] * exponent.exp()
    return torch.cat((freqs.sin(), freqs.cos()), dim=-1)


class MultiEmbodimentActionEncoder(nn.Module):
    """W3(swish(W2([W1(a), tau-encoding]))) with per-embodiment weights."""

    def __init__(self, num_categories: int, action_dim: int, width: int):
        super().__init__()
        self.width = width
        self.W1 = CategorySpecificLinear(num_categories, action_dim, width)
        self.W2 = CategorySpecificLinear(num_categories, 2 * width, width)
        self.W3 = CategorySpecificLinear(num_categories, width, width)

    def forward(self, actions: torch.Tensor, bucket: torch.Tensor, category: int):
        """Encode actions [B, T, action_dim] at timestep buckets [B]."""
        a = self.W1(actions, category)
        tau = sinusoidal_encoding(bucket[:, None].expand(-1, actions.shape[1]), self.width)
        return self.W3(F.silu(self.W2(torch.cat((a, tau.to(a.dtype)), dim=-1), category)),
                       category)


def timestep_projection(bucket: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """
    Project buckets like diffusers' Timesteps(channels, flip_sin_to_cos=True, shift 1).

    Frequencies exp(-ln(10000) * i / (channels/2 - 1)), i < channels/2.
    """
    half = channels // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32,
                                                 device=bucket.device) / (half - 1)
    emb = bucket.float()[:, None] * exponent.exp()[None]
    return torch.cat((emb.cos(), emb.sin()), dim=-1)


class Attention(nn.Module):
    """diffusers' Attention (biases, no q/k norms): self-attention or cross-attention."""

    def __init__(self, width: int, num_heads: int, head_dim: int,
                 cross_dim: Optional[int] = None):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        inner = num_heads * head_dim
        self.to_q = nn.Linear(width, inner)
        self.to_k = nn.Linear(cross_dim or width, inner)
        self.to_v = nn.Linear(cross_dim or width, inner)
        self.to_out = nn.ModuleList([nn.Linear(inner, width)])

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, L, heads * head_dim] -> [B, heads, L, head_dim]."""
        return t.view(t.shape[0], -1, self.num_heads, self.head_dim).transpose(1, 2)

    def key_values(self, context: torch.Tensor):
        """Return the keys and values of `context`, split into heads."""
        return self.heads(self.to_k(context)), self.heads(self.to_v(context))

    def forward(self, x: torch.Tensor, kv=None):
        """Attend from x to kv (key_values of a context), or to x itself when None."""
        k, v = self.key_values(x) if kv is None else kv
        out = F.scaled_dot_product_attention(self.heads(self.to_q(x)), k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class FeedForward(nn.Module):
    """diffusers' FeedForward with 'gelu-approximate': Linear -> GELU(tanh) -> Linear."""

    def __init__(self, width: int, mult: int = 4):
        super().__init__()
        # diffusers' net is [GELU(proj), Dropout, Linear]: the inert middle slot keeps the
        # checkpoint's indices (ff.net.0.proj, ff.net.2).
        self.net = nn.ModuleList([Container(proj=nn.Linear(width, mult * width)),
                                  nn.Identity(), nn.Linear(mult * width, width)])
        self.ops = pointwise.EAGER

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP."""
        return self.net[2](self.ops.gelu(self.net[0].proj(x)))


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine, then x * (1 + scale) + shift from Linear(SiLU(temb))."""

    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.linear = nn.Linear(width, 2 * width)
        self.eps = eps
        self.ops = pointwise.EAGER

    def modulation(self, temb: torch.Tensor):
        """Return (scale, shift) [B, 1, width] for the timestep embedding temb [B, width]."""
        scale, shift = self.linear(F.silu(temb)).chunk(2, dim=1)
        return scale[:, None], shift[:, None]

    def forward(self, x: torch.Tensor, modulation) -> torch.Tensor:
        """Normalize x and apply a modulation from modulation()."""
        scale, shift = (m.to(x.dtype) for m in modulation)
        return self.ops.ada_layer_norm(x, scale, shift, self.eps)


class SinusoidalPositions(nn.Module):
    """diffusers' SinusoidalPositionalEmbedding: adds a fixed sin/cos table (kept as `pe`)."""

    def __init__(self, width: int, max_positions: int):
        super().__init__()
        position = torch.arange(max_positions, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) *
                        (-math.log(10000.0) / width))
        pe = torch.zeros(1, max_positions, width)
        pe[0, :, 0::2] = torch.sin(position * div)
        pe[0, :, 1::2] = torch.cos(position * div)
        self.register_buffer('pe', pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the first x.shape[1] rows."""
        if x.shape[1] > self.pe.shape[1]:
            raise ValueError(f'{x.shape[1]} VL tokens exceed the {self.pe.shape[1]} positions '
                             'of the VL self-attention')
        return x + self.pe[:, :x.shape[1]].to(x.dtype)


class TransformerBlock(nn.Module):
    """
    diffusers-style BasicTransformerBlock as GR00T uses it (cross_attention_dit.py).

    ada: AdaLayerNorm norm1 and non-affine norm3 (the DiT); otherwise affine LayerNorms (the
    VL self-attention). Residuals are ungated; dropout is off at inference.
    """

    def __init__(self, size: DiTSize, ada: bool, cross_dim: Optional[int] = None,
                 max_positions: int = 0):
        super().__init__()
        width = size.width
        self.ada = ada
        self.norm1 = AdaLayerNorm(width) if ada else nn.LayerNorm(width, eps=1e-5)
        self.pos_embed = SinusoidalPositions(width, max_positions) if max_positions else None
        self.attn1 = Attention(width, size.num_heads, size.head_dim, cross_dim)
        self.norm3 = nn.LayerNorm(width, eps=1e-5, elementwise_affine=not ada)
        self.ff = FeedForward(width)
        self.ops = pointwise.EAGER

    def forward(self, x, kv=None, modulation=None):
        """Attention (to a context's kv when given, else self) then MLP, with residuals."""
        ops = self.ops
        if self.ada:
            h = self.norm1(x, modulation)
        else:
            h = ops.layer_norm(x, self.norm1.weight, self.norm1.bias, self.norm1.eps)
        if self.pos_embed is not None:
            h = self.pos_embed(h)
        x = ops.add(x, self.attn1(h, kv))
        norm3 = self.norm3
        return ops.add(x, self.ff(ops.layer_norm(x, norm3.weight, norm3.bias, norm3.eps)))


class TimestepEncoder(nn.Module):
    """Timestep bucket -> 256-channel projection -> Linear, SiLU, Linear."""

    def __init__(self, width: int):
        super().__init__()
        self.timestep_embedder = Container(linear_1=nn.Linear(256, width),
                                           linear_2=nn.Linear(width, width))

    def forward(self, bucket: torch.Tensor) -> torch.Tensor:
        """Return temb [B, width] for integer buckets [B]."""
        e = self.timestep_embedder
        proj = timestep_projection(bucket).to(e.linear_1.weight.dtype)
        return e.linear_2(F.silu(e.linear_1(proj)))


class DiT(nn.Module):
    """The action head's diffusion transformer (`action_head.model`)."""

    def __init__(self, size: DiTSize, cross_dim: int):
        super().__init__()
        width = size.width
        self.timestep_encoder = TimestepEncoder(width)
        # Even blocks cross-attend to the VL features, odd ones self-attend
        # (interleave_self_attention).
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(size, ada=True, cross_dim=None if i % 2 else cross_dim)
            for i in range(size.depth))
        self.proj_out_1 = nn.Linear(width, 2 * width)
        self.proj_out_2 = nn.Linear(width, size.output_dim)
        self.ops = pointwise.EAGER

    def modulations(self, bucket: torch.Tensor):
        """Every AdaLayerNorm modulation for timestep buckets [B]: per block, and the output's."""
        temb = self.timestep_encoder(bucket)
        blocks = [block.norm1.modulation(temb) for block in self.transformer_blocks]
        shift, scale = self.proj_out_1(F.silu(temb)).chunk(2, dim=1)
        return blocks, (scale[:, None], shift[:, None])

    def cross_key_values(self, vl: torch.Tensor) -> list:
        """
        Keys and values of the VL features for each cross-attention block (None elsewhere).

        They do not depend on the step, so a chunk computes them once for its K steps: these
        are the DiT's largest GEMMs (every VL token, against the 49 action-side tokens).
        """
        return [None if i % 2 else block.attn1.key_values(vl)
                for i, block in enumerate(self.transformer_blocks)]

    def forward(self, x: torch.Tensor, cross_kv: list, modulations) -> torch.Tensor:
        """Run the blocks over tokens x [B, T, width] with the step's modulations."""
        blocks, (scale, shift) = modulations
        for block, kv, modulation in zip(self.transformer_blocks, cross_kv, blocks):
            x = block(x, None if kv is None else tuple(t.to(x.dtype) for t in kv), modulation)
        x = self.ops.ada_layer_norm(x, scale.to(x.dtype), shift.to(x.dtype), 1e-6)
        return self.proj_out_2(x)


class SelfAttentionTransformer(nn.Module):
    """The VL self-attention over the backbone features (`action_head.vl_self_attention`)."""

    def __init__(self, size: DiTSize, max_positions: int):
        super().__init__()
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(size, ada=False, max_positions=max_positions)
            for _ in range(size.depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the blocks."""
        for block in self.transformer_blocks:
            x = block(x)
        return x


class FlowMatchingHead(nn.Module):
    """Embodiment encoders/decoder, future tokens, positions, vlln, VL self-attention, DiT."""

    def __init__(self, c: GrootConfig):
        super().__init__()
        e = c.max_num_embodiments
        self.model = DiT(c.dit, c.language.width)
        self.state_encoder = CategorySpecificMLP(e, c.max_state_dim, c.hidden_size,
                                                 c.input_embedding_dim)
        self.action_encoder = MultiEmbodimentActionEncoder(e, c.max_action_dim,
                                                           c.input_embedding_dim)
        self.action_decoder = CategorySpecificMLP(e, c.hidden_size, c.hidden_size,
                                                  c.max_action_dim)
        self.future_tokens = nn.Embedding(c.num_future_tokens, c.input_embedding_dim)
        self.position_embedding = nn.Embedding(c.max_seq_len, c.input_embedding_dim)
        # 0.02 as Isaac-GR00T: a unit normal would drown the action tokens it is added to.
        nn.init.normal_(self.future_tokens.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        if c.use_vlln:
            self.vlln = nn.LayerNorm(c.language.width, eps=1e-5)
            self.vl_self_attention = SelfAttentionTransformer(c.vl_self_attention,
                                                              c.vl_max_positions)


# ----------------------------------------------------------------------------- the model

class GrootModel(ChunkModel):
    """The pure-tensor GR00T N1.5: what the quantizer and the GPU kernels see."""

    # Kept in fp32 by set_compute_dtype: the embodiment MLPs, the timestep MLP and the
    # AdaLayerNorm projections (these run once per step value, GrootModel.prepare_steps).
    FP32_MODULES = ('state_encoder', 'action_encoder', 'action_decoder', 'timestep_encoder',
                    'norm1.linear', 'proj_out_1')
    # q/k/v, gate/up, and the cross-attention's keys and values read one input.
    SIBLING_LINEARS = (('q_proj', 'k_proj', 'v_proj'), ('gate_proj', 'up_proj'),
                       ('to_k', 'to_v'))
    # Qwen3's down_proj reads silu(gate_proj) * up_proj; the DiT's and the VL self-attention's
    # FeedForward net.2 reads gelu_tanh(net.0.proj).
    ELEMENTWISE_CHAINS = ((('gate_proj', 'up_proj'), 'down_proj'), (('net.0.proj',), 'net.2'))
    # pixel_values, input_ids, token_masks: the VL features; then the state and the noise.
    PREFIX_INPUTS = 3

    def __init__(self, config: GrootConfig):
        super().__init__()
        self.config = config
        c = config
        self.backbone = Container(eagle_model=Container(
            vision_model=Container(vision_model=SiglipVision(c.vision, c.layer_norm_eps)),
            mlp1=nn.Sequential(nn.Linear(c.vision.width, c.language.width)),
            language_model=Container(model=Qwen3Model(c.language))))
        self.action_head = FlowMatchingHead(c)

    @property
    def eagle(self) -> nn.Module:
        """Return the Eagle VLM (vision tower, mlp1, language model)."""
        return self.backbone.eagle_model

    # -- the prefix (once per chunk) ------------------------------------------------------------

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Map images [N, 3, S, S] in [-1, 1] to language-width tokens [N, patches, width]."""
        vision = self.eagle.vision_model.vision_model
        return self.eagle.mlp1(vision(pixel_values.to(self.compute_dtype)))

    def vl_features(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                    token_masks: torch.Tensor) -> torch.Tensor:
        """
        Return the VL features [B, L, width] the DiT attends to (backbone, vlln, VL attention).

        The k-th image-context token of the prompt (id image_token_index) takes the k-th image
        token of the images in order (Eagle2_5_VLForConditionalGeneration.forward).
        """
        language = self.eagle.language_model.model
        embeds = language.embed_tokens(input_ids)
        image_tokens = self.image_features(pixel_values).reshape(-1, embeds.shape[-1])
        selected = input_ids == self.config.image_token_index
        # The count check reads the GPU; a CUDA graph cannot (the runtime checked the prompt).
        capturing = selected.is_cuda and torch.cuda.is_current_stream_capturing()
        if not capturing and int(selected.sum()) != image_tokens.shape[0]:
            raise ValueError(f'the prompt has {int(selected.sum())} image-context tokens, the '
                             f'images give {image_tokens.shape[0]}')
        # masked_scatter without its host sync: the k-th selected position (in flattened
        # order) takes image token k, found by a running count of the selected positions.
        flat = selected.reshape(-1)
        order = (torch.cumsum(flat, 0) - 1).clamp(min=0)
        placed = image_tokens.to(embeds.dtype)[order].reshape(embeds.shape)
        embeds = torch.where(selected[..., None], placed, embeds)
        features = language(embeds, token_masks)
        head = self.action_head
        if self.config.use_vlln:
            features = head.vl_self_attention(head.vlln(features))
        return features

    # -- the K Euler steps ----------------------------------------------------------------------

    def step_buckets(self, num_steps: int) -> List[int]:
        """Timestep buckets of the Euler steps: int(k / K * buckets) for t_k = k / K."""
        return [int(k / float(num_steps) * self.config.num_timestep_buckets)
                for k in range(num_steps)]

    def step_conditions(self, num_steps: int, batch_size: int,
                        device: torch.device) -> List[torch.Tensor]:
        """Return each Euler step's timestep bucket as int64 [batch_size]."""
        return [torch.full((batch_size,), bucket, dtype=torch.long, device=device)
                for bucket in self.step_buckets(num_steps)]

    def modulations(self, bucket: torch.Tensor):
        """Every AdaLayerNorm modulation of the DiT for timestep buckets [B]."""
        return self.action_head.model.modulations(bucket)

    def velocity(self, actions, bucket, state_features, cross_kv, modulations):
        """One DiT pass: the velocity [B, horizon, max_action_dim] at `actions`."""
        head, c = self.action_head, self.config
        a = head.action_encoder(actions, bucket, c.embodiment_id)
        a = a + head.position_embedding.weight[:actions.shape[1]][None].to(a.dtype)
        future = head.future_tokens.weight[None].expand(actions.shape[0], -1, -1)
        x = torch.cat((state_features.to(self.compute_dtype), future.to(self.compute_dtype),
                       a.to(self.compute_dtype)), dim=1)
        out = head.model(x, cross_kv, modulations)
        return head.action_decoder(out.float(), c.embodiment_id)[:, -actions.shape[1]:]

    def prefix_context(self, pixel_values, input_ids, token_masks) -> tuple:
        """Return (VL features,): what the DiT attends to at every step."""
        return (self.vl_features(pixel_values, input_ids, token_masks),)

    def denoise(self, vl: torch.Tensor, state: torch.Tensor, noise: torch.Tensor,
                num_steps: Optional[int] = None) -> torch.Tensor:
        """Integrate from noise [B, horizon, max_action_dim] at t=0 to actions at t=1."""
        num_steps = num_steps or self.config.num_steps
        state_features = self.action_head.state_encoder(state.float(), self.config.embodiment_id)
        # Outside any step: the cross-attention K/V projections see the same VL features at
        # every step, so a quantizer gives them one static table, not one per step.
        cross_kv = self.action_head.model.cross_key_values(vl.to(self.compute_dtype))
        dt = 1.0 / num_steps
        actions = noise.float()
        buckets = self.step_conditions(num_steps, noise.shape[0], noise.device)
        for step, bucket in enumerate(buckets):
            with denoising_step(step, num_steps):
                modulations = self.step_modulations(step, num_steps, bucket)
                v = self.velocity(actions, bucket, state_features, cross_kv, modulations)
            actions = actions + dt * v
        return actions

    def sample_actions(self, pixel_values, input_ids, token_masks, state, noise,
                       num_steps: Optional[int] = None) -> torch.Tensor:
        """
        Return normalized actions [B, horizon, max_action_dim] for one observation batch.

        pixel_values [N, 3, S, S] (all cameras of the batch, in prompt order), input_ids and
        token_masks [B, L], state [B, 1, max_state_dim] (normalized, zero-padded), noise
        [B, horizon, max_action_dim].
        """
        vl = self.vl_features(pixel_values, input_ids, token_masks)
        return self.denoise(vl, state, noise, num_steps)

    def forward(self, pixel_values, input_ids, token_masks, state, noise, num_steps=None):
        """Sample an action chunk (the call the quantizer's calibration makes)."""
        return self.sample_actions(pixel_values, input_ids, token_masks, state, noise, num_steps)

    # -- training -----------------------------------------------------------------------------

    @staticmethod
    def training_times(beta_samples: torch.Tensor) -> torch.Tensor:
        """Map Beta(1.5, 1) samples s to training times t = (0.999 - s) / 0.999 (N1.5's)."""
        return (0.999 - beta_samples) / 0.999

    def flow_matching_loss(self, pixel_values, input_ids, token_masks, state, actions, noise, t):
        """
        Return the per-element training loss |v_theta(x_t, t) - (actions - noise)|^2.

        GR00T runs time the other way from pi0.5: x_t = (1 - t) noise + t actions, t [B] in
        [0, 1] seen as its bucket floor(t * num_timestep_buckets); inputs as sample_actions
        takes them, actions and noise [B, horizon, max_action_dim].
        """
        vl = self.vl_features(pixel_values, input_ids, token_masks)
        state_features = self.action_head.state_encoder(state.float(), self.config.embodiment_id)
        cross_kv = self.action_head.model.cross_key_values(vl.to(self.compute_dtype))
        t_ = t[:, None, None]
        x_t = (1 - t_) * noise + t_ * actions
        bucket = (t * self.config.num_timestep_buckets).long().clamp(
            max=self.config.num_timestep_buckets - 1)
        velocity = self.velocity(x_t, bucket, state_features, cross_kv, self.modulations(bucket))
        return F.mse_loss(velocity, actions - noise, reduction='none')

    def parameter_counts(self) -> dict:
        """Parameters per component (at full size, the published counts; tests check them)."""
        def count(module):
            return sum(p.numel() for p in module.parameters())
        head, language = self.action_head, self.eagle.language_model.model
        counts = {
            'vision_tower': count(self.eagle.vision_model),
            'mlp1': count(self.eagle.mlp1),
            'language_kept': count(language),
            'dit': count(head.model),
            'action_encoder': count(head.action_encoder),
            'state_encoder': count(head.state_encoder),
            'action_decoder': count(head.action_decoder),
            'position_embedding': count(head.position_embedding),
            'future_tokens': count(head.future_tokens),
        }
        if self.config.use_vlln:
            counts['vl_self_attention'] = count(head.vl_self_attention)
            counts['vlln'] = count(head.vlln)
        counts['action_head'] = count(head)
        counts['total'] = count(self)
        return counts
