# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
r"""
pi0.5 pre- and post-processing: images, state in the prompt, tokens, normalization.

Follows LeRobot's processor_pi05.py and modeling_pi05.py (_preprocess_images) and openpi's
resize_with_pad: images are scaled to [0, 1], resized keeping aspect ratio and centre-padded
with black to the model's size, then mapped to [-1, 1]; a missing camera becomes a -1 image
with mask False, after the present ones. The state is normalized (quantiles by default),
discretized into 256 bins over [-1, 1] and written into the prompt
"Task: {task}, State: {bins};\\nAction: ", which is tokenized with BOS and right-padded.

The state is never cut: when the prompt exceeds the token budget (tokenizer_max_length), the
instruction is shortened until the prompt fits and fit_prompt says so (PromptTokens.note);
a state that does not fit even with an empty instruction is refused (ValueError).
"""

from dataclasses import dataclass
from typing import Dict, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch.nn import functional as F

STATE_BINS = 256


def resize_with_pad(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float images [B, 3, H, W] in [0, 1] to [B, 3, size, size] without distortion."""
    _, _, height, width = images.shape
    if (height, width) == (size, size):
        return images
    ratio = max(width / size, height / size)
    new_height, new_width = int(height / ratio), int(width / ratio)
    resized = F.interpolate(images, size=(new_height, new_width), mode='bilinear',
                            align_corners=False).clamp(0.0, 1.0)
    top, extra_h = divmod(size - new_height, 2)
    left, extra_w = divmod(size - new_width, 2)
    return F.pad(resized, (left, left + extra_w, top, top + extra_h), value=0.0)


def prepare_images(images: Sequence[np.ndarray], present: Sequence[bool], size: int,
                   device: torch.device):
    """
    Turn uint8 RGB images [H, W, 3] into the model's image list and masks.

    present[i] False marks camera i as missing (its array is ignored); missing cameras are
    appended after the present ones as -1 images with mask False, as LeRobot does.
    """
    tensors, masks = [], []
    for image, ok in zip(images, present):
        if not ok:
            continue
        x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None]
        x = resize_with_pad(x.float() / 255.0, size)
        tensors.append(x * 2.0 - 1.0)
        masks.append(torch.ones(1, dtype=torch.bool, device=device))
    for _ in range(sum(1 for ok in present if not ok)):
        tensors.append(torch.full((1, 3, size, size), -1.0, device=device))
        masks.append(torch.zeros(1, dtype=torch.bool, device=device))
    return tensors, masks


@dataclass
class Normalizer:
    """Per-feature normalization to [-1, 1] (LeRobot NormalizerProcessorStep semantics)."""

    mode: str                       # QUANTILES | MEAN_STD | MIN_MAX | IDENTITY
    stats: Dict[str, np.ndarray]    # q01/q99, mean/std or min/max
    eps: float = 1e-8

    def __post_init__(self):
        """Check that the statistics the mode needs are present."""
        need = {'QUANTILES': ('q01', 'q99'), 'MEAN_STD': ('mean', 'std'),
                'MIN_MAX': ('min', 'max'), 'IDENTITY': ()}
        if self.mode not in need:
            raise ValueError(f"normalization mode must be one of {list(need)}, got '{self.mode}'")
        missing = [k for k in need[self.mode] if k not in self.stats]
        if missing:
            raise ValueError(f'{self.mode} normalization needs statistics {missing}')
        self.stats = {k: np.asarray(v, dtype=np.float32) for k, v in self.stats.items()}

    def _low_span(self):
        low, high = {'QUANTILES': ('q01', 'q99'), 'MIN_MAX': ('min', 'max')}[self.mode]
        span = self.stats[high] - self.stats[low]
        return self.stats[low], np.where(span == 0, self.eps, span)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Map raw values to the normalized space."""
        if self.mode == 'IDENTITY':
            return x
        if self.mode == 'MEAN_STD':
            return (x - self.stats['mean']) / (self.stats['std'] + self.eps)
        low, span = self._low_span()
        return 2.0 * (x - low) / span - 1.0

    def unnormalize(self, x: np.ndarray) -> np.ndarray:
        """Map normalized values back to raw units."""
        if self.mode == 'IDENTITY':
            return x
        if self.mode == 'MEAN_STD':
            return x * (self.stats['std'] + self.eps) + self.stats['mean']
        low, span = self._low_span()
        return (x + 1.0) * span / 2.0 + low


def clean_task(task: str) -> str:
    """Return the instruction as it appears in the prompt (one line, no underscores)."""
    return task.strip().replace('_', ' ').replace('\n', ' ')


def state_prompt(task: str, normalized_state: np.ndarray) -> str:
    """Build pi0.5's prompt with the state discretized into 256 bins."""
    bins = np.digitize(normalized_state, bins=np.linspace(-1, 1, STATE_BINS + 1)[:-1]) - 1
    return f"Task: {clean_task(task)}, State: {' '.join(map(str, bins))};\nAction: "


class PromptTokenizer:
    """SentencePiece tokenizer given by file path: BOS + prompt, right-padded with 0."""

    def __init__(self, model_path: str, max_length: int):
        import sentencepiece
        self.processor = sentencepiece.SentencePieceProcessor(model_file=model_path)
        self.max_length = max_length

    def ids(self, prompt: str) -> list:
        """Return BOS + the prompt's token ids, not cut to max_length."""
        return [self.processor.bos_id()] + self.processor.encode(prompt)

    def __call__(self, prompt: str):
        """
        Return (tokens int64 [max_length], mask bool [max_length]).

        A prompt longer than max_length loses its tail here: build prompts with fit_prompt.
        """
        return self.pad(self.ids(prompt))

    def pad(self, ids: Sequence[int]):
        """Return ids (at most max_length of them) right-padded, with their mask."""
        ids = list(ids)[:self.max_length]
        tokens = np.zeros(self.max_length, dtype=np.int64)
        mask = np.zeros(self.max_length, dtype=bool)
        tokens[:len(ids)] = ids
        mask[:len(ids)] = True
        return tokens, mask

    @property
    def vocab_size(self) -> int:
        """Return the number of pieces."""
        return self.processor.get_piece_size()


class PromptTokens(NamedTuple):
    """A prompt's tokens and mask; note says how the instruction was cut ('' when whole)."""

    tokens: np.ndarray
    mask: np.ndarray
    note: str = ''


def fit_prompt(tokenizer: Optional[PromptTokenizer], instruction: str,
               normalized_state: np.ndarray) -> PromptTokens:
    """
    Tokens and mask for an instruction and state within the tokenizer's budget.

    The whole state always stays in the prompt. If the prompt is too long, the instruction is
    cut to the longest prefix (at a word boundary where there is one) that fits, and note
    says how much was kept; ValueError when not even one instruction character fits.
    """
    if tokenizer is None:
        raise ValueError('an instruction needs a tokenizer (give tokens directly, or a '
                         'checkpoint with tokenizer.model)')
    if not instruction or not instruction.strip():
        raise ValueError('the instruction is empty')
    budget = tokenizer.max_length
    ids = tokenizer.ids(state_prompt(instruction, normalized_state))
    if len(ids) <= budget:
        return PromptTokens(*tokenizer.pad(ids))
    task = clean_task(instruction)

    def fits(chars: int):
        ids = tokenizer.ids(state_prompt(task[:chars], normalized_state))
        return ids if len(ids) <= budget else None

    # A piece covers at most a few dozen characters: no prefix longer than this can fit.
    low, high = 0, min(len(task), 64 * budget)
    while low < high:                      # the longest prefix that fits
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) is not None else (low, middle - 1)
    if low == 0:
        needed = len(tokenizer.ids(state_prompt(task[:1], normalized_state)))
        raise ValueError(f'the prompt needs {needed} tokens with the {len(normalized_state)} '
                         f'state values and one character of the instruction; the budget is '
                         f'{budget} (tokenizer_max_length)')
    keep = low
    if task[keep] != ' ' and ' ' in task[:keep]:       # do not end inside a word
        keep = task.rindex(' ', 0, keep)
    keep = len(task[:keep].rstrip()) or low
    ids = fits(keep)
    if ids is None:
        keep, ids = low, fits(low)
    note = (f'instruction cut to fit the {budget}-token prompt with the whole state: kept '
            f'{keep} of {len(task)} characters ({task[:keep][-40:]!r} ...)')
    return PromptTokens(*tokenizer.pad(ids), note)


