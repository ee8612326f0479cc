"""The config schema's mechanics: load it, normalise a config to it, and word its errors.

workflow/schemas/config.schema.yaml gives every key a description and a default.
`normalise_config` turns what Snakemake's `--config` hands over into what the same YAML in a
config file would give, then fills the schema's defaults; `one_line` words a jsonschema error
as the single line ipg.config.study.validate_config raises.

Snakemake (snakemake/cli.py `parse_config`) tries int, float, True/False, then
`yaml.load(value, Loader=BaseLoader)` on each `--config key=value`: the BaseLoader keeps every
nested scalar a string, so `--config cross_task='{model: null, top_k: 5}'` arrives as
{'model': 'null', 'top_k': '5'}. `coerce` reads such strings back as YAML where the schema
says the key is not (only) a string: '5' -> 5, 'true' -> True, and 'null' / '~' -> None
wherever the schema allows null, string-or-null keys (a model name) included.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path else SCHEMA_PATH
    if not path.exists():  # installed without the repo: the packaged copy
        path = Path(str(resources.files("ipg") / "config.schema.yaml"))
    return yaml.safe_load(path.read_text())


class StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping with the same key twice (PyYAML keeps the last)."""


def _mapping_without_duplicates(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (lines {seen[key]} and "
                f"{key_node.start_mark.line + 1}); keep one", key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                             _mapping_without_duplicates)


def load_yaml_strict(path: str | Path) -> Any:
    """A YAML config file read with StrictLoader; its errors are one line naming the file."""
    from ipg.errors import IPGError

    path = Path(path)
    if not path.is_file():
        raise IPGError(f"config file {path} does not exist; give an existing --configfile")
    loader = StrictLoader(path.read_text())  # a SafeLoader: no yaml.load of arbitrary tags
    try:
        return loader.get_single_data()
    except yaml.constructor.ConstructorError as exc:
        raise IPGError(f"config file {path}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise IPGError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    finally:
        loader.dispose()


def fill_defaults(node: Any, schema: dict[str, Any]) -> Any:
    """Fill `default` values of the schema into a config (recursively, without aliasing)."""
    types = schema.get("type")
    if isinstance(node, dict) and (types == "object" or isinstance(types, list) and "object" in types):
        for key, sub in schema.get("properties", {}).items():
            if key not in node and "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
            if key in node:
                node[key] = fill_defaults(node[key], sub)
    elif isinstance(node, list) and isinstance(schema.get("items"), dict):
        node = [fill_defaults(item, schema["items"]) for item in node]
    return node


_SCALARS = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None)}
YAML_NULLS = ("null", "Null", "NULL", "~")  # the YAML 1.1/1.2 core spellings of null


def coerce(node: Any, schema: dict[str, Any]) -> Any:
    """Turn strings into the numbers / booleans / nulls the schema expects. Snakemake's
    `--config a='{b: [0, 3], c: null}'` hands nested values over as strings ('0', 'null'),
    which would otherwise fail or, for a string-or-null key, read as a name. A null spelling
    becomes None where the schema allows null or names no type (a free-form mapping)."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if isinstance(node, str) and node.strip() in YAML_NULLS and ("null" in types or not types):
        return None
    if isinstance(node, str) and any(t in _SCALARS for t in types) and "string" not in types:
        try:
            value = yaml.safe_load(node)
        except yaml.YAMLError:
            return node
        if any(isinstance(value, _SCALARS[t]) and not (t != "boolean" and isinstance(value, bool))
               for t in types if t in _SCALARS):
            return value
        return node
    if isinstance(node, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: coerce(v, props.get(k, extra if isinstance(extra, dict) else {}))
                for k, v in node.items()}
    if isinstance(node, list) and isinstance(schema.get("items"), dict):
        return [coerce(item, schema["items"]) for item in node]
    return node


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def one_line(err: jsonschema.ValidationError) -> str:
    where = _where(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return (f"config error at {where}: unknown key(s) {', '.join(map(repr, extra))}; "
                f"allowed keys: {', '.join(allowed)}")
    if err.validator == "enum":
        return (f"config error at {where}: {err.instance!r} is not allowed; allowed values: "
                f"{', '.join(map(str, err.validator_value))}")
    if err.validator == "type":
        return (f"config error at {where}: {err.instance!r} should be of type "
                f"{err.validator_value}")
    return f"config error at {where}: {err.message}"


def normalise_config(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `config` with --config strings read as YAML (`coerce`) and defaults filled."""
    return fill_defaults(coerce(copy.deepcopy(dict(config)), schema), schema)


STEERING_GLOBAL_ONLY = ("methods", "control_method", "deletion_methods", "method_selections")  # global only


def steering_defaults(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The defaults of one steering evaluation called on its own (ipg.config.jobs.SteeringConfig
    .from_dict: `ipg evaluate`), read from the schema, the one place they are defined: the steering keys'
    defaults with ks for neurons, the sampling section's temperature / max_new_tokens, and
    no deletion curve / temperature control (the study sets them per granularity / method)."""
    schema = schema or load_schema()
    props = schema["properties"]["steering"]["properties"]
    out = {k: copy.deepcopy(v["default"]) for k, v in props.items() if k not in STEERING_GLOBAL_ONLY}
    out["ks"] = list(props["ks"]["default"]["neurons"])
    out["deletion_ks"] = []
    out["control_temperatures"] = []
    sampling = schema["properties"]["sampling"]["properties"]
    out["temperature"] = sampling["temperature"]["default"]
    out["max_new_tokens"] = sampling["max_new_tokens"]["default"]
    return out
