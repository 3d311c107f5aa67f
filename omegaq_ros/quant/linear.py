# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
QuantLinear: a W4A4 linear with Omega-QVLA's input rotation and per-step activation scales.

The reference backend below is the specification every faster backend must match:

    x_r   = rotate_in(x * smooth)                     (smooth, perm and 64x64 blocks, optional)
    cx,sx = quantize_activations(x_r, act_mode, row)  (row = table[step] for static modes)
    cw    = unpack_int4(weight_packed); sw = weight_scale [out, in/128]
            (with two-level scales each sw[n, :] is a multiple of weight_scale_unit[n])
    y_r   = sum over 64-wide K-groups g of (cx_g . cw_g) * sx_g * sw_{g // 2}
            (each partial sum is an exact integer; static_channel and none dequantize
             both operands and multiply in fp32 instead, since per-channel scales do not
             factor out of the integer dot product)
    y     = y_r @ rot_out^T (per 64-row block) + bias

Stored precision (what the GPU holds): weight codes int4 (two per byte), weight scales fp16,
rotation blocks int8 with one fp16 scale per column (rotation.store_blocks), activation
tables fp16 (floored at 2^-14), permutation int32, bias fp32. All arithmetic is fp32.

Linears that read the same input (q/k/v, gate/up) share one input transform: the first of
the group (the owner) holds smooth, perm, rotation and activation table; the others name it
in `input_from` and read its buffers. Their 4-bit input codes are then identical, so they are
computed once per input tensor and reused by the rest of the group.
"""

from typing import Optional

from omegaq_ros.quant.activations import ACT_GROUP, quantize_activations, table_width
from omegaq_ros.quant.packing import unpack_int4
from omegaq_ros.quant.rotation import load_blocks
from omegaq_ros.quant.step_context import current_step, StepContextError
import torch
from torch import nn

# Above this many fp32 elements per chunk, the grouped product is split along K-groups.
_CHUNK_ELEMENTS = 1 << 25


def version_stamp(tensors) -> tuple:
    """Identity and version counter of each tensor: a copy made from them is valid while equal."""
    return tuple((id(t), -1 if t.is_inference() else t._version) for t in tensors)


class QuantLinear(nn.Module):
    """Drop-in replacement for nn.Linear holding packed int4 weights and activation scales."""

    def __init__(self, in_features: int, out_features: int, *, name: str, act_mode: str,
                 per_step: bool, weight_group: int = 128, has_bias: bool = True,
                 has_smooth: bool = False, has_perm: bool = False, has_rot_in: bool = False,
                 has_rot_out: bool = False, table_rows: int = 1, block: int = 64,
                 input_from: Optional[str] = None, has_scale_unit: bool = False):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.name = name
        self.act_mode = act_mode
        self.per_step = per_step
        self.weight_group = weight_group
        self.backend = 'reference'
        self.input_from = input_from
        n_in, n_out = in_features // block, out_features // block
        owns_input = input_from is None
        self.register_buffer('weight_packed', torch.zeros(out_features, in_features // 2,
                                                          dtype=torch.uint8))
        self.register_buffer('weight_scale', torch.zeros(out_features,
                                                         in_features // weight_group,
                                                         dtype=torch.float16))
        # Two-level weight scales (weights.scale_units): every group scale of row n is an
        # integer multiple (1..16) of weight_scale_unit[n]; the reference reads weight_scale.
        self.register_buffer('weight_scale_unit', torch.ones(out_features, dtype=torch.float16)
                             if has_scale_unit else None)
        self.register_buffer('bias', torch.zeros(out_features) if has_bias else None)
        self.register_buffer('smooth', torch.ones(in_features)
                             if has_smooth and owns_input else None)
        self.register_buffer('perm_in', torch.arange(in_features, dtype=torch.int32)
                             if has_perm and owns_input else None)
        has_rot_in = has_rot_in and owns_input
        self.register_buffer('rot_in', torch.zeros(n_in, block, block, dtype=torch.int8)
                             if has_rot_in else None)
        self.register_buffer('rot_in_scale', torch.zeros(n_in, block, dtype=torch.float16)
                             if has_rot_in else None)
        self.register_buffer('rot_out', torch.zeros(n_out, block, block, dtype=torch.int8)
                             if has_rot_out else None)
        self.register_buffer('rot_out_scale', torch.zeros(n_out, block, dtype=torch.float16)
                             if has_rot_out else None)
        width = table_width(act_mode, in_features)
        self.register_buffer('act_scale', torch.zeros(table_rows, width,
                                                      dtype=torch.float16)
                             if width and owns_input else None)
        # The reference backend's fp32 views of stored tensors (weight codes, rotation blocks),
        # built once per device instead of on every call; the GPU backend never builds them.
        self._dequantized_cache = {}
        # Plain attributes, not submodules: the owner is registered where it lives.
        object.__setattr__(self, '_owner', self)
        object.__setattr__(self, '_group_size', 1)
        object.__setattr__(self, '_input_memo', InputMemo())
        # A fast backend's group of linears reading the same input (kernels.FusedLinears).
        object.__setattr__(self, '_fused', None)

    def share_input_of(self, owner: 'QuantLinear'):
        """Read the input transform (and the 4-bit input codes) of `owner`."""
        if self.input_from != owner.name or owner.input_from is not None:
            raise ValueError(f"layer '{self.name}' takes its input from '{self.input_from}', "
                             f"not from '{owner.name}'")
        if (owner.in_features, owner.act_mode, owner.per_step) != (
                self.in_features, self.act_mode, self.per_step):
            raise ValueError(f"layers '{self.name}' and '{owner.name}' cannot share an input: "
                             'in_features, act_mode and per_step must match')
        object.__setattr__(self, '_owner', owner)
        object.__setattr__(owner, '_group_size', owner._group_size + 1)

    @property
    def input_owner(self) -> 'QuantLinear':
        """Return the layer whose smooth, perm, rotation and table this input goes through."""
        if self._owner is self and self.input_from is not None:
            raise RuntimeError(f"layer '{self.name}' shares the input of '{self.input_from}', "
                               'which was never linked (share_input_of)')
        return self._owner

    def extra_repr(self) -> str:
        """Shapes and scheme, as printed inside the model."""
        owner = self._owner
        rows = owner.act_scale.shape[0] if owner.act_scale is not None else 0
        shared = f', input_from={self.input_from}' if self.input_from else ''
        return (f'{self.in_features}, {self.out_features}, act={self.act_mode}, '
                f'steps={rows if self.per_step else "static"}, '
                f'rot_in={owner.rot_in is not None}, perm={owner.perm_in is not None}, '
                f'rot_out={self.rot_out is not None}, backend={self.backend}{shared}')

    def layout(self) -> dict:
        """Return the constructor arguments, as stored in the artifact manifest."""
        owner = self.input_owner
        return {
            'in_features': self.in_features, 'out_features': self.out_features,
            'act_mode': self.act_mode, 'per_step': self.per_step,
            'weight_group': self.weight_group, 'has_bias': self.bias is not None,
            'has_smooth': owner.smooth is not None, 'has_perm': owner.perm_in is not None,
            'has_rot_in': owner.rot_in is not None, 'has_rot_out': self.rot_out is not None,
            'table_rows': owner.act_scale.shape[0] if owner.act_scale is not None else 1,
            'input_from': self.input_from,
            'has_scale_unit': self.weight_scale_unit is not None,
        }

    def _load_from_state_dict(self, *args, **kwargs):
        self.clear_caches()
        self._input_memo.clear()
        super()._load_from_state_dict(*args, **kwargs)

    def clear_caches(self):
        """Drop the reference backend's fp32 copies (they are rebuilt on the next call)."""
        self._dequantized_cache = {}

    def _dequantized(self, key: str, sources, build) -> torch.Tensor:
        # Valid while its source tensors are the same objects, unmodified (version counter):
        # a buffer replaced (module.to, assignment) or written in place (load) rebuilds it.
        stamp = version_stamp(sources)
        cached = self._dequantized_cache.get(key)
        if cached is None or cached[0] != stamp or cached[2] is not sources[0]:
            cached = self._dequantized_cache[key] = (stamp, build(*sources), sources[0])
        return cached[1]

    def weight_codes(self) -> torch.Tensor:
        """Unpacked weight codes as float [out, in] (cached; exact small integers)."""
        return self._dequantized('codes', (self.weight_packed,),
                                 lambda packed: unpack_int4(packed).float())

    def rotation_in(self) -> torch.Tensor:
        """Return the input rotation blocks as fp32 [in/64, 64, 64] (cached)."""
        return self._dequantized('rot_in', (self.rot_in, self.rot_in_scale), load_blocks)

    def rotation_out(self) -> torch.Tensor:
        """Return the output rotation blocks as fp32 [out/64, 64, 64] (cached)."""
        return self._dequantized('rot_out', (self.rot_out, self.rot_out_scale), load_blocks)

    def table_row(self) -> Optional[torch.Tensor]:
        """Select the activation scale row for the current denoising step (static modes)."""
        owner = self.input_owner
        if owner.act_scale is None:
            return None
        return owner.act_scale[self.table_index()].float()

    def table_index(self) -> int:
        """Return the activation table row of the current denoising step (0 without steps)."""
        if not self.per_step:
            return 0
        step = current_step()
        rows = self.input_owner.act_scale.shape[0]
        if step is None:
            raise StepContextError(
                f"layer '{self.name}' has per-step activation scales for {rows} denoising "
                'steps but ran outside a denoising_step() context')
        if step.total != rows:
            raise StepContextError(
                f"layer '{self.name}' was calibrated for {rows} denoising steps, "
                f'the sampler runs {step.total}')
        return step.index

    def rotate_in(self, x: torch.Tensor) -> torch.Tensor:
        """Smoothing, zigzag permutation and 64x64 block rotation of the input channels."""
        owner = self.input_owner
        if owner.smooth is not None:
            x = x * owner.smooth
        if owner.perm_in is not None:
            x = x.index_select(-1, owner.perm_in)
        if owner.rot_in is not None:
            x = _block_matmul(x, owner.rotation_in(), transpose=False)
        return x

    def shared_input(self, x: torch.Tensor, compute):
        """Return compute(x) once per input tensor for the whole input-sharing group."""
        owner = self.input_owner
        if owner._group_size == 1:
            return compute(x)
        return owner._input_memo(x, (current_step(), self.backend), self, owner._group_size,
                                 compute)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Compute y = x W^T + b from int4 weights and 4-bit activations."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"layer '{self.name}' expects {self.in_features} input features, "
                             f'got shape {tuple(x.shape)}')
        return BACKENDS[self.backend](self, x)


