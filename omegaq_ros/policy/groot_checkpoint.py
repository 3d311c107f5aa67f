# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Load GR00T N1.5 checkpoints in the public layout, unchanged.

A checkpoint directory (as `nvidia/GR00T-N1.5-3B` or a fine-tune saved by Isaac-GR00T or
LeRobot 0.4.4's GR00TN15.save_pretrained) holds:
- `config.json`: model_type `gr00t_n1_5`, `backbone_cfg` (select_layer), `action_head_cfg`
  (diffusion_model_cfg, vl_self_attention_cfg, widths, num_inference_timesteps, ...);
- `model-0000k-of-0000N.safetensors` + `model.safetensors.index.json` (or one
  `model.safetensors`), keys `backbone.eagle_model....` and `action_head....`;
- `experiment_cfg/metadata.json`: per embodiment tag, statistics and modalities of state
  and action (parts such as left_arm, gripper, in order) and the video keys (our cameras).
We add one folder: `eagle/`, the Eagle processor files (tokenizer, chat template, image
processor, Eagle config.json with the Qwen3/SigLIP sizes); see groot_processing.py.

The embodiment is chosen by name (Isaac-GR00T's tag -> slot mapping); only its slot of the
embodiment-specific tables is read (the loaded model has one slot, embodiment_id 0, and
config.embodiment names the tag) and its statistics are used. The Qwen3 lm_head, the SigLIP
pooling head and Qwen3 layers beyond select_layer are never read.
"""

from dataclasses import replace
import json
import os
import re
from typing import Optional

from omegaq_ros.policy.groot_config import DiTSize, GrootConfig, Qwen3Size
from omegaq_ros.policy.groot_model import GrootModel
from omegaq_ros.policy.groot_processing import (concat_stats, EagleProcessor, MinMaxNormalizer,
                                                ProcessorError)
from omegaq_ros.policy.model_config import VisionSize
from safetensors import safe_open
from safetensors.torch import save_file
import torch

MODEL_TYPE = 'gr00t_n1_5'
INDEX_FILE = 'model.safetensors.index.json'
SINGLE_FILE = 'model.safetensors'
METADATA_FILE = os.path.join('experiment_cfg', 'metadata.json')
EAGLE_DIR = 'eagle'
# Isaac-GR00T's EMBODIMENT_TAG_MAPPING (N1.5), as LeRobot 0.4.4 GrootPackInputsStep copies it.
EMBODIMENT_SLOTS = {'new_embodiment': 31, 'oxe_droid': 17, 'agibot_genie1': 26, 'gr1': 24,
                    'so100': 2, 'unitree_g1': 3}
LANGUAGE = 'backbone.eagle_model.language_model.model.layers'
VISION = 'backbone.eagle_model.vision_model.vision_model.encoder.layers'
EMBODIMENT_TABLE = re.compile(r'^action_head\.(state_encoder|action_encoder|action_decoder)\.'
                              r'.*\.(W|b)$')
SKIPPED = re.compile(r'(^|\.)lm_head\.|^backbone\.eagle_model\.vision_model\.vision_model\.head\.')


class GrootCheckpointError(ValueError):
    """The checkpoint does not fit GR00T N1.5 (the message says what is wrong)."""


def _read_json(path: str, what: str):
    try:
        with open(path) as stream:
            data = json.load(stream)
    except FileNotFoundError:
        raise GrootCheckpointError(f'{what}: {os.path.basename(path)} is missing') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise GrootCheckpointError(f'{path} is not valid JSON: {error}') from None
    if not isinstance(data, dict):
        raise GrootCheckpointError(f'{path}: expected a JSON object, got {type(data).__name__}')
    return data


def is_groot_checkpoint(path: str) -> bool:
    """Whether path's config.json names a GR00T N1.5 model."""
    try:
        with open(os.path.join(path, 'config.json')) as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get('model_type') == MODEL_TYPE


def shard_map(path: str) -> dict:
    """
    Return {tensor name: shard file path}, checking the index against the shards.

    Refused: a missing index or shard, a shard whose keys differ from what the index lists
    for it, an unreadable safetensors header.
    """
    index_path = os.path.join(path, INDEX_FILE)
    if not os.path.isfile(index_path):
        single = os.path.join(path, SINGLE_FILE)
        if not os.path.isfile(single):
            raise GrootCheckpointError(f'{path}: neither {INDEX_FILE} (sharded) nor '
                                       f'{SINGLE_FILE} is there')
        with _open(single) as reader:
            return {k: single for k in reader.keys()}
    weight_map = _read_json(index_path, path).get('weight_map')
    if not isinstance(weight_map, dict) or not weight_map:
        raise GrootCheckpointError(f"{index_path} has no 'weight_map'")
    by_shard = {}
    for key, shard in weight_map.items():
        by_shard.setdefault(shard, set()).add(key)
    missing = sorted(s for s in by_shard if not os.path.isfile(os.path.join(path, s)))
    if missing:
        raise GrootCheckpointError(f'{path}: shards listed in {INDEX_FILE} are missing: '
                                   f'{missing} ({len(missing)} of {len(by_shard)})')
    for shard, keys in sorted(by_shard.items()):
        with _open(os.path.join(path, shard)) as reader:
            held = set(reader.keys())
        if held != keys:
            raise GrootCheckpointError(
                f'{path}: {INDEX_FILE} does not match {shard}: listed but absent '
                f'{sorted(keys - held)[:5]} ({len(keys - held)}), present but unlisted '
                f'{sorted(held - keys)[:5]} ({len(held - keys)})')
    return {k: os.path.join(path, s) for k, s in weight_map.items()}


def _open(file: str):
    try:
        return safe_open(file, 'pt')
    except Exception as error:        # safetensors raises its own error types for bad headers
        raise GrootCheckpointError(f'{file} is not a readable safetensors file: {error}') \
            from None


def _count(keys, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r'\.(\d+)\.')
    found = {int(m.group(1)) for k in keys for m in [pattern.match(k)] if m}
    return max(found) + 1 if found else 0


def choose_embodiment(metadata: dict, name: Optional[str], path: str):
    """Return (name, slot, metadata entry) of the embodiment to run."""
    available = sorted(metadata)
    if name is None:
        if len(available) != 1:
            raise GrootCheckpointError(f'{path}: {METADATA_FILE} holds embodiments '
                                       f'{available}; choose one by name')
        name = available[0]
    if name not in metadata:
        raise GrootCheckpointError(f"{path}: embodiment '{name}' is not in {METADATA_FILE}; "
                                   f'it has {available}')
    if name not in EMBODIMENT_SLOTS:
        raise GrootCheckpointError(f"embodiment '{name}' has no weight slot in GR00T N1.5's "
                                   f'tag mapping {sorted(EMBODIMENT_SLOTS)}')
    entry = metadata[name]
    for modality in ('state', 'action'):
        if not isinstance(entry.get('statistics', {}).get(modality), dict):
            raise GrootCheckpointError(f"{path}: {METADATA_FILE} '{name}' has no {modality} "
                                       'statistics')
    return name, EMBODIMENT_SLOTS[name], entry


def _eagle_sizes(path: str) -> dict:
    """Qwen3 / SigLIP hyper-parameters and the image token from eagle/config.json, if any."""
    file = os.path.join(path, EAGLE_DIR, 'config.json')
    if not os.path.isfile(file):
        return {}
    data = _read_json(file, os.path.join(path, EAGLE_DIR))
    text, vision = data.get('text_config', {}), data.get('vision_config', {})
    if data.get('use_pixel_shuffle', False) or data.get('mlp_connector_layers', 1) != 1:
        raise GrootCheckpointError(f'{file}: pixel shuffle or a 2-layer connector is Eagle 2 '
                                   '(GR00T N1), not N1.5')
    sizes = {'language': {k: text[j] for k, j in (
        ('num_heads', 'num_attention_heads'), ('num_kv_heads', 'num_key_value_heads'),
        ('head_dim', 'head_dim'), ('rope_theta', 'rope_theta'),
        ('rms_norm_eps', 'rms_norm_eps')) if j in text},
        'vision': {k: vision[j] for k, j in (
            ('num_heads', 'num_attention_heads'), ('patch_size', 'patch_size'))
            if j in vision}}
    if 'force_image_size' in data or 'image_size' in vision:
        sizes['vision']['image_size'] = data.get('force_image_size') or vision['image_size']
    if 'image_token_index' in data:
        sizes['image_token_index'] = data['image_token_index']
    if 'layer_norm_eps' in vision:
        sizes['layer_norm_eps'] = vision['layer_norm_eps']
    return sizes


def config_from_checkpoint(data: dict, shapes: dict, entry: dict, name: str,
                           slot: int, path: str) -> GrootConfig:
    """Build our config from config.json, the tensor shapes and the embodiment's metadata."""
    head = data.get('action_head_cfg') or {}
    backbone = data.get('backbone_cfg') or {}
    dit_cfg = head.get('diffusion_model_cfg') or {}
    vl_cfg = head.get('vl_self_attention_cfg') or {}
    if not head or not dit_cfg:
        raise GrootCheckpointError(f'{path}/config.json has no action_head_cfg with a '
                                   'diffusion_model_cfg')
    if backbone.get('project_to_dim') not in (None, 2048) or backbone.get('reproject_vision'):
        raise GrootCheckpointError(f'{path}/config.json: project_to_dim '
                                   f"{backbone.get('project_to_dim')} / reproject_vision are "
                                   'not N1.5 settings')
    if not dit_cfg.get('interleave_self_attention', False) or \
            dit_cfg.get('norm_type', 'ada_norm') != 'ada_norm' or \
            dit_cfg.get('positional_embeddings') is not None:
        raise GrootCheckpointError(f'{path}/config.json: the DiT must interleave self- and '
                                   'cross-attention with ada_norm and no positional table '
                                   '(N1.5)')
    keys = set(shapes)
    eagle = _eagle_sizes(path)
    select_layer = int(backbone.get('select_layer', 12))
    stored = _count(keys, LANGUAGE)
    if stored < select_layer:
        raise GrootCheckpointError(f'{path}: select_layer is {select_layer} but the checkpoint '
                                   f'has {stored} Qwen3 layers')
    embed = shapes.get('backbone.eagle_model.language_model.model.embed_tokens.weight')
    slots = shapes.get('action_head.state_encoder.layer1.W')
    if embed is None or slots is None:
        raise GrootCheckpointError(f'{path}: the token embedding or the state encoder is '
                                   'missing from the weights')
    language = Qwen3Size(**{**Qwen3Size().__dict__, **eagle.get('language', {}),
                            'depth': select_layer, 'vocab_size': embed[0], 'width': embed[1],
                            'mlp_dim': shapes[f'{LANGUAGE}.0.mlp.gate_proj.weight'][0]})
    patch = shapes.get(VISION.replace('encoder.layers', 'embeddings.patch_embedding.weight'))
    fc1 = shapes.get(f'{VISION}.0.mlp.fc1.weight')
    if patch is None or fc1 is None:
        raise GrootCheckpointError(f'{path}: the SigLIP patch embedding or its first layer is '
                                   'missing from the weights')
    vision = VisionSize(**{**VisionSize().__dict__, **eagle.get('vision', {}),
                           'depth': _count(keys, VISION), 'width': patch[0],
                           'patch_size': patch[2], 'mlp_dim': fc1[0]})
    pe_key = 'action_head.vl_self_attention.transformer_blocks.0.pos_embed.pe'
    modalities = entry.get('modalities', {})
    state_parts = list(entry['statistics']['state'])
    action_parts = list(entry['statistics']['action'])
    state_dim = sum(len(entry['statistics']['state'][p]['max']) for p in state_parts)
    action_dim = sum(len(entry['statistics']['action'][p]['max']) for p in action_parts)
    cameras = tuple(modalities.get('video', {})) or GrootConfig().cameras
    patches = (vision.image_size // vision.patch_size) ** 2
    return GrootConfig(
        vision=vision, language=language,
        dit=DiTSize(depth=int(dit_cfg.get('num_layers', 16)),
                    num_heads=int(dit_cfg.get('num_attention_heads', 32)),
                    head_dim=int(dit_cfg.get('attention_head_dim', 48)),
                    output_dim=int(dit_cfg.get('output_dim', 1024))),
        vl_self_attention=DiTSize(depth=int(vl_cfg.get('num_layers', 4)),
                                  num_heads=int(vl_cfg.get('num_attention_heads', 32)),
                                  head_dim=int(vl_cfg.get('attention_head_dim', 64)),
                                  output_dim=0),
        vl_max_positions=shapes[pe_key][1] if pe_key in shapes else 0,
        image_token_index=int(eagle.get('image_token_index', GrootConfig().image_token_index)),
        tokens_per_image=patches,
        hidden_size=int(head.get('hidden_size', 1024)),
        input_embedding_dim=int(head.get('input_embedding_dim', 1536)),
        max_state_dim=int(head.get('max_state_dim', 64)),
        max_action_dim=int(head.get('max_action_dim', head.get('action_dim', 32))),
        action_dim=action_dim, state_dim=state_dim,
        horizon=int(head.get('action_horizon', 16)),
        num_steps=int(head.get('num_inference_timesteps', 4)),
        num_timestep_buckets=int(head.get('num_timestep_buckets', 1000)),
        num_future_tokens=int(head.get('num_target_vision_tokens', 32)),
        max_seq_len=shapes['action_head.position_embedding.weight'][0]
        if 'action_head.position_embedding.weight' in shapes else 1024,
        max_num_embodiments=slots[0], embodiment=name, embodiment_id=slot,
        use_vlln=bool(head.get('use_vlln', True)), cameras=cameras,
        layer_norm_eps=float(eagle.get('layer_norm_eps', 1e-6)))


def load_groot_checkpoint(path: str, embodiment: Optional[str] = None, device: str = 'cpu'):
    """
    Load a GR00T N1.5 checkpoint directory.

    Returns (model in eval mode, config, normalizers {'state', 'action'}, EagleProcessor or
    None when eagle/ holds no processor files: then prompts must come as tokens). Every
    refusal is a GrootCheckpointError whose message is one line naming what is wrong.
    """
    data = _read_json(os.path.join(path, 'config.json'), path)
    if data.get('model_type') != MODEL_TYPE:
        raise GrootCheckpointError(f'{path}/config.json model_type is '
                                   f"'{data.get('model_type')}', expected '{MODEL_TYPE}'")
    metadata = _read_json(os.path.join(path, METADATA_FILE), path)
    name, slot, entry = choose_embodiment(metadata, embodiment, path)
    files = shard_map(path)
    names = {k: f for k, f in files.items() if not SKIPPED.search(k)}
    shapes = {}
    for file in sorted(set(names.values())):
        with _open(file) as reader:
            for key in reader.keys():
                if key in names:
                    shapes[key] = tuple(reader.get_slice(key).get_shape())
    try:
        config = config_from_checkpoint(data, shapes, entry, name, slot, path)
    except (TypeError, ValueError, KeyError) as error:
        if isinstance(error, GrootCheckpointError):
            raise
        raise GrootCheckpointError(f'{path}: config.json, metadata.json and the weights do '
                                   f'not describe one GR00T N1.5 ({type(error).__name__}: '
                                   f'{error})') from None
    if slot >= config.max_num_embodiments:
        raise GrootCheckpointError(f"{path}: embodiment '{name}' uses slot {slot}, the "
                                   f'weights hold {config.max_num_embodiments} slots')
    with torch.device('meta'):
        model = GrootModel(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # Qwen3 layers past select_layer are not used (Eagle's backbone drops them).
    unused = {k for k in names if k.startswith(LANGUAGE + '.') and
              int(k[len(LANGUAGE) + 1:].split('.')[0]) >= config.language.depth}
    present = set(names) - unused
    missing = sorted(set(expected) - present)
    unexpected = sorted(present - set(expected))
    wrong = [f'{k}: checkpoint {shapes[k]}, model {expected[k]}'
             for k in sorted(present & set(expected)) if shapes[k] != expected[k]]
    if missing or unexpected or wrong:
        raise GrootCheckpointError(
            f'{path}: the weights do not fit GR00T N1.5 as config.json describes it: missing '
            f'{missing[:6]} ({len(missing)}), unexpected {unexpected[:6]} ({len(unexpected)}), '
            f'wrong shapes {wrong[:4]} ({len(wrong)})')
    # Only the chosen embodiment's slot of the per-embodiment tables is read and kept: at full
    # size the 32 slots hold 315 M parameters, of which one robot uses 1/32.
    config = replace(config, max_num_embodiments=1, embodiment_id=0)
    with torch.device('meta'):
        model = GrootModel(config)
    state = {}
    for file in sorted({names[k] for k in expected}):
        with _open(file) as reader:
            for key in reader.keys():
                if key not in expected:
                    continue
                try:
                    if EMBODIMENT_TABLE.match(key):
                        tensor = reader.get_slice(key)[slot:slot + 1]
                    else:
                        tensor = reader.get_tensor(key)
                except Exception as error:
                    raise GrootCheckpointError(f"{file}: tensor '{key}' cannot be read: "
                                               f'{error}') from None
                if not tensor.is_floating_point():
                    raise GrootCheckpointError(f'{key} has dtype {tensor.dtype}; expected a '
                                               'float tensor')
                state[key] = tensor.to(device=device, dtype=torch.float32)
    model.load_state_dict(state, assign=True)
    try:
        normalizers = {modality: MinMaxNormalizer(concat_stats(entry['statistics'][modality]))
                       for modality in ('state', 'action')}
    except (ValueError, TypeError) as error:
        raise GrootCheckpointError(f"{path}: {METADATA_FILE} '{name}': {error}") from None
    processor = None
    if os.path.isfile(os.path.join(path, EAGLE_DIR, 'chat_template.json')):
        try:
            processor = EagleProcessor(os.path.join(path, EAGLE_DIR))
        except ProcessorError as error:
            raise GrootCheckpointError(f'{path}: {error}') from None
        if (processor.image_token_id, processor.tokens_per_image, processor.image_size) != (
                config.image_token_index, config.tokens_per_image, config.vision.image_size):
            raise GrootCheckpointError(
                f'{path}/{EAGLE_DIR}: image token {processor.image_token_id} x '
                f'{processor.tokens_per_image} per {processor.image_size} px image, the model '
                f'expects {config.image_token_index} x {config.tokens_per_image} per '
                f'{config.vision.image_size} px')
    return model.eval(), config, normalizers, processor


def save_groot_checkpoint(model: GrootModel, path: str, statistics: dict,
                          shard_bytes: int = 2 ** 30, store_dtype=torch.float32) -> str:
    """
    Write `model` in the public layout: config.json, sharded safetensors + index, metadata.

    statistics: {'state': {part: {'min': [...], 'max': [...]}}, 'action': {...}} for the
    config's embodiment (parts in order). Also writes eagle/config.json with the Qwen3 and
    SigLIP sizes, which config.json cannot describe; the tokenizer files are the user's.
    """
    c = model.config
    os.makedirs(os.path.join(path, 'experiment_cfg'), exist_ok=True)
    os.makedirs(os.path.join(path, EAGLE_DIR), exist_ok=True)
    head = {
        'action_dim': c.max_action_dim, 'action_horizon': c.horizon, 'add_pos_embed': True,
        'backbone_embedding_dim': c.language.width, 'hidden_size': c.hidden_size,
        'input_embedding_dim': c.input_embedding_dim, 'max_action_dim': c.max_action_dim,
        'max_state_dim': c.max_state_dim, 'max_num_embodiments': c.max_num_embodiments,
        'num_inference_timesteps': c.num_steps, 'num_target_vision_tokens':
        c.num_future_tokens, 'num_timestep_buckets': c.num_timestep_buckets,
        'use_vlln': c.use_vlln, 'model_dtype': 'float32',
        'diffusion_model_cfg': {
            'num_layers': c.dit.depth, 'num_attention_heads': c.dit.num_heads,
            'attention_head_dim': c.dit.head_dim, 'output_dim': c.dit.output_dim,
            'cross_attention_dim': c.language.width, 'interleave_self_attention': True,
            'norm_type': 'ada_norm', 'positional_embeddings': None},
        'vl_self_attention_cfg': {
            'num_layers': c.vl_self_attention.depth,
            'num_attention_heads': c.vl_self_attention.num_heads,
            'attention_head_dim': c.vl_self_attention.head_dim,
            'positional_embeddings': 'sinusoidal' if c.vl_max_positions else None}}
    data = {'architectures': ['GR00T_N1_5'], 'model_type': MODEL_TYPE,
            'action_dim': c.max_action_dim, 'action_horizon': c.horizon,
            'compute_dtype': 'float32',
            'backbone_cfg': {'select_layer': c.language.depth, 'project_to_dim': None,
                             'reproject_vision': False},
            'action_head_cfg': head}
    with open(os.path.join(path, 'config.json'), 'w') as stream:
        json.dump(data, stream, indent=1)
    eagle = {'model_type': 'eagle_2_5_vl', 'use_pixel_shuffle': False,
             'mlp_connector_layers': 1, 'image_token_index': c.image_token_index,
             'force_image_size': c.vision.image_size,
             'text_config': {'num_attention_heads': c.language.num_heads,
                             'num_key_value_heads': c.language.num_kv_heads,
                             'head_dim': c.language.head_dim,
                             'rope_theta': c.language.rope_theta,
                             'rms_norm_eps': c.language.rms_norm_eps},
             'vision_config': {'num_attention_heads': c.vision.num_heads,
                               'patch_size': c.vision.patch_size,
                               'image_size': c.vision.image_size,
                               'layer_norm_eps': c.layer_norm_eps}}
    with open(os.path.join(path, EAGLE_DIR, 'config.json'), 'w') as stream:
        json.dump(eagle, stream, indent=1)
    video = {name: {'resolution': [c.vision.image_size] * 2, 'channels': 3, 'fps': 30.0}
             for name in c.cameras}
    modalities = {m: {p: {'absolute': True, 'rotation_type': None, 'continuous': True,
                          'shape': [len(v['max'])]} for p, v in statistics[m].items()}
                  for m in ('state', 'action')}
    with open(os.path.join(path, METADATA_FILE), 'w') as stream:
        json.dump({c.embodiment: {'statistics': statistics, 'embodiment_tag': c.embodiment,
                                  'modalities': {'video': video, **modalities}}}, stream,
                  indent=1)
    tensors = {k: v.detach().cpu().to(store_dtype).contiguous()
               for k, v in model.state_dict().items()}
    shards, size = [[]], 0
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    weight_map = {}
    for i, keys in enumerate(shards):
        name = f'model-{i + 1:05d}-of-{len(shards):05d}.safetensors'
        save_file({k: tensors[k] for k in keys}, os.path.join(path, name),
                  metadata={'format': 'pt'})
        weight_map.update({k: name for k in keys})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    with open(os.path.join(path, INDEX_FILE), 'w') as stream:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, stream,
                  indent=1)
    return path
