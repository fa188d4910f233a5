"""Works installed: a wheel of the package (not the checkout) carries every schema, preset, workflow config and
data file the CLI needs (the claims file too), and the installed CLI plans a paper table, checks the claims and
renders a partial report from any folder."""

import importlib.util
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

def package_files() -> list[str]:
    """Every file of the package in the checkout (git's list where it is a git checkout; else the tree without
    caches): the modules and the data files (schemas, presets, workflow configs, the paper's files, embedded data)."""
    proc = subprocess.run(["git", "ls-files", "firm_bench"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        return [f for f in proc.stdout.split() if (ROOT / f).is_file()]  # tracked and not deleted in the tree
    return [str(p.relative_to(ROOT)) for p in (ROOT / "firm_bench").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # with the active environment's setuptools where it can build wheels (offline), else pip's isolated build
    # (a fresh venv may have none, or one older than pyproject.toml's build requirement)
    for isolation in (["--no-build-isolation"], []):
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(out),
                               str(ROOT)], capture_output=True, text=True)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (path,) = out.glob("firm_bench-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_carries_every_file_of_the_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    files = package_files()
    assert any(not f.endswith(".py") for f in files)  # control: the data files are in the list
    assert not [f for f in files if f not in names], sorted(n for n in names if not n.endswith(".py"))


def active_site_dirs() -> list[str]:
    """The directories this interpreter imports installed packages from, in order: those of its environment (a
    venv, a conda env or the system install), not the checkout or PYTHONPATH (whose firm_bench must not be seen)."""
    skip = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p}
    skip |= {os.path.realpath(ROOT), os.path.realpath(os.getcwd())}
    return [p for p in sys.path if p and os.path.isdir(p) and os.path.realpath(p) not in skip]


def installed_env(env_dir: Path) -> tuple[Path, str]:
    """A venv whose dependencies are the active environment's: its site dirs are added (their .pth files read)
    after the venv's own, where the wheel goes. A venv's ``system_site_packages`` would give the *base*
    interpreter's instead, which inside a venv or conda env lacks the dependencies."""
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in active_site_dirs())
    (Path(site) / "_firm_bench_test_active_env.pth").write_text(lines)
    return py, site


@pytest.mark.slow
def test_the_installed_cli_plans_and_reports_from_any_folder(wheel, tmp_path):
    py, site = installed_env(tmp_path / "venv")
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
    for dep in ("pandas", "yaml", "jsonschema", "matplotlib"):  # the dependencies are the active environment's
        there = subprocess.run([str(py), "-c", f"import {dep}; print({dep}.__file__)"], cwd=work, capture_output=True,
                               text=True, env=env)
        assert there.stdout.strip() == importlib.util.find_spec(dep).origin, (dep, there.stdout, there.stderr[-2000:])
    assert "table1a" in cli("plan", "table1a") and "GPU-hours" in cli("plan", "table1a")
    cli("report", "--partial", "--out", str(work / "report" / "index.html"))
    assert not (work / "report" / "index.html").exists()  # the partial view never takes the complete report's place
    assert "t5.firm_gt_ntxent.auroc.cifar10" in (work / "report" / "partial" / "index.html").read_text()  # claims
    cli("claims", "--config", "mini")  # the packaged claims file, no summaries yet: every claim not run
    md = (work / "results" / "claims.md").read_text()
    assert md.count("| not run: ") == md.count("| **") > 150
