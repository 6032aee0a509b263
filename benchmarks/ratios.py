"""Turn a pytest-benchmark JSON file into the ratio tables of RESULTS.md.

Within each group, every benchmark tagged `baseline=False` is compared with every baseline of
the same group (median times), and throughput is reported from `extra_info["tokens"]`.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def label(bench: dict) -> str:
    params = bench.get("params") or {}
    return str(params.get("name") or bench["name"].split("[")[0].removeprefix("test_"))


def tables(data: dict) -> str:
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in data["benchmarks"]:
        groups[b["group"]].append(b)
    out = [
        f"Machine: {data['machine_info'].get('cpu', {}).get('brand_raw', '?')}, "
        f"Python {data['machine_info'].get('python_version', '?')}; medians.",
        "",
    ]
    for group, items in groups.items():
        baselines = [b for b in items if b["extra_info"].get("baseline")]
        out.append(f"### {group}")
        out.append("")
        header = "| implementation | median ms | M tokens/s |" + "".join(
            f" vs {label(b)} |" for b in baselines
        )
        out.append(header)
        out.append("|---" * (3 + len(baselines)) + "|")
        for b in items:
            median = b["stats"]["median"]
            tokens = b["extra_info"].get("tokens")
            rate = f"{tokens / median / 1e6:.2f}" if tokens else ""
            ratios = "".join(f" {base['stats']['median'] / median:.1f}x |" for base in baselines)
            out.append(f"| {label(b)} | {median * 1e3:.3f} | {rate} |{ratios}")
        out.append("")
        # Other figures a benchmark recorded (e.g. memory), listed under its group's table.
        for b in items:
            more = {k: v for k, v in b["extra_info"].items() if k not in ("tokens", "baseline")}
            if more:
                shown = ", ".join(
                    f"{k} = {v:.1f}" if isinstance(v, float) else f"{k} = {v}"
                    for k, v in more.items()
                )
                out.append(f"- {label(b)}: {shown}")
                out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(tables(json.load(f)))
