# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Produce a LeRobot 0.4.4 GR00T N1.5 reference: a checkpoint in the public layout and a chunk.

Runs in the venv of scripts/setup_groot_reference.sh; never imported by omegaq_ros. Builds
GR00TN15 offline from a config (real widths, reduced depth: SigLIP and Qwen3 layers from
`--depth`, a 4-block DiT so both cross- and self-attention blocks run, 2 VL self-attention
layers), re-draws every weight from a seeded normal distribution, and saves it with
save_pretrained in sharded form (`model-0000k-of-0000N.safetensors` + index), as the released
checkpoints are; `experiment_cfg/metadata.json` carries the normalization statistics per
embodiment. The Qwen3 token table is cut to `--vocab` rows (a row lookup: its arithmetic does
not depend on the row count) with a small byte-level BPE tokenizer trained here on a few
instructions, with Qwen's special tokens, and only 3 embodiment slots are kept (the reference
uses 'so100' = slot 2): at real size the 32 slots hold 315 M parameters. Weights are stored as
bfloat16 (both sides compute in fp32 from the same values), so the checkpoint is ~0.8 GB.

Then LeRobot loads that directory (GrootPolicy -> GR00TN15.from_pretrained) and runs an
observation through its own pre-processor (min-max normalization, Eagle chat template and
tokenizer, Eagle image processor), predict_action_chunk and its post-processor (unnormalize).

Writes OUT/checkpoint (with the Eagle processor files in OUT/checkpoint/eagle, where our
loader reads them) and OUT/reference.npz: images uint8 [n_cams, H, W, 3] as LeRobot saw them,
instruction, state, noise [16, 32], the processor's input_ids / attention_mask / pixel_values,
and actions [16, action_dim] (unnormalized) plus actions_normalized.