class InputMemo:
    """
    One computed value per input tensor, for a set of readers of that tensor.

    Linears that read the same x (q/k/v, gate/up) need the same derived value (4-bit codes
    of a shared transform, or a fused group's outputs). The first reader computes it; the
    others reuse it while x is the same tensor, unmodified (its version counter), under the
    same key (denoising step, backend, ...). The entry is dropped once `readers` distinct
    readers have taken it, or replaced when a reader comes back for a new x.
    """

    def __init__(self):
        self._entry = None

    def clear(self):
        """Forget the held value."""
        self._entry = None

    def __call__(self, x: torch.Tensor, key, reader, readers: int, compute):
        """Return compute(x), computed at most once per (x, version, key) and reader round."""
        version = -1 if x.is_inference() else x._version
        entry = self._entry
        if (entry is not None and entry[0] is x and entry[1] == version and entry[2] == key
                and id(reader) not in entry[3]):
            entry[3].add(id(reader))
            if len(entry[3]) >= readers:
                self._entry = None
            return entry[4]
        value = compute(x)
        self._entry = (x, version, key, {id(reader)}, value) if readers > 1 else None
        return value


def link_shared_inputs(model: nn.Module):
    """Point every QuantLinear with `input_from` at its owner in `model` (after loading)."""
    layers = {m.name: m for m in model.modules() if isinstance(m, QuantLinear)}
    for layer in layers.values():
        object.__setattr__(layer, '_group_size', 1)
    for layer in layers.values():
        if layer.input_from is None:
            continue
        owner = layers.get(layer.input_from)
        if owner is None:
            raise ValueError(f"layer '{layer.name}' shares the input of '{layer.input_from}', "
                             'which is not a QuantLinear of this model')
        layer.share_input_of(owner)


