"""Training logs: a progress bar, ``metrics.jsonl``, TensorBoard events and a PNG of the curves.

Only process 0 writes. Metrics arrive as host floats, already fetched by the loop at its logging
interval, so logging never blocks the device inside the interval.
"""
import json
import math
import pathlib

import jax
import tqdm

from jdeblur.atomic import append_line, replacing
from jdeblur.errors import UserError


class MetricLogger:
    """Writes per-step training and evaluation records of one run under ``workdir``."""

    def __init__(self, workdir, *, total_steps: int, initial_step: int = 0, tensorboard: bool = True,
                 progress: bool = True):
        self.workdir = pathlib.Path(workdir)
        self.enabled = jax.process_index() == 0
        self.bar = None
        self.tb = None
        if not self.enabled:
            return
        self.train_path = self.workdir / "metrics.jsonl"
        self.eval_path = self.workdir / "eval.jsonl"
        if progress:
            self.bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
                                 desc="train", smoothing=0.1)
        if tensorboard:
            from tensorboardX import SummaryWriter  # imported here: it is slow and optional

            self.tb = SummaryWriter(str(self.workdir / "tensorboard"))

    def train(self, step: int, values: dict) -> None:
        """Records training measurements at ``step`` and advances the progress bar to it."""
        if not self.enabled:
            return
        record = {"step": step, **{k: float(v) for k, v in values.items()}}
        append_line(self.train_path, json.dumps(record))
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"train/{k}", float(v), step)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            shown = {k: values[k] for k in ("loss", "psnr", "images_per_s") if k in values}
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)

    def evaluation(self, step: int, table: dict, convention: str) -> None:
        """Records one evaluation: ``table`` maps a method ('blurred', 'wiener', 'model', ...) to metrics."""
        if not self.enabled:
            return
        record = {"step": step, "convention": convention, **table}
        append_line(self.eval_path, json.dumps(record))
        if self.tb is not None:
            for method, values in table.items():
                for k, v in values.items():
                    self.tb.add_scalar(f"eval/{method}/{k}", float(v), step)
        message = ", ".join(f"{m} {v['psnr']:.2f} dB" for m, v in table.items())
        self.write(f"eval step {step} [{convention}]: {message}")

    def write(self, message: str) -> None:
        """Prints a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    def close_progress(self) -> None:
        """Closes the progress bar (left on screen as it stands), so that what is printed next follows it."""
        if self.bar is not None:
            self.bar.close()

    def close(self) -> None:
        self.close_progress()
        if self.tb is not None:
            self.tb.close()


def read_jsonl(path) -> list[dict]:
    """The records of a JSON-lines file (empty if it does not exist).

    A last line that does not parse is skipped: records are appended, so only the last one can
    have been torn, by a kill in mid-write. Anywhere else, a bad line is an error.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number < len(lines):
                raise UserError(f"{path}, line {number}: expected a JSON record ({e})") from None
    return records


def plot_curves(workdir) -> pathlib.Path | None:
    """Plots training loss, training PSNR and evaluation PSNR against steps to ``curves.png``."""
    workdir = pathlib.Path(workdir)
    train = read_jsonl(workdir / "metrics.jsonl")
    evals = read_jsonl(workdir / "eval.jsonl")
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    steps = [r["step"] for r in train]
    axes[0].plot(steps, [r["loss"] for r in train])
    axes[0].set(title="training loss", xlabel="step", yscale="log" if min(r["loss"] for r in train) > 0 else "linear")
    axes[1].plot(steps, [r["psnr"] for r in train])
    axes[1].set(title="training PSNR (dB, patches)", xlabel="step")
    if evals:
        eval_steps = [r["step"] for r in evals]
        for method in [m for m in evals[-1] if isinstance(evals[-1][m], dict)]:
            values = [r[method]["psnr"] if method in r else math.nan for r in evals]
            axes[2].plot(eval_steps, values, marker="o", label=method)
        axes[2].legend(fontsize=8)
        axes[2].set(title=f"test PSNR (dB, {evals[-1]['convention']})", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = workdir / "curves.png"
    with replacing(out, "wb") as f:
        fig.savefig(f, dpi=100, format="png")
    plt.close(fig)
    return out
