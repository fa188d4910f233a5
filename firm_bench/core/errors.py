"""Every error firm-bench raises on purpose, in one torch-free module.

Each message names the key, file or value at fault and says what to do. The
command line (``firm_bench.cli``) turns the user errors into one line and
exit status 2, a recorded training failure into exit status 1.
"""

from __future__ import annotations


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered (a loss, dataset, score, ...); the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class ConfigError(ValueError):
    """A run or workflow config is invalid; the message names the key and what is allowed."""


class RecipeMismatch(ConfigError):
    """A run directory holds a checkpoint trained under another recipe: resuming it would mix two recipes.

    ``differences``: ``key: old -> new`` lines. The message says what to do
    from the command line; :meth:`in_workflow` what to do in the Snakemake
    workflow, whose run directories are named by the run, not chosen.
    """

    def __init__(self, run_dir: str, differences: list[str]) -> None:
        self.run_dir, self.differences = str(run_dir), list(differences)
        super().__init__(f"{run_dir} holds a checkpoint or finished run of a different config ({self.what()}); "
                         f"use another --run-dir, or pass --retrain to train it from scratch there (replacing "
                         f"{run_dir}/checkpoints and its results)")

    def what(self) -> str:
        shown = "; ".join(self.differences[:5]) or "the recipe differs"
        return shown + (f"; and {len(self.differences) - 5} more" if len(self.differences) > 5 else "")

    def in_workflow(self) -> str:
        return (f"{self.run_dir} holds a checkpoint or finished run trained under another recipe ({self.what()}) "
                "than the workflow plans for it. The workflow names each recipe by its preset and every override "
                "(config.recipe_name), so this run was trained there by hand (firm-bench train --recipe) or under a "
                f"preset changed since. Move or delete {self.run_dir} (its checkpoints, features and scores are the "
                f"other recipe's), then rerun snakemake with --forcerun {self.run_dir}/trained.json")


class DatasetError(RuntimeError):
    """The data of a dataset is missing or unreadable.

    The message names the root, the expected layout under it and how to get
    the data (download flag or URL).
    """


class DataProblem(Exception):
    """Raised by a dataset reader for one concrete problem ("missing X").

    Internal to the datasets: ``DatasetInfo.load`` turns it into a
    :class:`DatasetError`. ``hint`` is an optional extra line (e.g. "root
    points one level too deep").
    """

    def __init__(self, problem: str, hint: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


class TrainingFailed(RuntimeError):
    """A run could not finish (non-finite loss, ...); recorded in its status.json as failed, with the reason."""


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT or SIGTERM at an epoch boundary, with a checkpoint; status.json says interrupted.

    Not an error of the run: rerunning the same command resumes it. The
    command line exits with the conventional status, 128 + the signal's
    number (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int, signame: str, epoch: int, epochs: int, run_dir: str) -> None:
        super().__init__(f"{signame} at epoch {epoch}/{epochs}; checkpoint {run_dir}/checkpoints/last.pt saved")
        self.signum, self.signame, self.epoch, self.epochs, self.run_dir = signum, signame, epoch, epochs, run_dir

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class RunDirLocked(RuntimeError):
    """Another live process holds a run directory's lock (``core.lock``).

    The message names the holder (PID, host, command, since when) and what to
    do: wait, stop it, or give the other run its own directory.
    """


class DamagedFile(RuntimeError):
    """A run file that cannot be trusted: unreadable, truncated, failing its checksum, or contradicting
    the run's other records (a short learning curve, a config unlike its checkpoint's).

    ``path`` is the file, ``what`` what it is, ``fix`` what to do (which step to rerun, or what to
    delete); the message says all three.
    """

    def __init__(self, path: object, problem: str, what: str, fix: str) -> None:
        super().__init__(f"{path} ({what}) {problem}; {fix}")
        self.path, self.problem, self.what, self.fix = path, problem, what, fix


class StaleRecord(DamagedFile):
    """A run record not made from what it must come from now (``records.chain``): a feature cache of another
    checkpoint or features config, a score of another cache, metrics of an earlier model, a record of another
    run than its directory's path names. The message names the record, the file it contradicts and the
    commands that make it again."""


class RunDirUnusable(RuntimeError):
    """A run directory that cannot be created or written: a file stands in its place (or in a parent's), or it
    is read-only; the message names the path, the cause and what to do."""


class DiskFull(RuntimeError):
    """No space left on the device (or the quota is used up) while writing ``path``; the previous file is untouched."""

    def __init__(self, path: object, message: str) -> None:
        super().__init__(message)
        self.path = path


#: errors of the user's input or of the run directory (config, names, files, data, locks, damaged or
#: unwritable files): one line on the command line, exit status 2
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, UnknownNameError, DatasetError, FileNotFoundError,
                                                 ValueError, RunDirLocked, DamagedFile, DiskFull,
                                                 RunDirUnusable)
