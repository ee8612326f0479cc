"""The method is documented inside the repository: code and docs cite docs/method.md, whose
numbered equations cover every `Eq. N` the package cites, and nothing points outside the repo."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = ("IPG_METHOD.md", "DESIGN.md", "STYLE.md", "../shared")


def _texts():
    for pattern in ("src/**/*.py", "rules/*.smk", "docs/*.md", "workflow/**/*.py", "workflow/**/*.rst"):
        yield from ROOT.glob(pattern)
    yield ROOT / "README.md"
    yield ROOT / "Snakefile"


def test_nothing_cites_a_file_outside_the_repository() -> None:
    bad = [f"{p.relative_to(ROOT)}: {name}" for p in _texts() for name in OUTSIDE
           if name in p.read_text(encoding="utf-8")]
    assert not bad, bad


def test_every_cited_equation_is_in_the_method_doc() -> None:
    doc = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^## Eq\. (\d+)", doc, flags=re.M))
    cited = {n for p in ROOT.glob("src/**/*.py") for n in re.findall(r"Eqs?\. (\d+)", p.read_text())}
    assert documented == {"1", "2", "3", "4"}
    assert cited and cited <= documented, cited - documented
