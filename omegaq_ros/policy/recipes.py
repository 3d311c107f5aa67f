# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The one way to turn what a user writes into a quantization recipe for pi0.5 or GR00T N1.5.

A method is a preset name, optionally with Recipe fields changed after '+':
'omega-group+act_clip=mse+act_percentile=98' (values read as YAML scalars), applied to the
pi0.5 scope in pi05_recipe.yaml (language backbone and the whole expert at W4A4; vision
tower, tiny projections and adaRMS projections stay FP). A recipe YAML file holds Recipe
fields (`preset:` starts from a preset); without `include` it gets its family's scope.
omegaq-quantize, the quantizer node, omegaq-eval and the benchmarks all come through here.
The same holds for GR00T with groot_recipe.yaml (Qwen3 layers, VL self-attention and the whole
DiT at W4A4) when the policy family is 'groot'.
"""

from dataclasses import fields
import os

from omegaq_ros.quant import PRESETS, Recipe
import yaml

RECIPE_FILE = os.path.join(os.path.dirname(__file__), 'pi05_recipe.yaml')
RECIPE_FILES = {'pi05': RECIPE_FILE,
                'groot': os.path.join(os.path.dirname(__file__), 'groot_recipe.yaml')}


class RecipeError(ValueError):
    """A method or recipe file that does not describe a recipe; the text says why."""


def _scope(family: str = 'pi05') -> dict:
    if family not in RECIPE_FILES:
        raise RecipeError(f"no quantization scope for policy family '{family}'; known "
                          f'{list(RECIPE_FILES)}')
    with open(RECIPE_FILES[family]) as stream:
        return yaml.safe_load(stream)


def method_recipe(method: str = 'omega', family: str = 'pi05') -> Recipe:
    """Return a family's scope (pi0.5 unless told) with a method (PRESET[+field=value...])."""
    preset, *assignments = method.split('+')
    if preset not in PRESETS:
        raise RecipeError(f"unknown method '{preset}'; known {list(PRESETS)}")
    known = {f.name for f in fields(Recipe)}
    scope = _scope(family)
    scope['preset'] = preset
    for assignment in assignments:
        name, equals, value = assignment.partition('=')
        if not equals or name not in known:
            raise RecipeError(f"'{assignment}' in '{method}' is not FIELD=VALUE of a recipe "
                              f'field; fields: {sorted(known)}')
        scope[name] = yaml.safe_load(value)
    try:
        return Recipe.from_dict(scope)
    except (ValueError, TypeError) as error:
        raise RecipeError(f'{method}: {error}') from None


def load_recipe(spec: str, family: str = 'pi05') -> Recipe:
    """Return the recipe of a method (see method_recipe) or of a recipe YAML file path."""
    if spec.split('+')[0] in PRESETS:
        return method_recipe(spec, family)
    if not os.path.isfile(spec):
        raise RecipeError(f'recipe: expected a preset ({", ".join(PRESETS)}), a preset with '
                          f'+field=value changes, or a recipe YAML file, got {spec!r}')
    try:
        return Recipe.from_yaml(spec, scope=_scope(family))
    except (ValueError, TypeError, yaml.YAMLError) as error:
        raise RecipeError(f'recipe {spec}: {error}') from None
