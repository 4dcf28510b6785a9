"""Which executor `bench run` uses, from its options, checked before any cell is planned: the
local loop, or Ray with settings whose bad combinations are refused before Ray starts."""

from __future__ import annotations

from bench.core.cells import RaySettings
from bench.errors import BenchError
from bench.plan.options import check_device


def check_settings(settings: RaySettings, device: str) -> None:
    """Bad --cpus-per-task / --gpus-per-task / --device combinations, before Ray starts."""
    if not settings.cpus_per_task > 0:
        raise BenchError(f"--cpus-per-task must be positive, got {settings.cpus_per_task:g}")
    gpus = settings.gpus_per_task
    if gpus < 0 or (gpus > 1 and not float(gpus).is_integer()):
        raise BenchError(f"--gpus-per-task must be a fraction of one GPU (0.25) or a whole "
                         f"number, got {gpus:g}")
    if device == "cpu" and gpus > 0:
        raise BenchError(f"--gpus-per-task {gpus:g} with --device cpu; add --device cuda")
    if device.startswith("cuda:"):
        raise BenchError(f"--device {device} with --executor ray: Ray gives each task its GPU; "
                         "pass --device cuda")
    if device == "cuda" and gpus == 0:
        raise BenchError("--device cuda with --gpus-per-task 0: Ray hides the GPUs from tasks "
                         "that ask for none; pass e.g. --gpus-per-task 1 (or 0.25 to share one)")


def plan_executor(options: dict, explicit: set[str]) -> RaySettings | None:
    """The Ray settings of `bench run` (None: the local loop), checked before any cell is planned.
    Ray options without --executor ray are refused rather than silently ignored."""
    ray_only = [f"--{name.replace('_', '-')}" for name in
                ("cpus_per_task", "gpus_per_task", "ray_address") if name in explicit]
    if options.get("executor", "local") != "ray":
        if ray_only:
            raise BenchError(f"{', '.join(ray_only)} apply to --executor ray; add it or drop them")
        return None
    if "threads" in explicit:
        raise BenchError("--threads applies to --executor local; with ray each task runs "
                         "--cpus-per-task threads")
    device = check_device(options["device"])
    gpus = options["gpus_per_task"]
    settings = RaySettings(options["ray_address"], options["cpus_per_task"],
                           (1.0 if device == "cuda" else 0.0) if gpus is None else gpus)
    check_settings(settings, device)
    return settings
