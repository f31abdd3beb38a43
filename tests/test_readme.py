"""Every ```console example in the README runs, and prints what the README says it prints;
every imginspect command of the CI recipes runs and succeeds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.corpus import PushedImage, push_corpus
from tests.support.readme import README, examples, run
from tests.support.registry import Registry

TEXT = README.read_text()
EXAMPLES = list(examples(TEXT))


@pytest.fixture(scope="module")
def demo(registry_plain: Registry) -> dict[str, PushedImage]:
    return push_corpus(registry_plain, prefix="demo")


def test_readme_has_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("index", range(len(EXAMPLES)), ids=[e.command[:60] for e in EXAMPLES])
def test_readme_example(
    index: int, registry_plain: Registry, demo: dict[str, PushedImage], tmp_path: Path
) -> None:
    example = EXAMPLES[index]
    assert run(example.command, registry_plain.host, tmp_path) == example.output, (
        "README example drifted; run scripts/readme-examples after checking the change"
    )


def _recipe_commands() -> list[str]:
    commands = []
    for block in re.finditer(r"^```yaml\n(.*?)^```\n", TEXT, re.S | re.M):
        for line in block.group(1).splitlines():
            stripped = line.strip().removeprefix("- ").strip()
            if stripped.startswith("imginspect "):
                commands.append(stripped)
    return commands


RECIPES = _recipe_commands()


def test_recipes_exist() -> None:
    assert any("--require" in c for c in RECIPES)
    assert any("--expect-digest" in c for c in RECIPES)


@pytest.mark.parametrize("command", RECIPES)
def test_ci_recipe_commands(
    command: str, registry_plain: Registry, demo: dict[str, PushedImage], tmp_path: Path
) -> None:
    image = demo["buildkit"]
    env = (
        f'export IMAGE="localhost:5000/{image.repo}:{image.tag}" PINNED_DIGEST="{image.digest}" '
        f"CI_REGISTRY_IMAGE=localhost:5000/demo/buildkit CI_COMMIT_SHA=v1;"
    )
    # in a scratch directory: recipes write files (e.g. image.digest) where they run
    out = run(f"{env} {command}; echo exit=$?", registry_plain.host, tmp_path, cwd=tmp_path)
    assert out.endswith("exit=0\n"), out
