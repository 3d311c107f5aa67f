# Copyright 2026 The omegaq_ros Authors
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""
The one way to turn what a user writes into a quantization recipe for pi0.5.

A method is a preset name, optionally with Recipe fields changed after '+':
'omega-group+act_clip=mse+act_percentile=98' (values read as YAML scalars), applied to the
pi0.5 scope in pi05_recipe.yaml (language backbone and the whole expert at W4A4; vision
tower, tiny projections and adaRMS projections stay FP). A recipe YAML file holds Recipe
fields (`preset:` starts from a preset); without `include` it gets the pi0.5 scope.
omegaq-quantize, the quantizer node, omegaq-eval and the benchmarks all come through here.
"""

from dataclasses import fields
import os

from omegaq_ros.quant import PRESETS, Recipe
import yaml

RECIPE_FILE = os.path.join(os.path.dirname(__file__), 'pi05_recipe.yaml')


class RecipeError(ValueError):
    """A method or recipe file that does not describe a recipe; the text says why."""


def _scope() -> dict:
    with open(RECIPE_FILE) as stream:
        return yaml.safe_load(stream)


def pi05_recipe(method: str = 'omega') -> Recipe:
    """Return the pi0.5 scope with a method (PRESET[+field=value...]); RecipeError if unknown."""
    preset, *assignments = method.split('+')
    if preset not in PRESETS:
        raise RecipeError(f"unknown method '{preset}'; known {list(PRESETS)}")
    known = {f.name for f in fields(Recipe)}
    scope = _scope()
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


def load_recipe(spec: str) -> Recipe:
    """Return the recipe of a method (see pi05_recipe) or of a recipe YAML file path."""
    if spec.split('+')[0] in PRESETS:
        return pi05_recipe(spec)
    if not os.path.isfile(spec):
        raise RecipeError(f'recipe: expected a preset ({", ".join(PRESETS)}), a preset with '
                          f'+field=value changes, or a recipe YAML file, got {spec!r}')
    try:
        return Recipe.from_yaml(spec, scope=_scope())
    except (ValueError, TypeError, yaml.YAMLError) as error:
        raise RecipeError(f'recipe {spec}: {error}') from None
