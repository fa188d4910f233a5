"""The workflow as the Snakemake template keeps it: snakefmt-formatted, lint-clean but for the one justified warning."""

import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers.snakemake import CONFIGS, ROOT, snakemake

#: the one lint Snakemake may report, per rule: every rule runs the one installed firm-bench CLI (docs/REFERENCE.md, "snakemake --lint")
JUSTIFIED = {"Specify a conda environment or container for each rule."}


def test_snakefiles_are_snakefmt_formatted():
    exe = shutil.which("snakefmt") or pytest.fail("snakefmt is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--check", "Snakefile", "workflow"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow  # a Snakemake process (the unit tier runs none)
@pytest.mark.parametrize("pack_runs", [1, 4])  # 4: the training rules are one rule per pack
def test_lint_reports_only_the_justified_warning(tmp_path, pack_runs):
    out = snakemake(tmp_path, "--lint", "--configfile", CONFIGS / "smoke.yaml", "--config", f"pack_runs={pack_runs}",
                    check=False)
    text = out.stdout + out.stderr
    lints = set(re.findall(r"^\s+\* (.+?):\s*$", text, flags=re.M))
    assert lints, f"no lint output parsed: {text[-2000:]}"  # control: the parser sees Snakemake's lints
    assert lints <= JUSTIFIED, f"unjustified lints: {lints - JUSTIFIED}"
    assert "Lints for snakefile" not in text, text[-3000:]  # rule files hold rules only (helpers in common.smk)


@pytest.mark.slow  # a Snakemake process
def test_lint_would_catch_a_new_warning(tmp_path):
    """Control: a rule with a hard-coded shell path prefix makes the lint test fail."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text('rule x:\n    output: "out/a.txt"\n    params: d="out"\n    shell: "touch {output}"\n')
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(tmp_path), "--lint"],
                          capture_output=True, text=True)
    lints = set(re.findall(r"^\s+\* (.+?):\s*$", proc.stdout + proc.stderr, flags=re.M))
    assert lints - JUSTIFIED