LeRobot's attention choices are kept except where they need flash-attn: the SigLIP tower,
which Eagle forces to flash_attention_2, runs eager. PyPI's torchvision is a CUDA build whose
compiled ops cannot load next to a CPU torch; only its tensor resize runs here, so the fake
(meta) registrations of its ops are allowed to fail.
"""

import argparse
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CAMERAS = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
EMBODIMENT = 'so100'
QWEN_SPECIALS = ('<|endoftext|>', '<|im_start|>', '<|im_end|>', '<img>', '</img>',
                 '<IMG_CONTEXT>', '<video>', '<box>', '</box>')
CHAT_TEMPLATE = (
    '{% set image_count = namespace(value=0) %}{% for message in messages %}'
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    '{% set image_count.value = image_count.value + 1 %}<image-{{ image_count.value }}>'
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}"
    '<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n'
    '{% endif %}')
CORPUS = ['pick up the red cube and place it in the bin', 'hand the cup over to the other arm',
          'lift the block', 'Perform the task.', "['open the drawer']", 'You are a helpful '
          'assistant.', 'system user assistant', '<image 1> <image 2> <image 3>']


def tolerate_torchvision_ops():
    """Let torchvision import although its compiled ops (a CUDA build) cannot load."""
    import torch
    register_fake = torch.library.register_fake

    def tolerant(op, func=None, /, **kwargs):
        if not (isinstance(op, str) and op.startswith('torchvision::')):
            return register_fake(op, func, **kwargs) if func else register_fake(op, **kwargs)

        def apply(fn):
            try:
                return register_fake(op, **kwargs)(fn)
            except RuntimeError:       # "operator torchvision::nms does not exist"
                return fn
        return apply(func) if func else apply
    torch.library.register_fake = tolerant


def eager_siglip():
    """Build SigLIP with eager attention where Eagle asks for flash_attention_2."""
    from transformers.models.siglip import modeling_siglip
    original = modeling_siglip.SiglipVisionModel
    if getattr(original, 'omegaq_eager', False):
        return

    class EagerSiglipVisionModel(original):
        omegaq_eager = True

        def __init__(self, config):
            config._attn_implementation = 'eager'
            super().__init__(config)
    modeling_siglip.SiglipVisionModel = EagerSiglipVisionModel


def write_tokenizer(folder: str, vocab: int) -> dict:
    """Train a small byte-level BPE (at most `vocab` ids with its specials); write Qwen2 files."""
    from tokenizers import decoders, models, pre_tokenizers, Tokenizer, trainers
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab - len(QWEN_SPECIALS) - 8,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    model = json.loads(tokenizer.to_str())['model']
    with open(os.path.join(folder, 'vocab.json'), 'w') as stream:
        json.dump(model['vocab'], stream, ensure_ascii=False)
    with open(os.path.join(folder, 'merges.txt'), 'w') as stream:
        stream.write('#version: 0.2\n')
        for merge in model['merges']:
            stream.write((merge if isinstance(merge, str) else ' '.join(merge)) + '\n')
    # The special tokens follow the learned vocabulary directly (transformers numbers added
    # tokens from len(vocab.json) on); ids up to `vocab` stay free.
    base = len(model['vocab'])
    specials = {token: base + i for i, token in enumerate(QWEN_SPECIALS)}
    assert base + len(QWEN_SPECIALS) <= vocab
    with open(os.path.join(folder, 'added_tokens.json'), 'w') as stream:
        json.dump(specials, stream, indent=1)
    decoder = {str(i): {'content': t, 'lstrip': False, 'normalized': False, 'rstrip': False,
                        'single_word': False, 'special': True} for t, i in specials.items()}
    with open(os.path.join(folder, 'tokenizer_config.json'), 'w') as stream:
        json.dump({'tokenizer_class': 'Qwen2Tokenizer', 'added_tokens_decoder': decoder,
                   'bos_token': None, 'eos_token': '<|im_end|>', 'pad_token': '<|endoftext|>',
                   'unk_token': None, 'model_max_length': 4096, 'errors': 'replace',
                   'clean_up_tokenization_spaces': False, 'split_special_tokens': False,
                   'auto_map': {'AutoProcessor':
                                'processing_eagle2_5_vl.Eagle25VLProcessor'},
                   'processor_class': 'Eagle25VLProcessor'}, stream, indent=1)
    with open(os.path.join(folder, 'special_tokens_map.json'), 'w') as stream:
        json.dump({'eos_token': '<|im_end|>', 'pad_token': '<|endoftext|>'}, stream)
    return specials


def write_eagle_assets(folder: str, depth: int, vocab: int) -> dict:
    """Write the Eagle config, tokenizer and processor files LeRobot's cache dir holds."""
    os.makedirs(folder, exist_ok=True)
    specials = write_tokenizer(folder, vocab)
    config = {
        'architectures': ['Eagle2_5_VLForConditionalGeneration'],
        'auto_map': {'AutoConfig': 'configuration_eagle2_5_vl.Eagle25VLConfig',
                     'AutoModel': 'modeling_eagle2_5_vl.Eagle25VLForConditionalGeneration'},
        'model_type': 'eagle_2_5_vl', 'force_image_size': 224, 'use_pixel_shuffle': False,
        'downsample_ratio': 0.5, 'mlp_connector_layers': 1, 'select_layer': -1,
        'image_token_index': specials['<IMG_CONTEXT>'], 'template': 'qwen3-chat',
        '_attn_implementation': 'eager', 'use_backbone_lora': 0, 'use_llm_lora': 0,
        'mlp_checkpoint': False, 'loss_version': 'efficient_v2_cp_head',
        'text_config': {
            'architectures': ['Qwen3ForCausalLM'], 'model_type': 'qwen3', 'hidden_size': 2048,
            'intermediate_size': 6144, 'num_hidden_layers': depth, 'num_attention_heads': 16,
            'num_key_value_heads': 8, 'head_dim': 128, 'rope_theta': 1000000.0,
            'vocab_size': vocab, 'tie_word_embeddings': True, 'rms_norm_eps': 1e-6,
            'max_position_embeddings': 40960, 'attention_bias': False, 'hidden_act': 'silu'},
        'vision_config': {
            'model_type': 'siglip_vision_model', 'hidden_size': 1152, 'intermediate_size': 4304,
            'num_hidden_layers': depth, 'num_attention_heads': 16, 'patch_size': 14,
            'image_size': 224, 'hidden_act': 'gelu_pytorch_tanh', 'layer_norm_eps': 1e-6},
    }
    files = {
        'config.json': config,
        'generation_config.json': {},
        'chat_template.json': {'chat_template': CHAT_TEMPLATE},
        'processor_config.json': {
            'processor_class': 'Eagle25VLProcessor', 'image_token': '<IMG_CONTEXT>',
            'video_token': '<IMG_CONTEXT>', 'tokens_per_tile': 256,
            'auto_map': {'AutoProcessor': 'processing_eagle2_5_vl.Eagle25VLProcessor'}},
        'preprocessor_config.json': {
            'image_processor_type': 'Eagle25VLImageProcessorFast',
            'processor_class': 'Eagle25VLProcessor',
            'auto_map': {
                'AutoImageProcessor':
                    'image_processing_eagle2_5_vl_fast.Eagle25VLImageProcessorFast',
                'AutoProcessor': 'processing_eagle2_5_vl.Eagle25VLProcessor'},
            'size': {'height': 224, 'width': 224}, 'resample': 3, 'do_resize': True,
            'do_rescale': True, 'rescale_factor': 1 / 255, 'do_normalize': True,
            'image_mean': [0.5, 0.5, 0.5], 'image_std': [0.5, 0.5, 0.5],
            'do_convert_rgb': True, 'do_pad': True, 'max_dynamic_tiles': 1,
            'min_dynamic_tiles': 1, 'use_thumbnail': False, 'pad_during_tiling': False},
    }
    for name, data in files.items():
        with open(os.path.join(folder, name), 'w') as stream:
            json.dump(data, stream, indent=1)
    return specials


