"""README's config reference equals the pydantic schema: every key, its default and a line."""

import yaml

from alloop import config_reference


def test_readme_reference_is_the_generated_one():
    block, missing = config_reference.render()
    assert missing == [], f"give these keys a Field(description=...): {missing}"
    readme = config_reference.readme_block(config_reference.README.read_text())
    assert readme == block, "README is stale: run python -m alloop.config_reference --write"


def test_every_schema_key_is_in_the_reference_with_its_default():
    from alloop.config import ExperimentConfig

    block, _ = config_reference.render()
    text = block.removeprefix("```yaml\n").removesuffix("\n```")
    parsed = yaml.safe_load(text.replace("(required)", "null"))
    defaults = ExperimentConfig.model_validate(
        {"name": "x", "data": {"source": "sklearn:iris"}}).model_dump(mode="json")
    for section in ("data", "model", "strategy", "oracle", "tracking", "store", "scoring"):
        for key, value in defaults[section].items():
            assert key in parsed[section], f"{section}.{key} missing"
            if parsed[section][key] is not None and not isinstance(parsed[section][key], dict):
                assert parsed[section][key] == value, f"{section}.{key}"
    for key in ("compare", "selection"):
        assert key in parsed
