"""Run every benchmark in turn and print their figures."""

import importlib
import sys

BENCHMARKS = [
    "bench.pipeline_bench", "bench.assist_bench", "bench.rules_bench", "bench.text_bench", "bench.vision_bench",
]


def main() -> None:
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        module = importlib.import_module(name)
        sys.argv = [name]
        module.main()


if __name__ == "__main__":
    main()