def groot_config(depth: int, dit_depth: int, vl_depth: int, embodiments: int) -> dict:
    """Return the checkpoint's config.json content (N1.5 values, reduced depth)."""
    return {
        'architectures': ['GR00T_N1_5'], 'model_type': 'gr00t_n1_5', 'action_dim': 32,
        'action_horizon': 16, 'compute_dtype': 'float32',
        'backbone_cfg': {'eagle_path': 'NVEagle/eagle_er-qwen3_1_7B-Siglip2_400M', 'load_bf16':
                         False, 'project_to_dim': None, 'reproject_vision': False,
                         'select_layer': depth, 'tune_llm': False, 'tune_visual': True,
                         'use_flash_attention': True},
        'action_head_cfg': {
            'action_dim': 32, 'action_horizon': 16, 'add_pos_embed': True,
            'backbone_embedding_dim': 2048, 'hidden_size': 1024, 'input_embedding_dim': 1536,
            'max_action_dim': 32, 'max_state_dim': 64, 'model_dtype': 'float32',
            'noise_beta_alpha': 1.5, 'noise_beta_beta': 1.0, 'noise_s': 0.999,
            'num_inference_timesteps': 4, 'num_target_vision_tokens': 32,
            'num_timestep_buckets': 1000, 'tune_diffusion_model': True, 'tune_projector': True,
            'use_vlln': True, 'max_num_embodiments': embodiments,
            'diffusion_model_cfg': {
                'attention_head_dim': 48, 'cross_attention_dim': 2048, 'dropout': 0.2,
                'final_dropout': True, 'interleave_self_attention': True,
                'norm_type': 'ada_norm', 'num_attention_heads': 32, 'num_layers': dit_depth,
                'output_dim': 1024, 'positional_embeddings': None},
            # Without positional_embeddings: null, diffusers' default sinusoidal table has 512
            # rows, fewer than the 3 cameras' 768 image tokens.
            'vl_self_attention_cfg': {'attention_head_dim': 64, 'dropout': 0.2,
                                      'final_dropout': True, 'num_attention_heads': 32,
                                      'num_layers': vl_depth, 'positional_embeddings': None}},
    }


