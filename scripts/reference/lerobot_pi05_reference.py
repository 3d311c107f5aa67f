# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
Produce a LeRobot PI05 reference: a checkpoint directory and an action chunk for fixed inputs.

Runs under Python >= 3.12 with lerobot 0.6.1 (scripts/setup_lerobot_reference.sh builds that
venv); never imported by omegaq_ros. Real widths, reduced depth: the Gemma depths come from
`--depth` and the SigLIP depth from `--vision-depth`. Every weight is re-drawn from a seeded
normal distribution (LeRobot zero-initializes the adaRMS projections, which would hide the
expert's residual branches from the comparison).

The token tables are cut to `--vocab` rows (default 2048; pi0.5 has 257152): at real width the
embedding and the two unused lm_heads hold 1.3 B parameters, 5.3 GB of the fp32 checkpoint,
while an embedding is a row lookup whose arithmetic does not depend on the row count. Token ids
are drawn below that count, and our loader reads the vocabulary size from the embedding shape.

Writes OUT/checkpoint (config.json + model.safetensors, as save_pretrained does) and
OUT/reference.npz: images uint8 [n_cams, H, W, 3], tokens, token_mask, noise, and
`actions` from PI05Policy.predict_action_chunk plus `actions_core` from sample_actions.
"""

import argparse
import json
import os

import numpy as np
import torch


def build_policy(depth: int, vision_depth: int, horizon: int, action_dim: int, cameras):
    """Return a PI05Policy with real widths and the given depths (random weights)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.pi05 import modeling_pi05
    from lerobot.policies.pi05.configuration_pi05 import PI05Config
    from transformers.models.auto import CONFIG_MAPPING

    original_gemma = modeling_pi05.get_gemma_config

    def shallow_gemma(variant):
        config = original_gemma(variant)
        config.depth = depth
        return config

    modeling_pi05.get_gemma_config = shallow_gemma
    original_paligemma = CONFIG_MAPPING['paligemma']

    class ShallowPaliGemma(original_paligemma):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.vision_config.num_hidden_layers = vision_depth

    CONFIG_MAPPING._extra_content['paligemma'] = ShallowPaliGemma
    input_features = {
        f'observation.images.{name}': PolicyFeature(type=FeatureType.VISUAL, shape=(3, 224, 224))
        for name in cameras}
    input_features['observation.state'] = PolicyFeature(type=FeatureType.STATE,
                                                        shape=(action_dim,))
    config = PI05Config(input_features=input_features,
                        output_features={'action': PolicyFeature(type=FeatureType.ACTION,
                                                                 shape=(action_dim,))},
                        chunk_size=horizon, n_action_steps=horizon, dtype='float32',
                        device='cpu')
    from lerobot.policies.pi05.modeling_pi05 import PI05Policy
    return PI05Policy(config)


def shrink_vocabulary(policy, rows: int):
    """Replace the token embedding and both lm_heads by tables of `rows` entries."""
    pair = policy.model.paligemma_with_expert
    language = pair.paligemma.model.language_model
    table = language.embed_tokens  # Gemma's scaled embedding: rows times sqrt(width)
    width = table.embedding_dim
    language.embed_tokens = type(table)(rows, width, table.padding_idx,
                                        embed_scale=table.scalar_embed_scale)
    pair.paligemma.lm_head = torch.nn.Linear(width, rows, bias=False)
    pair.gemma_expert.lm_head = torch.nn.Linear(pair.gemma_expert.lm_head.in_features, rows,
                                                bias=False)
    pair.paligemma.config.text_config.vocab_size = rows
    pair.gemma_expert.config.vocab_size = rows


def main():
    """Build, randomize, save and run the reference policy."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--out', required=True)
    parser.add_argument('--depth', type=int, default=2)
    parser.add_argument('--vision-depth', type=int, default=2)
    parser.add_argument('--horizon', type=int, default=10)
    parser.add_argument('--action-dim', type=int, default=14)
    parser.add_argument('--tokens', type=int, default=24)
    parser.add_argument('--vocab', type=int, default=2048)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    cameras = ('cam_high', 'cam_left_wrist', 'cam_right_wrist')
    torch.manual_seed(args.seed)
    policy = build_policy(args.depth, args.vision_depth, args.horizon, args.action_dim, cameras)
    shrink_vocabulary(policy, args.vocab)
    generator = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if 'lm_head' in name:
                continue
            std = 0.02 if param.ndim > 1 else 0.1
            param.copy_(torch.randn(param.shape, generator=generator) * std)
    policy.eval()
    os.makedirs(args.out, exist_ok=True)
    policy.save_pretrained(os.path.join(args.out, 'checkpoint'))

    rng = np.random.default_rng(args.seed)
    # Two cameras at a non-square size (exercises resize-with-pad), one missing camera.
    images = rng.integers(0, 256, size=(2, 240, 320, 3), dtype=np.uint8)
    tokens = rng.integers(0, args.vocab, size=(args.tokens,), dtype=np.int64)
    token_mask = np.ones(args.tokens, dtype=bool)
    token_mask[-5:] = False
    noise = rng.standard_normal((args.horizon, 32)).astype(np.float32)
    batch = {
        f'observation.images.{name}': torch.from_numpy(images[i]).permute(2, 0, 1)[None]
        .float() / 255.0 for i, name in enumerate(cameras[:2])}
    batch['observation.language.tokens'] = torch.from_numpy(tokens)[None]
    batch['observation.language.attention_mask'] = torch.from_numpy(token_mask)[None]
    noise_t = torch.from_numpy(noise)[None]
    with torch.no_grad():
        actions = policy.predict_action_chunk(batch, noise=noise_t)[0].numpy()
        images_t, masks_t = policy._preprocess_images(batch)
        core = policy.model.sample_actions(images_t, masks_t, batch['observation.language.tokens'],
                                           batch['observation.language.attention_mask'],
                                           noise=noise_t)[0].numpy()
    counts = {
        'total': sum(p.numel() for p in policy.parameters()),
        'lm_heads': sum(p.numel() for n, p in policy.named_parameters() if 'lm_head' in n),
    }
    np.savez(os.path.join(args.out, 'reference.npz'), images=images, tokens=tokens,
             token_mask=token_mask, noise=noise, actions=actions, actions_core=core,
             present_cameras=np.array(cameras[:2]))
    with open(os.path.join(args.out, 'reference.json'), 'w') as stream:
        json.dump({'args': vars(args), 'parameter_counts': counts,
                   'keys': {k: list(v.shape) for k, v in policy.state_dict().items()}},
                  stream, indent=1)
    print(f'reference written to {args.out}: actions {actions.shape}, '
          f'max |a| {np.abs(actions).max():.4f}')


if __name__ == '__main__':
    main()
