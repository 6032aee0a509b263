"""Print the ratios of a pytest-benchmark JSON file: for each group, every benchmark's median
against the group's baseline (`extra_info["baseline"]`), per batch and per token, plus any
memory figures. Usage: python benchmarks/ratios_words.py results.json"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    groups: dict[str, list[dict]] = {}
    for b in data["benchmarks"]:
        groups.setdefault(b["group"], []).append(b)
    print(f"machine: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}")
    for group, benches in groups.items():
        print(f"\n## {group}")
        base = next((b for b in benches if b["extra_info"].get("baseline")), None)
        for b in benches:
            info = b["extra_info"]
            median = b["stats"]["median"]
            line = f"{b['name']}: median {median * 1e3:.3f} ms"
            if "tokens" in info:
                line += f", {info['tokens'] / median / 1e6:.2f} M tokens/s"
            if base is not None and b is not base:
                ratio = base["stats"]["median"] / median
                if "tokens" in info and "tokens" in base["extra_info"]:
                    per_token = (median / info["tokens"]) / (
                        base["stats"]["median"] / base["extra_info"]["tokens"]
                    )
                    line += f", baseline/this {ratio:.1f}x, per-token cost vs baseline {per_token:.2f}x"
            for key in ("growth_mib", "outputs_mib", "extra_mib"):
                if key in info:
                    line += f", {key} {info[key]:.1f}"
            print(line)


if __name__ == "__main__":
    main(sys.argv[1])
