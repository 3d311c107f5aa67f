# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
GR00T N1.5 pre- and post-processing: Eagle prompt and tokenizer, images, min-max statistics.

What LeRobot 0.4.4's GR00T processors (processor_groot.py, the Eagle 2.5 processor and image
processor) do, from local files only. The Eagle processor directory (the files LeRobot keeps
in its cache as `lerobot/eagle2hg-processor-groot-n1p5`: config.json, chat_template.json,
tokenizer files, preprocessor_config.json, processor_config.json) lies in the checkpoint's
`eagle/` folder:
- prompt: one user message holding every camera image and then the instruction written as a
  Python list (`str([instruction])`), rendered with the chat template and a generation
  prompt; each `<image-k>` becomes `<image k><img>` + 256 `<IMG_CONTEXT>` + `</img>`.
- tokenizer: `tokenizer.json` when present, else Qwen2's byte-level BPE from `vocab.json`
  and `merges.txt` with the added tokens (what transformers builds from those files).
- images: one 224 x 224 tile per camera (bicubic with antialiasing on the uint8 image, as
  torchvision does), then (x / 255 - mean) / std.
- state and action: min-max to [-1, 1] with the embodiment's statistics; a joint whose min
  equals its max maps to 0 and back to its min.
"""

import json
import os
import re
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.nn import functional as F

# Qwen2's pre-tokenizer split (transformers' Qwen2Converter).
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
              r'[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+')
DEFAULT_INSTRUCTION = 'Perform the task.'     # LeRobot's GrootPackInputsStep default
BICUBIC = 3                                   # PIL's resample code


class ProcessorError(ValueError):
    """The Eagle processor files are missing or do not fit (the message says which)."""


def _read_json(path: str):
    try:
        with open(path) as stream:
            return json.load(stream)
    except FileNotFoundError:
        raise ProcessorError(f'{path} is missing') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ProcessorError(f'{path} is not valid JSON: {error}') from None


def build_tokenizer(folder: str, prefix: str = ''):
    """Return a `tokenizers.Tokenizer` from tokenizer.json, or vocab.json + merges.txt."""
    from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, Regex
    from tokenizers import Tokenizer

    def file(name):
        return os.path.join(folder, prefix + name)
    if os.path.isfile(file('tokenizer.json')):
        return Tokenizer.from_file(file('tokenizer.json'))
    vocab = _read_json(file('vocab.json'))
    merges_path = file('merges.txt')
    if not os.path.isfile(merges_path):
        raise ProcessorError(f'{merges_path} is missing (or give tokenizer.json)')
    with open(merges_path, encoding='utf-8') as stream:
        merges = [tuple(line.split(' ')) for line in stream.read().split('\n')
                  if line and not line.startswith('#version')]
    added = {}
    if os.path.isfile(file('added_tokens.json')):
        added.update(_read_json(file('added_tokens.json')))
    config_path = file('tokenizer_config.json')
    if os.path.isfile(config_path):
        for index, entry in _read_json(config_path).get('added_tokens_decoder', {}).items():
            added[entry['content']] = int(index)
    # Added tokens keep their ids by being in the vocabulary the BPE model holds.
    vocab = {**vocab, **added}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None,
                                     fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior='isolated', invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False)
                                  for token in sorted(added, key=added.get)])
    return tokenizer


# The Eagle processor files the runtime reads (an artifact carries them as `eagle.<name>`).
EAGLE_FILES = ('chat_template.json', 'processor_config.json', 'preprocessor_config.json',
               'tokenizer.json', 'vocab.json', 'merges.txt', 'added_tokens.json',
               'tokenizer_config.json')


class EagleProcessor:
    """The Eagle 2.5 prompt, tokenizer and image processing of GR00T N1.5 (local files)."""

    def __init__(self, folder: str, prefix: str = ''):
        self.folder, self.prefix = folder, prefix
        self.files = {name: os.path.join(folder, prefix + name) for name in EAGLE_FILES
                      if os.path.isfile(os.path.join(folder, prefix + name))}
        template = _read_json(os.path.join(folder, prefix + 'chat_template.json'))
        self.chat_template = template.get('chat_template') if isinstance(template, dict) \
            else None
        if not isinstance(self.chat_template, str):
            raise ProcessorError(f"{folder}/chat_template.json has no 'chat_template' string")
        processor = _read_json(os.path.join(folder, prefix + 'processor_config.json'))
        self.image_token = processor.get('image_token', '<IMG_CONTEXT>')
        self.image_start = processor.get('image_start_token', '<img>')
        self.image_end = processor.get('image_end_token', '</img>')
        self.tokens_per_image = int(processor.get('tokens_per_tile', 256))
        image = _read_json(os.path.join(folder, prefix + 'preprocessor_config.json'))
        size = image.get('size', {})
        self.image_size = int(size.get('height', 448))
        if size.get('width', self.image_size) != self.image_size:
            raise ProcessorError(f'{folder}/preprocessor_config.json: non-square tiles {size}')
        if image.get('resample', BICUBIC) != BICUBIC:
            raise ProcessorError(f'{folder}/preprocessor_config.json: resample '
                                 f"{image.get('resample')} is not bicubic (3), the only one "
                                 'implemented')
        self.mean = np.asarray(image.get('image_mean', [0.5] * 3), np.float32)
        self.std = np.asarray(image.get('image_std', [0.5] * 3), np.float32)
        self.rescale = float(image.get('rescale_factor', 1 / 255))
        self.tokenizer = build_tokenizer(folder, prefix)
        self.image_token_id = self.tokenizer.token_to_id(self.image_token)
        if self.image_token_id is None:
            raise ProcessorError(f"{folder}: the tokenizer has no '{self.image_token}' token")

    def prompt_text(self, instruction: str, num_images: int) -> str:
        """Render the chat template and expand each image placeholder into its tokens."""
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        content = [{'type': 'image'} for _ in range(num_images)]
        content.append({'type': 'text', 'text': str([instruction or DEFAULT_INSTRUCTION])})
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        text = environment.from_string(self.chat_template).render(
            messages=[{'role': 'user', 'content': content}], add_generation_prompt=True)

        def expand(match):
            return (f'<image {match.group(1)}>{self.image_start}'
                    f'{self.image_token * self.tokens_per_image}{self.image_end}')
        return re.sub(r'<image-(\d+)>', expand, text)

    def encode(self, instruction: str, num_images: int) -> np.ndarray:
        """Return the prompt's token ids int64 [L]."""
        ids = self.tokenizer.encode(self.prompt_text(instruction, num_images)).ids
        return np.asarray(ids, dtype=np.int64)

    def pixel_values(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Map uint8 [H, W, 3] images to float32 [N, 3, S, S] (resized on the CPU)."""
        return self.normalize(resize_tiles(images, self.image_size))

    def normalize(self, tiles: torch.Tensor) -> torch.Tensor:
        """Map resized uint8 tiles [..., 3, S, S] to the model's float32 pixel values."""
        return normalize_tiles(tiles, self.mean, self.std, self.rescale)


def image_tiles(images: Sequence[np.ndarray], size: int, mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5), rescale: float = 1 / 255) -> torch.Tensor:
    """One [3, size, size] tile per uint8 [H, W, 3] image, normalized: float32 [N, 3, S, S]."""
    return normalize_tiles(resize_tiles(images, size), mean, std, rescale)


