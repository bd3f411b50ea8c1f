"""Print the figures of a pytest-benchmark JSON file: median time and the recorded ratios."""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    print(f"# {data['machine_info'].get('cpu', {}).get('brand_raw', '?')} — {data['datetime']}")
    for b in data["benchmarks"]:
        extra = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in b.get("extra_info", {}).items()
        )
        print(
            f"{b['group'] or '-':<16} {b['name']:<40} median {b['stats']['median'] * 1e3:10.3f} ms"
            f"  {extra}"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json")