def _block_matmul(x: torch.Tensor, blocks: torch.Tensor, transpose: bool) -> torch.Tensor:
    n_blocks, block, _ = blocks.shape
    shape = x.shape
    xb = x.reshape(-1, n_blocks, block).transpose(0, 1)
    r = blocks.transpose(1, 2) if transpose else blocks
    return torch.bmm(xb, r).transpose(0, 1).reshape(shape)


def grouped_int_matmul(x_codes, x_scale, w_codes, w_scale, act_group=ACT_GROUP):
    """
    sum_g (x_codes_g @ w_codes_g^T) * x_scale_g * w_scale_{g // (wgroup/agroup)} in fp32.

    x_codes [M, K], x_scale [M, K/act_group], w_codes [N, K], w_scale [N, K/wgroup].
    """
    m, k = x_codes.shape
    n = w_codes.shape[0]
    groups = k // act_group
    per_weight_group = (k // w_scale.shape[1]) // act_group
    xg = x_codes.reshape(m, groups, act_group).transpose(0, 1)          # [G, M, a]
    wg = w_codes.reshape(n, groups, act_group).permute(1, 2, 0)         # [G, a, N]
    ws = w_scale.repeat_interleave(per_weight_group, dim=1).t()         # [G, N]
    xs = x_scale.t()                                                    # [G, M]
    out = torch.zeros(m, n, dtype=torch.float32, device=x_codes.device)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, m * n))
    for g0 in range(0, groups, chunk):
        g1 = min(groups, g0 + chunk)
        partial = torch.bmm(xg[g0:g1], wg[g0:g1])                      # exact integers
        out += (partial * xs[g0:g1, :, None] * ws[g0:g1, None, :]).sum(0)
    return out


