"""First decode and cached load of miniImageNet's three splits, and the cache's size on disk.

Usage: python benchmarks/mini_load_times.py CACHE_DIR [DATA_ROOT]
(an empty CACHE_DIR measures the first decode; DATA_ROOT defaults to ../shared/data/miniimagenet)
"""

import subprocess
import sys
import time
from pathlib import Path

from bench.datasets.mini_imagenet import MiniImageNet


def main() -> None:
    cache = Path(sys.argv[1])
    root = Path(sys.argv[2] if len(sys.argv) > 2 else "../shared/data/miniimagenet")
    for attempt in ("first", "cached"):
        dataset = MiniImageNet(MiniImageNet.Config(), root=root, cache_dir=cache)
        for split in ("train", "val", "test"):
            wall, cpu = time.perf_counter(), time.process_time()
            images = dataset.load(split)
            print(f"{attempt} {split}: {tuple(images.images.shape)}, {images.n_classes} classes, "
                  f"wall {time.perf_counter() - wall:.1f} s, cpu {time.process_time() - cpu:.1f} s",
                  flush=True)
    print(subprocess.run(["du", "-b", "-s", str(cache)], capture_output=True, text=True,
                         check=False).stdout)


if __name__ == "__main__":
    main()
