"""Check a dataset and report every problem: ``python scripts/check_dataset.py data=animals``.

Takes the same Hydra overrides as train.py (``data=...``, ``data.root=...``). Exit 0 when clean
(warnings, such as a class without pixels, are printed but do not fail), 1 with the list of
problems, 2 when the dataset cannot be opened at all.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import compose_from_argv, exit_on_user_error


@exit_on_user_error
def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    from animalseg.data.check import check_dataset, format_report
    from animalseg.data.module import DataModule

    cfg = compose_from_argv(argv)
    data = DataModule.from_config(cfg.data)
    dataset = data.dataset
    report = check_dataset(dataset, data.base_size)
    print(format_report(report, dataset))
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.problems:
        print(f"\n{len(report.problems)} problem(s):")
        for problem in report.problems:
            print(f"  {problem}")
        return 1
    print("\nno problems found")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