def reference_input(layer: QuantLinear, x: torch.Tensor):
    """Rotated 4-bit input of layer: (codes [M, in] float, scale) as quantize_activations."""
    x2 = layer.rotate_in(x.reshape(-1, x.shape[-1]).float())
    return quantize_activations(x2, layer.act_mode, layer.table_row())


def reference_forward(layer: QuantLinear, x: torch.Tensor) -> torch.Tensor:
    """Compute QuantLinear's output by its specification (torch, CPU or CUDA)."""
    shape = x.shape
    codes, scale = layer.shared_input(x, lambda t: reference_input(layer, t))
    w_codes = layer.weight_codes()
    w_scale = layer.weight_scale.float()
    if layer.act_mode in ('none', 'static_channel'):
        x_hat = codes if scale is None else codes * scale
        w_hat = w_codes * w_scale.repeat_interleave(layer.weight_group, dim=1)
        y = x_hat @ w_hat.t()
    else:
        y = grouped_int_matmul(codes, scale, w_codes, w_scale)
    if layer.rot_out is not None:
        y = _block_matmul(y, layer.rotation_out(), transpose=True)
    if layer.bias is not None:
        y = y + layer.bias
    return y.reshape(*shape[:-1], layer.out_features).to(x.dtype)


BACKENDS = {'reference': reference_forward}


def fold_input_permutations(model: nn.Module, chains) -> int:
    """
    Move each chain's consumer input permutation into its producers' output rows (exact).

    chains: ((producer names, consumer name), ...) relative to one parent module (dotted paths
    allowed), where the consumer reads an elementwise function of the producers' outputs
    (down_proj of GeGLU/SwiGLU(gate_proj, up_proj); a GELU MLP's second linear). Producers
    whose output rows are permuted by the consumer's permutation p give its input already in
    p's order, so the consumer reads it in place: on the GPU a contiguous load instead of one
    gathered element per column. The consumer's smoothing vector follows its channels. A chain
    is left as it is where the consumer has no permutation, shares its input transform, or a
    producer is not quantized or rotates its output. Returns how many chains were folded.
    """
    shared = {m.input_from for m in model.modules()
              if isinstance(m, QuantLinear) and m.input_from is not None}
    folded = 0
    for parent in model.modules():
        for producer_names, consumer_name in chains:
            try:
                consumer = parent.get_submodule(consumer_name)
                producers = [parent.get_submodule(name) for name in producer_names]
            except AttributeError:
                continue
            if not (isinstance(consumer, QuantLinear) and consumer.perm_in is not None
                    and consumer.input_from is None and consumer.name not in shared
                    and all(isinstance(p, QuantLinear) and p.rot_out is None
                            and p.out_features == consumer.in_features for p in producers)):
                continue
            order = consumer.perm_in.long()
            with torch.no_grad():
                for producer in producers:
                    for name in ('weight_packed', 'weight_scale', 'weight_scale_unit', 'bias'):
                        rows = getattr(producer, name)
                        if rows is not None:
                            setattr(producer, name, rows.index_select(0, order).contiguous())
                    producer.clear_caches()
                if consumer.smooth is not None:
                    consumer.smooth = consumer.smooth.index_select(0, order).contiguous()
                consumer.perm_in = None
                consumer.clear_caches()
            folded += 1
    return folded