def resize_tiles(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """Resize uint8 [H, W, 3] images to uint8 tiles [N, 3, size, size] (bicubic, antialiased)."""
    tiles = []
    for image in images:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
        if x.shape[-2:] != (size, size):
            # torch's uint8 antialiased bicubic is the one torchvision runs on uint8 images
            # (a float resize rounds differently by up to 12 levels).
            x = F.interpolate(x, size=(size, size), mode='bicubic', antialias=True,
                              align_corners=False)
        tiles.append(x[0])
    return torch.stack(tiles)


def tile_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize one uint8 [H, W, 3] image to the uint8 [size, size, 3] tile the model sees."""
    return resize_tiles([image], size)[0].permute(1, 2, 0).numpy()


def normalize_tiles(tiles: torch.Tensor, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                    rescale: float = 1 / 255) -> torch.Tensor:
    """Map uint8 tiles [..., 3, S, S] to float32 (x * rescale - mean) / std, per channel."""
    x = tiles.float() * rescale
    mean = torch.as_tensor(np.asarray(mean, np.float32), device=x.device)[:, None, None]
    std = torch.as_tensor(np.asarray(std, np.float32), device=x.device)[:, None, None]
    return (x - mean) / std


class MinMaxNormalizer:
    """GR00T's min-max normalization to [-1, 1] (LeRobot 0.4.4 processor_groot.py)."""

    mode = 'MIN_MAX'

    def __init__(self, stats: Dict[str, np.ndarray]):
        missing = [k for k in ('min', 'max') if k not in stats]
        if missing:
            raise ValueError(f'min-max normalization needs statistics {missing}')
        self.stats = {k: np.asarray(v, dtype=np.float32) for k, v in stats.items()}
        if self.stats['min'].shape != self.stats['max'].shape:
            raise ValueError(f"min {self.stats['min'].shape} and max "
                             f"{self.stats['max'].shape} differ in shape")

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Map raw values to [-1, 1]; a constant joint (max == min) maps to 0."""
        low, span = self.stats['min'], self.stats['max'] - self.stats['min']
        safe = np.where(span != 0, span, 1.0)
        return np.where(span != 0, 2 * (x - low) / safe - 1, 0.0).astype(np.float32)

    def unnormalize(self, y: np.ndarray) -> np.ndarray:
        """Map [-1, 1] back to raw units; a constant joint returns its min."""
        low, span = self.stats['min'], self.stats['max'] - self.stats['min']
        safe = np.where(span != 0, span, 1.0)
        return np.where(span != 0, (y + 1.0) * 0.5 * safe + low, low).astype(np.float32)


def pad_state(normalized: np.ndarray, max_state_dim: int) -> np.ndarray:
    """Zero-pad a normalized state to [1, max_state_dim] (one state token)."""
    out = np.zeros((1, max_state_dim), dtype=np.float32)
    out[0, :normalized.shape[0]] = normalized
    return out


def concat_stats(parts: Dict[str, dict],
                 keys: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
    """Concatenate per-part statistics ({part: {stat: list}}) in the parts' order."""
    keys = keys if keys is not None else list(parts)
    stats = {}
    for stat in ('min', 'max', 'mean', 'std', 'q01', 'q99'):
        if all(stat in parts[k] for k in keys):
            stats[stat] = np.concatenate([np.asarray(parts[k][stat], np.float32).reshape(-1)
                                          for k in keys])
    return stats


# A chat template of Qwen's shape: one turn per message, images as <image-k> placeholders.
SMALL_CHAT_TEMPLATE = (
    '{% for message in messages %}<|im_start|>{{ message.role }}\n'
    '{% for part in message.content %}{% if part.type == "image" %}'
    '<image-{{ loop.index }}>{% else %}{{ part.text }}{% endif %}{% endfor %}'
    '<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n'
    '{% endif %}')
SPECIAL_TOKENS = ('<IMG_CONTEXT>', '<|im_start|>', '<|im_end|>', '<img>', '</img>')


def write_eagle_processor(folder: str, image_token_index: int, tokens_per_image: int,
                          image_size: int, texts: Sequence[str], vocab_size: int = 400):
    """
    Write Eagle processor files for a small model trained here (the bundled one, tests).

    A byte-level BPE trained on texts (the instructions), in vocab.json + merges.txt as Qwen
    ships it, whose special tokens take the ids from image_token_index on; Qwen's chat
    template shape; square tiles of image_size with tokens_per_image context tokens each.
    """
    from tokenizers import models, pre_tokenizers, Tokenizer, trainers
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    prompts = [str([text]) for text in texts] + ['user', 'assistant', DEFAULT_INSTRUCTION]
    tokenizer.train_from_iterator(
        prompts * 3, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(tokenizer.to_str())['model']
    if max(model['vocab'].values()) >= image_token_index:
        raise ValueError(f'the BPE vocabulary ({len(model["vocab"])}) reaches the special '
                         f'tokens at {image_token_index}')
    files = {'vocab.json': model['vocab'],
             'added_tokens.json': {token: image_token_index + i
                                   for i, token in enumerate(SPECIAL_TOKENS)},
             'chat_template.json': {'chat_template': SMALL_CHAT_TEMPLATE},
             'processor_config.json': {'image_token': SPECIAL_TOKENS[0],
                                       'tokens_per_tile': tokens_per_image},
             'preprocessor_config.json': {'size': {'height': image_size, 'width': image_size},
                                          'resample': BICUBIC}}
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(folder, name), 'w') as stream:
            json.dump(data, stream)
    with open(os.path.join(folder, 'merges.txt'), 'w') as stream:
        stream.write('#version: 0.2\n' + '\n'.join(
            m if isinstance(m, str) else ' '.join(m) for m in model['merges']) + '\n')