def metadata(state_dim: int, action_dim: int, rng) -> dict:
    """experiment_cfg/metadata.json: statistics per embodiment, state/action split in parts."""
    def stats(dim):
        low = rng.uniform(-2.0, 0.0, dim)
        high = low + rng.uniform(0.5, 3.0, dim)
        high[-1] = low[-1]       # a constant joint: min-max maps it to 0 (and back to min)
        mean, std = (low + high) / 2, (high - low) / 4
        return {'max': high, 'min': low, 'mean': mean, 'std': std, 'q01': low, 'q99': high}

    def parts(values, dim):
        cut = [0, dim // 2, dim - 1, dim]     # e.g. arm, other arm, gripper
        names = ('left_arm', 'right_arm', 'gripper')
        return {n: {k: v[a:b].tolist() for k, v in values.items()}
                for n, a, b in zip(names, cut[:-1], cut[1:])}, {
            n: {'absolute': True, 'rotation_type': None, 'shape': [b - a], 'continuous': True}
            for n, a, b in zip(names, cut[:-1], cut[1:])}
    state_stats, state_modality = parts(stats(state_dim), state_dim)
    action_stats, action_modality = parts(stats(action_dim), action_dim)
    entry = {'statistics': {'state': state_stats, 'action': action_stats},
             'modalities': {'video': {c: {'resolution': [320, 240], 'channels': 3, 'fps': 30.0}
                                      for c in CAMERAS},
                            'state': state_modality, 'action': action_modality},
             'embodiment_tag': EMBODIMENT}
    return {EMBODIMENT: entry}


def flat_stats(entry: dict, modality: str):
    """Concatenate the per-part min/max of one modality in the metadata's part order."""
    import numpy as np
    parts = entry['statistics'][modality]
    return {k: np.concatenate([np.asarray(p[k], np.float32) for p in parts.values()])
            for k in ('min', 'max')}


def build_and_save(args, checkpoint: str):
    """Build GR00TN15 from config, randomize, save sharded; return its config dict."""
    import torch
    from lerobot.policies.groot.groot_n1 import GR00TN15, GR00TN15Config
    data = groot_config(args.depth, args.dit_depth, args.vl_depth, args.embodiments)
    config = GR00TN15Config(**{k: v for k, v in data.items() if k != 'architectures'})
    model = GR00TN15(config, local_model_path=checkpoint)
    generator = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            std = 0.02 if param.ndim > 1 else 0.1
            param.copy_(torch.randn(param.shape, generator=generator) * std)
            if name.endswith(('layernorm.weight', 'norm.weight', 'vlln.weight', 'norm1.weight',
                              'norm3.weight', 'q_norm.weight', 'k_norm.weight')):
                param.add_(1.0)      # norm scales near 1, as trained ones are
    model = model.to(torch.bfloat16)
    model.save_pretrained(checkpoint, max_shard_size='300MB', safe_serialization=True)
    return model


def check_imports():
    """Import everything the reference run needs (the venv set-up's last check)."""
    import diffusers, transformers, torchvision  # noqa: F401,E401
    from lerobot.policies.groot.modeling_groot import GrootPolicy  # noqa: F401
    from lerobot.policies.groot.processor_groot import make_groot_pre_post_processors  # noqa


def main():
    """Build, save, reload through LeRobot, and run the reference policy."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--out')
    parser.add_argument('--depth', type=int, default=2)
    parser.add_argument('--dit-depth', type=int, default=4)
    parser.add_argument('--vl-depth', type=int, default=2)
    parser.add_argument('--embodiments', type=int, default=3)
    parser.add_argument('--vocab', type=int, default=1024)
    parser.add_argument('--state-dim', type=int, default=14)
    parser.add_argument('--action-dim', type=int, default=14)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--check-imports', action='store_true',
                        help='import what the reference needs, then exit')
    args = parser.parse_args()
    tolerate_torchvision_ops()
    if args.check_imports:
        check_imports()
        return
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    # Everything LeRobot and transformers cache (Eagle files, remote-code modules) stays in OUT.
    os.environ['HF_LEROBOT_HOME'] = os.path.join(out, 'lerobot_home')
    os.environ['HF_HOME'] = os.path.join(out, 'hf_home')
    import numpy as np
    import torch
    eager_siglip()
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.groot.configuration_groot import GrootConfig
    from lerobot.policies.groot.modeling_groot import GrootPolicy
    from lerobot.policies.groot.processor_groot import make_groot_pre_post_processors
    from lerobot.utils.constants import HF_LEROBOT_HOME

    eagle_cache = HF_LEROBOT_HOME / 'lerobot/eagle2hg-processor-groot-n1p5'
    assets = os.path.join(out, 'eagle_assets')
    specials = write_eagle_assets(assets, args.depth, args.vocab)
    shutil.copytree(assets, eagle_cache, dirs_exist_ok=True)
    checkpoint = os.path.join(out, 'checkpoint')
    torch.manual_seed(args.seed)
    build_and_save(args, checkpoint)
    rng = np.random.default_rng(args.seed)
    meta = metadata(args.state_dim, args.action_dim, rng)
    os.makedirs(os.path.join(checkpoint, 'experiment_cfg'), exist_ok=True)
    with open(os.path.join(checkpoint, 'experiment_cfg', 'metadata.json'), 'w') as stream:
        json.dump(meta, stream, indent=1)
    shutil.copytree(assets, os.path.join(checkpoint, 'eagle'), dirs_exist_ok=True)

    # LeRobot loads the saved directory the way it loads a released base model.
    features = {f'observation.images.{c}': PolicyFeature(type=FeatureType.VISUAL,
                                                         shape=(3, 224, 224)) for c in CAMERAS}
    features['observation.state'] = PolicyFeature(type=FeatureType.STATE,
                                                  shape=(args.state_dim,))
    config = GrootConfig(base_model_path=checkpoint, input_features=features,
                         output_features={'action': PolicyFeature(type=FeatureType.ACTION,
                                                                  shape=(args.action_dim,))},
                         embodiment_tag=EMBODIMENT, use_bf16=False, chunk_size=16,
                         n_action_steps=16, device='cpu')
    policy = GrootPolicy(config)
    policy.eval()
    dtypes = {p.dtype for p in policy.parameters()}
    assert dtypes == {torch.float32}, f'LeRobot loaded {dtypes}, expected float32'
    entry = meta[EMBODIMENT]
    stats = {'observation.state': {k: torch.from_numpy(v) for k, v in
                                   flat_stats(entry, 'state').items()},
             'action': {k: torch.from_numpy(v) for k, v in flat_stats(entry, 'action').items()}}
    preprocessor, postprocessor = make_groot_pre_post_processors(config, stats)

    # Cameras at a non-square size (the processor resizes; LeRobot stacks them, so one size);
    # uint8 values survive LeRobot's float -> uint8 conversion exactly (checked below).
    images = [rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8) for _ in CAMERAS]
    state = rng.uniform(-1.5, 1.5, args.state_dim).astype(np.float32)
    instruction = 'pick up the red cube and place it in the bin'
    batch = {f'observation.images.{c}': torch.from_numpy(image).permute(2, 0, 1).float() / 255
             for c, image in zip(CAMERAS, images)}
    for c, image in zip(CAMERAS, images):
        back = (batch[f'observation.images.{c}'].clamp(0, 1) * 255).to(torch.uint8)
        assert torch.equal(back.permute(1, 2, 0), torch.from_numpy(image)), 'uint8 round trip'
    batch['observation.state'] = torch.from_numpy(state)
    batch['task'] = instruction
    processed = preprocessor(batch)
    torch.manual_seed(args.seed + 1)
    with torch.no_grad():
        normalized = policy.predict_action_chunk(processed)[0]
    # get_action draws its noise with one torch.randn right after this seed; nothing else in
    # predict_action_chunk draws random numbers in eval mode, so this is the same noise.
    torch.manual_seed(args.seed + 1)
    noise = torch.randn((1, 16, 32), dtype=torch.float32)[0]
    actions = postprocessor(normalized.clone())
    np.savez(os.path.join(out, 'reference.npz'), images=np.stack(images),
             instruction=np.array(instruction), state=state,
             noise=noise.numpy(), input_ids=processed['eagle_input_ids'][0].numpy(),
             attention_mask=processed['eagle_attention_mask'][0].numpy(),
             pixel_values=processed['eagle_pixel_values'].numpy(),
             normalized_state=processed['state'][0, 0].numpy(),
             actions=actions.numpy(), actions_normalized=normalized.numpy(),
             image_token_id=np.array(specials['<IMG_CONTEXT>']))
    with open(os.path.join(out, 'reference.json'), 'w') as stream:
        json.dump({'args': vars(args), 'python': sys.version,
                   'parameters': sum(p.numel() for p in policy.parameters()),
                   'keys': sorted(policy._groot_model.state_dict())[:50]}, stream, indent=1)
    print(f'reference written to {out}: actions {tuple(actions.shape)}, '
          f'max |a| {actions.abs().max():.4f}')


if __name__ == '__main__':
    main()