def tokenize_instruction(tokenizer: Optional[PromptTokenizer], instruction: str,
                         normalized_state: np.ndarray):
    """Tokens and mask for an instruction and state (fit_prompt without the note)."""
    tokens, mask, _ = fit_prompt(tokenizer, instruction, normalized_state)
    return tokens, mask


def train_prompt_tokenizer(instructions: Sequence[str], path: str, vocab_size: int = 512) -> str:
    """
    Train a SentencePiece model for prompts over these instructions (for small policies).

    The corpus is every instruction in the full prompt format with states over all 256 bins,
    so digits and the template are covered; BOS = 1, pad = 0 as in PaliGemma's tokenizer.
    """
    import io
    import sentencepiece
    rng = np.random.default_rng(0)
    corpus = []
    for instruction in instructions:
        for _ in range(8):
            corpus.append(state_prompt(instruction, rng.uniform(-1, 1, 14)))
    corpus += [' '.join(map(str, range(start, min(start + 16, STATE_BINS))))
               for start in range(0, STATE_BINS, 16)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=vocab_size,
        model_type='unigram', character_coverage=1.0, pad_id=0, bos_id=1, eos_id=2, unk_id=3,
        split_digits=True, hard_vocab_limit=False, minloglevel=2)
    with open(path, 'wb') as stream:
        stream.write(model.getvalue())
    return path


def shrink_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize-with-pad a uint8 [H, W, 3] image to uint8 [size, size, 3] (for stored demos)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    x = resize_with_pad(x, size)[0].permute(1, 2, 0)
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
