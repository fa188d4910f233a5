"""Works installed: a wheel of the package (not the checkout) carries every schema, preset, workflow config and
data file the CLI needs (the claims file too), and the installed CLI plans a paper table, checks the claims and
renders a partial report from any folder."""

import os
import subprocess
import sys
import venv
import zipfile

import pytest

from tests.helpers import ROOT

#: package data the CLI reads at run time (pyproject.toml [tool.setuptools.package-data])
DATA = ["firm_bench/schema/run.schema.yaml", "firm_bench/schema/workflow.schema.yaml", "firm_bench/schema/catalog.json",
        "firm_bench/presets/paper.yaml", "firm_bench/experiments/paper.yaml", "firm_bench/experiments/mini.yaml",
        "firm_bench/schema/throughput.yaml", "firm_bench/paper/reported_results.csv", "firm_bench/paper/NOTES.md",
        "firm_bench/paper/claims.yaml", "firm_bench/paper/claims/__init__.py", "firm_bench/paper/claims/render.py",
        "firm_bench/datasets/data/fmnist_mini.npz"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True)
    (path,) = out.glob("firm_bench-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_carries_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [d for d in DATA if d not in names], sorted(n for n in names if not n.endswith(".py"))


@pytest.mark.slow
def test_the_installed_cli_plans_and_reports_from_any_folder(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)  # dependencies from this Python
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    zipfile.ZipFile(wheel).extractall(site)  # a wheel is a zip of the installed files
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed copy, not a checkout

    def cli(*args):
        proc = subprocess.run([str(py), "-m", "firm_bench.cli", *args], cwd=work, capture_output=True, text=True,
                              env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    where = subprocess.run([str(py), "-c", "import firm_bench; print(firm_bench.__file__)"], cwd=work,
                           capture_output=True, text=True, env=env).stdout
    assert where.startswith(site), f"not the installed copy: {where}"
    assert "table1a" in cli("plan", "table1a") and "GPU-hours" in cli("plan", "table1a")
    cli("report", "--partial", "--out", str(work / "report" / "index.html"))
    assert not (work / "report" / "index.html").exists()  # the partial view never takes the complete report's place
    assert "t5.firm_gt_ntxent.auroc.cifar10" in (work / "report" / "partial" / "index.html").read_text()  # claims
    cli("claims", "--config", "mini")  # the packaged claims file, no summaries yet: every claim not run
    md = (work / "results" / "claims.md").read_text()
    assert md.count("| not run: ") == md.count("| **") > 150
