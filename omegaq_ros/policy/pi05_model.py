# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
pi0.5 as pure tensors: SigLIP + Gemma prefix, Gemma action expert, flow-matching sampler.

Follows openpi (pi0.py, gemma.py, siglip.py) and LeRobot's PyTorch port (modeling_pi05.py,
pi_gemma.py); module names mirror LeRobot's checkpoint keys
(`paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.weight`, ...),
so a LeRobot `model.safetensors` loads as is. Inference only; no lm_heads.

Data flow of one chunk: images -> SigLIP -> projector, tokens -> scaled embedding; the prefix
(images + text) runs once through the language model into a K/V cache. Then K Euler steps
from noise at t=1 to actions at t=0: each step embeds x_t, runs the expert, whose queries
attend to the prefix K/V of the same layer plus the expert's own tokens, and returns v_t.
The expert's adaRMS modulation depends only on t, so it is computed once per step value.
"""

import math
from typing import List, Optional, Tuple

from omegaq_ros.kernels import gated_mlp
from omegaq_ros.policy import pointwise
from omegaq_ros.policy.chunk_model import ChunkModel
from omegaq_ros.policy.model_config import VisionSize
from omegaq_ros.policy.pi05_config import GemmaSize, Pi05Config
from omegaq_ros.quant.step_context import calibrating, denoising_step
import torch
from torch import nn
from torch.nn import functional as F

# Additive mask value of openpi / LeRobot (finite, so fully masked rows stay finite).
MASK_VALUE = -2.3819763e38


class Container(nn.Module):
    """A named group of submodules, so parameter names follow the checkpoint layout."""

    def __init__(self, **children):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)


# ----------------------------------------------------------------------------- vision (SigLIP)

def _copy_joined_entries(module, state, prefix, local_metadata):
    # Joined, q/k/v's parameters share one tensor's storage; a state dict holds copies, so
    # writers that refuse shared storage (safetensors) take it like any other.
    if module._joined is not None:
        for name in ('q_proj', 'k_proj', 'v_proj'):
            for leaf in ('weight', 'bias'):
                key = f'{prefix}{name}.{leaf}'
                state[key] = state[key].clone()


class SiglipAttention(nn.Module):
    """Bidirectional multi-head self-attention with biases."""

    def __init__(self, size: VisionSize):
        super().__init__()
        self.num_heads = size.num_heads
        self.head_dim = size.width // size.num_heads
        self.q_proj = nn.Linear(size.width, size.width)
        self.k_proj = nn.Linear(size.width, size.width)
        self.v_proj = nn.Linear(size.width, size.width)
        self.out_proj = nn.Linear(size.width, size.width)
        self._joined = None
        self.register_state_dict_post_hook(_copy_joined_entries)

    def join_projections(self, enabled: bool = True) -> None:
        """
        Keep q/k/v's weights and biases in one [3 * width, width] tensor, projected in one GEMM.

        The three projections' parameters become views into the joined tensors (no second
        copy of the weights); a forward whose parameters are no longer those views (moved or
        cast since) projects with the three GEMMs. Disabled: separate parameters again.
        """
        parts = (self.q_proj, self.k_proj, self.v_proj)
        if (not enabled and self._joined is None) or not all(type(p) is nn.Linear
                                                             for p in parts):
            self._joined = None
            return
        weight = torch.cat([p.weight.detach() for p in parts])
        bias = torch.cat([p.bias.detach() for p in parts])
        rows = self.q_proj.out_features
        for i, p in enumerate(parts):
            w, b = weight[i * rows:(i + 1) * rows], bias[i * rows:(i + 1) * rows]
            if not enabled:
                w, b = w.clone(), b.clone()
            p.weight = nn.Parameter(w, p.weight.requires_grad)
            p.bias = nn.Parameter(b, p.bias.requires_grad)
        self._joined = (weight, bias) if enabled else None

    def _joined_parameters(self):
        # The joined tensors while every projection's parameters still are views into them.
        if self._joined is None:
            return None
        weight, bias = self._joined
        rows = self.q_proj.out_features
        for i, p in enumerate((self.q_proj, self.k_proj, self.v_proj)):
            if (p.weight.data_ptr() != weight[i * rows].data_ptr()
                    or p.bias.data_ptr() != bias[i * rows:].data_ptr()):
                return None
        return self._joined

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over all patches of an image."""
        b, n, _ = x.shape

        def heads(t):
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        joined = self._joined_parameters()
        if joined is None:
            q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        else:
            qkv = F.linear(x, *joined).view(b, n, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class SiglipLayer(nn.Module):
    """Pre-LN transformer block with a GELU(tanh) MLP."""

    def __init__(self, size: VisionSize, eps: float):
        super().__init__()
        self.ops = pointwise.EAGER
        self.layer_norm1 = nn.LayerNorm(size.width, eps=eps)
        self.self_attn = SiglipAttention(size)
        self.layer_norm2 = nn.LayerNorm(size.width, eps=eps)
        self.mlp = Container(fc1=nn.Linear(size.width, size.mlp_dim),
                             fc2=nn.Linear(size.mlp_dim, size.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply attention and MLP with residuals."""
        ops, norm1, norm2 = self.ops, self.layer_norm1, self.layer_norm2
        x = ops.add(x, self.self_attn(ops.layer_norm(x, norm1.weight, norm1.bias, norm1.eps)))
        fc1 = self.mlp.fc1
        h = ops.linear_gelu(ops.layer_norm(x, norm2.weight, norm2.bias, norm2.eps), fc1.weight,
                            fc1.bias)
        return ops.add(x, self.mlp.fc2(h))


class SiglipVision(nn.Module):
    """Patch embedding + position embedding + encoder + final LayerNorm (no pooling head)."""

    def __init__(self, size: VisionSize, eps: float):
        super().__init__()
        patches = (size.image_size // size.patch_size) ** 2
        self.embeddings = Container(
            patch_embedding=nn.Conv2d(3, size.width, size.patch_size, stride=size.patch_size),
            position_embedding=nn.Embedding(patches, size.width))
        self.encoder = Container(layers=nn.ModuleList(SiglipLayer(size, eps)
                                                      for _ in range(size.depth)))
        self.post_layernorm = nn.LayerNorm(size.width, eps=eps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map images [B, 3, S, S] in [-1, 1] to patch features [B, (S/p)^2, width]."""
        # Token-major from here: the convolution's output is channel-major, and a residual
        # stream left so made every LayerNorm reduce over strided channels and every linear
        # read a transposed input, layer after layer (on an H100 each LayerNorm became three
        # compiled kernels, RESULTS 7m).
        x = self.embeddings.patch_embedding(images).flatten(2).transpose(1, 2).contiguous()
        x = x + self.embeddings.position_embedding.weight[None]
        for layer in self.encoder.layers:
            x = layer(x)
        return self.post_layernorm(x)


# ----------------------------------------------------------------------------- Gemma

class GemmaRMSNorm(nn.Module):
    """
    RMSNorm as Gemma computes it: x * rsqrt(mean x^2 + eps) * (1 + w).

    With cond_dim (the expert's adaRMSNorm, openpi gemma.py RMSNorm), a dense layer maps the
    time condition to (scale, shift, gate): x_hat * (1 + scale) + shift, and the caller adds
    the residual branch multiplied by gate.
    """

    def __init__(self, dim: int, eps: float, cond_dim: Optional[int] = None):
        super().__init__()
        self.eps = eps
        self.ops = pointwise.EAGER
        if cond_dim is None:
            self.weight = nn.Parameter(torch.zeros(dim))
            self.dense = None
        else:
            self.dense = nn.Linear(cond_dim, 3 * dim)

    def modulation(self, cond: torch.Tensor) -> torch.Tensor:
        """Return (scale, shift, gate) stacked [3, B, 1, dim] for a condition [B, cond_dim]."""
        return self.dense(cond).unsqueeze(1).chunk(3, dim=-1)

    def forward(self, x: torch.Tensor, modulation=None):
        """Return (normalized x, gate or None)."""
        if self.dense is None:
            return self.ops.rms_norm(x, self.weight, self.eps), None
        scale, shift, gate = modulation
        return self.ops.ada_rms_norm(x, scale, shift, self.eps), gate

    def after_residual(self, x: torch.Tensor, pending, modulation=None):
        """
        Add a residual branch to x, then normalize: return (x, normalized x, gate or None).

        pending: (branch output, its gate or None), or None (nothing to add). Add and norm
        run as one function (one fused kernel when the pointwise work is compiled).
        """
        if pending is None:
            return (x, *self(x, modulation))
        out, out_gate = pending
        if self.dense is None:
            x, h = self.ops.gated_residual_rms_norm(x, out, out_gate, self.weight, self.eps)
            return x, h, None
        scale, shift, gate = modulation
        x, h = self.ops.gated_residual_ada_rms_norm(x, out, out_gate, scale, shift, self.eps)
        return x, h, gate


class GemmaLayer(nn.Module):
    """Gemma decoder layer: MQA attention with RoPE and a GeGLU MLP (openpi gemma.py Block)."""

    def __init__(self, size: GemmaSize, eps: float, cond_dim: Optional[int] = None):
        super().__init__()
        self.size = size
        self.ops = pointwise.EAGER
        self.self_attn = Container(
            q_proj=nn.Linear(size.width, size.num_heads * size.head_dim, bias=False),
            k_proj=nn.Linear(size.width, size.num_kv_heads * size.head_dim, bias=False),
            v_proj=nn.Linear(size.width, size.num_kv_heads * size.head_dim, bias=False),
            o_proj=nn.Linear(size.num_heads * size.head_dim, size.width, bias=False))
        self.mlp = Container(gate_proj=nn.Linear(size.width, size.mlp_dim, bias=False),
                             up_proj=nn.Linear(size.width, size.mlp_dim, bias=False),
                             down_proj=nn.Linear(size.mlp_dim, size.width, bias=False))
        self.input_layernorm = GemmaRMSNorm(size.width, eps, cond_dim)
        self.post_attention_layernorm = GemmaRMSNorm(size.width, eps, cond_dim)

    def projections(self, h: torch.Tensor):
        """Project normalized h [B, L, D] to q [B, L, H, hd], k and v [B, L, KV, hd] (no RoPE)."""
        b, length, _ = h.shape
        size, attn = self.size, self.self_attn
        q = attn.q_proj(h).view(b, length, size.num_heads, size.head_dim)
        k = attn.k_proj(h).view(b, length, size.num_kv_heads, size.head_dim)
        v = attn.v_proj(h).view(b, length, size.num_kv_heads, size.head_dim)
        return q, k, v

    def qkv(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """Project normalized h [B, L, D] to RoPE'd q [B, L, H, hd], k and v [B, L, KV, hd]."""
        q, k, v = self.projections(h)
        q, k = self.ops.rope_qk(q, k, cos, sin)
        return q, k, v

    def keys_values(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, pending=None):
        """Return the (k, v) forward() would return (no modulation), and nothing else."""
        _, h, _ = self.input_layernorm.after_residual(x, pending)
        _, k, v = self.qkv(h, cos, sin)
        return k, v

    def mlp_forward(self, h: torch.Tensor) -> torch.Tensor:
        """Apply the GeGLU MLP."""
        mlp = self.mlp
        return gated_mlp(mlp.gate_proj, mlp.up_proj, mlp.down_proj, h, 'gelu_gate', self.ops)

    def forward(self, x, cos, sin, mask, past: Optional[Tuple] = None, modulation=(None, None),
                pending=None):
        """
        Run the layer; return (x, (k, v) of these tokens or None with a past, pending).

        The layer's output is x + its MLP branch, returned apart as pending = (branch, gate
        or None) so that the next layer adds it with its own input norm in one function
        (GemmaRMSNorm.after_residual; the tower's final norm likewise). pending (argument):
        the previous layer's, or None. past: the (k, v) of earlier tokens (the prefix) that
        these tokens also attend to; mask: from attention_mask (its layout depends on the head
        counts).
        """
        x, h, gate = self.input_layernorm.after_residual(x, pending, modulation[0])
        if past is None:
            q, k, v = self.qkv(h, cos, sin)
            attended, kv = self.ops.attention(q, k, v, mask), (k, v)
        else:
            # Over a cache (the expert's steps) these tokens' keys are not kept, so they are
            # rotated where they are read (on a GPU inside the attention launch).
            attended = self.ops.rope_attention(*self.projections(h), cos, sin, mask, past)
            kv = None
        x, h, mlp_gate = self.post_attention_layernorm.after_residual(
            x, (self.self_attn.o_proj(attended), gate), modulation[1])
        return x, kv, (self.mlp_forward(h), mlp_gate)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float, dtype):
    """Return RoPE cos/sin [B, L, head_dim] for integer positions [B, L]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64,
                                             device=positions.device).float() / head_dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def attention_mask(visible: torch.Tensor, num_heads: int, num_kv_heads: int, dtype):
    """
    Return the additive mask for `attention` from visible [B, Lq, S] (bool).

    With one K/V head (Gemma's MQA) the query heads are folded into the query rows (row
    l * heads + h), so the mask is [B, 1, Lq * heads, S]; otherwise [B, 1, Lq, S]. Built once
    per chunk (prefix) or per chunk shape (suffix), not per layer.
    """
    mask = torch.where(visible[:, None], 0.0, MASK_VALUE).to(dtype)
    if num_kv_heads == 1:
        b, _, lq, s = mask.shape
        mask = mask[:, :, :, None].expand(b, 1, lq, num_heads, s).reshape(b, 1, lq * num_heads, s)
    return mask


class GemmaTower(nn.Module):
    """A stack of Gemma layers with a final norm (and the token embedding, for the VLM)."""

    def __init__(self, size: GemmaSize, eps: float, vocab_size: Optional[int] = None,
                 cond_dim: Optional[int] = None):
        super().__init__()
        if vocab_size is not None:
            self.embed_tokens = nn.Embedding(vocab_size, size.width)
        self.layers = nn.ModuleList(GemmaLayer(size, eps, cond_dim) for _ in range(size.depth))
        self.norm = GemmaRMSNorm(size.width, eps, cond_dim)


# ----------------------------------------------------------------------------- pi0.5

def sincos_time_embedding(t: torch.Tensor, dim: int, min_period: float, max_period: float):
    """Sine-cosine embedding of scalar times [B] (openpi posemb_sincos), computed in fp64."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    angles = (1.0 / period * 2 * math.pi)[None, :] * t[:, None]
    return torch.cat((torch.sin(angles), torch.cos(angles)), dim=1).to(t.dtype)


class Pi05Model(ChunkModel):
    """The pure-tensor pi0.5: what the quantizer and the GPU kernels see."""

    def __init__(self, config: Pi05Config):
        super().__init__()
        self.config = config
        c = config
        language = GemmaTower(c.language, c.rms_norm_eps, vocab_size=c.vocab_size)
        self.paligemma_with_expert = Container(
            paligemma=Container(model=Container(
                vision_tower=Container(vision_model=SiglipVision(c.vision, c.layer_norm_eps)),
                multi_modal_projector=Container(linear=nn.Linear(c.vision.width,
                                                                 c.language.width)),
                language_model=language)),
            gemma_expert=Container(model=GemmaTower(c.expert, c.rms_norm_eps,
                                                    cond_dim=c.expert.width)))
        self.action_in_proj = nn.Linear(c.max_action_dim, c.expert.width)
        self.action_out_proj = nn.Linear(c.expert.width, c.max_action_dim)
        self.time_mlp_in = nn.Linear(c.expert.width, c.expert.width)
        self.time_mlp_out = nn.Linear(c.expert.width, c.expert.width)
        self.ops = pointwise.EAGER

    # Kept in fp32 by set_compute_dtype: the tiny heads and the adaRMS projections (they run
    # once per step value, Pi05Model.prepare_steps); everything else follows compute_dtype.
    FP32_MODULES = ('action_in_proj', 'action_out_proj', 'time_mlp_in', 'time_mlp_out', 'dense')
    # Every attention and MLP: q/k/v and gate/up read one input.
    SIBLING_LINEARS = (('q_proj', 'k_proj', 'v_proj'), ('gate_proj', 'up_proj'))
    # down_proj reads gelu_tanh(gate_proj) * up_proj.
    ELEMENTWISE_CHAINS = ((('gate_proj', 'up_proj'), 'down_proj'),)
    # images, image_masks, tokens, token_masks: the prefix's K/V cache; then the noise.
    PREFIX_INPUTS = 4

    @property
    def vlm(self):
        """Return the PaliGemma part (vision tower, projector, language model)."""
        return self.paligemma_with_expert.paligemma.model

    @property
    def expert(self) -> GemmaTower:
        """Return the action expert tower."""
        return self.paligemma_with_expert.gemma_expert.model

    # -- prefix -----------------------------------------------------------------------------

    def embed_prefix(self, images: List[torch.Tensor], image_masks: List[torch.Tensor],
                     tokens: torch.Tensor, token_masks: torch.Tensor):
        """Embed images (SigLIP + projector) and tokens; return (embeddings, pad mask)."""
        # All cameras in one vision pass (batch cameras x B): a third of the launches.
        b = images[0].shape[0]
        stacked = torch.cat([image.to(self.compute_dtype) for image in images])
        features = self.vlm.multi_modal_projector.linear(
            self.vlm.vision_tower.vision_model(stacked))
        embeddings = list(features.split(b))
        pads = [mask[:, None].expand(b, features.shape[1]) for mask in image_masks]
        language = self.vlm.language_model
        weight = language.embed_tokens.weight
        scale = torch.tensor(self.config.language.width ** 0.5, dtype=weight.dtype)
        embeddings.append(language.embed_tokens(tokens) * scale)
        pads.append(token_masks)
        return torch.cat(embeddings, dim=1), torch.cat(pads, dim=1)

    def prefix_context(self, images, image_masks, tokens, token_masks):
        """Run the prefix through the language model once; return (K/V per layer, pad mask)."""
        x, pad = self.embed_prefix(images, image_masks, tokens, token_masks)
        positions = torch.cumsum(pad.long(), dim=1) - 1
        visible = pad[:, None, :] & pad[:, :, None]
        size = self.config.language
        mask = attention_mask(visible, size.num_heads, size.num_kv_heads, x.dtype)
        cos, sin = rope_tables(positions, size.head_dim, self.config.rope_theta, x.dtype)
        cache, pending = [], None
        layers = self.vlm.language_model.layers
        for layer in layers if calibrating() else layers[:-1]:
            x, kv, pending = layer(x, cos, sin, mask, pending=pending)
            cache.append(kv)
        if len(cache) < len(layers):
            # The expert reads only the last layer's keys and values: that layer's attention
            # output and MLP (and the final norm) never reach an action, so only a
            # calibration pass, which must reach every linear, runs them.
            cache.append(layers[-1].keys_values(x, cos, sin, pending))
        return cache, pad

    # -- expert ------------------------------------------------------------------------------

    def time_condition(self, t: torch.Tensor) -> torch.Tensor:
        """Map times [B] to the adaRMS condition [B, width] (sin-cos -> MLP with swish)."""
        emb = sincos_time_embedding(t, self.config.expert.width, self.config.min_period,
                                    self.config.max_period)
        return F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(emb))))

    def modulations(self, t: torch.Tensor):
        """Every adaRMS (scale, shift, gate) of the expert for times t: per layer and final."""
        cond = self.time_condition(t)
        per_layer = [(layer.input_layernorm.modulation(cond),
                      layer.post_attention_layernorm.modulation(cond))
                     for layer in self.expert.layers]
        return per_layer, self.expert.norm.modulation(cond)

    def step_times(self, num_steps: int) -> List[float]:
        """Return the times t_k = 1 - k / K at which the Euler steps evaluate the velocity."""
        dt = -1.0 / num_steps
        return [1.0 + k * dt for k in range(num_steps)]

    def step_conditions(self, num_steps: int, batch_size: int,
                        device: torch.device) -> List[torch.Tensor]:
        """Return each Euler step's time t_k as float32 [batch_size]."""
        return [torch.full((batch_size,), time, dtype=torch.float32, device=device)
                for time in self.step_times(num_steps)]

    def denoise_step(self, x_t, t, step: int, num_steps: int, cache, prefix_pad,
                     attention=None):
        """Return the velocity v_t [B, horizon, 32] at x_t and time t [B] of step `step`."""
        return self.velocity(x_t, self.step_modulations(step, num_steps, t), cache, prefix_pad,
                             attention)

    def suffix_attention(self, prefix_pad, horizon: int, dtype):
        """
        Return the expert tokens' additive mask and RoPE tables (the same for every step).

        Action tokens see the valid prefix tokens and each other; their positions continue
        after the valid prefix.
        """
        b = prefix_pad.shape[0]
        offsets = prefix_pad.long().sum(-1, keepdim=True)
        positions = offsets + torch.arange(horizon, device=prefix_pad.device)[None]
        visible = torch.cat((prefix_pad[:, None, :].expand(b, horizon, prefix_pad.shape[1]),
                             torch.ones(b, horizon, horizon, dtype=torch.bool,
                                        device=prefix_pad.device)), dim=2)
        size = self.config.expert
        mask = attention_mask(visible, size.num_heads, size.num_kv_heads, dtype)
        cos, sin = rope_tables(positions, size.head_dim, self.config.rope_theta, dtype)
        return mask, cos, sin

    def velocity(self, x_t, modulations, cache, prefix_pad, attention=None):
        """Run the expert over x_t with the given adaRMS modulations (one expert pass)."""
        per_layer, final = modulations
        x = self.ops.small_linear(x_t.float(), self.action_in_proj.weight,
                                  self.action_in_proj.bias).to(self.compute_dtype)
        if attention is None:
            attention = self.suffix_attention(prefix_pad, x.shape[1], x.dtype)
        mask, cos, sin = attention
        pending = None
        for layer, past, modulation in zip(self.expert.layers, cache, per_layer):
            x, _, pending = layer(x, cos, sin, mask, past=past, modulation=modulation,
                                  pending=pending)
        _, x, _ = self.expert.norm.after_residual(x, pending, final)
        return self.ops.small_linear(x.float(), self.action_out_proj.weight,
                                     self.action_out_proj.bias)

    def sample_actions(self, images, image_masks, tokens, token_masks,
                       noise: torch.Tensor, num_steps: Optional[int] = None) -> torch.Tensor:
        """
        Integrate from noise [B, horizon, 32] at t=1 to actions at t=0 with K Euler steps.

        Each step runs inside denoising_step(k, K), so per-step quantization tables select
        their row; shapes are fixed and the loop has no data-dependent control flow.
        """
        cache, prefix_pad = self.prefix_context(images, image_masks, tokens, token_masks)
        return self.denoise(cache, prefix_pad, noise, num_steps)

    def denoise(self, cache, prefix_pad, noise: torch.Tensor,
                num_steps: Optional[int] = None) -> torch.Tensor:
        """Run the K Euler steps of the expert from noise over a prefix K/V cache."""
        num_steps = num_steps or self.config.num_steps
        attention = self.suffix_attention(prefix_pad, noise.shape[1], self.compute_dtype)
        dt = -1.0 / num_steps
        x_t = noise
        for step, t in enumerate(self.step_conditions(num_steps, noise.shape[0], noise.device)):
            with denoising_step(step, num_steps):
                v_t = self.denoise_step(x_t, t, step, num_steps, cache, prefix_pad, attention)
            x_t = x_t + dt * v_t
        return x_t

    @staticmethod
    def training_times(beta_samples: torch.Tensor) -> torch.Tensor:
        """Map Beta(1.5, 1) samples s to training times t = 0.999 s + 0.001 (openpi's)."""
        return beta_samples * 0.999 + 0.001

    def flow_matching_loss(self, images, image_masks, tokens, token_masks, actions, noise, t):
        """
        Return the per-element training loss |v_theta(x_t, t) - (noise - actions)|^2.

        x_t = t * noise + (1 - t) * actions (openpi pi0.py compute_loss); actions and noise
        [B, horizon, 32], t [B] in (0, 1].
        """
        cache, prefix_pad = self.prefix_context(images, image_masks, tokens, token_masks)
        t_ = t[:, None, None]
        x_t = t_ * noise + (1 - t_) * actions
        v_t = self.velocity(x_t, self.modulations(t), cache, prefix_pad)
        return F.mse_loss(v_t, noise - actions, reduction='none')

    def parameter_counts(self) -> dict:
        """Parameters per component (at full size, the published counts; tests check them)."""
        def count(module):
            return sum(p.numel() for p in module.parameters())
        language = self.vlm.language_model
        return {
            'vision_tower': count(self.vlm.vision_tower),
            'projector': count(self.vlm.multi_modal_projector),
            'embed_tokens': count(language.embed_tokens),
            'language_layers': count(language.layers) + count(language.norm),
            'expert': count(self.expert),
            'projections': sum(count(m) for m in (self.action_in_proj, self.action_out_proj,
                                                  self.time_mlp_in, self.time_mlp_out)),
            'total': count(self),
        }

    def forward(self, images, image_masks, tokens, token_masks, noise, num_steps=None):
        """Sample an action chunk (the call the quantizer's calibration makes)."""
        return self.sample_actions(images, image_masks, tokens, token_masks, noise, num_steps)
